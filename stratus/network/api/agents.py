"""/v2.0/agents: the node agents and their heartbeats (the operator's view).

Rows are written by the conductor when agents report their state; this API reads them, lets an
admin disable or describe an agent, and removes agents that are gone. To anyone the policy does not
let see agents the list is empty and an agent is not found, as in Neutron.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request, Response
from pydantic import Field
from sqlalchemy.orm import Session

from stratus.core.context import RequestContext
from stratus.core.db import utcnow
from stratus.network import models
from stratus.network.api import listing
from stratus.network.api.deps import Body, allowed, caller, enforce, service
from stratus.network.errors import AgentNotFound

router = APIRouter(prefix="/v2.0", tags=["agents"])
Caller = Annotated[RequestContext, Depends(caller)]


class AgentUpdate(Body):
    admin_state_up: bool | None = None
    description: str | None = Field(None, max_length=255)


class AgentUpdateBody(Body):
    agent: AgentUpdate


def _time(value: dt.datetime | None) -> str | None:
    # The agents API shows times as Neutron does here: "2017-09-12 19:40:08" (UTC).
    return None if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def is_alive(row: models.Agent, down_time: int, now: dt.datetime | None = None) -> bool:
    """Whether the agent reported within the last `down_time` seconds."""
    return row.heartbeat_timestamp is not None and (
        (now or utcnow()) - row.heartbeat_timestamp) < dt.timedelta(seconds=down_time)


def agent_view(row: models.Agent, down_time: int, now: dt.datetime | None = None) -> dict[str, Any]:
    return {
        "id": row.id, "agent_type": row.agent_type, "binary": row.binary, "topic": row.topic, "host": row.host,
        "admin_state_up": row.admin_state_up, "alive": is_alive(row, down_time, now),
        "availability_zone": row.availability_zone, "description": row.description or None,
        "configurations": row.configurations or {}, "created_at": _time(row.created_at),
        "started_at": _time(row.started_at), "heartbeat_timestamp": _time(row.heartbeat_timestamp),
        "resources_synced": None,
    }


def _collection(down_time: int) -> listing.Collection:
    m = models.Agent
    now = utcnow()
    return listing.Collection(
        "agents", m,
        columns={name: getattr(m, name) for name in (
            "id", "agent_type", "binary", "topic", "host", "admin_state_up", "availability_zone", "description",
            "created_at", "started_at", "heartbeat_timestamp")},
        view=lambda row: agent_view(row, down_time, now))


def _may_see(request: Request, ctx: RequestContext) -> bool:
    return allowed(request, ctx, "get_agent")


def _agent(request: Request, ctx: RequestContext, session: Session, agent_id: str,
           action: str | None = None) -> models.Agent:
    """The agent, not found to whoever may not see agents; `action` (a policy rule) is then enforced (403)."""
    row = session.get(models.Agent, agent_id) if _may_see(request, ctx) else None
    if row is None:
        raise AgentNotFound(agent_id)
    if action is not None:
        enforce(request, ctx, action)
    return row


@router.get("/agents")
def list_agents(request: Request, ctx: Caller) -> dict[str, Any]:
    svc = service(request)
    with svc.db.transaction() as session:
        scope = None if _may_see(request, ctx) else sa.false()
        return listing.list_items(request, session, _collection(svc.settings.agent_down_time), scope)


@router.get("/agents/{agent_id}")
def show_agent(request: Request, agent_id: str, ctx: Caller) -> dict[str, Any]:
    svc = service(request)
    with svc.db.transaction() as session:
        return {"agent": agent_view(_agent(request, ctx, session, agent_id), svc.settings.agent_down_time)}


@router.put("/agents/{agent_id}")
def update_agent(request: Request, agent_id: str, body: AgentUpdateBody, ctx: Caller) -> dict[str, Any]:
    svc, fields = service(request), body.agent
    with svc.db.transaction() as session:
        row = _agent(request, ctx, session, agent_id, "update_agent")
        if fields.admin_state_up is not None:
            row.admin_state_up = fields.admin_state_up
        if fields.description is not None:
            row.description = fields.description
        session.flush()
        return {"agent": agent_view(row, svc.settings.agent_down_time)}


@router.delete("/agents/{agent_id}", status_code=204)
def delete_agent(request: Request, agent_id: str, ctx: Caller) -> Response:
    with service(request).db.transaction() as session:
        session.delete(_agent(request, ctx, session, agent_id, "delete_agent"))
    return Response(status_code=204)
