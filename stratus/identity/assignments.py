"""Effective roles: direct and group grants, inheritance down the project tree, implied roles."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from stratus.identity.models import NO_DOMAIN, Assignment, ImpliedRole, Membership, Project, Role

SYSTEM_ALL = "all"


def group_ids(session: Session, user_id: str) -> list[str]:
    return list(session.scalars(sa.select(Membership.group_id).where(Membership.user_id == user_id)))


def project_ancestors(session: Session, project: Project) -> list[str]:
    """Ids of the project's parents, nearest first."""
    ancestors: list[str] = []
    parent_id = project.parent_id
    while parent_id and parent_id not in ancestors:
        ancestors.append(parent_id)
        parent_id = session.scalar(sa.select(Project.parent_id).where(Project.id == parent_id))
    return ancestors


def implied_closure(session: Session, role_ids: set[str]) -> set[str]:
    """The roles plus every role they imply, transitively (admin implies member implies reader)."""
    rules: dict[str, list[str]] = {}
    for prior, implied in session.execute(sa.select(ImpliedRole.prior_role_id, ImpliedRole.implied_role_id)):
        rules.setdefault(prior, []).append(implied)
    result, todo = set(role_ids), list(role_ids)
    while todo:
        for implied in rules.get(todo.pop(), ()):
            if implied not in result:
                result.add(implied)
                todo.append(implied)
    return result


def direct_role_ids(session: Session, actor_ids: list[str], targets: list[tuple[str, str, bool]]) -> set[str]:
    """Roles granted to any of `actor_ids` on any (target_type, target_id, inherited) triple."""
    if not actor_ids or not targets:
        return set()
    conditions = [sa.and_(Assignment.target_type == t, Assignment.target_id == i, Assignment.inherited == inh)
                  for t, i, inh in targets]
    query = sa.select(Assignment.role_id).where(Assignment.actor_id.in_(actor_ids), sa.or_(*conditions))
    return set(session.scalars(query))


def scope_targets(session: Session, *, project: Project | None = None, domain_id: str | None = None,
                  system: bool = False) -> list[tuple[str, str, bool]]:
    """The grants that give roles on a scope: its own, and inherited ones from above it."""
    if project is not None:
        targets = [("project", project.id, False), ("domain", project.domain_id, True)]
        targets += [("project", ancestor, True) for ancestor in project_ancestors(session, project)]
        return targets
    if domain_id is not None:
        return [("domain", domain_id, False)]
    if system:
        return [("system", SYSTEM_ALL, False)]
    return []


def effective_role_ids(session: Session, user_id: str, *, project: Project | None = None,
                       domain_id: str | None = None, system: bool = False) -> set[str]:
    actors = [user_id, *group_ids(session, user_id)]
    targets = scope_targets(session, project=project, domain_id=domain_id, system=system)
    direct = direct_role_ids(session, actors, targets)
    if not direct:
        return set()
    roles = implied_closure(session, direct)
    # Domain-specific roles only stand for the global roles they imply; tokens never carry them.
    local = set(session.scalars(sa.select(Role.id).where(Role.id.in_(roles), Role.domain_id != NO_DOMAIN)))
    return roles - local


def role_refs(session: Session, role_ids: set[str]) -> list[dict[str, str]]:
    if not role_ids:
        return []
    rows = session.execute(sa.select(Role.id, Role.name).where(Role.id.in_(role_ids)).order_by(Role.name))
    return [{"id": rid, "name": name} for rid, name in rows]
