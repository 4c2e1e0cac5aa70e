"""Object containers: list, create, delete; their objects: list, upload (streamed), download
(streamed), delete."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from stratus.dashboard import web
from stratus.dashboard.cloud import ApiError, Cloud
from stratus.dashboard.web import Form


def _path(container: str, name: str | None = None) -> str:
    if not container or "/" in container:
        raise ApiError(400, "A container name cannot be empty or hold a '/'.")
    path = "/" + quote(container, safe="")
    return path + "/" + quote(name, safe="/") if name else path


async def index(request: Request, cloud: Cloud) -> Response:
    containers = await cloud.get("object-store", "", format="json")
    return web.render(request, "containers.html", cloud.session, title="Containers", containers=containers)


async def create(request: Request, cloud: Cloud, form: Form) -> str:
    name = form.require("name", "Container name")
    headers = {"X-Container-Read": ".r:*,.rlistings"} if form.get("public") == "on" else {}
    await cloud.request("PUT", "object-store", _path(name), headers=headers)
    return f"Container {name} created."


async def delete(request: Request, cloud: Cloud, form: Form) -> str:
    name = request.path_params["container"]
    await cloud.delete("object-store", _path(name))
    return f"Container {name} deleted."


async def objects(request: Request, cloud: Cloud) -> Response:
    container = request.path_params["container"]
    listing = await cloud.get("object-store", _path(container), format="json")
    return web.render(request, "objects.html", cloud.session, title=container, container=container, objects=listing)


async def upload(request: Request, cloud: Cloud) -> Response:
    container = request.path_params["container"]
    name = request.query_params.get("name", "").strip()
    if not name:
        raise ApiError(400, "Object name is required.")
    headers = {"Content-Type": "application/octet-stream"}
    if request.headers.get("content-length"):
        headers["Content-Length"] = request.headers["content-length"]
    await cloud.stream_in("object-store", _path(container, name), request.stream(), headers)
    return JSONResponse({"name": name, "next": f"/project/containers/{quote(container, safe='')}"}, status_code=201)


async def download(request: Request, cloud: Cloud) -> Response:
    container, name = request.path_params["container"], request.path_params["name"]
    upstream, body = await cloud.stream_out("object-store", _path(container, name))
    filename = name.rsplit("/", 1)[-1].replace('"', "")
    headers = {"Content-Disposition": f"attachment; filename=\"{filename}\""}
    if upstream.headers.get("content-length"):
        headers["Content-Length"] = upstream.headers["content-length"]
    return StreamingResponse(body, media_type="application/octet-stream", headers=headers)


async def delete_object(request: Request, cloud: Cloud, form: Form) -> str:
    container, name = request.path_params["container"], request.path_params["name"]
    await cloud.delete("object-store", _path(container, name))
    return f"Object {name} deleted."


routes = [
    web.page("/project/containers", index),
    web.action("/project/containers/create", create, fallback="/project/containers"),
    web.action("/project/containers/{container}/delete", delete, fallback="/project/containers"),
    web.page("/project/containers/{container}", objects),
    web.upload("/project/containers/{container}/upload", upload),
    web.page("/project/containers/{container}/objects/{name:path}", download),
    web.action("/project/containers/{container}/delete_object/{name:path}", delete_object,
               fallback="/project/containers"),
]
