"""Token middleware for every API but identity's own: X-Auth-Token in, RequestContext out.

It validates through the identity client (anything with `async validate(token) -> body | None`),
and rejects with the API's 401 fault otherwise. Version discovery stays public.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.core.faults import FaultStyle, fault_response


class TokenValidator(Protocol):
    async def validate(self, token: str) -> dict[str, Any] | None: ...


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


class AuthMiddleware:
    def __init__(self, app: ASGIApp, validator: TokenValidator, style: FaultStyle,
                 public_paths: Iterable[str] = ("/",)) -> None:
        self.app, self.validator, self.style = app, validator, style
        self.public_paths = {p.rstrip("/") or "/" for p in public_paths}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["path"].rstrip("/") or "/") in self.public_paths:
            await self.app(scope, receive, send)
            return
        token = _header(scope, b"x-auth-token")
        body = await self.validator.validate(token) if token else None
        if body is None:
            await fault_response(self.style, errors.Unauthorized(
                "The request you have made requires authentication."))(scope, receive, send)
            return
        context = RequestContext.from_token_body(body, token or "")
        service_token = _header(scope, b"x-service-token")
        if service_token:
            service_body = await self.validator.validate(service_token)
            if service_body is None:
                await fault_response(self.style, errors.Unauthorized("Invalid service token."))(
                    scope, receive, send)
                return
            context.service_roles = [r["name"] for r in service_body.get("roles", [])]
        scope.setdefault("state", {})["context"] = context
        await self.app(scope, receive, send)


def request_context(request: Request) -> RequestContext:
    """FastAPI dependency: the context AuthMiddleware attached to this request."""
    context = request.scope.get("state", {}).get("context")
    if context is None:
        raise errors.Unauthorized("The request you have made requires authentication.")
    return context  # type: ignore[no-any-return]
