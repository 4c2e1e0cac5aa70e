"""`/v3/groups` and group membership."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request, Response
from pydantic import Field
from sqlalchemy.orm import Session

from stratus.core import errors
from stratus.core.context import RequestContext
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
from stratus.identity.api.users import get_user_or_404, user_view
from stratus.identity.models import Assignment, Group, Membership, User

router = APIRouter(tags=["groups"])


class GroupFields(StrictBody):
    # The group table has no column for extra attributes, so unknown keys are refused.
    name: str | None = Field(None, min_length=1, max_length=255)
    domain_id: str | None = Field(None, max_length=64)
    description: str | None = None


class GroupBody(StrictBody):
    group: GroupFields


def group_view(request: Request, group: Group) -> dict[str, Any]:
    return {"id": group.id, "name": group.name, "domain_id": group.domain_id, "description": group.description,
            "links": link(request, f"/v3/groups/{group.id}")}


def get_group_or_404(session: Session, group_id: str) -> Group:
    return find_or_404(session, Group, group_id, "group")


def member_ids(session: Session, group_ids: list[str]) -> list[str]:
    """The users in any of the groups (each once)."""
    if not group_ids:
        return []
    query = sa.select(Membership.user_id).where(Membership.group_id.in_(group_ids)).distinct()
    return list(session.scalars(query))


def _name_taken(session: Session, domain_id: str, name: str, other_than: str = "") -> bool:
    # `other_than`: a rename that only changes case must not collide with itself where names
    # compare without case (MariaDB).
    query = sa.select(Group.id).where(Group.domain_id == domain_id, Group.name == name, Group.id != other_than)
    return session.scalar(query) is not None


@router.post("/v3/groups", status_code=201)
def create_group(request: Request, body: GroupBody, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    f = body.group
    domain_id = f.domain_id or ctx.project_domain_id or ctx.domain_id or "default"
    enforce(request, ctx, "identity:create_group", {"target.group.domain_id": domain_id})
    if not f.name:
        raise errors.BadRequest("group.name is required")
    with service(request).write() as session:
        get_domain_or_404(session, domain_id)
        if _name_taken(session, domain_id, f.name):
            raise unique_violation("Group", f.name)
        group = Group(name=f.name, domain_id=domain_id, description=f.description or "")
        session.add(group)
        session.flush()
        return {"group": group_view(request, group)}


@router.get("/v3/groups")
def list_groups(request: Request, name: str | None = None, domain_id: str | None = None,
                limit: int | None = None, marker: str | None = None,
                ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:list_groups")
    query = sa.select(Group).order_by(Group.name, Group.id)
    if name is not None:
        query = query.where(Group.name == name)
    if domain_id is not None:
        query = query.where(Group.domain_id == domain_id)
    with service(request).read() as session:
        views = [group_view(request, g) for g in session.scalars(query)]
    return page_of(request, "groups", views, limit, marker)


@router.get("/v3/groups/{group_id}")
def show_group(request: Request, group_id: str, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:get_group", {"target.group.id": group_id})
    with service(request).read() as session:
        return {"group": group_view(request, get_group_or_404(session, group_id))}


@router.patch("/v3/groups/{group_id}")
def update_group(request: Request, group_id: str, body: GroupBody,
                 ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:update_group", {"target.group.id": group_id})
    f = body.group
    with service(request).write() as session:
        group = get_group_or_404(session, group_id)
        if f.domain_id is not None and f.domain_id != group.domain_id:
            raise errors.BadRequest("A group cannot move to another domain.")
        if f.name is not None and f.name != group.name:
            if _name_taken(session, group.domain_id, f.name, other_than=group.id):
                raise unique_violation("Group", f.name)
            group.name = f.name
        if f.description is not None:
            group.description = f.description
        return {"group": group_view(request, group)}


@router.delete("/v3/groups/{group_id}", status_code=204)
def delete_group(request: Request, group_id: str, ctx: RequestContext = Depends(caller)) -> Response:
    enforce(request, ctx, "identity:delete_group", {"target.group.id": group_id})
    svc = service(request)
    with svc.write() as session:
        group = get_group_or_404(session, group_id)
        # The members lose every role the group gave them.
        for user_id in member_ids(session, [group_id]):
            svc.revocations.revoke(session, user_id=user_id)
        session.execute(sa.delete(Assignment).where(Assignment.actor_type == "group",
                                                    Assignment.actor_id == group_id))
        session.execute(sa.delete(Membership).where(Membership.group_id == group_id))
        session.delete(group)
    return Response(status_code=204)


# -- membership ---------------------------------------------------------------------------------
@router.get("/v3/groups/{group_id}/users")
def list_group_users(request: Request, group_id: str, limit: int | None = None, marker: str | None = None,
                     ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:list_users_in_group", {"target.group.id": group_id})
    with service(request).read() as session:
        get_group_or_404(session, group_id)
        query = (sa.select(User).join(Membership, Membership.user_id == User.id)
                 .where(Membership.group_id == group_id).order_by(User.name, User.id))
        views = [user_view(request, u) for u in session.scalars(query)]
    return page_of(request, "users", views, limit, marker)


def _membership(session: Session, group_id: str, user_id: str) -> Membership | None:
    """The membership row, after checking that both the group and the user exist."""
    get_group_or_404(session, group_id)
    get_user_or_404(session, user_id)
    return session.get(Membership, (user_id, group_id))


def _not_member(group_id: str, user_id: str) -> errors.NotFound:
    return errors.NotFound(f"User {user_id} is not a member of group {group_id}.")


@router.put("/v3/groups/{group_id}/users/{user_id}", status_code=204)
def add_user_to_group(request: Request, group_id: str, user_id: str,
                      ctx: RequestContext = Depends(caller)) -> Response:
    enforce(request, ctx, "identity:add_user_to_group", {"target.group.id": group_id, "target.user.id": user_id})
    with service(request).write() as session:
        if _membership(session, group_id, user_id) is None:
            session.add(Membership(user_id=user_id, group_id=group_id))
    return Response(status_code=204)


@router.get("/v3/groups/{group_id}/users/{user_id}", status_code=204)
@router.head("/v3/groups/{group_id}/users/{user_id}", status_code=204)
def check_user_in_group(request: Request, group_id: str, user_id: str,
                        ctx: RequestContext = Depends(caller)) -> Response:
    enforce(request, ctx, "identity:check_user_in_group", {"target.group.id": group_id, "target.user.id": user_id})
    with service(request).read() as session:
        if _membership(session, group_id, user_id) is None:
            raise _not_member(group_id, user_id)
    return Response(status_code=204)


@router.delete("/v3/groups/{group_id}/users/{user_id}", status_code=204)
def remove_user_from_group(request: Request, group_id: str, user_id: str,
                           ctx: RequestContext = Depends(caller)) -> Response:
    enforce(request, ctx, "identity:remove_user_from_group",
            {"target.group.id": group_id, "target.user.id": user_id})
    svc = service(request)
    with svc.write() as session:
        membership = _membership(session, group_id, user_id)
        if membership is None:
            raise _not_member(group_id, user_id)
        session.delete(membership)
        # Tokens carrying roles that came through the group must stop working.
        svc.revocations.revoke(session, user_id=user_id)
    return Response(status_code=204)
