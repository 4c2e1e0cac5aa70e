"""Volumes: create (empty, from an image, a snapshot or another volume), list, show, update,
delete, and their metadata."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from pydantic import Field

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.volume import models, quotas, views
from stratus.volume import volumes as logic
from stratus.volume.api import listing
from stratus.volume.api.deps import Caller, LooseBody, Version, enforce, flag, project_of, service
from stratus.volume.api.microversion import APIVersion
from stratus.volume.rpc import CONDUCTOR_TOPIC

router = APIRouter(prefix="/v3", tags=["volumes"])
_SORT_KEYS = {"id", "name", "status", "size", "availability_zone", "created_at", "updated_at", "bootable"}
MAX_SIZE_GB = 1024 * 1024


class VolumeFields(LooseBody):
    size: int | None = None
    name: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=255)
    availability_zone: str | None = Field(default=None, max_length=255)
    volume_type: str | None = None
    metadata: dict[str, Any] | None = None
    imageRef: str | None = None  # noqa: N815 (Cinder's name)
    image_id: str | None = None
    snapshot_id: str | None = None
    source_volid: str | None = None
    backup_id: str | None = None
    multiattach: bool = False
    consistencygroup_id: str | None = None
    group_id: str | None = None


class VolumeCreate(LooseBody):
    volume: VolumeFields


class VolumeUpdateFields(LooseBody):
    name: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=255)
    metadata: dict[str, Any] | None = None


class VolumeUpdate(LooseBody):
    volume: VolumeUpdateFields


class MetadataBody(LooseBody):
    metadata: dict[str, Any]


class MetaItemBody(LooseBody):
    meta: dict[str, Any]


def render(request: Request, ctx: RequestContext, version: APIVersion, session: Any,
           row: models.Volume) -> dict[str, Any]:
    vtype = session.get(models.VolumeType, row.volume_type_id) if row.volume_type_id else None
    return views.volume(request, ctx, version, row, vtype, logic.attachments_of(session, [row.id])[row.id])


def _image_source(request: Request, ctx: RequestContext, image_id: str) -> dict[str, Any]:
    """The image as the caller sees it (through the image API with the caller's token)."""
    image_client = service(request).image
    if image_client is None:
        raise errors.BadRequest("This cloud has no image service to create volumes from.")
    try:
        image = image_client.get_image(image_id, token=ctx.auth_token)
    except errors.NotFound:
        raise errors.BadRequest(f"Invalid image identifier or unable to access requested image {image_id}.") from None
    if image.get("status") != "active":
        raise errors.BadRequest(f"Image {image_id} is not active.")
    return image


def _size_for_image(image: dict[str, Any], size: int | None) -> int:
    gib = 1024**3
    needed = max(int(image.get("min_disk") or 0), -(-int(image.get("virtual_size") or image.get("size") or 0) // gib))
    if size is None:
        raise errors.BadRequest("A size is needed to create a volume from an image.")
    if size < needed:
        raise errors.BadRequest(f"Volume size {size}GB cannot be smaller than the image minDisk size {needed}GB.")
    return size


_IMAGE_PROPERTIES_SKIPPED = {"id", "name", "status", "visibility", "owner", "protected", "os_hidden", "tags",
                             "file", "schema", "self", "locations", "direct_url", "created_at", "updated_at",
                             "os_hash_algo", "os_hash_value", "stores"}


def _image_metadata(image: dict[str, Any]) -> dict[str, str]:
    """What Cinder copies into volume_image_metadata: ids, formats, sizes and custom properties."""
    meta = {"image_id": image["id"], "image_name": image.get("name") or ""}
    for key, value in image.items():
        if key not in _IMAGE_PROPERTIES_SKIPPED and value is not None and not isinstance(value, (dict, list)):
            meta[key] = str(value)
    return meta


@router.post("/volumes", status_code=202)
def create_volume(request: Request, body: VolumeCreate, ctx: Caller, version: Version) -> dict[str, Any]:
    project_id = project_of(ctx)
    enforce(request, ctx, "volume:write")
    svc = service(request)
    fields = body.volume
    image_id = fields.imageRef or fields.image_id
    sources = [name for name, value in (("imageRef", image_id), ("snapshot_id", fields.snapshot_id),
                                        ("source_volid", fields.source_volid), ("backup_id", fields.backup_id))
               if value]
    if len(sources) > 1:
        raise errors.BadRequest(f"Only one source may be given, not {', '.join(sources)}.")
    if fields.backup_id:
        raise errors.BadRequest("Creating a volume from a backup is not supported: this cloud has no backups.")
    if fields.size is not None and not 1 <= fields.size <= MAX_SIZE_GB:
        raise errors.BadRequest(f"Invalid input received: size must be an integer from 1 to {MAX_SIZE_GB}.")
    metadata = logic.check_metadata(fields.metadata or {})
    image = _image_source(request, ctx, image_id) if image_id else None
    with svc.db.transaction() as session:
        quotas.lock_project(session, project_id)  # first: the quota check below must see every commit
        size = fields.size
        zone = fields.availability_zone
        type_row = logic.usable_type(session, ctx, fields.volume_type) if fields.volume_type else None
        bootable, image_meta = False, {}
        if fields.snapshot_id:
            snap = logic.visible_snapshot(session, ctx, fields.snapshot_id)
            if snap.status != "available":
                raise errors.BadRequest(f"Snapshot {snap.id} is not available (it is {snap.status}).")
            source_volume = session.get(models.Volume, snap.volume_id)
            size = size or snap.size
            if size < snap.size:
                raise errors.BadRequest(f"Volume size {size}GB cannot be smaller than the snapshot size "
                                        f"{snap.size}GB.")
            if source_volume is not None:
                zone = zone or source_volume.availability_zone
                type_row = type_row or (session.get(models.VolumeType, source_volume.volume_type_id)
                                        if source_volume.volume_type_id else None)
                bootable, image_meta = source_volume.bootable, dict(source_volume.image_metadata or {})
        elif fields.source_volid:
            source = logic.visible_volume(session, ctx, fields.source_volid)
            if source.status not in ("available", "in-use"):
                raise errors.BadRequest(f"Volume {source.id} cannot be cloned while it is {source.status}.")
            size = size or source.size
            if size < source.size:
                raise errors.BadRequest(f"Volume size {size}GB cannot be smaller than the source volume size "
                                        f"{source.size}GB.")
            zone = zone or source.availability_zone
            type_row = type_row or (session.get(models.VolumeType, source.volume_type_id)
                                    if source.volume_type_id else None)
            bootable, image_meta = source.bootable, dict(source.image_metadata or {})
        elif image is not None:
            size = _size_for_image(image, size)
            bootable, image_meta = True, _image_metadata(image)
        elif size is None:
            raise errors.BadRequest("Invalid input received: a size is needed for a new empty volume.")
        assert size is not None
        zone = zone or svc.settings.availability_zone
        if zone != svc.settings.availability_zone and not session.scalar(
                sa.select(models.Service.id).where(models.Service.availability_zone == zone).limit(1)):
            raise errors.BadRequest(f"Availability zone '{zone}' is invalid.")
        type_row = type_row or logic.default_type(session, svc.settings.default_volume_type)
        quotas.check(session, svc.settings, project_id, type_name=type_row.name if type_row else None,
                     volumes=1, gigabytes=size)
        row = models.Volume(project_id=project_id, user_id=ctx.user_id, name=fields.name,
                            description=fields.description, size=size, status="creating",
                            availability_zone=zone, volume_type_id=type_row.id if type_row else None,
                            bootable=bootable, multiattach=fields.multiattach, metadata_=metadata,
                            image_metadata=image_meta, image_id=image_id, snapshot_id=fields.snapshot_id,
                            source_volid=fields.source_volid)
        session.add(row)
        session.flush()
        view = render(request, ctx, version, session, row)
    _cast(request, "create_volume", volume_id=row.id, image_format=image.get("disk_format") if image else None)
    return {"volume": view}


def _cast(request: Request, method: str, **kwargs: Any) -> None:
    bus = service(request).bus
    if bus is None:
        raise errors.ServiceUnavailable("The block storage conductor is not reachable.")
    bus.cast(CONDUCTOR_TOPIC, method, **kwargs)


def _list(request: Request, ctx: RequestContext, version: APIVersion, detail: bool) -> dict[str, Any]:
    enforce(request, ctx, "volume:read")
    params = dict(request.query_params)
    query = sa.select(models.Volume)
    all_projects = flag(params.get("all_tenants", "false"), "all_tenants")
    if all_projects or params.get("project_id"):
        enforce(request, ctx, "volume:all_tenants")
    if params.get("project_id"):
        query = query.where(models.Volume.project_id == params["project_id"])
    elif not all_projects:
        query = query.where(models.Volume.project_id == (ctx.project_id or ""))
    for key in ("status", "availability_zone", "name", "id"):
        if key in params:
            query = query.where(getattr(models.Volume, key) == params[key])
    if "name~" in params:
        query = query.where(listing.like(models.Volume.name, params["name~"]))
    if "bootable" in params:
        query = query.where(models.Volume.bootable.is_(flag(params["bootable"], "bootable")))
    svc = service(request)
    with svc.db.transaction() as session:
        if "volume_type" in params:
            vtype = session.scalar(sa.select(models.VolumeType).where(sa.or_(
                models.VolumeType.id == params["volume_type"], models.VolumeType.name == params["volume_type"])))
            query = query.where(models.Volume.volume_type_id == (vtype.id if vtype else ""))
        query = query.order_by(*listing.order_by(models.Volume, listing.sort_keys(params, _SORT_KEYS)))
        rows = list(session.scalars(query))
        if "metadata" in params:
            wanted = listing.metadata_filter(params["metadata"])
            rows = [r for r in rows if all((r.metadata_ or {}).get(k) == v for k, v in wanted.items())]
        chosen, next_links = listing.page(request, rows, params, "volumes")
        if detail:
            attached = logic.attachments_of(session, [r.id for r in chosen])
            types = logic.types_of(session, {r.volume_type_id for r in chosen})
            items = [views.volume(request, ctx, version, r, types.get(r.volume_type_id or ""), attached[r.id])
                     for r in chosen]
        else:
            items = [views.volume_summary(request, r) for r in chosen]
    result: dict[str, Any] = {"volumes": items}
    if next_links:
        result["volumes_links"] = next_links
    if version.at_least("3.45") and flag(params.get("with_count", "false"), "with_count"):
        result["count"] = len(rows)
    return result


@router.get("/volumes")
def list_volumes(request: Request, ctx: Caller, version: Version) -> dict[str, Any]:
    return _list(request, ctx, version, detail=False)


@router.get("/volumes/detail")
def list_volumes_detail(request: Request, ctx: Caller, version: Version) -> dict[str, Any]:
    return _list(request, ctx, version, detail=True)


@router.get("/volumes/summary")
def volumes_summary(request: Request, ctx: Caller, version: Version) -> dict[str, Any]:
    enforce(request, ctx, "volume:read")
    with service(request).db.transaction() as session:
        count, size = session.execute(sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(models.Volume.size), 0))
                                       .where(models.Volume.project_id == (ctx.project_id or ""))).one()
    return {"volume-summary": {"total_size": int(size), "total_count": int(count), "metadata": {}}}


@router.get("/volumes/{volume_id}")
def show_volume(request: Request, volume_id: str, ctx: Caller, version: Version) -> dict[str, Any]:
    enforce(request, ctx, "volume:read")
    with service(request).db.transaction() as session:
        row = logic.visible_volume(session, ctx, volume_id)
        return {"volume": render(request, ctx, version, session, row)}


@router.put("/volumes/{volume_id}")
def update_volume(request: Request, volume_id: str, body: VolumeUpdate, ctx: Caller,
                  version: Version) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        row = logic.visible_volume(session, ctx, volume_id, lock=True)
        enforce(request, ctx, "volume:write", {"project_id": row.project_id})
        changes = body.volume.model_dump(exclude_unset=True)
        if "name" in changes:
            row.name = changes["name"]
        if "description" in changes:
            row.description = changes["description"]
        if changes.get("metadata") is not None:
            row.metadata_ = logic.check_metadata(changes["metadata"])
        session.flush()
        return {"volume": render(request, ctx, version, session, row)}


@router.delete("/volumes/{volume_id}", status_code=202)
def delete_volume(request: Request, volume_id: str, ctx: Caller) -> Response:
    params = dict(request.query_params)
    cascade = flag(params.get("cascade", "false"), "cascade")
    force = flag(params.get("force", "false"), "force")
    with service(request).db.transaction() as session:
        row = logic.visible_volume(session, ctx, volume_id, lock=True)
        enforce(request, ctx, "volume:write", {"project_id": row.project_id})
        if force:
            enforce(request, ctx, "volume:force_delete", {"project_id": row.project_id})
        if row.attach_status != "detached" or row.status in ("in-use", "attaching", "detaching", "reserved"):
            raise errors.BadRequest(f"Invalid volume: Volume {volume_id} status must be available or error or "
                                    "error_restoring or error_extending or error_managing and must not be "
                                    "migrating, attached, belong to a group, have snapshots, awaiting a "
                                    "transfer, or be disassociated from snapshots after volume transfer.")
        if row.status not in logic.DELETABLE and not (force and row.status in ("creating", "error_deleting",
                                                                                "deleting", "extending")):
            raise errors.BadRequest(f"Invalid volume: Volume {volume_id} status must be available or error, "
                                    f"but current status is: {row.status}.")
        if logic.has_snapshots(session, volume_id):
            if not cascade:
                raise errors.BadRequest(f"Invalid volume: Volume {volume_id} still has dependent snapshots.")
            busy = session.scalar(sa.select(sa.func.count()).select_from(models.Snapshot).where(
                models.Snapshot.volume_id == volume_id, models.Snapshot.status.not_in(("available", "error"))))
            if busy:
                raise errors.BadRequest(f"Invalid volume: Volume {volume_id} has snapshots that are busy.")
            session.execute(sa.update(models.Snapshot).where(models.Snapshot.volume_id == volume_id)
                            .values(status="deleting"))
        row.status = "deleting"
    _cast(request, "delete_volume", volume_id=volume_id, cascade=cascade)
    return Response(status_code=202)


# --- metadata ---------------------------------------------------------------------------------

def _metadata_change(request: Request, ctx: RequestContext, volume_id: str, update: dict[str, Any] | None,
                     replace: bool = False, remove: str | None = None) -> dict[str, str]:
    with service(request).db.transaction() as session:
        row = logic.visible_volume(session, ctx, volume_id, lock=True)
        if update is None and remove is None:
            enforce(request, ctx, "volume:read", {"project_id": row.project_id})
            return dict(row.metadata_ or {})
        enforce(request, ctx, "volume:write", {"project_id": row.project_id})
        current = {} if replace else dict(row.metadata_ or {})
        if remove is not None:
            if remove not in current:
                raise errors.NotFound(f"Volume {volume_id} has no metadata with key {remove}.")
            del current[remove]
        else:
            current.update(logic.check_metadata(update or {}))
        row.metadata_ = current
        return current


@router.get("/volumes/{volume_id}/metadata")
def get_metadata(request: Request, volume_id: str, ctx: Caller) -> dict[str, Any]:
    return {"metadata": _metadata_change(request, ctx, volume_id, None)}


@router.post("/volumes/{volume_id}/metadata")
def add_metadata(request: Request, volume_id: str, body: MetadataBody, ctx: Caller) -> dict[str, Any]:
    return {"metadata": _metadata_change(request, ctx, volume_id, body.metadata)}


@router.put("/volumes/{volume_id}/metadata")
def replace_metadata(request: Request, volume_id: str, body: MetadataBody, ctx: Caller) -> dict[str, Any]:
    return {"metadata": _metadata_change(request, ctx, volume_id, body.metadata, replace=True)}


@router.get("/volumes/{volume_id}/metadata/{key}")
def get_metadata_item(request: Request, volume_id: str, key: str, ctx: Caller) -> dict[str, Any]:
    metadata = _metadata_change(request, ctx, volume_id, None)
    if key not in metadata:
        raise errors.NotFound(f"Volume {volume_id} has no metadata with key {key}.")
    return {"meta": {key: metadata[key]}}


@router.put("/volumes/{volume_id}/metadata/{key}")
def set_metadata_item(request: Request, volume_id: str, key: str, body: MetaItemBody, ctx: Caller) -> dict[str, Any]:
    if list(body.meta) != [key]:
        raise errors.BadRequest("The request body must hold exactly the key of the URL.")
    _metadata_change(request, ctx, volume_id, body.meta)
    return {"meta": {key: body.meta[key]}}


@router.delete("/volumes/{volume_id}/metadata/{key}")
def delete_metadata_item(request: Request, volume_id: str, key: str, ctx: Caller) -> Response:
    _metadata_change(request, ctx, volume_id, None, remove=key)
    return Response(status_code=200)


