"""os-instance-actions records: an action per request that changes a server (made by the API) and
the events the conductor goes through to carry it out."""

from __future__ import annotations

import traceback as tb
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.orm import Session

from stratus.compute import models
from stratus.core.db import Database, utcnow


def start(session: Session, instance_id: str, action: str, request_id: str, project_id: str, user_id: str,
          message: str | None = None) -> None:
    session.add(models.InstanceAction(instance_id=instance_id, action=action, request_id=request_id,
                                      project_id=project_id, user_id=user_id, message=message))


def _action(session: Session, instance_id: str, request_id: str) -> models.InstanceAction | None:
    return session.scalar(sa.select(models.InstanceAction).where(
        models.InstanceAction.instance_id == instance_id, models.InstanceAction.request_id == request_id)
        .order_by(models.InstanceAction.id.desc()).limit(1))


def begin(session: Session, instance_id: str, request_id: str, name: str, host: str | None = None, *,
          action_id: int | None = None) -> int | None:
    """Record the start of event `name` of the request's action in the caller's transaction; the
    event's id, or None when there is no action to hang it on (the instance is gone). `action_id`:
    the action, when the caller knows it already (the event of an earlier `begin` names it)."""
    if action_id is None:
        action = _action(session, instance_id, request_id)
        if action is None:
            return None
        action_id = action.id
    row = models.InstanceActionEvent(action_id=action_id, event=name, host=host)
    session.add(row)
    session.flush()
    return row.id


def action_of(session: Session, event_id: int | None) -> int | None:
    """The action an event (from `begin`) belongs to."""
    if event_id is None:
        return None
    row = session.get(models.InstanceActionEvent, event_id)
    return row.action_id if row is not None else None


def finish(session: Session, event_id: int | None, instance_id: str, request_id: str,
           error: BaseException | None = None) -> None:
    """Record the end of an event in the caller's transaction: Success, or Error with the traceback
    of `error` (which also marks the action's message)."""
    if event_id is None:
        return
    row = session.get(models.InstanceActionEvent, event_id)
    if row is not None:
        row.result = "Error" if error is not None else "Success"
        row.traceback = "".join(tb.format_exception(error)) if error is not None else None
        row.finish_time = utcnow()
    # The action `begin` hung the event on (a primary-key get, from the session's identity map
    # when a second event of the same action finishes in the transaction).
    action = (session.get(models.InstanceAction, row.action_id) if row is not None
              else _action(session, instance_id, request_id))
    if action is not None:
        action.finish_time = utcnow()
        if error is not None:
            action.message = "Error"


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
