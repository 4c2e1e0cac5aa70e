"""What every network route needs: the service, the caller, policy, views of standard attributes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy.sql.elements import ColumnElement

from stratus.core import errors
from stratus.core.auth import request_context
from stratus.core.context import RequestContext
from stratus.network.service import NetworkService

caller = request_context


class Body(BaseModel):
    """A resource in a request body: unknown attributes are refused, as Neutron refuses them."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def service(request: Request) -> NetworkService:
    return request.app.state.network  # type: ignore[no-any-return]


def enforce(request: Request, ctx: RequestContext, rule: str, target: dict[str, Any] | None = None) -> None:
    service(request).policy.enforce(rule, ctx.policy_credentials(), target or {})


def allowed(request: Request, ctx: RequestContext, rule: str, target: dict[str, Any] | None = None) -> bool:
    return service(request).policy.check(rule, ctx.policy_credentials(), target or {})


def iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.replace(microsecond=0).isoformat() + "Z"


def standard_view(row: Any) -> dict[str, Any]:
    """The attributes every Neutron resource shows (tenant_id repeats project_id for old clients)."""
    view = {"id": row.id, "project_id": row.project_id, "tenant_id": row.project_id,
            "description": row.description or "", "tags": list(row.tags or []),
            "created_at": iso(row.created_at), "updated_at": iso(row.updated_at),
            "revision_number": row.revision_number or 0}
    if hasattr(row, "name"):
        view["name"] = row.name or ""
    return view


def owned_by_caller(model: Any, ctx: RequestContext) -> ColumnElement[bool] | None:
    """The rows a project's member may see of a resource that is never shared (None: all)."""
    return None if ctx.is_admin else model.project_id == (ctx.project_id or "")


def project_for_create(ctx: RequestContext, requested: str | None, tenant_id: str | None = None) -> str:
    """The owner of a new resource: the caller's project, or any project when an admin says so."""
    wanted = requested or tenant_id
    if wanted and wanted != ctx.project_id:
        if not ctx.is_admin:
            raise errors.Forbidden("Only an admin may create a resource for another project.")
        return wanted
    if not ctx.project_id:
        raise errors.BadRequest("A project-scoped token is needed to create a resource.")
    return ctx.project_id


def touch(row: Any) -> None:
    """An update: bump the revision number (the column's onupdate sets updated_at)."""
    row.revision_number = (row.revision_number or 0) + 1
