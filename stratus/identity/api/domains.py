"""`/v3/domains`."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request, Response
from pydantic import Field

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.identity.api.deps import (
    Body,
    caller,
    collection_links,
    enforce,
    extra_fields,
    find_or_404,
    link,
    service,
    truthy,
    unique_violation,
)
from stratus.identity.models import Assignment, Domain, Group, Project, User

router = APIRouter(tags=["domains"])


class DomainFields(Body):
    name: str | None = Field(None, min_length=1, max_length=64)
    description: str | None = None
    enabled: bool | None = None
    tags: list[str] | None = None


class DomainCreate(Body):
    domain: DomainFields


def domain_view(request: Request, d: Domain) -> dict[str, Any]:
    return {**d.extra, "id": d.id, "name": d.name, "description": d.description, "enabled": d.enabled,
            "tags": d.extra.get("tags", []), "options": {}, "links": link(request, f"/v3/domains/{d.id}")}


def get_domain_or_404(session: Any, domain_id: str) -> Domain:
    return find_or_404(session, Domain, domain_id, "domain")


@router.post("/v3/domains", status_code=201)
def create_domain(request: Request, body: DomainCreate, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:create_domain")
    fields = body.domain
    if not fields.name:
        raise errors.BadRequest("domain.name is required")
    with service(request).write() as session:
        if session.scalar(sa.select(Domain.id).where(Domain.name == fields.name)):
            raise unique_violation("Domain", fields.name)
        extra = extra_fields(fields)
        extra["tags"] = fields.tags or []
        domain = Domain(name=fields.name, description=fields.description or "",
                        enabled=True if fields.enabled is None else fields.enabled, extra=extra)
        session.add(domain)
        session.flush()
        return {"domain": domain_view(request, domain)}


@router.get("/v3/domains")
def list_domains(request: Request, name: str | None = None, enabled: str | None = None,
                 ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:list_domains")
    query = sa.select(Domain).order_by(Domain.name)
    if name is not None:
        query = query.where(Domain.name == name)
    if enabled is not None:
        query = query.where(Domain.enabled.is_(truthy(enabled)))
    with service(request).read() as session:
        return {"domains": [domain_view(request, d) for d in session.scalars(query)],
                "links": collection_links(request)}


@router.get("/v3/domains/{domain_id}")
def show_domain(request: Request, domain_id: str, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:get_domain", {"target.domain.id": domain_id})
    with service(request).read() as session:
        return {"domain": domain_view(request, get_domain_or_404(session, domain_id))}


@router.patch("/v3/domains/{domain_id}")
def update_domain(request: Request, domain_id: str, body: DomainCreate,
                  ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:update_domain", {"target.domain.id": domain_id})
    fields = body.domain
    svc = service(request)
    with svc.write() as session:
        domain = get_domain_or_404(session, domain_id)
        if fields.name is not None and fields.name != domain.name:
            if session.scalar(sa.select(Domain.id).where(Domain.name == fields.name)):
                raise unique_violation("Domain", fields.name)
            domain.name = fields.name
        if fields.description is not None:
            domain.description = fields.description
        extra = {**domain.extra, **extra_fields(fields)}
        if fields.tags is not None:
            extra["tags"] = fields.tags
        domain.extra = extra
        if fields.enabled is not None and fields.enabled != domain.enabled:
            domain.enabled = fields.enabled
            if not fields.enabled:
                _revoke_domain(svc, session, domain_id)
        return {"domain": domain_view(request, domain)}


def _revoke_domain(svc: Any, session: Any, domain_id: str) -> None:
    """Tokens scoped to the domain, to its projects, or held by its users stop working."""
    svc.revocations.revoke(session, domain_id=domain_id)
    for project_id in session.scalars(sa.select(Project.id).where(Project.domain_id == domain_id)):
        svc.revocations.revoke(session, project_id=project_id)
    for user_id in session.scalars(sa.select(User.id).where(User.domain_id == domain_id)):
        svc.revocations.revoke(session, user_id=user_id)


@router.delete("/v3/domains/{domain_id}", status_code=204)
def delete_domain(request: Request, domain_id: str, ctx: RequestContext = Depends(caller)) -> Response:
    enforce(request, ctx, "identity:delete_domain", {"target.domain.id": domain_id})
    svc = service(request)
    with svc.write() as session:
        domain = get_domain_or_404(session, domain_id)
        if domain.enabled:
            raise errors.Forbidden("Cannot delete a domain that is enabled, please disable it first.")
        _revoke_domain(svc, session, domain_id)
        project_ids = list(session.scalars(sa.select(Project.id).where(Project.domain_id == domain_id)))
        user_ids = list(session.scalars(sa.select(User.id).where(User.domain_id == domain_id)))
        group_ids = list(session.scalars(sa.select(Group.id).where(Group.domain_id == domain_id)))
        session.execute(sa.delete(Assignment).where(sa.or_(
            sa.and_(Assignment.target_type == "domain", Assignment.target_id == domain_id),
            sa.and_(Assignment.target_type == "project", Assignment.target_id.in_(project_ids)),
            Assignment.actor_id.in_(user_ids + group_ids))))
        # Children before parents: the project tree references itself.
        session.execute(sa.update(Project).where(Project.domain_id == domain_id).values(parent_id=None))
        for model in (Project, User, Group):
            session.execute(sa.delete(model).where(model.domain_id == domain_id))
        session.delete(domain)
    return Response(status_code=204)
