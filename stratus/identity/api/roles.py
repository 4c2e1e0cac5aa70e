"""`/v3/roles`, and the implied-role (inference) rules between roles."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request, Response
from pydantic import Field
from sqlalchemy.orm import Session

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.identity import assignments
from stratus.identity.api.deps import (
    StrictBody,
    caller,
    enforce,
    find_or_404,
    link,
    page_of,
    service,
    unique_violation,
)
from stratus.identity.api.domains import get_domain_or_404
from stratus.identity.api.groups import member_ids
from stratus.identity.models import NO_DOMAIN, Assignment, ImpliedRole, Role
from stratus.identity.service import IdentityService

router = APIRouter(tags=["roles"])
# No rule may imply these: granting `member` must never quietly make someone an administrator.
PROHIBITED_IMPLIED = frozenset({"admin"})


class RoleFields(StrictBody):
    # The role table has no column for extra attributes or options, so unknown keys are refused.
    name: str | None = Field(None, min_length=1, max_length=255)
    domain_id: str | None = Field(None, max_length=64)
    description: str | None = None
    options: dict[str, bool | None] | None = None


class RoleBody(StrictBody):
    role: RoleFields


def role_view(request: Request, role: Role) -> dict[str, Any]:
    return {"id": role.id, "name": role.name, "domain_id": None if role.domain_id == NO_DOMAIN else role.domain_id,
            "description": role.description, "options": {}, "links": link(request, f"/v3/roles/{role.id}")}


def get_role_or_404(session: Session, role_id: str) -> Role:
    return find_or_404(session, Role, role_id, "role")


def _check_options(options: dict[str, bool | None] | None) -> None:
    # Clients send {"immutable": false} by default; a set option could not be kept, so say so.
    if options and any(options.values()):
        raise errors.BadRequest("Role options (such as immutable) are not supported.")


def _name_taken(session: Session, domain_id: str, name: str, other_than: str = "") -> bool:
    # `other_than`: a rename that only changes case must not collide with itself where names
    # compare without case (MariaDB).
    query = sa.select(Role.id).where(Role.domain_id == domain_id, Role.name == name, Role.id != other_than)
    return session.scalar(query) is not None


def _rules(session: Session) -> list[tuple[str, str]]:
    """Every (prior, implied) pair."""
    return [(p, i) for p, i in session.execute(sa.select(ImpliedRole.prior_role_id, ImpliedRole.implied_role_id))]


def _priors_of(session: Session, role_id: str) -> set[str]:
    """The role and every role that implies it, directly or through others."""
    implied_by: dict[str, list[str]] = {}
    for prior, implied in _rules(session):
        implied_by.setdefault(implied, []).append(prior)
    found, todo = {role_id}, [role_id]
    while todo:
        for prior in implied_by.get(todo.pop(), ()):
            if prior not in found:
                found.add(prior)
                todo.append(prior)
    return found


def revoke_holders(svc: IdentityService, session: Session, role_id: str) -> None:
    """Revoke the tokens of everyone whose tokens carry `role_id`: those granted it or a role that
    implies it, directly or through a group."""
    roles = _priors_of(session, role_id)
    rows = session.execute(sa.select(Assignment.actor_type, Assignment.actor_id)
                           .where(Assignment.role_id.in_(roles)).distinct()).all()
    users = {actor_id for kind, actor_id in rows if kind == "user"}
    users.update(member_ids(session, [actor_id for kind, actor_id in rows if kind == "group"]))
    for user_id in sorted(users):
        svc.revocations.revoke(session, user_id=user_id)


@router.post("/v3/roles", status_code=201)
def create_role(request: Request, body: RoleBody, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:create_role")
    f = body.role
    if not f.name:
        raise errors.BadRequest("role.name is required")
    _check_options(f.options)
    with service(request).write() as session:
        if f.domain_id is not None:
            get_domain_or_404(session, f.domain_id)
        domain_id = f.domain_id or NO_DOMAIN
        if _name_taken(session, domain_id, f.name):
            raise unique_violation("role", f.name)
        role = Role(name=f.name, domain_id=domain_id, description=f.description or "")
        session.add(role)
        session.flush()
        return {"role": role_view(request, role)}


@router.get("/v3/roles")
def list_roles(request: Request, name: str | None = None, domain_id: str | None = None,
               limit: int | None = None, marker: str | None = None,
               ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:list_roles")
    # Without a domain_id filter only global roles are listed, as Keystone does; the internal
    # marker for "no domain" is not a domain anyone can ask for.
    query = sa.select(Role).where(Role.domain_id == (domain_id or NO_DOMAIN)).order_by(Role.name, Role.id)
    if name is not None:
        query = query.where(Role.name == name)
    with service(request).read() as session:
        views = [] if domain_id == NO_DOMAIN else [role_view(request, r) for r in session.scalars(query)]
    return page_of(request, "roles", views, limit, marker)


@router.get("/v3/roles/{role_id}")
def show_role(request: Request, role_id: str, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:get_role", {"target.role.id": role_id})
    with service(request).read() as session:
        return {"role": role_view(request, get_role_or_404(session, role_id))}


@router.patch("/v3/roles/{role_id}")
def update_role(request: Request, role_id: str, body: RoleBody,
                ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:update_role", {"target.role.id": role_id})
    f = body.role
    _check_options(f.options)
    with service(request).write() as session:
        role = get_role_or_404(session, role_id)
        current_domain = None if role.domain_id == NO_DOMAIN else role.domain_id
        if "domain_id" in f.model_fields_set and f.domain_id != current_domain:
            raise errors.BadRequest("A role cannot move to another domain.")
        if f.name is not None and f.name != role.name:
            if _name_taken(session, role.domain_id, f.name, other_than=role.id):
                raise unique_violation("role", f.name)
            role.name = f.name
        if f.description is not None:
            role.description = f.description
        return {"role": role_view(request, role)}


@router.delete("/v3/roles/{role_id}", status_code=204)
def delete_role(request: Request, role_id: str, ctx: RequestContext = Depends(caller)) -> Response:
    enforce(request, ctx, "identity:delete_role", {"target.role.id": role_id})
    svc = service(request)
    with svc.write() as session:
        role = get_role_or_404(session, role_id)
        revoke_holders(svc, session, role_id)
        session.execute(sa.delete(Assignment).where(Assignment.role_id == role_id))
        session.execute(sa.delete(ImpliedRole).where(sa.or_(ImpliedRole.prior_role_id == role_id,
                                                            ImpliedRole.implied_role_id == role_id)))
        session.delete(role)
    return Response(status_code=204)


# -- implied roles ------------------------------------------------------------------------------
def _role_ref(request: Request, role: Role) -> dict[str, Any]:
    return {"id": role.id, "name": role.name, "description": role.description,
            "links": link(request, f"/v3/roles/{role.id}")}


def _inference(request: Request, prior: Role, implied: Role) -> dict[str, Any]:
    return {"role_inference": {"prior_role": _role_ref(request, prior), "implies": _role_ref(request, implied)},
            "links": link(request, f"/v3/roles/{prior.id}/implies/{implied.id}")}


def _rule_or_404(session: Session, prior_id: str, implied_id: str) -> tuple[Role, Role, ImpliedRole]:
    prior, implied = get_role_or_404(session, prior_id), get_role_or_404(session, implied_id)
    rule = session.get(ImpliedRole, (prior_id, implied_id))
    if rule is None:
        raise errors.NotFound(f"{prior_id} does not imply {implied_id}.")
    return prior, implied, rule


def _check_new_rule(session: Session, prior: Role, implied: Role) -> None:
    if implied.name in PROHIBITED_IMPLIED and implied.domain_id == NO_DOMAIN:
        raise errors.Forbidden(f"{implied.id} cannot be an implied role.")
    if prior.domain_id == NO_DOMAIN and implied.domain_id != NO_DOMAIN:
        raise errors.BadRequest("A global role cannot imply a domain-specific role.")
    # A rule back to where it started would make every role in the loop imply all the others.
    if prior.id in assignments.implied_closure(session, {implied.id}):
        raise errors.Conflict(f"Role {prior.id} implying {implied.id} would create a cycle of implied roles.")


@router.put("/v3/roles/{prior_role_id}/implies/{implied_role_id}", status_code=201)
def create_implied_role(request: Request, prior_role_id: str, implied_role_id: str,
                        ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:implied_roles")
    with service(request).write() as session:
        prior, implied = get_role_or_404(session, prior_role_id), get_role_or_404(session, implied_role_id)
        if session.get(ImpliedRole, (prior.id, implied.id)) is None:
            _check_new_rule(session, prior, implied)
            session.add(ImpliedRole(prior_role_id=prior.id, implied_role_id=implied.id))
        return _inference(request, prior, implied)


@router.get("/v3/roles/{prior_role_id}/implies/{implied_role_id}")
def get_implied_role(request: Request, prior_role_id: str, implied_role_id: str,
                     ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:get_implied_role")
    with service(request).read() as session:
        prior, implied, _ = _rule_or_404(session, prior_role_id, implied_role_id)
        return _inference(request, prior, implied)


@router.head("/v3/roles/{prior_role_id}/implies/{implied_role_id}", status_code=204)
def check_implied_role(request: Request, prior_role_id: str, implied_role_id: str,
                       ctx: RequestContext = Depends(caller)) -> Response:
    enforce(request, ctx, "identity:get_implied_role")
    with service(request).read() as session:
        _rule_or_404(session, prior_role_id, implied_role_id)
    return Response(status_code=204)


@router.delete("/v3/roles/{prior_role_id}/implies/{implied_role_id}", status_code=204)
def delete_implied_role(request: Request, prior_role_id: str, implied_role_id: str,
                        ctx: RequestContext = Depends(caller)) -> Response:
    enforce(request, ctx, "identity:implied_roles")
    svc = service(request)
    with svc.write() as session:
        _, _, rule = _rule_or_404(session, prior_role_id, implied_role_id)
        # Whoever holds the prior role loses the implied one from their tokens.
        revoke_holders(svc, session, prior_role_id)
        session.delete(rule)
    return Response(status_code=204)


def _roles_by_id(session: Session, ids: set[str]) -> dict[str, Role]:
    return {r.id: r for r in session.scalars(sa.select(Role).where(Role.id.in_(ids)))} if ids else {}


@router.get("/v3/roles/{prior_role_id}/implies")
def list_implied_roles(request: Request, prior_role_id: str, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:list_implied_roles")
    with service(request).read() as session:
        prior = get_role_or_404(session, prior_role_id)
        ids = set(session.scalars(sa.select(ImpliedRole.implied_role_id)
                                  .where(ImpliedRole.prior_role_id == prior.id)))
        implied = sorted(_roles_by_id(session, ids).values(), key=lambda r: (r.name, r.id))
        return {"role_inference": {"prior_role": _role_ref(request, prior),
                                   "implies": [_role_ref(request, r) for r in implied]},
                "links": link(request, f"/v3/roles/{prior.id}/implies")}


@router.get("/v3/role_inferences")
def list_role_inferences(request: Request, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:list_implied_roles")
    with service(request).read() as session:
        rules = _rules(session)
        roles = _roles_by_id(session, {p for p, _ in rules} | {i for _, i in rules})
    implies: dict[str, list[Role]] = {}
    for prior, implied in rules:
        implies.setdefault(prior, []).append(roles[implied])
    inferences = [{"prior_role": _role_ref(request, roles[prior]),
                   "implies": [_role_ref(request, r) for r in sorted(found, key=lambda r: (r.name, r.id))]}
                  for prior, found in sorted(implies.items(), key=lambda item: (roles[item[0]].name, item[0]))]
    return {"role_inferences": inferences, "links": link(request, "/v3/role_inferences")}
