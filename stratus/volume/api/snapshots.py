"""Volume snapshots: create, list (and detail), show, update, delete, metadata."""

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

router = APIRouter(prefix="/v3", tags=["snapshots"])
_SORT_KEYS = {"id", "name", "status", "size", "created_at", "updated_at", "volume_id"}


class SnapshotFields(LooseBody):
    volume_id: str
    name: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=255)
    force: Any = False
    metadata: dict[str, Any] | None = None


class SnapshotCreate(LooseBody):
    snapshot: SnapshotFields


class SnapshotUpdateFields(LooseBody):
    name: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=255)


class SnapshotUpdate(LooseBody):
    snapshot: SnapshotUpdateFields


class MetadataBody(LooseBody):
    metadata: dict[str, Any]


def _cast(request: Request, method: str, **kwargs: Any) -> None:
    bus = service(request).bus
    if bus is None:
        raise errors.ServiceUnavailable("The block storage conductor is not reachable.")
    bus.cast(CONDUCTOR_TOPIC, method, **kwargs)


@router.post("/snapshots", status_code=202)
def create_snapshot(request: Request, body: SnapshotCreate, ctx: Caller, version: Version) -> dict[str, Any]:
    svc = service(request)
    fields = body.snapshot
    force = flag(fields.force, "force")
    metadata = logic.check_metadata(fields.metadata or {})
    project_id = project_of(ctx)
    with svc.db.transaction() as session:
        quotas.lock_project(session, project_id)
        volume = logic.visible_volume(session, ctx, fields.volume_id, lock=True)
        enforce(request, ctx, "volume:write", {"project_id": volume.project_id})
        if volume.status not in logic.SNAPSHOTTABLE or (
                volume.status == "in-use" and not force and not version.at_least("3.66")):
            raise errors.BadRequest(f"Invalid volume: Volume {volume.id} status must be available, but current "
                                    f"status is: {volume.status}.")
        vtype = session.get(models.VolumeType, volume.volume_type_id) if volume.volume_type_id else None
        quotas.check(session, svc.settings, project_id, type_name=vtype.name if vtype else None,
                     snapshots=1, gigabytes=volume.size)
        row = models.Snapshot(project_id=project_id, user_id=ctx.user_id, volume_id=volume.id, name=fields.name,
                              description=fields.description, size=volume.size, status="creating",
                              metadata_=metadata, host=volume.host)
        session.add(row)
        session.flush()
        view = views.snapshot(version, row)
    _cast(request, "create_snapshot", snapshot_id=row.id)
    return {"snapshot": view}


def _list(request: Request, ctx: RequestContext, version: APIVersion) -> tuple[list[models.Snapshot], list[Any]]:
    enforce(request, ctx, "volume:read")
    params = dict(request.query_params)
    query = sa.select(models.Snapshot)
    all_projects = flag(params.get("all_tenants", "false"), "all_tenants")
    if all_projects or params.get("project_id"):
        enforce(request, ctx, "volume:all_tenants")
    if params.get("project_id"):
        query = query.where(models.Snapshot.project_id == params["project_id"])
    elif not all_projects:
        query = query.where(models.Snapshot.project_id == (ctx.project_id or ""))
    for key in ("status", "name", "volume_id"):
        if key in params:
            query = query.where(getattr(models.Snapshot, key) == params[key])
    query = query.order_by(*listing.order_by(models.Snapshot, listing.sort_keys(params, _SORT_KEYS)))
    with service(request).db.transaction() as session:
        rows = list(session.scalars(query))
    if "metadata" in params:
        wanted = listing.metadata_filter(params["metadata"])
        rows = [r for r in rows if all((r.metadata_ or {}).get(k) == v for k, v in wanted.items())]
    return listing.page(request, rows, params, "snapshots")


@router.get("/snapshots")
@router.get("/snapshots/detail")
def list_snapshots(request: Request, ctx: Caller, version: Version) -> dict[str, Any]:
    rows, next_links = _list(request, ctx, version)
    result: dict[str, Any] = {"snapshots": [views.snapshot(version, row) for row in rows]}
    if next_links:
        result["snapshots_links"] = next_links
    return result


@router.get("/snapshots/{snapshot_id}")
def show_snapshot(request: Request, snapshot_id: str, ctx: Caller, version: Version) -> dict[str, Any]:
    enforce(request, ctx, "volume:read")
    with service(request).db.transaction() as session:
        return {"snapshot": views.snapshot(version, logic.visible_snapshot(session, ctx, snapshot_id))}


@router.put("/snapshots/{snapshot_id}")
def update_snapshot(request: Request, snapshot_id: str, body: SnapshotUpdate, ctx: Caller,
                    version: Version) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        row = logic.visible_snapshot(session, ctx, snapshot_id)
        enforce(request, ctx, "volume:write", {"project_id": row.project_id})
        for name, value in body.snapshot.model_dump(exclude_unset=True).items():
            setattr(row, name, value)
        session.flush()
        return {"snapshot": views.snapshot(version, row)}


@router.delete("/snapshots/{snapshot_id}", status_code=202)
def delete_snapshot(request: Request, snapshot_id: str, ctx: Caller) -> Response:
    with service(request).db.transaction() as session:
        row = logic.visible_snapshot(session, ctx, snapshot_id)
        enforce(request, ctx, "volume:write", {"project_id": row.project_id})
        if row.status not in ("available", "error", "error_deleting"):
            raise errors.BadRequest(f"Invalid snapshot: Snapshot {snapshot_id} status must be available or error, "
                                    f"but current status is: {row.status}.")
        dependants = session.scalar(sa.select(sa.func.count()).select_from(models.Volume).where(
            models.Volume.snapshot_id == snapshot_id, models.Volume.status == "creating"))
        if dependants:
            raise errors.BadRequest(f"Invalid snapshot: a volume is being created from snapshot {snapshot_id}.")
        row.status = "deleting"
    _cast(request, "delete_snapshot", snapshot_id=snapshot_id)
    return Response(status_code=202)


@router.get("/snapshots/{snapshot_id}/metadata")
def get_snapshot_metadata(request: Request, snapshot_id: str, ctx: Caller) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        return {"metadata": dict(logic.visible_snapshot(session, ctx, snapshot_id).metadata_ or {})}


@router.post("/snapshots/{snapshot_id}/metadata")
@router.put("/snapshots/{snapshot_id}/metadata")
def set_snapshot_metadata(request: Request, snapshot_id: str, body: MetadataBody, ctx: Caller) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        row = logic.visible_snapshot(session, ctx, snapshot_id)
        enforce(request, ctx, "volume:write", {"project_id": row.project_id})
        new = logic.check_metadata(body.metadata)
        row.metadata_ = new if request.method == "PUT" else {**(row.metadata_ or {}), **new}
        return {"metadata": dict(row.metadata_)}


@router.delete("/snapshots/{snapshot_id}/metadata/{key}")
def delete_snapshot_metadata(request: Request, snapshot_id: str, key: str, ctx: Caller) -> Response:
    with service(request).db.transaction() as session:
        row = logic.visible_snapshot(session, ctx, snapshot_id)
        enforce(request, ctx, "volume:write", {"project_id": row.project_id})
        current = dict(row.metadata_ or {})
        if key not in current:
            raise errors.NotFound(f"Snapshot {snapshot_id} has no metadata with key {key}.")
        del current[key]
        row.metadata_ = current
    return Response(status_code=200)
