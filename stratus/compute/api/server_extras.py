"""A server's metadata, tags (2.26) and addresses (ips)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from pydantic import Field

from stratus.compute import models, quotas
from stratus.compute.api.deps import Body, Caller, Version, service
from stratus.compute.api.servers import check_not_locked, find_instance
from stratus.compute.views import addresses
from stratus.core import errors
from stratus.core.db import utcnow

router = APIRouter(prefix="/v2.1", tags=["server metadata, tags, ips"])
MAX_TAGS = 50
_TAG_BAD = (",", "/")


class MetadataBody(Body):
    metadata: dict[str, str | None]


class MetaItemBody(Body):
    meta: dict[str, str]


class TagsBody(Body):
    tags: list[str] = Field(max_length=MAX_TAGS)


def _check_metadata(items: dict[str, Any]) -> dict[str, str]:
    for key, value in items.items():
        if not key or len(key) > 255:
            raise errors.BadRequest("Metadata keys must be 1 to 255 characters long.")
        if not isinstance(value, str) or len(value) > 255:
            raise errors.BadRequest(f"Metadata value for {key} must be a string of at most 255 characters.")
    return dict(items)


def _save_metadata(request: Request, ctx: Any, server_id: str, replace: bool, items: dict[str, str]) -> dict[str, str]:
    svc = service(request)
    with svc.db.transaction() as session:
        row = find_instance(session, request, ctx, server_id, lock=True)
        check_not_locked(request, ctx, row)
        merged = dict(items) if replace else {**(row.metadata_ or {}), **items}
        limit = quotas.limits(session, row.project_id, svc.settings)["metadata_items"]
        if 0 <= limit < len(merged):
            raise errors.OverLimit(f"Quota exceeded for metadata_items: Requested {len(merged)}, but the limit is "
                                   f"{limit}")
        row.metadata_ = merged
        row.updated_at = utcnow()
        return merged


@router.get("/servers/{server_id}/metadata")
def list_metadata(request: Request, server_id: str, ctx: Caller) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        return {"metadata": dict(find_instance(session, request, ctx, server_id).metadata_ or {})}


@router.post("/servers/{server_id}/metadata")
def update_metadata(request: Request, server_id: str, body: MetadataBody, ctx: Caller) -> dict[str, Any]:
    return {"metadata": _save_metadata(request, ctx, server_id, False, _check_metadata(body.metadata))}


@router.put("/servers/{server_id}/metadata")
def replace_metadata(request: Request, server_id: str, body: MetadataBody, ctx: Caller) -> dict[str, Any]:
    return {"metadata": _save_metadata(request, ctx, server_id, True, _check_metadata(body.metadata))}


@router.get("/servers/{server_id}/metadata/{key}")
def show_metadata_item(request: Request, server_id: str, key: str, ctx: Caller) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        metadata = find_instance(session, request, ctx, server_id).metadata_ or {}
        if key not in metadata:
            raise errors.NotFound("Metadata item was not found")
        return {"meta": {key: metadata[key]}}


@router.put("/servers/{server_id}/metadata/{key}")
def set_metadata_item(request: Request, server_id: str, key: str, body: MetaItemBody, ctx: Caller) -> dict[str, Any]:
    if len(body.meta) != 1 or key not in body.meta:
        raise errors.BadRequest("Request body and URI mismatch")
    _save_metadata(request, ctx, server_id, False, _check_metadata(body.meta))
    return {"meta": body.meta}


@router.delete("/servers/{server_id}/metadata/{key}", status_code=204)
def delete_metadata_item(request: Request, server_id: str, key: str, ctx: Caller) -> Response:
    with service(request).db.transaction() as session:
        row = find_instance(session, request, ctx, server_id, lock=True)
        check_not_locked(request, ctx, row)
        metadata = dict(row.metadata_ or {})
        if key not in metadata:
            raise errors.NotFound("Metadata item was not found")
        del metadata[key]
        row.metadata_ = metadata
    return Response(status_code=204)


# --- tags (2.26) ---------------------------------------------------------------------------------

def _tags_version(version: Any) -> None:
    if not version.at_least("2.26"):
        raise errors.NotFound("The resource could not be found.")


def _check_tag(tag: str) -> None:
    if not tag or len(tag) > 60 or any(c in tag for c in _TAG_BAD):
        raise errors.BadRequest(f"Tag '{tag}' is invalid: tags are 1 to 60 characters without ',' or '/'.")


def _tags(session: Any, instance_id: str) -> list[str]:
    return sorted(session.scalars(sa.select(models.InstanceTag.tag).where(
        models.InstanceTag.instance_id == instance_id)))


@router.get("/servers/{server_id}/tags")
def list_tags(request: Request, server_id: str, ctx: Caller, version: Version) -> dict[str, Any]:
    _tags_version(version)
    with service(request).db.transaction() as session:
        return {"tags": _tags(session, find_instance(session, request, ctx, server_id).id)}


@router.put("/servers/{server_id}/tags")
def replace_tags(request: Request, server_id: str, body: TagsBody, ctx: Caller, version: Version) -> dict[str, Any]:
    _tags_version(version)
    for tag in body.tags:
        _check_tag(tag)
    with service(request).db.transaction() as session:
        row = find_instance(session, request, ctx, server_id, lock=True)
        session.execute(sa.delete(models.InstanceTag).where(models.InstanceTag.instance_id == row.id))
        for tag in sorted(set(body.tags)):
            session.add(models.InstanceTag(instance_id=row.id, tag=tag))
        row.updated_at = utcnow()
        session.flush()
        return {"tags": _tags(session, row.id)}


@router.delete("/servers/{server_id}/tags", status_code=204)
def delete_tags(request: Request, server_id: str, ctx: Caller, version: Version) -> Response:
    _tags_version(version)
    with service(request).db.transaction() as session:
        row = find_instance(session, request, ctx, server_id, lock=True)
        session.execute(sa.delete(models.InstanceTag).where(models.InstanceTag.instance_id == row.id))
    return Response(status_code=204)


@router.get("/servers/{server_id}/tags/{tag}", status_code=204)
def check_tag(request: Request, server_id: str, tag: str, ctx: Caller, version: Version) -> Response:
    _tags_version(version)
    with service(request).db.transaction() as session:
        row = find_instance(session, request, ctx, server_id)
        if tag not in _tags(session, row.id):
            raise errors.NotFound(f"Tag {tag} could not be found for instance {server_id}.")
    return Response(status_code=204)


@router.put("/servers/{server_id}/tags/{tag}", status_code=201)
def add_tag(request: Request, server_id: str, tag: str, ctx: Caller, version: Version) -> Response:
    _tags_version(version)
    _check_tag(tag)
    with service(request).db.transaction() as session:
        row = find_instance(session, request, ctx, server_id, lock=True)
        existing = _tags(session, row.id)
        if tag in existing:
            return Response(status_code=204)
        if len(existing) >= MAX_TAGS:
            raise errors.BadRequest(f"The number of tags exceeded the per-server limit {MAX_TAGS}")
        session.add(models.InstanceTag(instance_id=row.id, tag=tag))
        row.updated_at = utcnow()
    url = f"{str(request.base_url).rstrip('/')}/v2.1/servers/{server_id}/tags/{tag}"
    return Response(status_code=201, headers={"Location": url})


@router.delete("/servers/{server_id}/tags/{tag}", status_code=204)
def delete_tag(request: Request, server_id: str, tag: str, ctx: Caller, version: Version) -> Response:
    _tags_version(version)
    with service(request).db.transaction() as session:
        row = find_instance(session, request, ctx, server_id, lock=True)
        deleted = session.execute(sa.delete(models.InstanceTag).where(
            models.InstanceTag.instance_id == row.id, models.InstanceTag.tag == tag))
        if not deleted.rowcount:  # type: ignore[attr-defined]
            raise errors.NotFound(f"Tag {tag} could not be found for instance {server_id}.")
    return Response(status_code=204)


# --- addresses -------------------------------------------------------------------------------------

@router.get("/servers/{server_id}/ips")
def list_ips(request: Request, server_id: str, ctx: Caller) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        row = find_instance(session, request, ctx, server_id)
        return {"addresses": {label: [{"version": a["version"], "addr": a["addr"]} for a in items]
                              for label, items in addresses(row).items()}}


@router.get("/servers/{server_id}/ips/{network_label}")
def show_ips(request: Request, server_id: str, network_label: str, ctx: Caller) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        row = find_instance(session, request, ctx, server_id)
        found = addresses(row)
        if network_label not in found:
            raise errors.NotFound("Instance is not a member of specified network")
        return {network_label: [{"version": a["version"], "addr": a["addr"]} for a in found[network_label]]}
