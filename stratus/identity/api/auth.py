"""`/v3/auth/*`: issue, validate, check and revoke tokens; what a token may scope to."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Body, Depends, Header, Request, Response
from starlette.concurrency import run_in_threadpool

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.identity import assignments
from stratus.identity.api.deps import authenticator, caller, collection_links, enforce, link, service
from stratus.identity.catalog import for_project
from stratus.identity.models import Assignment, Domain, Project

router = APIRouter(tags=["auth"])
JSON = "application/json"


@router.post("/v3/auth/tokens", status_code=201)
def issue_token(request: Request, body: dict[str, Any] = Body(...), nocatalog: str | None = None) -> Response:
    token, rendered = authenticator(request).issue(body)
    if nocatalog is not None:
        document = json.loads(rendered)
        document["token"].pop("catalog", None)
        rendered = json.dumps(document).encode()
    return Response(rendered, status_code=201, media_type=JSON, headers={"X-Subject-Token": token})


async def _subject(request: Request, ctx: RequestContext, subject: str | None) -> Any:
    if not subject:
        raise errors.NotFound("X-Subject-Token is required.")
    entry = await authenticator(request).resolve(subject)
    enforce(request, ctx, "identity:validate_token", {"target.token.user_id": entry.payload.user_id})
    return entry


@router.get("/v3/auth/tokens")
async def validate_token(request: Request, ctx: RequestContext = Depends(caller),
                         x_subject_token: str | None = Header(None), nocatalog: str | None = None) -> Response:
    entry = await _subject(request, ctx, x_subject_token)
    return Response(entry.bodies[nocatalog is None], media_type=JSON,
                    headers={"X-Subject-Token": x_subject_token or ""})


@router.head("/v3/auth/tokens", status_code=200)
async def check_token(request: Request, ctx: RequestContext = Depends(caller),
                      x_subject_token: str | None = Header(None)) -> Response:
    await _subject(request, ctx, x_subject_token)
    return Response(status_code=200)


@router.delete("/v3/auth/tokens", status_code=204)
async def revoke_token(request: Request, ctx: RequestContext = Depends(caller),
                       x_subject_token: str | None = Header(None)) -> Response:
    entry = await _subject(request, ctx, x_subject_token)
    enforce(request, ctx, "identity:revoke_token", {"target.token.user_id": entry.payload.user_id})
    await run_in_threadpool(authenticator(request).revoke_token, entry.payload)
    return Response(status_code=204)


@router.get("/v3/auth/catalog")
def auth_catalog(request: Request, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    if not ctx.project_id and not ctx.domain_id and not ctx.system_scope:
        raise errors.Forbidden("The service catalog is only available to scoped tokens.")
    svc = service(request)
    generation = svc.generation  # before the snapshot; see Authenticator._render
    with svc.read() as session:
        catalog = for_project(authenticator(request).catalog.get(session, generation), ctx.project_id)
    return {"catalog": catalog, "links": collection_links(request)}


def scoped_target_ids(request: Request, ctx: RequestContext, target_type: str) -> list[str]:
    """Ids of the projects or domains the caller holds any role on (directly, by group, inherited)."""
    with service(request).read() as session:
        actors = [ctx.user_id, *assignments.group_ids(session, ctx.user_id)]
        grants = session.execute(sa.select(Assignment.target_type, Assignment.target_id, Assignment.inherited)
                                 .where(Assignment.actor_id.in_(actors))).all()
        ids = {tid for ttype, tid, inherited in grants if ttype == target_type and not inherited}
        if target_type == "project":
            inherited_domains = {tid for ttype, tid, inh in grants if ttype == "domain" and inh}
            if inherited_domains:
                ids |= set(session.scalars(sa.select(Project.id).where(Project.domain_id.in_(inherited_domains))))
        return sorted(ids)


@router.get("/v3/auth/projects")
def auth_projects(request: Request, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    from stratus.identity.api.projects import project_view

    ids = scoped_target_ids(request, ctx, "project")
    with service(request).read() as session:
        rows = session.scalars(sa.select(Project).where(Project.id.in_(ids), Project.enabled.is_(True))
                               .order_by(Project.name)).all() if ids else []
        return {"projects": [project_view(request, p) for p in rows], "links": collection_links(request)}


@router.get("/v3/auth/domains")
def auth_domains(request: Request, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    from stratus.identity.api.domains import domain_view

    ids = scoped_target_ids(request, ctx, "domain")
    with service(request).read() as session:
        rows = session.scalars(sa.select(Domain).where(Domain.id.in_(ids), Domain.enabled.is_(True))
                               .order_by(Domain.name)).all() if ids else []
        return {"domains": [domain_view(request, d) for d in rows], "links": collection_links(request)}


@router.get("/v3/auth/system")
def auth_system(request: Request, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    with service(request).read() as session:
        actors = [ctx.user_id, *assignments.group_ids(session, ctx.user_id)]
        has = session.scalar(sa.select(sa.func.count()).select_from(Assignment).where(
            Assignment.actor_id.in_(actors), Assignment.target_type == "system"))
    return {"system": [{"all": True}] if has else [], "links": link(request, "/v3/auth/system")}
