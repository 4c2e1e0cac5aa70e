"""The v3 attachments API (3.27+): create (reserve), update (connect), complete, delete."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.volume import attachments as logic
from stratus.volume import models, views
from stratus.volume import volumes as volume_logic
from stratus.volume.api.deps import Caller, Version, enforce, service
from stratus.volume.api.microversion import APIVersion
from stratus.volume.rpc import CONDUCTOR_TOPIC

router = APIRouter(prefix="/v3", tags=["attachments"])


def _require(version: APIVersion) -> None:
    if not version.at_least("3.27"):
        raise errors.NotFound("The attachments API needs microversion 3.27 or later.")


def _visible(session: Any, ctx: RequestContext, attachment_id: str) -> models.Attachment:
    query = sa.select(models.Attachment).where(models.Attachment.id == attachment_id)
    if not ctx.is_admin and "service" not in ctx.roles:
        query = query.where(models.Attachment.project_id == (ctx.project_id or ""))
    row = session.scalar(query)
    if row is None:
        raise errors.NotFound(f"Volume attachment {attachment_id} could not be found.")
    return row  # type: ignore[no-any-return]


def _volume_of(session: Any, row: models.Attachment) -> models.Volume:
    volume = session.get(models.Volume, row.volume_id)
    if volume is None:
        raise errors.NotFound(f"Volume {row.volume_id} could not be found.")
    return volume  # type: ignore[no-any-return]


def _connect(request: Request, volume_id: str, connector: dict[str, Any]) -> dict[str, Any]:
    bus = service(request).bus
    if bus is None:
        raise errors.ServiceUnavailable("The block storage conductor is not reachable.")
    return bus.call(CONDUCTOR_TOPIC, "initialize_connection", volume_id=volume_id,  # type: ignore[no-any-return]
                    connector=connector)


@router.post("/attachments")
def create_attachment(request: Request, body: dict[str, Any], ctx: Caller, version: Version) -> dict[str, Any]:
    _require(version)
    fields = body.get("attachment")
    if not isinstance(fields, dict) or not isinstance(fields.get("volume_uuid"), str):
        raise errors.BadRequest("An attachment needs a volume_uuid.")
    connector = fields.get("connector")
    if connector is not None and not isinstance(connector, dict):
        raise errors.BadRequest("connector must be an object.")
    mode = fields.get("mode", "rw")
    if mode not in ("rw", "ro") or (mode != "rw" and not version.at_least("3.54")):
        raise errors.BadRequest("mode must be rw (or ro since 3.54).")
    with service(request).db.transaction() as session:
        if "service" in ctx.roles:
            volume = session.get(models.Volume, fields["volume_uuid"])
            if volume is None:
                raise errors.NotFound(f"Volume {fields['volume_uuid']} could not be found.")
        else:
            volume = volume_logic.visible_volume(session, ctx, fields["volume_uuid"], lock=True)
        enforce(request, ctx, "volume:attach", {"project_id": volume.project_id})
        row = logic.reserve(session, volume, fields.get("instance_uuid"))
        row.attach_mode = mode
        attachment_id = row.id
    if connector is not None:
        return update_attachment(request, attachment_id, {"attachment": {"connector": connector}}, ctx, version)
    with service(request).db.transaction() as session:
        return {"attachment": views.attachment(_visible(session, ctx, attachment_id))}


@router.put("/attachments/{attachment_id}")
def update_attachment(request: Request, attachment_id: str, body: dict[str, Any], ctx: Caller,
                      version: Version) -> dict[str, Any]:
    _require(version)
    fields = body.get("attachment")
    if not isinstance(fields, dict) or not isinstance(fields.get("connector"), dict):
        raise errors.BadRequest("An attachment update needs a connector object.")
    with service(request).db.transaction() as session:
        row = _visible(session, ctx, attachment_id)
        enforce(request, ctx, "volume:attach", {"project_id": row.project_id})
        volume_id = row.volume_id
    answer = _connect(request, volume_id, fields["connector"])
    with service(request).db.transaction() as session:
        row = _visible(session, ctx, attachment_id)
        volume = session.get(models.Volume, row.volume_id)
        row.connector = fields["connector"]
        row.connection_info = logic.connection_info(answer, row)
        row.attached_host = fields["connector"].get("host")
        row.mountpoint = fields["connector"].get("mountpoint")
        row.attach_status = "attaching"
        if volume is not None and volume.status == "reserved":
            volume.status = "attaching"
        return {"attachment": views.attachment(row)}


@router.post("/attachments/{attachment_id}/action", status_code=204)
def attachment_action(request: Request, attachment_id: str, body: dict[str, Any], ctx: Caller,
                      version: Version) -> Response:
    _require(version)
    if list(body) != ["os-complete"] or not version.at_least("3.44"):
        raise errors.BadRequest("The only attachment action is os-complete (3.44 or later).")
    with service(request).db.transaction() as session:
        row = _visible(session, ctx, attachment_id)
        enforce(request, ctx, "volume:attach", {"project_id": row.project_id})
        volume = _volume_of(session, row)
        if row.connection_info is None:
            raise errors.BadRequest(f"Attachment {attachment_id} has no connection yet: update it with a connector.")
        logic.mark_attached(session, volume, row)
    return Response(status_code=204)


@router.delete("/attachments/{attachment_id}")
def delete_attachment(request: Request, attachment_id: str, ctx: Caller, version: Version) -> dict[str, Any]:
    _require(version)
    with service(request).db.transaction() as session:
        row = _visible(session, ctx, attachment_id)
        enforce(request, ctx, "volume:attach", {"project_id": row.project_id})
        exported = (row.connection_info or {}).get("driver_volume_type") == "nbd"
        volume = _volume_of(session, row)
        logic.remove(session, volume, row)
        last = volume.status == "available"
        volume_id = volume.id
    if exported and last:  # nobody else uses the export
        bus = service(request).bus
        if bus is not None:
            bus.call(CONDUCTOR_TOPIC, "terminate_connection", volume_id=volume_id)
    return {"attachments": []}


def _list(request: Request, ctx: RequestContext) -> list[models.Attachment]:
    query = sa.select(models.Attachment).order_by(models.Attachment.created_at)
    if not ctx.is_admin:
        query = query.where(models.Attachment.project_id == (ctx.project_id or ""))
    params = request.query_params
    if params.get("volume_id"):
        query = query.where(models.Attachment.volume_id == params["volume_id"])
    if params.get("instance_id"):
        query = query.where(models.Attachment.instance_uuid == params["instance_id"])
    with service(request).db.transaction() as session:
        return list(session.scalars(query))


@router.get("/attachments")
def list_attachments(request: Request, ctx: Caller, version: Version) -> dict[str, Any]:
    _require(version)
    return {"attachments": [{"id": r.id, "volume_id": r.volume_id, "instance": r.instance_uuid,
                             "status": r.attach_status} for r in _list(request, ctx)]}


@router.get("/attachments/detail")
def list_attachments_detail(request: Request, ctx: Caller, version: Version) -> dict[str, Any]:
    _require(version)
    return {"attachments": [views.attachment(r) for r in _list(request, ctx)]}


@router.get("/attachments/{attachment_id}")
def show_attachment(request: Request, attachment_id: str, ctx: Caller, version: Version) -> dict[str, Any]:
    _require(version)
    with service(request).db.transaction() as session:
        return {"attachment": views.attachment(_visible(session, ctx, attachment_id))}
