"""What every image route needs: the service, the caller, policy."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from stratus.core.auth import request_context
from stratus.core.context import RequestContext
from stratus.image.service import ImageService

caller = request_context


def service(request: Request) -> ImageService:
    return request.app.state.image  # type: ignore[no-any-return]


def enforce(request: Request, ctx: RequestContext, rule: str, target: dict[str, Any] | None = None) -> None:
    service(request).policy.enforce(rule, ctx.policy_credentials(), target or {})


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")
