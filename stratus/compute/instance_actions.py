"""os-instance-actions records: an action per request that changes a server (made by the API) and
the events the conductor goes through to carry it out."""

from __future__ import annotations

import traceback as tb
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from stratus.compute import models
from stratus.core.db import Database, utcnow


def start(session: Session, instance_id: str, action: str, request_id: str, project_id: str, user_id: str,
          message: str | None = None) -> None:
    session.add(models.InstanceAction(instance_id=instance_id, action=action, request_id=request_id,
                                      project_id=project_id, user_id=user_id, message=message))


def _action_id(session: Session, instance_id: str, request_id: str) -> int | None:
    return session.scalar(sa.select(models.InstanceAction.id).where(
        models.InstanceAction.instance_id == instance_id, models.InstanceAction.request_id == request_id)
        .order_by(models.InstanceAction.id.desc()).limit(1))


# Events are written with plain INSERT/UPDATE statements on the tables, not as loaded objects: a
# boot writes four event records, and the ORM's loads and flushes took twice as long.
_EVENT = cast(sa.Table, models.InstanceActionEvent.__table__)
_ACTION = cast(sa.Table, models.InstanceAction.__table__)


def begin(session: Session, instance_id: str, request_id: str, name: str, host: str | None = None, *,
          action_id: int | None = None) -> int | None:
    """Record the start of event `name` of the request's action in the caller's transaction; the
    event's id, or None when there is no action to hang it on (the instance is gone). `action_id`:
    the action, when the caller knows it already (the event of an earlier `begin` names it)."""
    if action_id is None:
        action_id = _action_id(session, instance_id, request_id)
        if action_id is None:
            return None
    inserted = session.connection().execute(sa.insert(_EVENT).values(action_id=action_id, event=name, host=host,
                                                                      start_time=utcnow()))
    key = inserted.inserted_primary_key
    assert key is not None  # a one-row INSERT has one
    return int(key[0])


def action_of(session: Session, event_id: int | None) -> int | None:
    """The action an event (from `begin`) belongs to."""
    if event_id is None:
        return None
    return session.connection().scalar(sa.select(_EVENT.c.action_id).where(_EVENT.c.id == event_id))


def finish(session: Session, event_id: int | None, instance_id: str, request_id: str,
           error: BaseException | None = None) -> None:
    """Record the end of an event in the caller's transaction: Success, or Error with the traceback
    of `error` (which also marks the action's message)."""
    if event_id is None:
        return
    now = utcnow()
    connection = session.connection()
    connection.execute(sa.update(_EVENT).where(_EVENT.c.id == event_id).values(
        result="Error" if error is not None else "Success", finish_time=now,
        traceback="".join(tb.format_exception(error)) if error is not None else None))
    # The action `begin` hung the event on; the request's latest one if the event is gone.
    changes: dict[str, object] = {"finish_time": now}
    if error is not None:
        changes["message"] = "Error"
    hung_on = sa.select(_EVENT.c.action_id).where(_EVENT.c.id == event_id).scalar_subquery()
    if connection.execute(sa.update(_ACTION).where(_ACTION.c.id == hung_on).values(**changes)).rowcount == 0:
        action_id = _action_id(session, instance_id, request_id)
        if action_id is not None:
            connection.execute(sa.update(_ACTION).where(_ACTION.c.id == action_id).values(**changes))


@contextmanager
def event(db: Database, instance_id: str, request_id: str, name: str, host: str | None = None) -> Iterator[None]:
    """Record event `name` of the request's action around a block, each end in its own transaction:
    Success, or Error with the traceback (and the action's message) if the block raises."""
    with db.transaction() as session:
        event_id = begin(session, instance_id, request_id, name, host)
    try:
        yield
    except Exception as exc:
        with db.transaction() as session:
            finish(session, event_id, instance_id, request_id, exc)
        raise
    with db.transaction() as session:
        finish(session, event_id, instance_id, request_id)
