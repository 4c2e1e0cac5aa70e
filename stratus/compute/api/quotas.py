"""/v2.1/os-quota-sets: a project's compute limits (show, detail, defaults, update, revert)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response

from stratus.compute import models, quotas
from stratus.compute.api.deps import Caller, Version, enforce, service
from stratus.compute.api.flavors import Payload, action_body, integer, invalid, to_bool
from stratus.core import errors

router = APIRouter(prefix="/v2.1", tags=["quota sets"])

# Limits of network resources Nova once proxied; shown (as unlimited) and accepted (and ignored)
# below 2.36, gone from 2.36 on.
PROXIED = ("fixed_ips", "floating_ips", "security_group_rules", "security_groups", "networks")


def _shown(values: dict[str, Any], version: Any, proxied: Any) -> dict[str, Any]:
    shown = dict(values)
    if not version.at_least("2.36"):
        shown.update(dict.fromkeys(PROXIED, proxied))
    return shown


def _may_read(request: Request, ctx: Any, project_id: str) -> None:
    enforce(request, ctx, "quotas:show", {"project_id": project_id})


@router.get("/os-quota-sets/{project_id}")
def show_quota_set(request: Request, project_id: str, ctx: Caller, version: Version) -> dict[str, Any]:
    _may_read(request, ctx, project_id)
    svc = service(request)
    with svc.db.transaction() as session:
        limits = quotas.limits(session, project_id, svc.settings)
    return {"quota_set": {"id": project_id, **_shown(limits, version, -1)}}


@router.get("/os-quota-sets/{project_id}/detail")
def show_quota_set_detail(request: Request, project_id: str, ctx: Caller, version: Version) -> dict[str, Any]:
    _may_read(request, ctx, project_id)
    svc = service(request)
    with svc.db.transaction() as session:
        limits = quotas.limits(session, project_id, svc.settings)
        used = quotas.usage(session, project_id)
    detail = {name: {"in_use": used[name], "limit": limit, "reserved": 0} for name, limit in limits.items()}
    return {"quota_set": {"id": project_id, **_shown(detail, version, {"in_use": 0, "limit": -1, "reserved": 0})}}


@router.get("/os-quota-sets/{project_id}/defaults")
def show_quota_defaults(request: Request, project_id: str, ctx: Caller, version: Version) -> dict[str, Any]:
    _may_read(request, ctx, project_id)
    return {"quota_set": {"id": project_id, **_shown(quotas.defaults(service(request).settings), version, -1)}}


def _parse_update(body: Any, version: Any) -> tuple[dict[str, int], bool]:
    wanted = dict(action_body(body, "quota_set"))
    force_raw = wanted.pop("force", False)
    force = to_bool(force_raw)
    if force is None:
        raise invalid("force", force_raw, f"{force_raw!r} is not of type 'boolean'")
    accepted = set(quotas.RESOURCES) | (set() if version.at_least("2.36") else set(PROXIED))
    extra = sorted(set(wanted) - accepted)
    if extra:
        raise errors.BadRequest(f"Additional properties are not allowed ({', '.join(map(repr, extra))} "
                                "were unexpected)")
    values = {name: integer(name, value, -1, quotas.MAX_LIMIT) for name, value in wanted.items()}
    return {name: value for name, value in values.items() if name in quotas.RESOURCES}, force


@router.put("/os-quota-sets/{project_id}")
def update_quota_set(request: Request, project_id: str, ctx: Caller, version: Version,
                     body: Payload = None) -> dict[str, Any]:
    enforce(request, ctx, "quotas:update", {"project_id": project_id})
    if "user_id" in request.query_params:
        raise errors.BadRequest("Quotas of a single user are not supported; set the project's.")
    wanted, force = _parse_update(body, version)
    svc = service(request)
    with svc.db.transaction() as session:
        quotas.lock_project(session, project_id)
        if not force:
            used = quotas.usage(session, project_id)
            for name, value in sorted(wanted.items()):
                if value != -1 and value < used[name]:
                    raise errors.BadRequest(f"Quota limit {value} for {name} must be greater than or equal to "
                                            f"already used and reserved {used[name]}.")
        existing = {row.resource: row for row in session.scalars(
            sa.select(models.Quota).where(models.Quota.project_id == project_id))}
        for name, value in wanted.items():
            if name in existing:
                existing[name].hard_limit = value
            else:
                session.add(models.Quota(project_id=project_id, resource=name, hard_limit=value))
        session.flush()
        limits = quotas.limits(session, project_id, svc.settings)
    return {"quota_set": _shown(limits, version, -1)}


@router.delete("/os-quota-sets/{project_id}", status_code=202)
def revert_quota_set(request: Request, project_id: str, ctx: Caller) -> Response:
    enforce(request, ctx, "quotas:delete", {"project_id": project_id})
    with service(request).db.transaction() as session:
        session.execute(sa.delete(models.Quota).where(models.Quota.project_id == project_id))
    return Response(status_code=202)


@router.get("/os-quota-class-sets/{class_name}")
def show_quota_class_set(class_name: str, request: Request, ctx: Caller, version: Version) -> dict[str, Any]:
    """The default class (the configured defaults; another class has them too, as in Nova)."""
    values = quotas.defaults(service(request).settings)
    if not version.at_least("2.50"):
        values = {k: v for k, v in values.items() if k not in ("server_groups", "server_group_members")}
        values.update(dict.fromkeys(PROXIED[:-1], -1))
    return {"quota_class_set": {"id": class_name, **values}}
