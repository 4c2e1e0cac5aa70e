"""`/v3/regions`, `/v3/services` and `/v3/endpoints`: what the token catalog is built from.

Every write goes through `service(request).write()`, which bumps the generation the token
catalog cache is keyed on, so a change shows in the next token and `GET /v3/auth/catalog`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.identity.api.deps import (
    Body,
    caller,
    enforce,
    extra_fields,
    find_or_404,
    link,
    page_of,
    service,
)
from stratus.identity.bootstrap import INTERFACES
from stratus.identity.models import Endpoint, Region, Service, new_id

router = APIRouter(tags=["catalog"])
RegionId = Field(None, min_length=1, max_length=255)


def _keep_id(fields: BaseModel, path_id: str) -> None:
    """An update body may repeat the resource's id, never change it."""
    body_id = getattr(fields, "id", None)
    if body_id is not None and body_id != path_id:
        raise errors.BadRequest(f"Cannot change the ID of {path_id}.")


# -- regions ------------------------------------------------------------------------------------
class RegionFields(Body):
    id: str | None = RegionId
    description: str | None = None
    parent_region_id: str | None = Field(None, max_length=255)


class RegionBody(Body):
    region: RegionFields


def region_view(request: Request, r: Region) -> dict[str, Any]:
    return {**r.extra, "id": r.id, "description": r.description, "parent_region_id": r.parent_region_id,
            "links": link(request, f"/v3/regions/{r.id}")}


def get_region_or_404(session: Session, region_id: str) -> Region:
    return find_or_404(session, Region, region_id, "region")


def _subtree(session: Session, region_id: str) -> list[str]:
    """The region and all regions below it, parents before children."""
    ids, frontier = [region_id], [region_id]
    while frontier:
        frontier = [c for c in session.scalars(sa.select(Region.id).where(Region.parent_region_id.in_(frontier)))
                    if c not in ids]
        ids += frontier
    return ids


def _create_region(request: Request, session: Session, region_id: str, f: RegionFields) -> dict[str, Any]:
    if session.get(Region, region_id) is not None:
        raise errors.Conflict(f"Conflict occurred attempting to store region - Duplicate ID, {region_id}.")
    if f.parent_region_id is not None:
        get_region_or_404(session, f.parent_region_id)
    region = Region(id=region_id, description=f.description or "", parent_region_id=f.parent_region_id,
                    extra=extra_fields(f))
    session.add(region)
    session.flush()
    return {"region": region_view(request, region)}


@router.post("/v3/regions", status_code=201)
def create_region(request: Request, body: RegionBody, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:create_region")
    with service(request).write() as session:
        return _create_region(request, session, body.region.id or new_id(), body.region)


@router.put("/v3/regions/{region_id}", status_code=201)
def create_region_with_id(request: Request, region_id: str, body: RegionBody,
                          ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:create_region")
    if len(region_id) > 255:
        raise errors.BadRequest("A region id is at most 255 characters.")
    if body.region.id is not None and body.region.id != region_id:
        raise errors.BadRequest(f"Conflicting region IDs specified: {region_id!r} and {body.region.id!r}.")
    with service(request).write() as session:
        return _create_region(request, session, region_id, body.region)


@router.get("/v3/regions")
def list_regions(request: Request, parent_region_id: str | None = None, limit: int | None = None,
                 marker: str | None = None, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:list_regions")
    query = sa.select(Region).order_by(Region.id)
    if parent_region_id is not None:
        query = query.where(Region.parent_region_id == parent_region_id)
    with service(request).read() as session:
        views = [region_view(request, r) for r in session.scalars(query)]
    return page_of(request, "regions", views, limit, marker)


@router.get("/v3/regions/{region_id}")
def show_region(request: Request, region_id: str, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:get_region")
    with service(request).read() as session:
        return {"region": region_view(request, get_region_or_404(session, region_id))}


@router.patch("/v3/regions/{region_id}")
def update_region(request: Request, region_id: str, body: RegionBody,
                  ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:update_region")
    f = body.region
    _keep_id(f, region_id)
    with service(request).write() as session:
        region = get_region_or_404(session, region_id)
        if "parent_region_id" in f.model_fields_set and f.parent_region_id != region.parent_region_id:
            if f.parent_region_id is not None:
                get_region_or_404(session, f.parent_region_id)
                if f.parent_region_id in _subtree(session, region_id):
                    raise errors.BadRequest(f"Region {f.parent_region_id} cannot be the parent of {region_id}: "
                                            "that would make a circular hierarchy.")
            region.parent_region_id = f.parent_region_id
        if "description" in f.model_fields_set:
            region.description = f.description or ""
        region.extra = {**region.extra, **extra_fields(f)}
        return {"region": region_view(request, region)}


@router.delete("/v3/regions/{region_id}", status_code=204)
def delete_region(request: Request, region_id: str, ctx: RequestContext = Depends(caller)) -> Response:
    """Deletes the region with the regions below it, as Keystone does; refused while any has endpoints."""
    enforce(request, ctx, "identity:delete_region")
    with service(request).write() as session:
        get_region_or_404(session, region_id)
        ids = _subtree(session, region_id)
        if session.scalar(sa.select(Endpoint.id).where(Endpoint.region_id.in_(ids)).limit(1)):
            raise errors.Forbidden(f"Unable to delete region {region_id} because it or its child regions "
                                   "have associated endpoints.")
        # Detach first: the regions reference each other and every engine checks that at once.
        session.execute(sa.update(Region).where(Region.id.in_(ids)).values(parent_region_id=None))
        session.execute(sa.delete(Region).where(Region.id.in_(ids)))
    return Response(status_code=204)


# -- services -----------------------------------------------------------------------------------
class ServiceFields(Body):
    id: str | None = None
    type: str | None = Field(None, min_length=1, max_length=255)
    name: str | None = Field(None, max_length=255)
    description: str | None = None
    enabled: bool | None = None


class ServiceBody(Body):
    service: ServiceFields


def service_view(request: Request, s: Service) -> dict[str, Any]:
    return {**s.extra, "id": s.id, "type": s.type, "name": s.name, "description": s.description,
            "enabled": s.enabled, "links": link(request, f"/v3/services/{s.id}")}


def get_service_or_404(session: Session, service_id: str) -> Service:
    return find_or_404(session, Service, service_id, "service")


@router.post("/v3/services", status_code=201)
def create_service(request: Request, body: ServiceBody, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:create_service")
    f = body.service
    if not f.type:
        raise errors.BadRequest("service.type is required")
    with service(request).write() as session:
        # The id is always ours, as in Keystone: a client-sent one is ignored.
        created = Service(id=new_id(), type=f.type, name=f.name or "", description=f.description or "",
                          enabled=True if f.enabled is None else f.enabled, extra=extra_fields(f))
        session.add(created)
        session.flush()
        return {"service": service_view(request, created)}


@router.get("/v3/services")
def list_services(request: Request, type: str | None = None, name: str | None = None, limit: int | None = None,
                  marker: str | None = None, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:list_services")
    query = sa.select(Service).order_by(Service.type, Service.name, Service.id)
    if type is not None:
        query = query.where(Service.type == type)
    if name is not None:
        query = query.where(Service.name == name)
    with service(request).read() as session:
        views = [service_view(request, s) for s in session.scalars(query)]
    return page_of(request, "services", views, limit, marker)


@router.get("/v3/services/{service_id}")
def show_service(request: Request, service_id: str, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:get_service")
    with service(request).read() as session:
        return {"service": service_view(request, get_service_or_404(session, service_id))}


@router.patch("/v3/services/{service_id}")
def update_service(request: Request, service_id: str, body: ServiceBody,
                   ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:update_service")
    f = body.service
    _keep_id(f, service_id)
    if "type" in f.model_fields_set and not f.type:
        raise errors.BadRequest("service.type cannot be empty")
    with service(request).write() as session:
        found = get_service_or_404(session, service_id)
        if f.type:
            found.type = f.type
        if "name" in f.model_fields_set:
            found.name = f.name or ""
        if "description" in f.model_fields_set:
            found.description = f.description or ""
        if f.enabled is not None:
            found.enabled = f.enabled
        found.extra = {**found.extra, **extra_fields(f)}
        return {"service": service_view(request, found)}


@router.delete("/v3/services/{service_id}", status_code=204)
def delete_service(request: Request, service_id: str, ctx: RequestContext = Depends(caller)) -> Response:
    enforce(request, ctx, "identity:delete_service")
    with service(request).write() as session:
        found = get_service_or_404(session, service_id)
        session.execute(sa.delete(Endpoint).where(Endpoint.service_id == service_id))
        session.delete(found)
    return Response(status_code=204)


# -- endpoints ----------------------------------------------------------------------------------
class EndpointFields(Body):
    id: str | None = None
    interface: str | None = None
    url: str | None = Field(None, max_length=2048)
    service_id: str | None = Field(None, max_length=64)
    region_id: str | None = Field(None, max_length=255)
    # Identity v3.0 named the region `region`; the openstack CLI still sends that.
    region: str | None = RegionId
    enabled: bool | None = None


class EndpointBody(Body):
    endpoint: EndpointFields


def endpoint_view(request: Request, e: Endpoint) -> dict[str, Any]:
    return {**e.extra, "id": e.id, "interface": e.interface, "region": e.region_id, "region_id": e.region_id,
            "service_id": e.service_id, "url": e.url, "enabled": e.enabled,
            "links": link(request, f"/v3/endpoints/{e.id}")}


def get_endpoint_or_404(session: Session, endpoint_id: str) -> Endpoint:
    return find_or_404(session, Endpoint, endpoint_id, "endpoint")


def _check_interface(interface: str | None) -> str:
    if interface is None or interface not in INTERFACES:
        raise errors.BadRequest(f"Invalid input for field 'interface': {interface!r} is not one of "
                                f"{', '.join(INTERFACES)}.")
    return interface


def _is_http_url(url: str) -> bool:
    """An absolute http(s) URL; templates such as `$(project_id)s` in the path are fine."""
    if not url or any(c.isspace() or not c.isprintable() for c in url):
        return False
    try:
        parts = urlsplit(url)
        return parts.scheme.lower() in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a malformed IPv6 host, or a port that is not a number in range
        return False


def _check_url(url: str | None) -> str:
    if url is None or not _is_http_url(url):
        raise errors.BadRequest(f"Invalid input for field 'url': {url!r} is not an http or https URL.")
    return url


def _check_service(session: Session, service_id: str | None) -> str:
    # Keystone answers 400 here, not 404: the missing thing is in the body, not the URL.
    if not service_id or session.get(Service, service_id) is None:
        raise errors.BadRequest(f"Invalid input for field 'service_id': could not find service {service_id!r}.")
    return service_id


def _endpoint_region(session: Session, f: EndpointFields) -> str | None:
    """The region named by `region_id` (which must exist) or by the legacy `region`, which Keystone
    creates when missing so that clients speaking Identity v3.0 keep working."""
    if f.region_id is not None:
        if session.get(Region, f.region_id) is None:
            raise errors.BadRequest(f"Invalid input for field 'region_id': could not find region {f.region_id!r}.")
        return f.region_id
    if f.region is not None and session.get(Region, f.region) is None:
        session.add(Region(id=f.region, description="", extra={}))
        session.flush()
    return f.region


@router.post("/v3/endpoints", status_code=201)
def create_endpoint(request: Request, body: EndpointBody, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:create_endpoint")
    f = body.endpoint
    interface, url = _check_interface(f.interface), _check_url(f.url)
    with service(request).write() as session:
        endpoint = Endpoint(id=new_id(), service_id=_check_service(session, f.service_id), interface=interface,
                            url=url, region_id=_endpoint_region(session, f),
                            enabled=True if f.enabled is None else f.enabled, extra=extra_fields(f))
        session.add(endpoint)
        session.flush()
        return {"endpoint": endpoint_view(request, endpoint)}


@router.get("/v3/endpoints")
def list_endpoints(request: Request, interface: str | None = None, service_id: str | None = None,
                   region_id: str | None = None, limit: int | None = None, marker: str | None = None,
                   ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:list_endpoints")
    query = sa.select(Endpoint).order_by(Endpoint.service_id, Endpoint.interface, Endpoint.id)
    for column, value in ((Endpoint.interface, interface), (Endpoint.service_id, service_id),
                          (Endpoint.region_id, region_id)):
        if value is not None:
            query = query.where(column == value)
    with service(request).read() as session:
        views = [endpoint_view(request, e) for e in session.scalars(query)]
    return page_of(request, "endpoints", views, limit, marker)


@router.get("/v3/endpoints/{endpoint_id}")
def show_endpoint(request: Request, endpoint_id: str, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:get_endpoint")
    with service(request).read() as session:
        return {"endpoint": endpoint_view(request, get_endpoint_or_404(session, endpoint_id))}


@router.patch("/v3/endpoints/{endpoint_id}")
def update_endpoint(request: Request, endpoint_id: str, body: EndpointBody,
                    ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:update_endpoint")
    f = body.endpoint
    _keep_id(f, endpoint_id)
    given = f.model_fields_set
    with service(request).write() as session:
        endpoint = get_endpoint_or_404(session, endpoint_id)
        if "interface" in given:
            endpoint.interface = _check_interface(f.interface)
        if "url" in given:
            endpoint.url = _check_url(f.url)
        if "service_id" in given:
            endpoint.service_id = _check_service(session, f.service_id)
        if given & {"region_id", "region"}:
            endpoint.region_id = _endpoint_region(session, f)
        if f.enabled is not None:
            endpoint.enabled = f.enabled
        endpoint.extra = {**endpoint.extra, **extra_fields(f)}
        return {"endpoint": endpoint_view(request, endpoint)}


@router.delete("/v3/endpoints/{endpoint_id}", status_code=204)
def delete_endpoint(request: Request, endpoint_id: str, ctx: RequestContext = Depends(caller)) -> Response:
    enforce(request, ctx, "identity:delete_endpoint")
    with service(request).write() as session:
        session.delete(get_endpoint_or_404(session, endpoint_id))
    return Response(status_code=204)
