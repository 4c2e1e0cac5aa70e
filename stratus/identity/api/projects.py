"""`/v3/projects` and project tags."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.identity.api.deps import (
    Body,
    StrictBody,
    allowed,
    caller,
    enforce,
    extra_fields,
    link,
    page_of,
    service,
    truthy,
    unique_violation,
)
from stratus.identity.api.domains import get_domain_or_404
from stratus.identity.models import Assignment, Project

router = APIRouter(tags=["projects"])
Tag = Field(min_length=1, max_length=255, pattern=r"^[^,/]*$")


class ProjectFields(Body):
    name: str | None = Field(None, min_length=1, max_length=64)
    domain_id: str | None = Field(None, max_length=64)
    parent_id: str | None = Field(None, max_length=64)
    description: str | None = None
    enabled: bool | None = None
    is_domain: bool | None = None
    tags: list[str] | None = Field(None, max_length=80)


class ProjectBody(Body):
    project: ProjectFields


class TagsBody(StrictBody):
    tags: list[str] = Field(max_length=80)


def project_view(request: Request, p: Project) -> dict[str, Any]:
    return {**p.extra, "id": p.id, "name": p.name, "domain_id": p.domain_id, "description": p.description,
            "enabled": p.enabled, "parent_id": p.parent_id or p.domain_id, "is_domain": False,
            "tags": list(p.tags), "options": {}, "links": link(request, f"/v3/projects/{p.id}")}


def _check_tags(tags: list[str]) -> list[str]:
    for tag in tags:
        if not tag or len(tag) > 255 or "," in tag or "/" in tag:
            raise errors.BadRequest(f"Invalid project tag: {tag!r}")
    return list(dict.fromkeys(tags))


def visible_project(request: Request, ctx: RequestContext, session: Any, project_id: str) -> Project:
    """The project if the caller may see it; 404 otherwise, so other projects' ids leak nothing."""
    project = session.get(Project, project_id)
    if project is None or not allowed(request, ctx, "identity:get_project", {"target.project.id": project_id}):
        raise errors.NotFound(f"Could not find project: {project_id}.")
    return project


@router.post("/v3/projects", status_code=201)
def create_project(request: Request, body: ProjectBody, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:create_project")
    f = body.project
    if not f.name:
        raise errors.BadRequest("project.name is required")
    if f.is_domain:
        raise errors.BadRequest("Projects acting as domains are not supported; create a domain instead.")
    with service(request).write() as session:
        domain_id = f.domain_id
        if f.parent_id:
            parent = session.get(Project, f.parent_id)
            if parent is None:
                raise errors.NotFound(f"Could not find project: {f.parent_id}.")
            if domain_id and domain_id != parent.domain_id:
                raise errors.BadRequest("A project must be in the same domain as its parent.")
            domain_id = parent.domain_id
        domain_id = domain_id or ctx.project_domain_id or ctx.domain_id or "default"
        get_domain_or_404(session, domain_id)
        if session.scalar(sa.select(Project.id).where(Project.domain_id == domain_id, Project.name == f.name)):
            raise unique_violation("Project", f.name)
        project = Project(name=f.name, domain_id=domain_id, parent_id=f.parent_id or None,
                          description=f.description or "",
                          enabled=True if f.enabled is None else f.enabled, tags=_check_tags(f.tags or []),
                          extra=extra_fields(f))
        session.add(project)
        session.flush()
        return {"project": project_view(request, project)}


@router.get("/v3/projects")
def list_projects(request: Request, name: str | None = None, domain_id: str | None = None,
                  enabled: str | None = None, parent_id: str | None = None, is_domain: str | None = None,
                  tags: str | None = None, tags_any: str | None = Query(None, alias="tags-any"),
                  not_tags: str | None = Query(None, alias="not-tags"),
                  not_tags_any: str | None = Query(None, alias="not-tags-any"),
                  limit: int | None = None, marker: str | None = None,
                  ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:list_projects")
    query = sa.select(Project).order_by(Project.name, Project.id)
    if name is not None:
        query = query.where(Project.name == name)
    if domain_id is not None:
        query = query.where(Project.domain_id == domain_id)
    if enabled is not None:
        query = query.where(Project.enabled.is_(truthy(enabled)))
    if parent_id is not None:
        query = query.where(Project.parent_id == parent_id)
    params = request.query_params
    with service(request).read() as session:
        rows = [] if truthy(is_domain) else list(session.scalars(query))
    for key, wanted in (("tags", all), ("tags-any", any)):
        if params.get(key):
            names = params[key].split(",")
            rows = [p for p in rows if wanted(t in p.tags for t in names)]
    for key, wanted in (("not-tags", all), ("not-tags-any", any)):
        if params.get(key):
            names = params[key].split(",")
            rows = [p for p in rows if not wanted(t in p.tags for t in names)]
    views = [project_view(request, p) for p in rows]
    return page_of(request, "projects", views, limit, marker)


@router.get("/v3/projects/{project_id}")
def show_project(request: Request, project_id: str, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    with service(request).read() as session:
        return {"project": project_view(request, visible_project(request, ctx, session, project_id))}


@router.patch("/v3/projects/{project_id}")
def update_project(request: Request, project_id: str, body: ProjectBody,
                   ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    f = body.project
    svc = service(request)
    with svc.write() as session:
        project = visible_project(request, ctx, session, project_id)
        enforce(request, ctx, "identity:update_project", {"target.project.id": project_id})
        if f.domain_id is not None and f.domain_id != project.domain_id:
            raise errors.BadRequest("A project cannot move to another domain.")
        if f.parent_id is not None and f.parent_id != (project.parent_id or project.domain_id):
            raise errors.BadRequest("A project's parent cannot be changed.")
        if f.name is not None and f.name != project.name:
            if session.scalar(sa.select(Project.id).where(Project.domain_id == project.domain_id,
                                                          Project.name == f.name)):
                raise unique_violation("Project", f.name)
            project.name = f.name
        if f.description is not None:
            project.description = f.description
        if f.tags is not None:
            project.tags = _check_tags(f.tags)
        project.extra = {**project.extra, **extra_fields(f)}
        if f.enabled is not None and f.enabled != project.enabled:
            project.enabled = f.enabled
            if not f.enabled:
                svc.revocations.revoke(session, project_id=project.id)
        return {"project": project_view(request, project)}


@router.delete("/v3/projects/{project_id}", status_code=204)
def delete_project(request: Request, project_id: str, ctx: RequestContext = Depends(caller)) -> Response:
    svc = service(request)
    with svc.write() as session:
        project = visible_project(request, ctx, session, project_id)
        enforce(request, ctx, "identity:delete_project", {"target.project.id": project_id})
        if session.scalar(sa.select(Project.id).where(Project.parent_id == project_id).limit(1)):
            raise errors.Forbidden("Cannot delete a project that has child projects.")
        session.execute(sa.delete(Assignment).where(Assignment.target_type == "project",
                                                    Assignment.target_id == project_id))
        svc.revocations.revoke(session, project_id=project_id)
        session.delete(project)
    return Response(status_code=204)


# -- tags ---------------------------------------------------------------------------------------
@router.get("/v3/projects/{project_id}/tags")
def list_tags(request: Request, project_id: str, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    with service(request).read() as session:
        return {"tags": list(visible_project(request, ctx, session, project_id).tags)}


@router.put("/v3/projects/{project_id}/tags")
def replace_tags(request: Request, project_id: str, body: TagsBody,
                 ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    with service(request).write() as session:
        project = visible_project(request, ctx, session, project_id)
        enforce(request, ctx, "identity:project_tags", {"target.project.id": project_id})
        project.tags = _check_tags(body.tags)
        return {"tags": list(project.tags)}


@router.delete("/v3/projects/{project_id}/tags", status_code=204)
def clear_tags(request: Request, project_id: str, ctx: RequestContext = Depends(caller)) -> Response:
    with service(request).write() as session:
        project = visible_project(request, ctx, session, project_id)
        enforce(request, ctx, "identity:project_tags", {"target.project.id": project_id})
        project.tags = []
    return Response(status_code=204)


@router.get("/v3/projects/{project_id}/tags/{tag}", status_code=204)
def check_tag(request: Request, project_id: str, tag: str, ctx: RequestContext = Depends(caller)) -> Response:
    with service(request).read() as session:
        if tag not in visible_project(request, ctx, session, project_id).tags:
            raise errors.NotFound(f"Tag {tag} not found on project {project_id}.")
    return Response(status_code=204)


@router.put("/v3/projects/{project_id}/tags/{tag}", status_code=201)
def add_tag(request: Request, project_id: str, tag: str, ctx: RequestContext = Depends(caller)) -> Response:
    with service(request).write() as session:
        project = visible_project(request, ctx, session, project_id)
        enforce(request, ctx, "identity:project_tags", {"target.project.id": project_id})
        project.tags = _check_tags([*project.tags, tag])
    return Response(status_code=201)


@router.delete("/v3/projects/{project_id}/tags/{tag}", status_code=204)
def delete_tag(request: Request, project_id: str, tag: str, ctx: RequestContext = Depends(caller)) -> Response:
    with service(request).write() as session:
        project = visible_project(request, ctx, session, project_id)
        enforce(request, ctx, "identity:project_tags", {"target.project.id": project_id})
        if tag not in project.tags:
            raise errors.NotFound(f"Tag {tag} not found on project {project_id}.")
        project.tags = [t for t in project.tags if t != tag]
    return Response(status_code=204)
