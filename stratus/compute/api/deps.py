"""What every compute route needs: the service, the caller, policy, the microversion, time format."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict

from stratus.compute.api.microversion import APIVersion, requested
from stratus.compute.service import ComputeService
from stratus.core.auth import request_context
from stratus.core.context import RequestContext

caller = request_context
Caller = Annotated[RequestContext, Depends(request_context)]
Version = Annotated[APIVersion, Depends(requested)]


class Body(BaseModel):
    """A request body: unknown attributes are refused, as Nova's JSON schemas refuse them."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def service(request: Request) -> ComputeService:
    return request.app.state.compute  # type: ignore[no-any-return]


def enforce(request: Request, ctx: RequestContext, rule: str, target: dict[str, Any] | None = None) -> None:
    service(request).policy.enforce(rule, ctx.policy_credentials(), target or {"project_id": ctx.project_id})


def allowed(request: Request, ctx: RequestContext, rule: str, target: dict[str, Any] | None = None) -> bool:
    return service(request).policy.check(rule, ctx.policy_credentials(), target or {"project_id": ctx.project_id})


def iso(value: dt.datetime | None) -> str | None:
    """Nova's timestamps: seconds precision, `Z`."""
    return None if value is None else value.replace(microsecond=0).isoformat() + "Z"


def iso_micro(value: dt.datetime | None) -> str | None:
    """The microsecond form some Nova resources use (instance actions, migrations, services)."""
    return None if value is None else value.isoformat(timespec="microseconds")


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def links(request: Request, collection: str, item_id: str | int, project_id: str | None = None) -> list[dict[str, str]]:
    """Nova's self and bookmark links for a resource."""
    base = base_url(request)
    prefix = f"/{project_id}" if project_id else ""
    return [{"rel": "self", "href": f"{base}/v2.1{prefix}/{collection}/{item_id}"},
            {"rel": "bookmark", "href": f"{base}{prefix}/{collection}/{item_id}"}]
