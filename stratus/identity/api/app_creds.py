"""`/v3/users/{user_id}/application_credentials`: secrets an application uses instead of its
user's password, bound to one project and at most the roles the user delegated."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request, Response
from pydantic import Field

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.core.db import utcnow
from stratus.identity import assignments, passwords
from stratus.identity.api.deps import (
    Body,
    StrictBody,
    caller,
    enforce,
    link,
    page_of,
    service,
    unique_violation,
)
from stratus.identity.api.users import get_user_or_404
from stratus.identity.auth import iso
from stratus.identity.models import NO_DOMAIN, ApplicationCredential, Project, Role

router = APIRouter(tags=["app_creds"])
RULE = "identity:application_credentials"
RESTRICTED = "Using a restricted application credential to create or delete application credentials is not allowed."


class RoleRef(StrictBody):
    id: str | None = Field(None, max_length=64)
    name: str | None = Field(None, max_length=255)
    domain_id: str | None = Field(None, max_length=64)


class AppCredFields(Body):
    name: str = Field(min_length=1, max_length=255)
    secret: str | None = Field(None, min_length=1, max_length=4096)
    description: str | None = Field(None, max_length=16383)  # fits a TEXT column in utf8mb4
    expires_at: str | None = Field(None, max_length=64)
    roles: list[RoleRef] | None = Field(None, max_length=100)
    unrestricted: bool | None = None
    access_rules: list[Any] | None = None


class AppCredBody(Body):
    application_credential: AppCredFields


def role_names(session: Any, creds: list[ApplicationCredential]) -> dict[str, str]:
    """Names of the roles the credentials delegate, in one query."""
    wanted = {role_id for cred in creds for role_id in cred.role_ids}
    return {ref["id"]: ref["name"] for ref in assignments.role_refs(session, wanted)}


def app_cred_view(request: Request, cred: ApplicationCredential, names: dict[str, str]) -> dict[str, Any]:
    # A role deleted since the credential was made is no longer delegated; it is left out.
    kept = sorted((rid for rid in cred.role_ids if rid in names), key=names.__getitem__)
    roles = [{"id": rid, "name": names[rid], "domain_id": None} for rid in kept]
    return {"id": cred.id, "name": cred.name, "description": cred.description or None, "user_id": cred.user_id,
            "project_id": cred.project_id, "roles": roles, "unrestricted": cred.unrestricted,
            "expires_at": iso(cred.expires_at) if cred.expires_at else None, "access_rules": [],
            "links": link(request, f"/v3/users/{cred.user_id}/application_credentials/{cred.id}")}


def _expiry(value: str | None) -> dt.datetime | None:
    """Naive UTC from ISO 8601 (a value without an offset is UTC); it must lie in the future."""
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise errors.BadRequest(f"Invalid expires_at {value!r}: expected ISO 8601.") from None
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    if when <= utcnow():
        raise errors.BadRequest("expires_at must be in the future.")
    return when


def _refuse_if_restricted(session: Any, ctx: RequestContext) -> None:
    """A restricted application credential must not be able to mint or remove its siblings."""
    if ctx.app_cred_id:
        current = session.get(ApplicationCredential, ctx.app_cred_id)
        if current is None or not current.unrestricted:
            raise errors.Forbidden(RESTRICTED)


def _token_role_ids(session: Any, ctx: RequestContext, project: Project) -> dict[str, str]:
    """The roles the caller's token carries on its project, as {id: name}: what it may delegate."""
    held = assignments.effective_role_ids(session, ctx.user_id, project=project)
    return {ref["id"]: ref["name"] for ref in assignments.role_refs(session, held) if ref["name"] in ctx.roles}


def _find_role(session: Any, ref: RoleRef) -> Role:
    if ref.id:
        role = session.get(Role, ref.id)
    elif ref.name:
        role = session.scalar(sa.select(Role).where(Role.name == ref.name,
                                                    Role.domain_id == (ref.domain_id or NO_DOMAIN)))
    else:
        raise errors.BadRequest("A role needs an id or a name.")
    if role is None:
        raise errors.NotFound(f"Could not find role: {ref.id or ref.name}.")
    return role


def _delegated_roles(session: Any, ctx: RequestContext, project: Project, refs: list[RoleRef] | None) -> list[str]:
    token_roles = _token_role_ids(session, ctx, project)
    if not refs:
        return sorted(token_roles)
    chosen: list[str] = []
    for ref in refs:
        role = _find_role(session, ref)
        if role.id not in token_roles:
            raise errors.Forbidden(f"User {ctx.user_id} does not hold role {role.name} on project {project.id}; "
                                   "an application credential can only delegate roles its creator holds.")
        chosen.append(role.id)
    return list(dict.fromkeys(chosen))


def _get_or_404(session: Any, user_id: str, cred_id: str) -> ApplicationCredential:
    cred = session.get(ApplicationCredential, cred_id)
    if cred is None or cred.user_id != user_id:
        raise errors.NotFound(f"Could not find Application Credential: {cred_id}.")
    return cred


@router.post("/v3/users/{user_id}/application_credentials", status_code=201)
def create_app_cred(request: Request, user_id: str, body: AppCredBody,
                    ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, RULE, {"target.user.id": user_id})
    if user_id != ctx.user_id:
        raise errors.Forbidden("Cannot create an application credential for another user.")
    if not ctx.project_id:
        raise errors.BadRequest("Application credentials are created with a project-scoped token.")
    f = body.application_credential
    if f.access_rules:
        raise errors.BadRequest("Access rules are not supported.")
    expires_at = _expiry(f.expires_at)
    secret = f.secret or secrets.token_urlsafe(64)
    secret_hash = passwords.hash_secret(secret, service(request).settings.bcrypt_rounds)  # outside the transaction
    with service(request).write() as session:
        _refuse_if_restricted(session, ctx)
        get_user_or_404(session, user_id)
        project = session.get(Project, ctx.project_id)
        if project is None:
            raise errors.NotFound(f"Could not find project: {ctx.project_id}.")
        if session.scalar(sa.select(ApplicationCredential.id).where(ApplicationCredential.user_id == user_id,
                                                                    ApplicationCredential.name == f.name)):
            raise unique_violation("application_credential", f.name)
        cred = ApplicationCredential(name=f.name, user_id=user_id, project_id=project.id, secret_hash=secret_hash,
                                     description=f.description or "", expires_at=expires_at,
                                     unrestricted=bool(f.unrestricted),
                                     role_ids=_delegated_roles(session, ctx, project, f.roles))
        session.add(cred)
        session.flush()
        view = app_cred_view(request, cred, role_names(session, [cred]))
        return {"application_credential": {**view, "secret": secret}}


@router.get("/v3/users/{user_id}/application_credentials")
def list_app_creds(request: Request, user_id: str, name: str | None = None, limit: int | None = None,
                   marker: str | None = None, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, RULE, {"target.user.id": user_id})
    query = sa.select(ApplicationCredential).where(ApplicationCredential.user_id == user_id)
    if name is not None:
        query = query.where(ApplicationCredential.name == name)
    with service(request).read() as session:
        get_user_or_404(session, user_id)
        rows = list(session.scalars(query.order_by(ApplicationCredential.name)))
        names = role_names(session, rows)
        views = [app_cred_view(request, c, names) for c in rows]
    return page_of(request, "application_credentials", views, limit, marker)


@router.get("/v3/users/{user_id}/application_credentials/{cred_id}")
def show_app_cred(request: Request, user_id: str, cred_id: str,
                  ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, RULE, {"target.user.id": user_id})
    with service(request).read() as session:
        cred = _get_or_404(session, user_id, cred_id)
        return {"application_credential": app_cred_view(request, cred, role_names(session, [cred]))}


@router.delete("/v3/users/{user_id}/application_credentials/{cred_id}", status_code=204)
def delete_app_cred(request: Request, user_id: str, cred_id: str, ctx: RequestContext = Depends(caller)) -> Response:
    enforce(request, ctx, RULE, {"target.user.id": user_id})
    svc = service(request)
    with svc.write() as session:
        _refuse_if_restricted(session, ctx)
        session.delete(_get_or_404(session, user_id, cred_id))
        svc.revocations.revoke(session, app_cred_id=cred_id)
    return Response(status_code=204)
