"""Role grants on projects, domains and the system (plain and OS-INHERIT), and `/v3/role_assignments`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.identity.api.deps import base_url, caller, collection_links, enforce, service, truthy
from stratus.identity.api.domains import get_domain_or_404
from stratus.identity.api.groups import get_group_or_404, member_ids
from stratus.identity.api.roles import get_role_or_404, role_view
from stratus.identity.api.users import get_user_or_404
from stratus.identity.assignments import SYSTEM_ALL
from stratus.identity.models import NO_DOMAIN, Assignment, Domain, Group, ImpliedRole, Membership, Project, Role, User
from stratus.identity.service import IdentityService

router = APIRouter(tags=["grants"])


@dataclass(frozen=True)
class Grant:
    """One stored assignment, or (with no role) the actor and target a listing is about."""

    actor_type: str   # user | group
    actor_id: str
    target_type: str  # project | domain | system
    target_id: str
    inherited: bool = False
    role_id: str = ""

    @classmethod
    def of(cls, row: Assignment) -> Grant:
        return cls(row.actor_type, row.actor_id, row.target_type, row.target_id, row.inherited, row.role_id)

    def key(self) -> tuple[str, str, str, str, str, bool]:
        """The assignment table's primary key, in its column order."""
        return self.actor_type, self.actor_id, self.target_type, self.target_id, self.role_id, self.inherited

    def path(self) -> str:
        """The grant's own URL (under the API root), as the role assignment links give it."""
        actor = f"{self.actor_type}s/{self.actor_id}/roles/{self.role_id}"
        if self.target_type == "system":
            return f"/v3/system/{actor}"
        target = f"{self.target_type}s/{self.target_id}/{actor}"
        return f"/v3/OS-INHERIT/{target}/inherited_to_projects" if self.inherited else f"/v3/{target}"

    def policy_target(self) -> dict[str, str]:
        target = {f"target.{self.actor_type}.id": self.actor_id, "target.role.id": self.role_id}
        if self.target_type != "system":
            target[f"target.{self.target_type}.id"] = self.target_id
        return target


def _target_domain(session: Session, grant: Grant) -> str | None:
    """Check that the grant's actor and target exist; returns the domain the target is in."""
    if grant.actor_type == "user":
        get_user_or_404(session, grant.actor_id)
    else:
        get_group_or_404(session, grant.actor_id)
    if grant.target_type == "project":
        project = session.get(Project, grant.target_id)
        if project is None:
            raise errors.NotFound(f"Could not find project: {grant.target_id}.")
        return project.domain_id
    if grant.target_type == "domain":
        return get_domain_or_404(session, grant.target_id).id
    return None


def _grantable_role(session: Session, grant: Grant) -> Role:
    """The grant's role, after checking every entity it names; a domain's own role is only
    grantable inside that domain."""
    domain_id = _target_domain(session, grant)
    role = get_role_or_404(session, grant.role_id)
    if role.domain_id != NO_DOMAIN and role.domain_id != domain_id:
        raise errors.Forbidden(f"Role {role.id} belongs to domain {role.domain_id} and can only be granted "
                               "on that domain or its projects.")
    return role


def _no_grant(grant: Grant) -> errors.NotFound:
    return errors.NotFound(f"Could not find role assignment: role {grant.role_id} for {grant.actor_type} "
                           f"{grant.actor_id} on {grant.target_type} {grant.target_id}.")


def _revoke_affected(svc: IdentityService, session: Session, grant: Grant) -> None:
    """Stop the tokens that may carry the revoked role: the actor's (each member's, for a group)
    tokens scoped to the target; for system and inherited grants, all of their tokens."""
    users = [grant.actor_id] if grant.actor_type == "user" else member_ids(session, [grant.actor_id])
    scope: dict[str, str] = {}
    if not grant.inherited and grant.target_type in ("project", "domain"):
        scope = {f"{grant.target_type}_id": grant.target_id}
    for user_id in users:
        svc.revocations.revoke(session, user_id=user_id, **scope)


def create_grant(request: Request, ctx: RequestContext, grant: Grant) -> Response:
    enforce(request, ctx, "identity:create_grant", grant.policy_target())
    with service(request).write() as session:
        _grantable_role(session, grant)
        if session.get(Assignment, grant.key()) is None:
            session.add(Assignment(actor_type=grant.actor_type, actor_id=grant.actor_id,
                                   target_type=grant.target_type, target_id=grant.target_id,
                                   role_id=grant.role_id, inherited=grant.inherited))
    return Response(status_code=204)


def check_grant(request: Request, ctx: RequestContext, grant: Grant) -> Response:
    enforce(request, ctx, "identity:check_grant", grant.policy_target())
    with service(request).read() as session:
        _target_domain(session, grant)
        get_role_or_404(session, grant.role_id)
        if session.get(Assignment, grant.key()) is None:
            raise _no_grant(grant)
    return Response(status_code=204)


def revoke_grant(request: Request, ctx: RequestContext, grant: Grant) -> Response:
    enforce(request, ctx, "identity:revoke_grant", grant.policy_target())
    svc = service(request)
    with svc.write() as session:
        _target_domain(session, grant)
        get_role_or_404(session, grant.role_id)
        row = session.get(Assignment, grant.key())
        if row is None:
            raise _no_grant(grant)
        session.delete(row)
        _revoke_affected(svc, session, grant)
    return Response(status_code=204)


def list_grants(request: Request, ctx: RequestContext, grant: Grant) -> dict[str, Any]:
    """The roles granted directly to the actor on the target (not through groups or inheritance)."""
    enforce(request, ctx, "identity:list_grants", grant.policy_target())
    with service(request).read() as session:
        _target_domain(session, grant)
        role_ids = sa.select(Assignment.role_id).where(
            Assignment.actor_type == grant.actor_type, Assignment.actor_id == grant.actor_id,
            Assignment.target_type == grant.target_type, Assignment.target_id == grant.target_id,
            Assignment.inherited.is_(grant.inherited))
        roles = session.scalars(sa.select(Role).where(Role.id.in_(role_ids)).order_by(Role.name, Role.id))
        return {"roles": [role_view(request, r) for r in roles], "links": collection_links(request)}


# -- routes -------------------------------------------------------------------------------------
# Every combination of target (project, domain, system), actor (user, group) and inheritance has
# the same four calls, so the routes are made from one template.
def _actor_and_target(target_type: str, actor_type: str, inherited: bool) -> Callable[..., Grant]:
    """A dependency reading the grant's actor and target from the path."""
    if target_type == "system":
        def system_grant(actor_id: str) -> Grant:
            return Grant(actor_type, actor_id, "system", SYSTEM_ALL)
        return system_grant

    def grant(target_id: str, actor_id: str) -> Grant:
        return Grant(actor_type, actor_id, target_type, target_id, inherited)
    return grant


def _add_routes(base: str, target_type: str, actor_type: str, inherited: bool = False) -> None:
    suffix = "/inherited_to_projects" if inherited else ""
    item, collection = f"{base}/roles/{{role_id}}{suffix}", f"{base}/roles{suffix}"
    at = _actor_and_target(target_type, actor_type, inherited)

    def put(request: Request, role_id: str, where: Grant = Depends(at),
            ctx: RequestContext = Depends(caller)) -> Response:
        return create_grant(request, ctx, dataclasses.replace(where, role_id=role_id))

    def check(request: Request, role_id: str, where: Grant = Depends(at),
              ctx: RequestContext = Depends(caller)) -> Response:
        return check_grant(request, ctx, dataclasses.replace(where, role_id=role_id))

    def delete(request: Request, role_id: str, where: Grant = Depends(at),
               ctx: RequestContext = Depends(caller)) -> Response:
        return revoke_grant(request, ctx, dataclasses.replace(where, role_id=role_id))

    def listing(request: Request, where: Grant = Depends(at), ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
        return list_grants(request, ctx, where)

    name = f"{target_type}_{actor_type}{'_inherited' if inherited else ''}"
    router.add_api_route(item, put, methods=["PUT"], status_code=204, name=f"grant_{name}")
    for method in ("GET", "HEAD"):  # one route each, so each has its own OpenAPI operation
        router.add_api_route(item, check, methods=[method], status_code=204, name=f"check_{name}")
    router.add_api_route(item, delete, methods=["DELETE"], status_code=204, name=f"revoke_{name}")
    router.add_api_route(collection, listing, methods=["GET"], name=f"list_{name}")


for _actor in ("user", "group"):
    _add_routes(f"/v3/system/{_actor}s/{{actor_id}}", "system", _actor)
    for _target in ("project", "domain"):
        _add_routes(f"/v3/{_target}s/{{target_id}}/{_actor}s/{{actor_id}}", _target, _actor)
        _add_routes(f"/v3/OS-INHERIT/{_target}s/{{target_id}}/{_actor}s/{{actor_id}}", _target, _actor,
                    inherited=True)


# -- /v3/role_assignments -----------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """One listed assignment. In effective mode a stored grant is expanded: to each member of its
    group, to each project it is inherited to, and to each role its role implies."""

    grant: Grant
    role_id: str
    user_id: str | None        # None: the entry names the grant's group
    scope: tuple[str, str]     # (project | domain | system, id)
    prior_role_id: str | None = None


@dataclass(frozen=True)
class Filters:
    user_id: str | None
    group_id: str | None
    role_id: str | None
    project_id: str | None
    domain_id: str | None
    system: bool
    inherited: bool | None
    effective: bool
    include_names: bool
    include_subtree: bool


def _flag(params: Mapping[str, str], name: str) -> bool:
    """A flag as Keystone reads it: present, even with no value, means true unless it says false."""
    return name in params and (params[name] == "" or bool(truthy(params[name])))


def parse_filters(params: Mapping[str, str]) -> Filters:
    for one, other in (("user.id", "group.id"), ("scope.project.id", "scope.domain.id"),
                       ("scope.system", "scope.project.id"), ("scope.system", "scope.domain.id")):
        if params.get(one) and params.get(other):
            raise errors.BadRequest(f"Specify {one} or {other}, not both.")
    if params.get("scope.system") not in (None, "", SYSTEM_ALL):
        raise errors.BadRequest(f"scope.system must be {SYSTEM_ALL!r}.")
    inherited_to = params.get("scope.OS-INHERIT:inherited_to")
    if inherited_to not in (None, "projects"):
        raise errors.BadRequest("scope.OS-INHERIT:inherited_to only supports 'projects'.")
    f = Filters(params.get("user.id") or None, params.get("group.id") or None, params.get("role.id") or None,
                params.get("scope.project.id") or None, params.get("scope.domain.id") or None,
                bool(params.get("scope.system")), True if inherited_to else None, _flag(params, "effective"),
                _flag(params, "include_names"), _flag(params, "include_subtree"))
    if f.include_subtree and not f.project_id:
        raise errors.BadRequest("include_subtree needs scope.project.id.")
    if f.effective and f.group_id:
        raise errors.BadRequest("Effective assignments are expanded to users: a group filter would match none.")
    if f.effective and f.inherited and f.domain_id:
        raise errors.BadRequest("Effective inherited assignments are on projects: a domain filter would match none.")
    return f


class _ProjectTree:
    """Every project's place (parent, domain), read in one query, for expanding inheritance."""

    def __init__(self, session: Session) -> None:
        self.children: dict[str, list[str]] = {}
        self.in_domain: dict[str, list[str]] = {}
        for project_id, parent_id, domain_id in session.execute(
                sa.select(Project.id, Project.parent_id, Project.domain_id).order_by(Project.name, Project.id)):
            self.children.setdefault(parent_id or "", []).append(project_id)
            self.in_domain.setdefault(domain_id, []).append(project_id)

    def below(self, project_id: str) -> list[str]:
        found, todo = [], list(self.children.get(project_id, ()))
        while todo:
            child = todo.pop(0)
            if child not in found:
                found.append(child)
                todo += self.children.get(child, ())
        return found

    def inherited_to(self, grant: Grant) -> list[str]:
        if grant.target_type == "domain":
            return self.in_domain.get(grant.target_id, [])
        return self.below(grant.target_id)


def _wanted_scopes(session: Session, f: Filters) -> set[tuple[str, str]] | None:
    if f.project_id:
        below = _ProjectTree(session).below(f.project_id) if f.include_subtree else []
        return {("project", p) for p in [f.project_id, *below]}
    if f.domain_id:
        return {("domain", f.domain_id)}
    return {("system", SYSTEM_ALL)} if f.system else None


def _stored(session: Session, f: Filters, scopes: set[tuple[str, str]] | None) -> list[Grant]:
    """The stored grants that can contribute to the answer."""
    query = sa.select(Assignment).order_by(Assignment.target_type, Assignment.target_id, Assignment.actor_type,
                                           Assignment.actor_id, Assignment.role_id, Assignment.inherited)
    actor = ("user", f.user_id) if f.user_id else ("group", f.group_id) if f.group_id else None
    if actor and f.effective:  # the user's groups' grants count too
        groups = list(session.scalars(sa.select(Membership.group_id).where(Membership.user_id == actor[1])))
        query = query.where(sa.or_(sa.and_(Assignment.actor_type == "user", Assignment.actor_id == actor[1]),
                                   sa.and_(Assignment.actor_type == "group", Assignment.actor_id.in_(groups))))
    elif actor:
        query = query.where(Assignment.actor_type == actor[0], Assignment.actor_id == actor[1])
    if not f.effective:  # in effective mode roles and scopes are only known after expansion
        if f.role_id:
            query = query.where(Assignment.role_id == f.role_id)
        if scopes is not None:
            query = query.where(Assignment.target_type == next(iter(scopes))[0],
                                Assignment.target_id.in_([target_id for _, target_id in scopes]))
        if f.inherited is not None:
            query = query.where(Assignment.inherited.is_(f.inherited))
    return [Grant.of(row) for row in session.scalars(query)]


def _expand(session: Session, grants: list[Grant], user_id: str | None) -> list[Entry]:
    """Group grants to their members, inherited grants to the projects below their target."""
    groups = {g.actor_id for g in grants if g.actor_type == "group"}
    members: dict[str, list[str]] = {}
    if groups:
        for group_id, member in session.execute(sa.select(Membership.group_id, Membership.user_id)
                                                .where(Membership.group_id.in_(groups))):
            members.setdefault(group_id, []).append(member)
    tree = _ProjectTree(session) if any(g.inherited for g in grants) else None
    entries = []
    for g in grants:
        users = [g.actor_id] if g.actor_type == "user" else sorted(members.get(g.actor_id, []))
        if user_id is not None:
            users = [u for u in users if u == user_id]
        scopes = ([("project", p) for p in tree.inherited_to(g)] if tree and g.inherited
                  else [(g.target_type, g.target_id)])
        entries += [Entry(g, g.role_id, u, s) for u in users for s in scopes]
    return entries


def _with_implied(session: Session, entries: list[Entry]) -> list[Entry]:
    """Each entry plus one per role its role implies, transitively; domain-specific roles, which
    only exist to imply others, are dropped at the end (they never reach a token)."""
    rules: dict[str, list[str]] = {}
    for prior, implied in session.execute(sa.select(ImpliedRole.prior_role_id, ImpliedRole.implied_role_id)):
        rules.setdefault(prior, []).append(implied)
    result = []
    for entry in entries:
        result.append(entry)
        seen, todo = {entry.role_id}, [entry.role_id]
        while todo:
            prior = todo.pop(0)
            for implied in rules.get(prior, ()):
                if implied not in seen:
                    seen.add(implied)
                    todo.append(implied)
                    result.append(dataclasses.replace(entry, role_id=implied, prior_role_id=prior))
    domain_roles = set(session.scalars(sa.select(Role.id).where(Role.domain_id != NO_DOMAIN)))
    return [e for e in result if e.role_id not in domain_roles]


def find_assignments(session: Session, f: Filters) -> list[Entry]:
    scopes = _wanted_scopes(session, f)
    grants = _stored(session, f, scopes)
    if not f.effective:
        return [Entry(g, g.role_id, g.actor_id if g.actor_type == "user" else None, (g.target_type, g.target_id))
                for g in grants]
    entries = _with_implied(session, _expand(session, grants, f.user_id))
    return [e for e in entries if (scopes is None or e.scope in scopes) and f.role_id in (None, e.role_id)
            and (f.inherited is None or e.grant.inherited)]


class _Names:
    """Names (and owning domains) for `include_names`: one query per kind of entity."""

    _MODELS: dict[str, Any] = {"user": User, "group": Group, "project": Project, "role": Role}

    def __init__(self, session: Session, entries: list[Entry]) -> None:
        wanted: dict[str, set[str]] = {kind: set() for kind in (*self._MODELS, "domain")}
        for e in entries:
            wanted["role"].add(e.role_id)
            wanted["user" if e.user_id else "group"].add(e.user_id or e.grant.actor_id)
            if e.scope[0] != "system":
                wanted[e.scope[0]].add(e.scope[1])
        self.table: dict[str, dict[str, tuple[str, str | None]]] = {}
        for kind, model in self._MODELS.items():
            rows = session.execute(sa.select(model.id, model.name, model.domain_id).where(model.id.in_(wanted[kind])))
            self.table[kind] = {i: (name, None if d == NO_DOMAIN else d) for i, name, d in rows}
            wanted["domain"].update(d for _, d in self.table[kind].values() if d)
        rows = session.execute(sa.select(Domain.id, Domain.name).where(Domain.id.in_(wanted["domain"])))
        self.table["domain"] = {i: (name, None) for i, name in rows}

    def ref(self, kind: str, entity_id: str) -> dict[str, Any]:
        name, domain_id = self.table[kind].get(entity_id, (None, None))
        ref: dict[str, Any] = {"id": entity_id} if name is None else {"id": entity_id, "name": name}
        if domain_id:
            ref["domain"] = {"id": domain_id, "name": self.table["domain"].get(domain_id, ("", None))[0]}
        return ref


def _render(root: str, e: Entry, names: _Names | None) -> dict[str, Any]:
    def ref(kind: str, entity_id: str) -> dict[str, Any]:
        return names.ref(kind, entity_id) if names else {"id": entity_id}

    links = {"assignment": root + e.grant.path()}
    if e.user_id and e.grant.actor_type == "group":
        links["membership"] = f"{root}/v3/groups/{e.grant.actor_id}/users/{e.user_id}"
    if e.prior_role_id:
        links["prior_role"] = f"{root}/v3/roles/{e.prior_role_id}/implies/{e.role_id}"
    kind, target_id = e.scope
    scope: dict[str, Any] = {"system": {"all": True}} if kind == "system" else {kind: ref(kind, target_id)}
    if e.grant.inherited:
        scope["OS-INHERIT:inherited_to"] = "projects"
    actor = {"user": ref("user", e.user_id)} if e.user_id else {"group": ref("group", e.grant.actor_id)}
    return {"role": ref("role", e.role_id), **actor, "scope": scope, "links": links}


@router.get("/v3/role_assignments")
def list_role_assignments(request: Request, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:list_role_assignments")
    filters = parse_filters(request.query_params)
    with service(request).read() as session:
        entries = find_assignments(session, filters)
        names = _Names(session, entries) if filters.include_names else None
    root = base_url(request)
    return {"role_assignments": [_render(root, e, names) for e in entries], "links": collection_links(request)}
