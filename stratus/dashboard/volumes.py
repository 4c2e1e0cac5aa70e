"""Volumes (block storage), shown only when the catalog has a `volumev3` endpoint: list (its rows
refreshed live), create, extend, attach to and detach from instances, delete; and their snapshots.

Attach and detach go through compute's os-volume_attachments (compute plugs the volume into the
server), from this list or from an instance's page (`instances.detail` shows its volumes)."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from stratus.dashboard import web
from stratus.dashboard.cloud import ApiError, Cloud
from stratus.dashboard.instances import list_servers
from stratus.dashboard.web import Form


def _size(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise ApiError(400, "Size must be a whole number of GiB, at least 1.")
    return int(value)


async def _table(cloud: Cloud) -> dict[str, Any]:
    """The volume rows, each with the servers it is attached to (id and name), and the servers to
    offer for attaching."""
    volumes, servers = await asyncio.gather(cloud.get("volumev3", "/volumes/detail"), list_servers(cloud))
    names = {s["id"]: s.get("name") or s["id"] for s in servers}
    rows = [dict(v, attached_to=[{"id": a.get("server_id"), "name": names.get(a.get("server_id"), a.get("server_id"))}
                                 for a in v.get("attachments", [])])
            for v in sorted(volumes.get("volumes", []), key=lambda v: (v.get("name") or "", v["id"]))]
    return {"volumes": rows, "servers": servers}


async def index(request: Request, cloud: Cloud) -> Response:
    table, snapshots = await asyncio.gather(_table(cloud), cloud.get("volumev3", "/snapshots/detail"))
    return web.render(request, "volumes.html", cloud.session, title="Volumes",
                      snapshots=snapshots.get("snapshots", []), **table)


async def table_fragment(request: Request, cloud: Cloud) -> Response:
    return web.render(request, "volume_rows.html", cloud.session, **await _table(cloud))


async def create(request: Request, cloud: Cloud, form: Form) -> str:
    name = form.require("name", "Volume name")
    await cloud.post("volumev3", "/volumes", {"volume": {"name": name, "size": _size(form.get("size"))}})
    return f"Volume {name} is being created."


async def extend(request: Request, cloud: Cloud, form: Form) -> str:
    await cloud.post("volumev3", f"/volumes/{request.path_params['volume_id']}/action",
                     {"os-extend": {"new_size": _size(form.get("size"))}})
    return "Volume is being extended."


async def attach(request: Request, cloud: Cloud, form: Form) -> str:
    server = form.require("server_id", "Instance")
    await cloud.post("compute", f"/servers/{server}/os-volume_attachments",
                     {"volumeAttachment": {"volumeId": request.path_params["volume_id"]}})
    return "Volume is being attached."


async def attach_to_instance(request: Request, cloud: Cloud, form: Form) -> str:
    """The instance page's form: the server is in the path, the volume chosen."""
    volume = form.require("volume_id", "Volume to attach")
    await cloud.post("compute", f"/servers/{request.path_params['server_id']}/os-volume_attachments",
                     {"volumeAttachment": {"volumeId": volume}})
    return "Volume is being attached."


async def detach(request: Request, cloud: Cloud, form: Form) -> str:
    server = form.require("server_id", "Instance")
    await cloud.delete("compute", f"/servers/{server}/os-volume_attachments/{request.path_params['volume_id']}")
    return "Volume is being detached."


async def snapshot(request: Request, cloud: Cloud, form: Form) -> str:
    name = form.require("name", "Snapshot name")
    await cloud.post("volumev3", "/snapshots", {"snapshot": {"name": name,
                                                             "volume_id": request.path_params["volume_id"]}})
    return f"Snapshot {name} is being made."


async def delete(request: Request, cloud: Cloud, form: Form) -> str:
    await cloud.delete("volumev3", f"/volumes/{request.path_params['volume_id']}")
    return "Volume is being deleted."


async def delete_snapshot(request: Request, cloud: Cloud, form: Form) -> str:
    await cloud.delete("volumev3", f"/snapshots/{request.path_params['snapshot_id']}")
    return "Snapshot is being deleted."


routes = [
    web.page("/project/volumes", index),
    web.fragment("/project/volumes/rows", table_fragment),
    web.action("/project/volumes/create", create, fallback="/project/volumes"),
    web.action("/project/volumes/{volume_id}/extend", extend, fallback="/project/volumes"),
    web.action("/project/volumes/{volume_id}/attach", attach, fallback="/project/volumes"),
    web.action("/project/volumes/{volume_id}/detach", detach, fallback="/project/volumes"),
    web.action("/project/volumes/{volume_id}/snapshot", snapshot, fallback="/project/volumes"),
    web.action("/project/volumes/{volume_id}/delete", delete, fallback="/project/volumes"),
    web.action("/project/volume_snapshots/{snapshot_id}/delete", delete_snapshot, fallback="/project/volumes"),
    web.action("/project/instances/{server_id}/attach_volume", attach_to_instance, fallback="/project/instances"),
]
