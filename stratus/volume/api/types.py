"""Volume types: public and private (with project access), extra specs."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from pydantic import Field

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.volume import models, views
from stratus.volume import volumes as logic
from stratus.volume.api.deps import Caller, LooseBody, enforce, flag, service

router = APIRouter(prefix="/v3", tags=["types"])


class TypeFields(LooseBody):
    name: str = Field(min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=255)
    is_public: Any = Field(default=True, alias="os-volume-type-access:is_public")
    extra_specs: dict[str, Any] | None = None


class TypeCreate(LooseBody):
    volume_type: TypeFields


class TypeUpdateFields(LooseBody):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=255)
    is_public: Any = None


class TypeUpdate(LooseBody):
    volume_type: TypeUpdateFields


class SpecsBody(LooseBody):
    extra_specs: dict[str, Any]


def _specs(raw: dict[str, Any]) -> dict[str, str]:
    for key, value in raw.items():
        if not key or len(key) > 255 or not isinstance(value, (str, int, float, bool)) or len(str(value)) > 255:
            raise errors.BadRequest(f"Invalid extra spec {key!r}: keys and values are strings of 1 to 255 characters.")
    return {key: str(value) for key, value in raw.items()}


def _visible_type(session: Any, ctx: RequestContext, type_id: str) -> models.VolumeType:
    if type_id == "default":
        raise errors.NotFound("Volume type default could not be found.")
    return logic.usable_type(session, ctx, type_id)


@router.get("/types")
def list_types(request: Request, ctx: Caller) -> dict[str, Any]:
    params = dict(request.query_params)
    with service(request).db.transaction() as session:
        query = sa.select(models.VolumeType).order_by(models.VolumeType.name)
        if ctx.is_admin:
            if "is_public" in params and params["is_public"].lower() != "none":
                query = query.where(models.VolumeType.is_public.is_(flag(params["is_public"], "is_public")))
        else:
            accessible = sa.select(models.VolumeTypeAccess.volume_type_id).where(
                models.VolumeTypeAccess.project_id == (ctx.project_id or ""))
            query = query.where(sa.or_(models.VolumeType.is_public.is_(True), models.VolumeType.id.in_(accessible)))
        return {"volume_types": [views.volume_type(row, ctx.is_admin) for row in session.scalars(query)]}


@router.get("/types/default")
def default_type(request: Request, ctx: Caller) -> dict[str, Any]:
    svc = service(request)
    with svc.db.transaction() as session:
        row = logic.default_type(session, svc.settings.default_volume_type)
        if row is None:
            raise errors.NotFound("No default volume type is set.")
        return {"volume_type": views.volume_type(row, ctx.is_admin)}


@router.post("/types")
def create_type(request: Request, body: TypeCreate, ctx: Caller) -> dict[str, Any]:
    enforce(request, ctx, "types:manage")
    fields = body.volume_type
    with service(request).db.transaction() as session:
        if session.scalar(sa.select(models.VolumeType.id).where(models.VolumeType.name == fields.name)):
            raise errors.Conflict(f"Volume Type {fields.name} already exists.")
        row = models.VolumeType(name=fields.name, description=fields.description,
                                is_public=flag(fields.is_public, "is_public"),
                                extra_specs=_specs(fields.extra_specs or {}))
        session.add(row)
        session.flush()
        return {"volume_type": views.volume_type(row)}


@router.get("/types/{type_id}")
def show_type(request: Request, type_id: str, ctx: Caller) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        return {"volume_type": views.volume_type(_visible_type(session, ctx, type_id), ctx.is_admin)}


@router.put("/types/{type_id}")
def update_type(request: Request, type_id: str, body: TypeUpdate, ctx: Caller) -> dict[str, Any]:
    enforce(request, ctx, "types:manage")
    with service(request).db.transaction() as session:
        row = _visible_type(session, ctx, type_id)
        changes = body.volume_type.model_dump(exclude_unset=True)
        if changes.get("name") and changes["name"] != row.name:
            if session.scalar(sa.select(models.VolumeType.id).where(models.VolumeType.name == changes["name"])):
                raise errors.Conflict(f"Volume Type {changes['name']} already exists.")
            row.name = changes["name"]
        if "description" in changes:
            row.description = changes["description"]
        if changes.get("is_public") is not None:
            row.is_public = flag(changes["is_public"], "is_public")
        session.flush()
        return {"volume_type": views.volume_type(row)}


@router.delete("/types/{type_id}", status_code=202)
def delete_type(request: Request, type_id: str, ctx: Caller) -> Response:
    enforce(request, ctx, "types:manage")
    svc = service(request)
    with svc.db.transaction() as session:
        row = _visible_type(session, ctx, type_id)
        if row.name == svc.settings.default_volume_type:
            raise errors.BadRequest("The default volume type cannot be deleted.")
        if session.scalar(sa.select(sa.func.count()).select_from(models.Volume).where(
                models.Volume.volume_type_id == row.id)):
            raise errors.BadRequest(f"Target volume type {row.id} is still in use.")
        session.delete(row)
    return Response(status_code=202)


@router.get("/types/{type_id}/extra_specs")
def list_specs(request: Request, type_id: str, ctx: Caller) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        row = _visible_type(session, ctx, type_id)
        return {"extra_specs": dict(row.extra_specs or {}) if ctx.is_admin else {}}


@router.post("/types/{type_id}/extra_specs")
def set_specs(request: Request, type_id: str, body: SpecsBody, ctx: Caller) -> dict[str, Any]:
    enforce(request, ctx, "types:manage")
    with service(request).db.transaction() as session:
        row = _visible_type(session, ctx, type_id)
        new = _specs(body.extra_specs)
        row.extra_specs = {**(row.extra_specs or {}), **new}
        return {"extra_specs": new}


@router.get("/types/{type_id}/extra_specs/{key}")
def show_spec(request: Request, type_id: str, key: str, ctx: Caller) -> dict[str, Any]:
    enforce(request, ctx, "types:manage")
    with service(request).db.transaction() as session:
        specs = dict(_visible_type(session, ctx, type_id).extra_specs or {})
        if key not in specs:
            raise errors.NotFound(f"Volume Type {type_id} has no extra specs with key {key}.")
        return {key: specs[key]}


@router.put("/types/{type_id}/extra_specs/{key}")
def set_spec(request: Request, type_id: str, key: str, body: dict[str, Any], ctx: Caller) -> dict[str, Any]:
    enforce(request, ctx, "types:manage")
    if list(body) != [key]:
        raise errors.BadRequest("The request body must hold exactly the key of the URL.")
    new = _specs(body)
    with service(request).db.transaction() as session:
        row = _visible_type(session, ctx, type_id)
        row.extra_specs = {**(row.extra_specs or {}), **new}
    return new


@router.delete("/types/{type_id}/extra_specs/{key}", status_code=202)
def delete_spec(request: Request, type_id: str, key: str, ctx: Caller) -> Response:
    enforce(request, ctx, "types:manage")
    with service(request).db.transaction() as session:
        row = _visible_type(session, ctx, type_id)
        specs = dict(row.extra_specs or {})
        if key not in specs:
            raise errors.NotFound(f"Volume Type {type_id} has no extra specs with key {key}.")
        del specs[key]
        row.extra_specs = specs
    return Response(status_code=202)


@router.get("/types/{type_id}/os-volume-type-access")
def list_access(request: Request, type_id: str, ctx: Caller) -> dict[str, Any]:
    enforce(request, ctx, "types:access")
    with service(request).db.transaction() as session:
        row = _visible_type(session, ctx, type_id)
        if row.is_public:
            raise errors.NotFound("Access list not available for public volume types.")
        projects = session.scalars(sa.select(models.VolumeTypeAccess.project_id).where(
            models.VolumeTypeAccess.volume_type_id == row.id))
        return {"volume_type_access": [{"volume_type_id": row.id, "project_id": p} for p in projects]}


@router.post("/types/{type_id}/action", status_code=202)
def type_action(request: Request, type_id: str, body: dict[str, Any], ctx: Caller) -> Response:
    enforce(request, ctx, "types:access")
    if len(body) != 1 or next(iter(body)) not in ("addProjectAccess", "removeProjectAccess"):
        raise errors.BadRequest("The action must be addProjectAccess or removeProjectAccess.")
    action, args = next(iter(body.items()))
    project = args.get("project") if isinstance(args, dict) else None
    if not isinstance(project, str) or not project:
        raise errors.BadRequest(f"{action} needs a project.")
    with service(request).db.transaction() as session:
        row = _visible_type(session, ctx, type_id)
        if row.is_public:
            raise errors.BadRequest("Invalid volume type: access cannot be changed on a public volume type.")
        existing = session.get(models.VolumeTypeAccess, (row.id, project))
        if action == "addProjectAccess":
            if existing is not None:
                raise errors.Conflict(f"Volume type access for {row.id} / {project} already exists.")
            session.add(models.VolumeTypeAccess(volume_type_id=row.id, project_id=project))
        else:
            if existing is None:
                raise errors.NotFound(f"Volume type access not found for {row.id} / {project}.")
            session.delete(existing)
    return Response(status_code=202)
