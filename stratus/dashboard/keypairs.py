"""Key pairs: list, create (the private key is sent once, as a download, and kept nowhere), import,
delete."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from stratus.dashboard import web
from stratus.dashboard.cloud import ApiError, Cloud
from stratus.dashboard.web import Form

_SAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]")


async def index(request: Request, cloud: Cloud) -> Response:
    body = await cloud.get("compute", "/os-keypairs")
    keypairs = sorted((k["keypair"] for k in body.get("keypairs", [])), key=lambda k: k["name"])
    return web.render(request, "keypairs.html", cloud.session, title="Key pairs", keypairs=keypairs)


async def create(request: Request, cloud: Cloud, form: Form) -> Response:
    name = form.require("name", "Key pair name")
    body = await cloud.post("compute", "/os-keypairs", {"keypair": {"name": name}})
    private_key = body.get("keypair", {}).get("private_key")
    if not private_key:
        raise ApiError(502, "The compute service made the key pair but returned no private key.")
    filename = _SAFE_FILENAME.sub("_", name) + ".pem"
    return Response(private_key, media_type="application/x-pem-file",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


async def import_key(request: Request, cloud: Cloud, form: Form) -> str:
    name = form.require("name", "Key pair name")
    public_key = form.require("public_key", "Public key")
    await cloud.post("compute", "/os-keypairs", {"keypair": {"name": name, "public_key": public_key}})
    return f"Key pair {name} imported."


async def delete(request: Request, cloud: Cloud, form: Form) -> str:
    name = request.path_params["name"]
    await cloud.delete("compute", f"/os-keypairs/{name}")
    return f"Key pair {name} deleted."


routes = [
    web.page("/project/key_pairs", index),
    web.action("/project/key_pairs/create", create, fallback="/project/key_pairs"),
    web.action("/project/key_pairs/import", import_key, fallback="/project/key_pairs"),
    web.action("/project/key_pairs/{name}/delete", delete, fallback="/project/key_pairs"),
]
