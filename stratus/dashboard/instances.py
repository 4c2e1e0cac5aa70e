"""Instances: the list (its rows refreshed live), the launch dialog, actions, snapshot, console log.

The list costs two API calls whatever its length: one detailed server list (the flavor comes
embedded at the compute microversion we speak) and one image list for the image names.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from stratus.dashboard import web
from stratus.dashboard.cloud import ApiError, Cloud, TokenRejected
from stratus.dashboard.web import Form

POWER_STATES = {0: "No state", 1: "Running", 3: "Paused", 4: "Shut down", 6: "Crashed", 7: "Suspended"}
# The verbs on the actions menu and the compute action body each one sends.
ACTIONS: dict[str, dict[str, Any]] = {
    "start": {"os-start": None}, "stop": {"os-stop": None}, "reboot": {"reboot": {"type": "SOFT"}},
    "hard-reboot": {"reboot": {"type": "HARD"}}, "pause": {"pause": None}, "unpause": {"unpause": None},
    "suspend": {"suspend": None}, "resume": {"resume": None},
}
# Which verbs make sense in which status (the API refuses the others anyway; this keeps menus short).
OFFERED = {"ACTIVE": ["stop", "reboot", "hard-reboot", "pause", "suspend"], "SHUTOFF": ["start"],
           "PAUSED": ["unpause"], "SUSPENDED": ["resume"], "ERROR": ["hard-reboot"]}


async def image_names(cloud: Cloud) -> dict[str, str]:
    body = await cloud.get("image", "/v2/images", limit=1000)
    return {image["id"]: image.get("name") or image["id"] for image in body.get("images", [])}


async def list_servers(cloud: Cloud, **params: Any) -> list[dict[str, Any]]:
    """Every server of the project (or, with all_tenants, the cloud), following `next` links."""
    servers: list[dict[str, Any]] = []
    marker = None
    while True:
        query = dict(params, limit=1000, **({"marker": marker} if marker else {}))
        body = await cloud.get("compute", "/servers/detail", **query)
        page = body.get("servers", [])
        servers += page
        if not body.get("servers_links") or not page:
            return servers
        marker = page[-1]["id"]


def rows(servers: list[dict[str, Any]], images: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for server in servers:
        image = server.get("image") or {}
        image_id = str(image.get("id") or "") if isinstance(image, dict) else ""
        addresses = [f"{a['addr']}" + (" (floating)" if a.get("OS-EXT-IPS:type") == "floating" else "")
                     for net in (server.get("addresses") or {}).values() for a in net]
        out.append({
            "id": server["id"], "name": server.get("name", ""), "status": server.get("status", ""),
            "task": server.get("OS-EXT-STS:task_state"),
            "image": images.get(image_id, image_id) if image_id else "(volume)",
            "flavor": (server.get("flavor") or {}).get("original_name", ""), "addresses": addresses,
            "key_name": server.get("key_name") or "", "project_id": server.get("tenant_id", ""),
            "host": server.get("OS-EXT-SRV-ATTR:host") or "",
            "power": POWER_STATES.get(server.get("OS-EXT-STS:power_state") or 0, "No state"),
            "actions": OFFERED.get(server.get("status", ""), []),
        })
    return out


async def _table_rows(cloud: Cloud) -> list[dict[str, Any]]:
    servers, images = await asyncio.gather(list_servers(cloud), image_names(cloud))
    return rows(servers, images)


async def index(request: Request, cloud: Cloud) -> Response:
    table, choices = await asyncio.gather(_table_rows(cloud), _launch_choices(cloud))
    return web.render(request, "instances.html", cloud.session, title="Instances", instances=table, **choices)


async def table_fragment(request: Request, cloud: Cloud) -> Response:
    return web.render(request, "instance_rows.html", cloud.session, instances=await _table_rows(cloud))


async def launch_page(request: Request, cloud: Cloud) -> Response:
    """The launch form as a page of its own (what the dialog shows, for browsers without scripts)."""
    return web.render(request, "launch.html", cloud.session, title="Launch instance",
                      **await _launch_choices(cloud))


async def _launch_choices(cloud: Cloud) -> dict[str, Any]:
    images, flavors, networks, keypairs, groups = await asyncio.gather(
        cloud.get("image", "/v2/images", limit=1000, status="active"),
        cloud.get("compute", "/flavors/detail"),
        cloud.get("network", "/v2.0/networks"),
        cloud.get("compute", "/os-keypairs"),
        cloud.get("network", "/v2.0/security-groups", project_id=cloud.session.project.get("id", "")))
    return {"images": sorted(images.get("images", []), key=lambda i: i.get("name") or ""),
            "flavors": sorted(flavors.get("flavors", []), key=lambda f: (f["vcpus"], f["ram"])),
            "networks": [n for n in networks.get("networks", []) if not n.get("router:external")
                         or n.get("shared")],
            "keypairs": [k["keypair"] for k in keypairs.get("keypairs", [])],
            "security_groups": groups.get("security_groups", [])}


async def launch(request: Request, cloud: Cloud, form: Form) -> Response:
    name = form.require("name", "Instance name")
    server: dict[str, Any] = {"name": name, "imageRef": form.require("image", "Image"),
                              "flavorRef": form.require("flavor", "Flavor")}
    try:
        count = int(form.get("count") or "1")
    except ValueError:
        raise ApiError(400, "Count must be a whole number.") from None
    if not 1 <= count <= 100:
        raise ApiError(400, "Count must be between 1 and 100.")
    if count > 1:
        server["min_count"] = server["max_count"] = count
    networks = form.getlist("network")
    server["networks"] = [{"uuid": n} for n in networks] if networks else "auto"
    if form.get("key_name"):
        server["key_name"] = form.get("key_name")
    groups = form.getlist("security_group")
    if groups:
        server["security_groups"] = [{"name": g} for g in groups]
    user_data = form.values.get("user_data", [""])[0]
    if user_data.strip():
        server["user_data"] = base64.b64encode(user_data.encode()).decode()
    await cloud.post("compute", "/servers", {"server": server})
    cloud.session.flash("success", f"Launching instance {name}." if count == 1
                        else f"Launching {count} instances named {name}.")
    return web.redirect("/project/instances")


async def act(request: Request, cloud: Cloud, form: Form) -> str:
    server_id = request.path_params["server_id"]
    verb = form.require("action", "Action")
    if verb == "delete":
        await cloud.delete("compute", f"/servers/{server_id}")
        return "Instance is being deleted."
    if verb not in ACTIONS:
        raise ApiError(400, f"Unknown action {verb!r}.")
    await cloud.post("compute", f"/servers/{server_id}/action", ACTIONS[verb])
    return f"Requested {verb.replace('-', ' ')}."


async def snapshot(request: Request, cloud: Cloud, form: Form) -> str:
    name = form.require("name", "Snapshot name")
    await cloud.post("compute", f"/servers/{request.path_params['server_id']}/action",
                     {"createImage": {"name": name}})
    return f"Snapshot {name} is being made; it appears under Images."


async def detail(request: Request, cloud: Cloud) -> Response:
    server_id = request.path_params["server_id"]
    body, images = await asyncio.gather(cloud.get("compute", f"/servers/{server_id}"), image_names(cloud))
    console, (attached, attachable) = await asyncio.gather(_console(cloud, server_id),
                                                           _volumes_of(cloud, body["server"]))
    instance = rows([body["server"]], images)[0]
    return web.render(request, "instance_detail.html", cloud.session, title=instance["name"], instance=instance,
                      server=body["server"], console=console, volumes_attached=attached, attachable=attachable,
                      has_volumes=cloud.has("volumev3"))


async def _console(cloud: Cloud, server_id: str) -> str:
    try:
        return str((await cloud.post("compute", f"/servers/{server_id}/action",
                                     {"os-getConsoleOutput": {"length": 200}})).get("output", ""))
    except TokenRejected:
        raise
    except ApiError as exc:  # e.g. still building: the page is still worth showing
        return f"(no console log: {exc.message})"


async def _volumes_of(cloud: Cloud, server: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The server's volumes (named, from block storage) and the project's volumes free to attach."""
    ids = [v["id"] for v in server.get("os-extended-volumes:volumes_attached") or []]
    unnamed = [{"id": i, "name": i, "size": ""} for i in ids]
    if not cloud.has("volumev3"):
        return unnamed, []
    try:
        volumes = (await cloud.get("volumev3", "/volumes/detail")).get("volumes", [])
    except TokenRejected:
        raise
    except ApiError:  # block storage down: the volumes are still listed (by id), only not offered
        return unnamed, []
    known = {v["id"]: v for v in volumes}
    attached = [{"id": i, "name": known.get(i, {}).get("name") or i, "size": known.get(i, {}).get("size", "")}
                for i in ids]
    attachable = sorted((v for v in volumes if v.get("status") == "available"), key=lambda v: v.get("name") or "")
    return attached, attachable


routes = [
    web.page("/project/instances", index),
    web.fragment("/project/instances/rows", table_fragment),
    web.page("/project/instances/launch", launch_page),
    web.action("/project/instances/launch", launch, fallback="/project/instances"),
    web.page("/project/instances/{server_id}", detail),
    web.action("/project/instances/{server_id}/action", act, fallback="/project/instances"),
    web.action("/project/instances/{server_id}/snapshot", snapshot, fallback="/project/instances"),
]
