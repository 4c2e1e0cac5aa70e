"""/v2.1/servers/{server_id}/os-volume_attachments: the volumes of a server; attach and detach.

The API checks what it can answer at once (the server, its state, that the caller may use the
volume, that the volume can be reserved) and reserves the block storage attachment; the conductor
then connects and hot-plugs it on the server's host (`stratus.compute.volume_ops`).
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from pydantic import Field

from stratus.compute import block_devices, instance_actions, models
from stratus.compute.api.deps import Body, Caller, service
from stratus.compute.api.servers import check_not_locked, find_instance
from stratus.compute.rpc import CONDUCTOR_TOPIC
from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.core.http import request_id

router = APIRouter(prefix="/v2.1", tags=["volume attachments"])


class AttachRequest(Body):
    volumeId: str = Field(min_length=1)  # noqa: N815 (the API's name)
    device: str | None = None


class AttachBody(Body):
    volumeAttachment: AttachRequest  # noqa: N815


def _volume_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise errors.BadRequest(f"Invalid input for field/attribute volumeId. Value: {value}. "
                                f"'{value}' is not a 'uuid'") from None


def _check_state(row: models.Instance, action: str) -> None:
    if row.vm_state not in block_devices.ATTACHABLE_STATES or row.task_state is not None:
        raise errors.Conflict(f"Cannot '{action}' instance {row.id} while it is in "
                              f"{'task_state ' + row.task_state if row.task_state else 'vm_state ' + row.vm_state}")


def _volumes(request: Request) -> Any:
    client = service(request).volume
    if client is None:
        raise errors.ServiceUnavailable("The block storage service is not reachable.")
    return client


def _mapping(session: Any, server_id: str, volume_id: str) -> models.BlockDeviceMapping:
    row = session.scalar(sa.select(models.BlockDeviceMapping).where(
        models.BlockDeviceMapping.instance_id == server_id, models.BlockDeviceMapping.volume_id == volume_id))
    if row is None:
        raise errors.NotFound(f"Volume {volume_id} is not attached to instance {server_id}.")
    return row


def _paged(request: Request, rows: list[Any]) -> list[Any]:
    """Nova's limit/offset on this list."""
    params = request.query_params
    try:
        offset = int(params.get("offset", "0"))
        limit = int(params["limit"]) if "limit" in params else None
    except ValueError:
        raise errors.BadRequest("limit and offset must be integers.") from None
    if offset < 0 or (limit is not None and limit < 0):
        raise errors.BadRequest("limit and offset must not be negative.")
    rows = rows[offset:]
    return rows[:limit] if limit is not None else rows


@router.get("/servers/{server_id}/os-volume_attachments")
def list_attachments(request: Request, server_id: str, ctx: Caller) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        row = find_instance(session, request, ctx, server_id)
        mappings = _paged(request, block_devices.mappings_of(session, row.id))
        return {"volumeAttachments": [block_devices.attachment_view(m) for m in mappings]}


@router.get("/servers/{server_id}/os-volume_attachments/{volume_id}")
def show_attachment(request: Request, server_id: str, volume_id: str, ctx: Caller) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        row = find_instance(session, request, ctx, server_id)
        return {"volumeAttachment": block_devices.attachment_view(_mapping(session, row.id, volume_id))}


def _readable_volume(request: Request, ctx: RequestContext, volume_id: str) -> dict[str, Any]:
    """The volume as the caller sees it: another project's volume is as missing as none (404)."""
    try:
        return _volumes(request).get_volume(volume_id, token=ctx.auth_token)  # type: ignore[no-any-return]
    except errors.NotFound:
        raise errors.NotFound(f"Volume {volume_id} could not be found.") from None


@router.post("/servers/{server_id}/os-volume_attachments")
def attach_volume(request: Request, server_id: str, body: AttachBody, ctx: Caller) -> dict[str, Any]:
    svc = service(request)
    volume_id = _volume_id(body.volumeAttachment.volumeId)
    with svc.db.transaction() as session:
        row = find_instance(session, request, ctx, server_id)
        check_not_locked(request, ctx, row)
        _check_state(row, "attach_volume")
        if session.scalar(sa.select(models.BlockDeviceMapping.id).where(
                models.BlockDeviceMapping.instance_id == row.id, models.BlockDeviceMapping.volume_id == volume_id)):
            raise errors.BadRequest(f"Invalid volume: volume {volume_id} is already attached to instance {row.id}.")
    _readable_volume(request, ctx, volume_id)
    # Reserving is what refuses a volume that is in use or otherwise not available (400).
    attachment = _volumes(request).reserve_attachment(volume_id, server_id)
    try:
        with svc.db.transaction() as session:
            row = find_instance(session, request, ctx, server_id, lock=True)
            _check_state(row, "attach_volume")
            used = {m.device_name for m in block_devices.mappings_of(session, row.id)}
            device = block_devices.next_device(used, body.volumeAttachment.device)
            mapping = models.BlockDeviceMapping(instance_id=row.id, volume_id=volume_id, device_name=device,
                                                source_type="volume", attachment_id=attachment["id"],
                                                status="attaching")
            session.add(mapping)
            instance_actions.start(session, row.id, "attach_volume", request_id(request), row.project_id,
                                   ctx.user_id)
            session.flush()
            view, mapping_id = block_devices.attachment_view(mapping), mapping.id
    except Exception:
        _volumes(request).delete_attachment(attachment["id"])
        raise
    if svc.bus is not None:
        svc.bus.cast(CONDUCTOR_TOPIC, "attach_volume", instance_id=server_id, mapping_id=mapping_id,
                     request_id=request_id(request))
    return {"volumeAttachment": view}


@router.put("/servers/{server_id}/os-volume_attachments/{volume_id}", status_code=202)
def swap_volume(request: Request, server_id: str, volume_id: str, body: AttachBody, ctx: Caller) -> Response:
    with service(request).db.transaction() as session:
        row = find_instance(session, request, ctx, server_id)
        _mapping(session, row.id, volume_id)
    raise errors.BadRequest("Swapping or updating a volume attachment is not supported by this cloud; "
                            "detach the volume and attach the other one.")


@router.delete("/servers/{server_id}/os-volume_attachments/{volume_id}", status_code=202)
def detach_volume(request: Request, server_id: str, volume_id: str, ctx: Caller) -> Response:
    svc = service(request)
    with svc.db.transaction() as session:
        row = find_instance(session, request, ctx, server_id, lock=True)
        check_not_locked(request, ctx, row)
        _check_state(row, "detach_volume")
        mapping = _mapping(session, row.id, volume_id)
        if mapping.boot_index == 0:
            raise errors.BadRequest("Cannot detach a root device volume.")
        if mapping.status != "attached":
            raise errors.BadRequest(f"Invalid volume: volume {volume_id} is {mapping.status}, not attached.")
        mapping.status = "detaching"
        instance_actions.start(session, row.id, "detach_volume", request_id(request), row.project_id, ctx.user_id)
        mapping_id = mapping.id
    if svc.bus is not None:
        svc.bus.cast(CONDUCTOR_TOPIC, "detach_volume", instance_id=server_id, mapping_id=mapping_id,
                     request_id=request_id(request))
    return Response(status_code=202)
