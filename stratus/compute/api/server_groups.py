"""/v2.1/os-server-groups: groups of servers placed by a policy."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response

from stratus.compute import models, server_groups
from stratus.compute.api.deps import Caller, Version, allowed, service
from stratus.compute.api.flavors import MAX_LIMIT, Payload, action_body, check_name, invalid
from stratus.core import errors

router = APIRouter(prefix="/v2.1", tags=["server groups"])


def _view(row: models.ServerGroup, members: list[str], version: Any) -> dict[str, Any]:
    view: dict[str, Any] = {"id": row.id, "name": row.name, "policies": [row.policy], "members": members,
                            "metadata": {}}
    if version.at_least("2.13"):
        view.update(project_id=row.project_id, user_id=row.user_id)
    return view


def _non_negative(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise errors.BadRequest(f"{name} param must be an integer") from None
    if value < 0:
        raise errors.BadRequest(f"{name} param must be positive")
    return value


@router.get("/os-server-groups")
def list_server_groups(request: Request, ctx: Caller, version: Version) -> dict[str, Any]:
    query = sa.select(models.ServerGroup).order_by(models.ServerGroup.created_at, models.ServerGroup.id)
    if not ("all_projects" in request.query_params and allowed(request, ctx, "server_groups:all_projects")):
        query = query.where(models.ServerGroup.project_id == (ctx.project_id or ""))
    limit = min(_non_negative(request, "limit", MAX_LIMIT) or MAX_LIMIT, MAX_LIMIT)
    query = query.offset(_non_negative(request, "offset", 0)).limit(limit)
    with service(request).db.transaction() as session:
        rows = list(session.scalars(query))
        members = server_groups.members(session, [row.id for row in rows])
    return {"server_groups": [_view(row, members.get(row.id, []), version) for row in rows]}


@router.post("/os-server-groups")
def create_server_group(request: Request, ctx: Caller, version: Version, body: Payload = None) -> dict[str, Any]:
    spec = action_body(body, "server_group")
    extra = sorted(set(spec) - {"name", "policies"})
    if extra:
        raise errors.BadRequest(f"Additional properties are not allowed ({', '.join(map(repr, extra))} "
                                "were unexpected)")
    for required in ("name", "policies"):
        if required not in spec:
            raise errors.BadRequest(f"Invalid input for field/attribute server_group. '{required}' is a "
                                    "required property")
    name = check_name("name", spec["name"])
    policies = spec["policies"]
    choices = server_groups.POLICIES + (server_groups.SOFT_POLICIES if version.at_least("2.15") else ())
    if not isinstance(policies, list) or len(policies) != 1:
        raise invalid("policies", policies, "Exactly one policy is needed.")
    if policies[0] not in choices:
        raise invalid("policies", policies, f"{policies[0]!r} is not one of {list(choices)}")
    if not ctx.project_id:
        raise errors.BadRequest("A project-scoped token is needed to create a server group.")
    svc = service(request)
    with svc.db.transaction() as session:
        row = server_groups.create(session, svc.settings, ctx.project_id, ctx.user_id, name, policies[0])
    return {"server_group": _view(row, [], version)}


@router.get("/os-server-groups/{group_id}")
def show_server_group(request: Request, group_id: str, ctx: Caller, version: Version) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        row = server_groups.get_group(session, group_id, ctx.project_id, ctx.is_admin)
        members = server_groups.members(session, [row.id])
        return {"server_group": _view(row, members.get(row.id, []), version)}


@router.delete("/os-server-groups/{group_id}", status_code=204)
def delete_server_group(request: Request, group_id: str, ctx: Caller) -> Response:
    with service(request).db.transaction() as session:
        row = server_groups.get_group(session, group_id, ctx.project_id, ctx.is_admin)
        server_groups.delete(session, row)
    return Response(status_code=204)
