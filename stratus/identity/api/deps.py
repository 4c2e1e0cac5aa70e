"""What every identity route needs: the service, the caller's context, policy, links."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ConfigDict

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.core.http import paginate
from stratus.identity.auth import Authenticator
from stratus.identity.service import IdentityService

T = TypeVar("T")


class Body(BaseModel):
    """Request bodies: types are checked strictly (no "true" for true); unknown keys are kept as
    extra attributes, as Keystone keeps them."""

    model_config = ConfigDict(strict=True, extra="allow")


class StrictBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


def service(request: Request) -> IdentityService:
    return request.app.state.identity  # type: ignore[no-any-return]


def authenticator(request: Request) -> Authenticator:
    return request.app.state.authenticator  # type: ignore[no-any-return]


async def caller(request: Request) -> RequestContext:
    """The context of the X-Auth-Token; 401 when it is missing or not valid."""
    token = request.headers.get("x-auth-token")
    if not token:
        raise errors.Unauthorized("The request you have made requires authentication.")
    auth = authenticator(request)
    try:
        entry = await auth.resolve(token)
    except errors.NotFound:
        raise errors.Unauthorized("The request you have made requires authentication.") from None
    return auth.context(entry, token)


def enforce(request: Request, ctx: RequestContext, rule: str, target: dict[str, Any] | None = None) -> None:
    service(request).policy.enforce(rule, ctx.policy_credentials(), target or {})


def allowed(request: Request, ctx: RequestContext, rule: str, target: dict[str, Any] | None = None) -> bool:
    return service(request).policy.check(rule, ctx.policy_credentials(), target or {})


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def link(request: Request, path: str) -> dict[str, str]:
    return {"self": f"{base_url(request)}{path}"}


def collection_links(request: Request) -> dict[str, Any]:
    return {"self": str(request.url), "previous": None, "next": None}


def page_of(request: Request, key: str, views: list[dict[str, Any]], limit: int | None,
            marker: str | None) -> dict[str, Any]:
    """A list response: the `limit`/`marker` page of `views` under `key`, with its links."""
    page, _ = paginate(views, limit=limit, marker=marker)
    return {key: page, "links": collection_links(request)}


def extra_fields(model: BaseModel) -> dict[str, Any]:
    """The keys a client sent beyond the documented ones (kept and returned, as Keystone does)."""
    return dict(model.model_extra or {})


def find_or_404(session: Any, model: type[T], key: str, noun: str) -> T:
    """The row with primary key `key`, or Keystone's "Could not find <noun>: <key>." 404."""
    row = session.get(model, key)
    if row is None:
        raise errors.NotFound(f"Could not find {noun}: {key}.")
    return row  # type: ignore[no-any-return]


def truthy(value: str | None) -> bool | None:
    """A boolean query filter as Keystone reads it ("0", "false", "False" are false)."""
    if value is None:
        return None
    return value.lower() not in ("0", "false", "no", "off", "")


def unique_violation(what: str, name: str) -> errors.Conflict:
    return errors.Conflict(f"Conflict occurred attempting to store {what} - Duplicate entry found with "
                           f"name {name}.")
