"""What every block storage route needs: the service, the caller, policy, the microversion."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict

from stratus.core import errors
from stratus.core.auth import request_context
from stratus.core.context import RequestContext
from stratus.volume.api.microversion import APIVersion, requested
from stratus.volume.service import VolumeService

Caller = Annotated[RequestContext, Depends(request_context)]
Version = Annotated[APIVersion, Depends(requested)]


class Body(BaseModel):
    """A request body: unknown attributes are refused (Cinder validates strictly since 3.53)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class LooseBody(BaseModel):
    """A body whose extra attributes old clients send and Cinder ignores."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def service(request: Request) -> VolumeService:
    return request.app.state.volume  # type: ignore[no-any-return]


def enforce(request: Request, ctx: RequestContext, rule: str, target: dict[str, Any] | None = None) -> None:
    service(request).policy.enforce(rule, ctx.policy_credentials(), target or {"project_id": ctx.project_id})


def allowed(request: Request, ctx: RequestContext, rule: str, target: dict[str, Any] | None = None) -> bool:
    return service(request).policy.check(rule, ctx.policy_credentials(), target or {"project_id": ctx.project_id})


def project_of(ctx: RequestContext) -> str:
    if not ctx.project_id:
        raise errors.BadRequest("A project-scoped token is needed.")
    return ctx.project_id


def iso(value: dt.datetime | None) -> str | None:
    """Cinder's timestamps: microseconds, no zone suffix (they are UTC)."""
    return None if value is None else value.isoformat(timespec="microseconds")


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def links(request: Request, collection: str, item_id: str, project_id: str) -> list[dict[str, str]]:
    base = base_url(request)
    return [{"rel": "self", "href": f"{base}/v3/{project_id}/{collection}/{item_id}"},
            {"rel": "bookmark", "href": f"{base}/{project_id}/{collection}/{item_id}"}]


def flag(value: Any, name: str) -> bool:
    """Cinder's booleans come as JSON booleans or as strings ("true", "False", "1", "no"...)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "y", "on", "t"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "n", "off", "f"):
        return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise errors.BadRequest(f"Invalid value {value!r} for {name}: a boolean is expected.")
