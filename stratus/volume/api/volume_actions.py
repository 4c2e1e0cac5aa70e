"""`POST /v3/volumes/{id}/action`: extend, set bootable, reset status, upload to image, and the
legacy attach actions compute uses (reserve, initialize_connection, attach, begin_detaching,
detach, terminate_connection, unreserve, roll_detaching)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.volume import attachments, models, quotas
from stratus.volume import volumes as logic
from stratus.volume.api.deps import Caller, Version, enforce, flag, iso, service
from stratus.volume.api.microversion import APIVersion
from stratus.volume.rpc import CONDUCTOR_TOPIC

router = APIRouter(prefix="/v3", tags=["volume actions"])
_VOLUME_STATUSES = {"available", "error", "creating", "deleting", "in-use", "attaching", "detaching", "reserved",
                    "error_deleting", "maintenance", "extending", "error_extending", "uploading"}
_ATTACH_STATUSES = {"attached", "detached"}


def _bus(request: Request) -> Any:
    bus = service(request).bus
    if bus is None:
        raise errors.ServiceUnavailable("The block storage conductor is not reachable.")
    return bus


def _args(value: Any, action: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise errors.BadRequest(f"The body of {action} must be an object.")
    return value


@router.post("/volumes/{volume_id}/action")
async def volume_action(request: Request, volume_id: str, ctx: Caller, version: Version) -> Response:
    try:
        body = await request.json()
    except ValueError:
        raise errors.BadRequest("Malformed JSON in request body.") from None
    if not isinstance(body, dict) or len(body) != 1:
        raise errors.BadRequest("An action body holds exactly one action.")
    action, value = next(iter(body.items()))
    handler = _ACTIONS.get(action)
    if handler is None:
        raise errors.BadRequest(f"There is no such action: {action}.")
    from starlette.concurrency import run_in_threadpool

    result = await run_in_threadpool(handler, request, ctx, version, volume_id, _args(value, action))
    if isinstance(result, Response):
        return result
    return JSONResponse(result, status_code=200) if result is not None else Response(status_code=202)


def _extend(request: Request, ctx: RequestContext, version: APIVersion, volume_id: str,
            args: dict[str, Any]) -> None:
    new_size = args.get("new_size")
    if isinstance(new_size, str) and new_size.isdigit():
        new_size = int(new_size)
    if not isinstance(new_size, int) or isinstance(new_size, bool):
        raise errors.BadRequest("os-extend needs an integer new_size.")
    svc = service(request)
    with svc.db.transaction() as session:
        owner = logic.visible_volume(session, ctx, volume_id).project_id
    with svc.db.transaction() as session:
        quotas.lock_project(session, owner)
        row = logic.visible_volume(session, ctx, volume_id, lock=True)
        enforce(request, ctx, "volume:write", {"project_id": row.project_id})
        allowed_states = {"available", "in-use"} if version.at_least("3.42") else {"available"}
        if row.status not in allowed_states:
            raise errors.BadRequest(f"Invalid volume: Volume {volume_id} status must be "
                                    f"{' or '.join(sorted(allowed_states))} to extend, but current status is: "
                                    f"{row.status}.")
        if new_size <= row.size:
            raise errors.BadRequest(f"Invalid input received: New size for extend must be greater than current "
                                    f"size. (current: {row.size}, extended: {new_size}).")
        vtype = session.get(models.VolumeType, row.volume_type_id) if row.volume_type_id else None
        quotas.check(session, svc.settings, row.project_id, type_name=vtype.name if vtype else None,
                     gigabytes=new_size - row.size)
        old_size, back_to = row.size, row.status
        row.size, row.status = new_size, "extending"
    _bus(request).cast(CONDUCTOR_TOPIC, "extend_volume", volume_id=volume_id, old_size=old_size, back_to=back_to)


def _set_bootable(request: Request, ctx: RequestContext, version: APIVersion, volume_id: str,
                  args: dict[str, Any]) -> Response:
    if "bootable" not in args:
        raise errors.BadRequest("os-set_bootable needs bootable.")
    with service(request).db.transaction() as session:
        row = logic.visible_volume(session, ctx, volume_id, lock=True)
        enforce(request, ctx, "volume:write", {"project_id": row.project_id})
        row.bootable = flag(args["bootable"], "bootable")
    return Response(status_code=200)


def _reset_status(request: Request, ctx: RequestContext, version: APIVersion, volume_id: str,
                  args: dict[str, Any]) -> None:
    with service(request).db.transaction() as session:
        row = logic.visible_volume(session, ctx, volume_id, lock=True)
        enforce(request, ctx, "volume:reset_status", {"project_id": row.project_id})
        if not args:
            raise errors.BadRequest("os-reset_status needs status, attach_status or migration_status.")
        status, attach_status = args.get("status"), args.get("attach_status")
        if status is not None and status not in _VOLUME_STATUSES:
            raise errors.BadRequest(f"Invalid status {status!r}.")
        if attach_status is not None and attach_status not in _ATTACH_STATUSES:
            raise errors.BadRequest(f"Invalid attach_status {attach_status!r}.")
        if status is not None:
            row.status = status
        if attach_status is not None:
            row.attach_status = attach_status
        if "migration_status" in args:
            row.migration_status = args["migration_status"]


def _upload_image(request: Request, ctx: RequestContext, version: APIVersion, volume_id: str,
                  args: dict[str, Any]) -> dict[str, Any]:
    svc = service(request)
    image_name = args.get("image_name")
    if not isinstance(image_name, str) or not image_name:
        raise errors.BadRequest("os-volume_upload_image needs an image_name.")
    disk_format = args.get("disk_format", "raw")
    container_format = args.get("container_format", "bare")
    if disk_format not in ("raw", "qcow2"):
        raise errors.BadRequest(f"Invalid disk_format {disk_format!r}: raw or qcow2.")
    if container_format != "bare":
        raise errors.BadRequest(f"Invalid container_format {container_format!r}: bare.")
    force = flag(args.get("force", False), "force")
    if svc.image is None:
        raise errors.BadRequest("This cloud has no image service to upload to.")
    with svc.db.transaction() as session:
        row = logic.visible_volume(session, ctx, volume_id, lock=True)
        enforce(request, ctx, "volume:write", {"project_id": row.project_id})
        if row.status != "available" and not (force and row.status == "in-use"):
            raise errors.BadRequest(f"Invalid volume: Volume {volume_id} status must be available or in-use with "
                                    f"force, but current status is: {row.status}.")
        image_fields: dict[str, Any] = {"name": image_name, "disk_format": disk_format,
                                        "container_format": container_format}
        if version.at_least("3.1"):
            if "visibility" in args:
                image_fields["visibility"] = args["visibility"]
            if "protected" in args:
                image_fields["protected"] = flag(args["protected"], "protected")
        for key, value in (row.image_metadata or {}).items():
            if key not in ("image_id", "image_name", "checksum", "size", "disk_format", "container_format",
                           "min_disk", "min_ram", "virtual_size") and isinstance(value, str):
                image_fields.setdefault(key, value)
        back_to = row.status
        image = svc.image.create_image(image_fields, token=ctx.auth_token)
        row.status = "uploading"
        view = {"id": row.id, "updated_at": iso(row.updated_at), "status": "uploading",
                "display_description": row.description, "size": row.size,
                "volume_type": None, "image_id": image["id"], "container_format": container_format,
                "disk_format": disk_format, "image_name": image_name}
        if version.at_least("3.1"):
            view["visibility"] = image.get("visibility")
            view["protected"] = image.get("protected", False)
    _bus(request).cast(CONDUCTOR_TOPIC, "upload_to_image", volume_id=volume_id, image_id=image["id"],
                       disk_format=disk_format, back_to=back_to)
    return {"os-volume_upload_image": view}


def _force_delete(request: Request, ctx: RequestContext, version: APIVersion, volume_id: str,
                  args: dict[str, Any]) -> None:
    """Delete whatever the status (admin), but never a volume that is attached or has snapshots."""
    with service(request).db.transaction() as session:
        row = logic.visible_volume(session, ctx, volume_id, lock=True)
        enforce(request, ctx, "volume:force_delete", {"project_id": row.project_id})
        if row.attach_status != "detached":
            raise errors.BadRequest(f"Invalid volume: Volume {volume_id} is attached.")
        if logic.has_snapshots(session, volume_id):
            raise errors.BadRequest(f"Invalid volume: Volume {volume_id} still has dependent snapshots.")
        row.status = "deleting"
    _bus(request).cast(CONDUCTOR_TOPIC, "delete_volume", volume_id=volume_id, cascade=False)


def _readonly(request: Request, ctx: RequestContext, version: APIVersion, volume_id: str,
              args: dict[str, Any]) -> None:
    if "readonly" not in args:
        raise errors.BadRequest("os-update_readonly_flag needs readonly.")
    readonly = flag(args["readonly"], "readonly")
    with service(request).db.transaction() as session:
        row = logic.visible_volume(session, ctx, volume_id, lock=True)
        enforce(request, ctx, "volume:write", {"project_id": row.project_id})
        if row.status != "available":
            raise errors.BadRequest(f"Invalid volume: Volume {volume_id} status must be available to update "
                                    f"its read-only flag, but current status is: {row.status}.")
        row.admin_metadata = {**(row.admin_metadata or {}), "readonly": "True" if readonly else "False"}


def _image_metadata(request: Request, ctx: RequestContext, version: APIVersion, volume_id: str,
                    args: dict[str, Any], *, change: str) -> dict[str, Any] | None:
    with service(request).db.transaction() as session:
        row = logic.visible_volume(session, ctx, volume_id, lock=True)
        if change == "show":
            enforce(request, ctx, "volume:read", {"project_id": row.project_id})
            return {"metadata": dict(row.image_metadata or {})}
        enforce(request, ctx, "volume:write", {"project_id": row.project_id})
        current = dict(row.image_metadata or {})
        if change == "set":
            metadata = args.get("metadata")
            if not isinstance(metadata, dict):
                raise errors.BadRequest("os-set_image_metadata needs a metadata object.")
            current.update(logic.check_metadata(metadata))
            row.image_metadata = current
            return {"metadata": current}
        key = args.get("key")
        if not isinstance(key, str) or key not in current:
            raise errors.NotFound(f"Glance metadata for volume {volume_id} has no key {key!r}.")
        del current[key]
        row.image_metadata = current
        return None


def _set_image_metadata(request: Request, ctx: RequestContext, version: APIVersion, volume_id: str,
                        args: dict[str, Any]) -> dict[str, Any] | None:
    return _image_metadata(request, ctx, version, volume_id, args, change="set")


def _unset_image_metadata(request: Request, ctx: RequestContext, version: APIVersion, volume_id: str,
                          args: dict[str, Any]) -> Response:
    _image_metadata(request, ctx, version, volume_id, args, change="unset")
    return Response(status_code=200)


def _show_image_metadata(request: Request, ctx: RequestContext, version: APIVersion, volume_id: str,
                         args: dict[str, Any]) -> dict[str, Any] | None:
    return _image_metadata(request, ctx, version, volume_id, args, change="show")


# --- the legacy attach flow -------------------------------------------------------------------

def _attach_target(request: Request, ctx: RequestContext, session: Any, volume_id: str) -> models.Volume:
    row = logic.visible_volume(session, ctx, volume_id, lock=True) if not ctx.service_roles and \
        "service" not in ctx.roles else _any_volume(session, volume_id)
    enforce(request, ctx, "volume:attach", {"project_id": row.project_id})
    return row


def _any_volume(session: Any, volume_id: str) -> models.Volume:
    row = session.get(models.Volume, volume_id)
    if row is None:
        raise errors.NotFound(f"Volume {volume_id} could not be found.")
    return row  # type: ignore[no-any-return]


def _reserve(request: Request, ctx: RequestContext, version: APIVersion, volume_id: str,
             args: dict[str, Any]) -> None:
    with service(request).db.transaction() as session:
        row = _attach_target(request, ctx, session, volume_id)
        attachments.reserve(session, row, None, status="attaching")


def _unreserve(request: Request, ctx: RequestContext, version: APIVersion, volume_id: str,
               args: dict[str, Any]) -> None:
    with service(request).db.transaction() as session:
        row = _attach_target(request, ctx, session, volume_id)
        for attachment in list(session.scalars(sa.select(models.Attachment).where(
                models.Attachment.volume_id == volume_id))):
            if attachment.attach_status in ("reserved", "attaching"):
                attachments.remove(session, row, attachment)


def _initialize_connection(request: Request, ctx: RequestContext, version: APIVersion, volume_id: str,
                           args: dict[str, Any]) -> dict[str, Any]:
    connector = args.get("connector")
    if not isinstance(connector, dict):
        raise errors.BadRequest("os-initialize_connection needs a connector object.")
    with service(request).db.transaction() as session:
        row = _attach_target(request, ctx, session, volume_id)
        if row.status not in ("attaching", "reserved", "in-use", "available"):
            raise errors.BadRequest(f"Invalid volume: Volume {volume_id} cannot be connected while it is "
                                    f"{row.status}.")
    answer = _bus(request).call(CONDUCTOR_TOPIC, "initialize_connection", volume_id=volume_id, connector=connector)
    answer["data"] = {**answer.get("data", {}), "access_mode": "rw"}
    return {"connection_info": answer}


def _attach(request: Request, ctx: RequestContext, version: APIVersion, volume_id: str,
            args: dict[str, Any]) -> None:
    mode = args.get("mode", "rw")
    if mode not in ("rw", "ro"):
        raise errors.BadRequest("mode must be rw or ro.")
    if not args.get("instance_uuid") and not args.get("host_name"):
        raise errors.BadRequest("os-attach needs an instance_uuid or a host_name.")
    with service(request).db.transaction() as session:
        row = _attach_target(request, ctx, session, volume_id)
        pending = list(session.scalars(sa.select(models.Attachment).where(
            models.Attachment.volume_id == volume_id, models.Attachment.attach_status.in_(("reserved", "attaching")))))
        if pending:
            attachment = pending[0]
            attachment.instance_uuid = args.get("instance_uuid")
        else:
            attachment = attachments.reserve(session, row, args.get("instance_uuid"), status="attaching")
        attachments.mark_attached(session, row, attachment, mountpoint=args.get("mountpoint"),
                                  host=args.get("host_name"), mode=mode)


def _begin_detaching(request: Request, ctx: RequestContext, version: APIVersion, volume_id: str,
                     args: dict[str, Any]) -> None:
    with service(request).db.transaction() as session:
        row = _attach_target(request, ctx, session, volume_id)
        if row.status != "in-use":
            raise errors.BadRequest(f"Invalid volume: Volume {volume_id} status must be in-use to detach, but "
                                    f"current status is: {row.status}.")
        row.status = "detaching"


def _roll_detaching(request: Request, ctx: RequestContext, version: APIVersion, volume_id: str,
                    args: dict[str, Any]) -> None:
    with service(request).db.transaction() as session:
        row = _attach_target(request, ctx, session, volume_id)
        if row.status == "detaching":
            row.status = "in-use"


def _detach(request: Request, ctx: RequestContext, version: APIVersion, volume_id: str,
            args: dict[str, Any]) -> None:
    with service(request).db.transaction() as session:
        row = _attach_target(request, ctx, session, volume_id)
        attachment = attachments.find(session, volume_id, args.get("attachment_id"))
        attachments.remove(session, row, attachment)


def _terminate_connection(request: Request, ctx: RequestContext, version: APIVersion, volume_id: str,
                          args: dict[str, Any]) -> None:
    if not isinstance(args.get("connector"), dict):
        raise errors.BadRequest("os-terminate_connection needs a connector object.")
    with service(request).db.transaction() as session:
        _attach_target(request, ctx, session, volume_id)
    _bus(request).call(CONDUCTOR_TOPIC, "terminate_connection", volume_id=volume_id)


_ACTIONS = {
    "os-extend": _extend, "os-set_bootable": _set_bootable, "os-reset_status": _reset_status,
    "os-volume_upload_image": _upload_image, "os-reserve": _reserve, "os-unreserve": _unreserve,
    "os-initialize_connection": _initialize_connection, "os-attach": _attach,
    "os-begin_detaching": _begin_detaching, "os-roll_detaching": _roll_detaching, "os-detach": _detach,
    "os-terminate_connection": _terminate_connection,
    "os-force_delete": _force_delete, "os-update_readonly_flag": _readonly,
    "os-set_image_metadata": _set_image_metadata, "os-unset_image_metadata": _unset_image_metadata,
    "os-show_image_metadata": _show_image_metadata,
}
