"""/v2.1/servers/{id}/os-instance-actions: what was asked of a server, and how it went."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request

from stratus.compute import models
from stratus.compute.api.deps import Caller, Version, allowed, iso_micro, service
from stratus.core import errors
from stratus.core.context import RequestContext

router = APIRouter(prefix="/v2.1", tags=["instance actions"])


def _instance(session: Any, request: Request, ctx: RequestContext, server_id: str) -> models.Instance:
    """The server, deleted ones included (their history stays readable), 404 across projects."""
    row = session.get(models.Instance, server_id)
    if row is None or (row.project_id != ctx.project_id and not allowed(request, ctx, "admin_or_owner",
                                                                           {"project_id": row.project_id})):
        raise errors.NotFound(f"Instance {server_id} could not be found.")
    if row.deleted and not ctx.is_admin:
        raise errors.NotFound(f"Instance {server_id} could not be found.")
    return row


def _action_view(row: models.InstanceAction, version: Any) -> dict[str, Any]:
    view = {"action": row.action, "instance_uuid": row.instance_id, "request_id": row.request_id,
            "user_id": row.user_id, "project_id": row.project_id, "start_time": iso_micro(row.start_time),
            "message": row.message}
    return view


@router.get("/servers/{server_id}/os-instance-actions")
def list_actions(request: Request, server_id: str, ctx: Caller, version: Version) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        instance = _instance(session, request, ctx, server_id)
        rows = session.scalars(sa.select(models.InstanceAction).where(models.InstanceAction.instance_id == instance.id)
                               .order_by(models.InstanceAction.start_time.desc(), models.InstanceAction.id.desc()))
        return {"instanceActions": [_action_view(row, version) for row in rows]}


@router.get("/servers/{server_id}/os-instance-actions/{request_id}")
def show_action(request: Request, server_id: str, request_id: str, ctx: Caller, version: Version) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        instance = _instance(session, request, ctx, server_id)
        row = session.scalar(sa.select(models.InstanceAction).where(
            models.InstanceAction.instance_id == instance.id, models.InstanceAction.request_id == request_id)
            .order_by(models.InstanceAction.id.desc()).limit(1))
        if row is None:
            raise errors.NotFound(f"Action for request_id {request_id} on instance {server_id} not found")
        view = _action_view(row, version)
        admin = allowed(request, ctx, "instance_actions:events")
        if admin or version.at_least("2.51"):
            events = session.scalars(sa.select(models.InstanceActionEvent).where(
                models.InstanceActionEvent.action_id == row.id).order_by(models.InstanceActionEvent.id))
            view["events"] = []
            for event in events:
                item = {"event": event.event, "start_time": iso_micro(event.start_time),
                        "finish_time": iso_micro(event.finish_time), "result": event.result}
                if admin:
                    item["traceback"] = event.traceback
                view["events"].append(item)
        return {"instanceAction": view}
