"""`/v3/users`: users, their passwords, their projects and groups."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.identity import passwords
from stratus.identity.api.deps import (
    Body,
    StrictBody,
    caller,
    collection_links,
    enforce,
    extra_fields,
    find_or_404,
    link,
    page_of,
    service,
    truthy,
    unique_violation,
)
from stratus.identity.api.domains import get_domain_or_404
from stratus.identity.api.projects import project_view
from stratus.identity.auth import iso
from stratus.identity.models import Assignment, Group, Membership, Project, User

router = APIRouter(tags=["users"])
Password = Field(None, max_length=4096)


class UserFields(Body):
    name: str | None = Field(None, min_length=1, max_length=255)
    domain_id: str | None = Field(None, max_length=64)
    password: str | None = Password
    enabled: bool | None = None
    default_project_id: str | None = Field(None, max_length=64)
    description: str | None = None
    email: str | None = None


class UserBody(Body):
    user: UserFields


class PasswordFields(StrictBody):
    original_password: str = Field(max_length=4096)
    password: str = Field(min_length=1, max_length=4096)


class PasswordBody(StrictBody):
    user: PasswordFields


def user_view(request: Request, u: User) -> dict[str, Any]:
    view = {**u.extra, "id": u.id, "name": u.name, "domain_id": u.domain_id, "enabled": u.enabled,
            "password_expires_at": iso(u.password_expires_at) if u.password_expires_at else None,
            "options": {}, "links": link(request, f"/v3/users/{u.id}")}
    if u.default_project_id:
        view["default_project_id"] = u.default_project_id
    return view


def get_user_or_404(session: Any, user_id: str) -> User:
    return find_or_404(session, User, user_id, "user")


def _hash(request: Request, secret: str) -> str:
    return passwords.hash_secret(secret, service(request).settings.bcrypt_rounds)


@router.post("/v3/users", status_code=201)
def create_user(request: Request, body: UserBody, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    f = body.user
    domain_id = f.domain_id or ctx.project_domain_id or ctx.domain_id or "default"
    enforce(request, ctx, "identity:create_user", {"target.user.domain_id": domain_id})
    if not f.name:
        raise errors.BadRequest("user.name is required")
    password_hash = _hash(request, f.password) if f.password else None  # bcrypt outside the transaction
    with service(request).write() as session:
        get_domain_or_404(session, domain_id)
        if session.scalar(sa.select(User.id).where(User.domain_id == domain_id, User.name == f.name)):
            raise unique_violation("User", f.name)
        if f.default_project_id and session.get(Project, f.default_project_id) is None:
            raise errors.NotFound(f"Could not find project: {f.default_project_id}.")
        extra = {**extra_fields(f), **{k: v for k, v in (("description", f.description), ("email", f.email))
                                       if v is not None}}
        user = User(name=f.name, domain_id=domain_id, enabled=True if f.enabled is None else f.enabled,
                    password_hash=password_hash, default_project_id=f.default_project_id, extra=extra)
        session.add(user)
        session.flush()
        return {"user": user_view(request, user)}


@router.get("/v3/users")
def list_users(request: Request, name: str | None = None, domain_id: str | None = None,
               enabled: str | None = None, limit: int | None = None, marker: str | None = None,
               ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:list_users")
    query = sa.select(User).order_by(User.name, User.id)
    if name is not None:
        query = query.where(User.name == name)
    if domain_id is not None:
        query = query.where(User.domain_id == domain_id)
    if enabled is not None:
        query = query.where(User.enabled.is_(truthy(enabled)))
    with service(request).read() as session:
        views = [user_view(request, u) for u in session.scalars(query)]
    return page_of(request, "users", views, limit, marker)


@router.get("/v3/users/{user_id}")
def show_user(request: Request, user_id: str, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:get_user", {"target.user.id": user_id})
    with service(request).read() as session:
        return {"user": user_view(request, get_user_or_404(session, user_id))}


@router.patch("/v3/users/{user_id}")
def update_user(request: Request, user_id: str, body: UserBody,
                ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:update_user", {"target.user.id": user_id})
    f = body.user
    password_hash = _hash(request, f.password) if f.password else None
    svc = service(request)
    with svc.write() as session:
        user = get_user_or_404(session, user_id)
        if f.domain_id is not None and f.domain_id != user.domain_id:
            raise errors.BadRequest("A user cannot move to another domain.")
        if f.name is not None and f.name != user.name:
            if session.scalar(sa.select(User.id).where(User.domain_id == user.domain_id, User.name == f.name)):
                raise unique_violation("User", f.name)
            user.name = f.name
        if "default_project_id" in f.model_fields_set:
            if f.default_project_id and session.get(Project, f.default_project_id) is None:
                raise errors.NotFound(f"Could not find project: {f.default_project_id}.")
            user.default_project_id = f.default_project_id
        extra = {**user.extra, **extra_fields(f)}
        for key in ("description", "email"):
            if getattr(f, key) is not None:
                extra[key] = getattr(f, key)
        user.extra = extra
        revoke = False
        if password_hash:
            user.password_hash, user.failed_auth_count, revoke = password_hash, 0, True
        if f.enabled is not None and f.enabled != user.enabled:
            user.enabled = f.enabled
            revoke = revoke or not f.enabled
        if revoke:
            svc.revocations.revoke(session, user_id=user.id)
        return {"user": user_view(request, user)}


@router.delete("/v3/users/{user_id}", status_code=204)
def delete_user(request: Request, user_id: str, ctx: RequestContext = Depends(caller)) -> Response:
    enforce(request, ctx, "identity:delete_user", {"target.user.id": user_id})
    svc = service(request)
    with svc.write() as session:
        user = get_user_or_404(session, user_id)
        session.execute(sa.delete(Assignment).where(Assignment.actor_type == "user",
                                                    Assignment.actor_id == user_id))
        svc.revocations.revoke(session, user_id=user_id)
        session.delete(user)
    return Response(status_code=204)


@router.post("/v3/users/{user_id}/password", status_code=204)
async def change_password(request: Request, user_id: str, body: PasswordBody,
                          ctx: RequestContext = Depends(caller)) -> Response:
    enforce(request, ctx, "identity:change_password", {"target.user.id": user_id})
    await run_in_threadpool(_change_password, request, user_id, body.user)
    return Response(status_code=204)


def _change_password(request: Request, user_id: str, f: PasswordFields) -> None:
    svc = service(request)
    with svc.read() as session:
        current = get_user_or_404(session, user_id).password_hash
    if not passwords.verify_secret(f.original_password, current, svc.settings.bcrypt_rounds):
        raise errors.Unauthorized("The request you have made requires authentication.")
    new_hash = _hash(request, f.password)
    with svc.write() as session:
        user = get_user_or_404(session, user_id)
        user.password_hash = new_hash
        user.password_expires_at = None
        svc.revocations.revoke(session, user_id=user_id)


@router.get("/v3/users/{user_id}/projects")
def list_user_projects(request: Request, user_id: str, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:list_user_projects", {"target.user.id": user_id})
    with service(request).read() as session:
        get_user_or_404(session, user_id)
        actors = [user_id, *session.scalars(sa.select(Membership.group_id).where(Membership.user_id == user_id))]
        ids = set(session.scalars(sa.select(Assignment.target_id).where(
            Assignment.actor_id.in_(actors), Assignment.target_type == "project")))
        domains = set(session.scalars(sa.select(Assignment.target_id).where(
            Assignment.actor_id.in_(actors), Assignment.target_type == "domain", Assignment.inherited.is_(True))))
        query = sa.select(Project).where(sa.or_(Project.id.in_(ids), Project.domain_id.in_(domains)))
        rows = session.scalars(query.order_by(Project.name)).all()
        return {"projects": [project_view(request, p) for p in rows], "links": collection_links(request)}


@router.get("/v3/users/{user_id}/groups")
def list_user_groups(request: Request, user_id: str, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    from stratus.identity.api.groups import group_view

    enforce(request, ctx, "identity:list_groups_for_user", {"target.user.id": user_id})
    with service(request).read() as session:
        get_user_or_404(session, user_id)
        rows = session.scalars(sa.select(Group).join(Membership, Membership.group_id == Group.id)
                               .where(Membership.user_id == user_id).order_by(Group.name)).all()
        return {"groups": [group_view(request, g) for g in rows], "links": collection_links(request)}
