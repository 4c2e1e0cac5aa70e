"""Quota sets (`/os-quota-sets/{project_id}`, with `?usage=true` and `/defaults`) and `/limits`."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response

from stratus.core import errors
from stratus.volume import models, quotas
from stratus.volume.api.deps import Caller, enforce, flag, service

router = APIRouter(prefix="/v3", tags=["quotas"])


@router.get("/os-quota-sets/{project_id}/defaults")
def quota_defaults(request: Request, project_id: str, ctx: Caller) -> dict[str, Any]:
    enforce(request, ctx, "quotas:show", {"project_id": project_id})
    svc = service(request)
    with svc.db.transaction() as session:
        return {"quota_set": {"id": project_id, **quotas.defaults(svc.settings, quotas.type_names(session))}}


@router.get("/os-quota-sets/{project_id}")
def show_quotas(request: Request, project_id: str, ctx: Caller) -> dict[str, Any]:
    enforce(request, ctx, "quotas:show", {"project_id": project_id})
    svc = service(request)
    with svc.db.transaction() as session:
        limits = quotas.limits(session, svc.settings, project_id)
        if not flag(request.query_params.get("usage", "false"), "usage"):
            return {"quota_set": {"id": project_id, **limits}}
        used = quotas.usage(session, project_id)
    return {"quota_set": {"id": project_id, **{name: {"limit": limit, "in_use": used.get(name, 0), "reserved": 0,
                                                      "allocated": 0}
                                               for name, limit in limits.items()}}}


@router.put("/os-quota-sets/{project_id}")
def update_quotas(request: Request, project_id: str, body: dict[str, Any], ctx: Caller) -> dict[str, Any]:
    enforce(request, ctx, "quotas:update", {"project_id": project_id})
    wanted = body.get("quota_set")
    if not isinstance(wanted, dict):
        raise errors.BadRequest("The body must hold a quota_set object.")
    svc = service(request)
    with svc.db.transaction() as session:
        known = quotas.limits(session, svc.settings, project_id)
        for name, value in wanted.items():
            if name in ("tenant_id", "id"):
                continue
            if name not in known:
                raise errors.BadRequest(f"Bad key(s) in quota set: {name}")
            if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).lstrip("-").isdigit():
                raise errors.BadRequest(f"Quota {name} must be an integer.")
            limit = int(value)
            if limit < -1:
                raise errors.BadRequest(f"Quota limit {limit} for {name} must be -1 or greater.")
            row = session.get(models.Quota, (project_id, name))
            if row is None:
                session.add(models.Quota(project_id=project_id, resource=name, limit=limit))
            else:
                row.limit = limit
        session.flush()
        return {"quota_set": quotas.limits(session, svc.settings, project_id)}


@router.delete("/os-quota-sets/{project_id}")
def delete_quotas(request: Request, project_id: str, ctx: Caller) -> Response:
    enforce(request, ctx, "quotas:update", {"project_id": project_id})
    with service(request).db.transaction() as session:
        session.execute(sa.delete(models.Quota).where(models.Quota.project_id == project_id))
    return Response(status_code=200)


@router.get("/limits")
def limits(request: Request, ctx: Caller) -> dict[str, Any]:
    project_id = request.query_params.get("project_id") or ctx.project_id or ""
    enforce(request, ctx, "quotas:show", {"project_id": project_id})
    svc = service(request)
    with svc.db.transaction() as session:
        limit = quotas.limits(session, svc.settings, project_id)
        used = quotas.usage(session, project_id)
    return {"limits": {"rate": [], "absolute": {
        "maxTotalVolumes": limit["volumes"], "maxTotalSnapshots": limit["snapshots"],
        "maxTotalVolumeGigabytes": limit["gigabytes"], "maxTotalBackups": limit["backups"],
        "maxTotalBackupGigabytes": limit["backup_gigabytes"], "totalVolumesUsed": used["volumes"],
        "totalGigabytesUsed": used["gigabytes"], "totalSnapshotsUsed": used["snapshots"], "totalBackupsUsed": 0,
        "totalBackupGigabytesUsed": 0}}}
