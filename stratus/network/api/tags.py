"""/v2.0/{collection}/{id}/tags: the `standard-attr-tag` extension.

Tags are kept in each resource's `tags` column. A caller who cannot see a resource gets 404; one
who can see but does not own it (a shared network) may read its tags but not change them (403).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Body, Depends, Request, Response
from sqlalchemy.orm import Session

from stratus.core.context import RequestContext
from stratus.core.errors import NotFound, StratusError
from stratus.network import models
from stratus.network.api.deps import caller, enforce, owned_by_caller, service, touch
from stratus.network.errors import (
    FloatingIPNotFound,
    InvalidInput,
    PortNotFound,
    RouterNotFound,
    SecurityGroupNotFound,
    SubnetNotFound,
)
from stratus.network.visibility import subnet_scope, visible_network

router = APIRouter(prefix="/v2.0", tags=["tags"])
Caller = Annotated[RequestContext, Depends(caller)]

MAX_TAG_LEN = 255


class TagNotFound(NotFound):
    def __init__(self, tag: str) -> None:
        super().__init__(f"Tag {tag} could not be found.")


@dataclass(frozen=True)
class Taggable:
    model: type[Any]
    not_found: Callable[[str], StratusError]


_OWNED = {
    "ports": Taggable(models.Port, PortNotFound),
    "routers": Taggable(models.Router, RouterNotFound),
    "floatingips": Taggable(models.FloatingIP, FloatingIPNotFound),
    "security-groups": Taggable(models.SecurityGroup, SecurityGroupNotFound),
}
COLLECTIONS = ("networks", "subnets", *_OWNED)


def _find(session: Session, ctx: RequestContext, collection: str, resource_id: str, for_update: bool) -> Any:
    """The resource if the caller can see it (networks: own, shared, external; subnets: those of such
    networks; everything else: own), else the resource's not-found fault."""
    if collection == "networks":
        return visible_network(session, ctx, resource_id, for_update=for_update)
    if collection == "subnets":
        stmt = sa.select(models.Subnet).where(models.Subnet.id == resource_id)
        scope = subnet_scope(ctx)
        if scope is not None:
            stmt = stmt.where(scope)
        not_found: Callable[[str], StratusError] = SubnetNotFound
    else:
        kind = _OWNED[collection]
        stmt = sa.select(kind.model).where(kind.model.id == resource_id)
        owned = owned_by_caller(kind.model, ctx)
        if owned is not None:
            stmt = stmt.where(owned)
        not_found = kind.not_found
    if for_update:
        stmt = stmt.with_for_update()
    row = session.scalars(stmt).first()
    if row is None:
        raise not_found(resource_id)
    return row


def _check_tag(tag: str) -> None:
    if len(tag) > MAX_TAG_LEN:
        raise InvalidInput(f"'{tag}' exceeds maximum length of {MAX_TAG_LEN}")


def _tags_of(body: Any) -> list[str]:
    if not isinstance(body, dict) or "tags" not in body:
        raise InvalidInput("Invalid tags body")
    tags = body["tags"]
    if not isinstance(tags, list):
        raise InvalidInput(f"'{tags}' is not a list")
    for tag in tags:
        if not isinstance(tag, str):
            raise InvalidInput(f"'{tag}' is not a valid string")
        _check_tag(tag)
    repeated = sorted({tag for tag in tags if tags.count(tag) > 1})
    if repeated:
        raise InvalidInput(f"Duplicate items in the list: '{', '.join(repeated)}'")
    return list(tags)


def _write(request: Request, ctx: RequestContext, collection: str, resource_id: str,
           change: Callable[[list[str]], list[str]]) -> list[str]:
    """Apply `change` to the resource's tags in one transaction (the row locked); the new tags."""
    with service(request).db.transaction() as session:
        row = _find(session, ctx, collection, resource_id, for_update=True)
        enforce(request, ctx, "admin_or_owner", {"project_id": row.project_id})
        tags = change(list(row.tags or []))
        if tags != list(row.tags or []):
            row.tags = tags  # a new list: the JSON column sees a change only by assignment
            touch(row)
        return tags


def _routes(collection: str) -> None:
    base = f"/{collection}/{{resource_id}}/tags"

    def list_tags(request: Request, resource_id: str, ctx: Caller) -> dict[str, Any]:
        with service(request).db.transaction() as session:
            return {"tags": list(_find(session, ctx, collection, resource_id, for_update=False).tags or [])}

    def show_tag(request: Request, resource_id: str, tag: str, ctx: Caller) -> Response:
        _check_tag(tag)
        with service(request).db.transaction() as session:
            if tag not in (_find(session, ctx, collection, resource_id, for_update=False).tags or []):
                raise TagNotFound(tag)
        return Response(status_code=204)

    def replace_tags(request: Request, resource_id: str, ctx: Caller,
                     body: Annotated[Any, Body()] = None) -> dict[str, Any]:
        wanted = _tags_of(body)
        return {"tags": _write(request, ctx, collection, resource_id, lambda _old: wanted)}

    def add_tag(request: Request, resource_id: str, tag: str, ctx: Caller) -> Response:
        _check_tag(tag)
        _write(request, ctx, collection, resource_id, lambda old: old if tag in old else [*old, tag])
        return Response(status_code=201)

    def remove_tag(request: Request, resource_id: str, tag: str, ctx: Caller) -> Response:
        _check_tag(tag)

        def without(old: list[str]) -> list[str]:
            if tag not in old:
                raise TagNotFound(tag)
            return [t for t in old if t != tag]

        _write(request, ctx, collection, resource_id, without)
        return Response(status_code=204)

    def remove_all_tags(request: Request, resource_id: str, ctx: Caller) -> Response:
        _write(request, ctx, collection, resource_id, lambda _old: [])
        return Response(status_code=204)

    name = collection.replace("-", "_")
    router.add_api_route(base, list_tags, methods=["GET"], name=f"list_{name}_tags")
    router.add_api_route(base, replace_tags, methods=["PUT"], name=f"replace_{name}_tags")
    router.add_api_route(base, remove_all_tags, methods=["DELETE"], status_code=204, name=f"remove_{name}_tags",
                         response_class=Response)
    router.add_api_route(f"{base}/{{tag}}", show_tag, methods=["GET"], status_code=204, name=f"show_{name}_tag",
                         response_class=Response)
    router.add_api_route(f"{base}/{{tag}}", add_tag, methods=["PUT"], status_code=201, name=f"add_{name}_tag",
                         response_class=Response)
    router.add_api_route(f"{base}/{{tag}}", remove_tag, methods=["DELETE"], status_code=204,
                         name=f"remove_{name}_tag", response_class=Response)


for _collection in COLLECTIONS:
    _routes(_collection)
