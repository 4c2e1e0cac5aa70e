"""/v2.0/quotas: per-project limits (show, set, reset, defaults, usage details)."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Body, Depends, Request, Response

from stratus.core.context import RequestContext
from stratus.core.errors import BadRequest, NotFound
from stratus.network import models, quotas
from stratus.network.api.deps import allowed, caller, enforce, service
from stratus.network.api.listing import to_bool
from stratus.network.errors import InvalidInput

router = APIRouter(prefix="/v2.0", tags=["quotas"])
Caller = Annotated[RequestContext, Depends(caller)]

# The largest limit a column holds (Neutron's DB_INTEGER_MAX_VALUE).
MAX_LIMIT = 2**31 - 1


class QuotaMissingTenant(BadRequest):
    def __init__(self) -> None:
        super().__init__("Tenant-id was missing from quota request.")


class TenantQuotaNotFound(NotFound):
    def __init__(self, project_id: str) -> None:
        super().__init__(f"Quota for tenant {project_id} could not be found.")


def _may_read(request: Request, ctx: RequestContext, project_id: str) -> None:
    enforce(request, ctx, "get_quota", {"project_id": project_id})


def _limit(resource: str, value: Any) -> int:
    """A limit as Neutron converts it: an integer (or a string of one) from -1 up."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidInput(f"'{value}' is not an integer")
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(f"'{value}' is not an integer") from None
    if not -1 <= number <= MAX_LIMIT:
        raise InvalidInput(f"'{number}' is not in range -1 through {MAX_LIMIT} for {resource}")
    return number


def _parse_update(body: Any) -> tuple[dict[str, int], bool]:
    """The limits a PUT sets and whether to check them against current usage."""
    if not isinstance(body, dict) or not isinstance(body.get("quota"), dict):
        raise BadRequest("Resource body required")
    wanted = dict(body["quota"])
    check_limit, force = wanted.pop("check_limit", None), wanted.pop("force", None)
    check = False
    if check_limit is not None:
        check = to_bool(str(check_limit))
    if force is not None and to_bool(str(force)):
        check = False
    unknown = sorted(set(wanted) - set(quotas.RESOURCES))
    if unknown:
        raise BadRequest(f"Unrecognized attribute(s) '{', '.join(unknown)}'")
    return {resource: _limit(resource, value) for resource, value in wanted.items()}, check


@router.get("/quotas")
def list_quotas(request: Request, ctx: Caller) -> dict[str, Any]:
    """Projects with limits of their own (a project's member sees only its own project)."""
    svc = service(request)
    with svc.db.transaction() as session:
        stmt = sa.select(models.Quota)
        # Whoever may read the quota of a project that is not theirs may read them all.
        if not allowed(request, ctx, "get_quota", {"project_id": "*"}):
            stmt = stmt.where(models.Quota.project_id == (ctx.project_id or ""))
        own: dict[str, dict[str, Any]] = {}
        for row in session.scalars(stmt):
            if row.resource in quotas.RESOURCES:
                own.setdefault(row.project_id, {})[row.resource] = row.limit
    defaults = quotas.defaults(svc.settings)
    rows = [{**defaults, **limits, "project_id": project_id, "tenant_id": project_id}
            for project_id, limits in sorted(own.items())]
    return {"quotas": rows}


@router.get("/quotas/tenant")
def show_caller_tenant(ctx: Caller) -> dict[str, Any]:
    if not ctx.project_id:
        raise QuotaMissingTenant()
    return {"tenant": {"tenant_id": ctx.project_id}}


@router.get("/quotas/project")
def show_caller_project(ctx: Caller) -> dict[str, Any]:
    if not ctx.project_id:
        raise QuotaMissingTenant()
    return {"project": {"project_id": ctx.project_id}}


@router.get("/quotas/{project_id}")
def show_quota(request: Request, project_id: str, ctx: Caller) -> dict[str, Any]:
    _may_read(request, ctx, project_id)
    svc = service(request)
    with svc.db.transaction() as session:
        return {"quota": quotas.limits(session, svc.settings, project_id)}


@router.get("/quotas/{project_id}/default")
def show_default_quota(request: Request, project_id: str, ctx: Caller) -> dict[str, Any]:
    _may_read(request, ctx, project_id)
    return {"quota": quotas.defaults(service(request).settings)}


@router.get("/quotas/{project_id}/details")
@router.get("/quotas/{project_id}/details.json")
def show_quota_details(request: Request, project_id: str, ctx: Caller) -> dict[str, Any]:
    _may_read(request, ctx, project_id)
    svc = service(request)
    with svc.db.transaction() as session:
        limits = quotas.limits(session, svc.settings, project_id)
        used = quotas.usage(session, project_id)
    return {"quota": {resource: {"limit": limit, "used": used[resource], "reserved": 0}
                      for resource, limit in limits.items()}}


@router.put("/quotas/{project_id}")
def update_quota(request: Request, project_id: str, ctx: Caller,
                 body: Annotated[Any, Body()] = None) -> dict[str, Any]:
    enforce(request, ctx, "update_quota", {"project_id": project_id})
    wanted, check = _parse_update(body)
    svc = service(request)
    with svc.db.transaction() as session:
        if check:
            for resource, limit in wanted.items():
                used = quotas.count(session, resource, project_id)
                if limit >= 0 and used > limit:
                    raise BadRequest(f"Quota limit {limit} for {resource} must be greater than or equal to "
                                     f"already used {used}")
        existing = {row.resource: row for row in session.scalars(
            sa.select(models.Quota).where(models.Quota.project_id == project_id).with_for_update())}
        for resource, limit in wanted.items():
            if resource in existing:
                existing[resource].limit = limit
            else:
                session.add(models.Quota(project_id=project_id, resource=resource, limit=limit))
        session.flush()
        return {"quota": quotas.limits(session, svc.settings, project_id)}


@router.delete("/quotas/{project_id}", status_code=204)
def reset_quota(request: Request, project_id: str, ctx: Caller) -> Response:
    enforce(request, ctx, "delete_quota", {"project_id": project_id})
    with service(request).db.transaction() as session:
        deleted = session.execute(sa.delete(models.Quota).where(models.Quota.project_id == project_id))
        if not deleted.rowcount:  # type: ignore[attr-defined]
            raise TenantQuotaNotFound(project_id)
    return Response(status_code=204)
