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


@contextmanager
def event(db: Database, instance_id: str, request_id: str, name: str, host: str | None = None) -> Iterator[None]:
    """Record event `name` of the request's action around a block: Success, or Error with the
    traceback (and the action's message) if the block raises."""
    with db.transaction() as session:
        action = _action(session, instance_id, request_id)
        if action is None:  # no action to hang it on (the instance is gone): run unrecorded
            event_id = None
        else:
            row = models.InstanceActionEvent(action_id=action.id, event=name, host=host)
            session.add(row)
            session.flush()
            event_id = row.id
    try:
        yield
    except Exception as exc:
        _finish(db, event_id, instance_id, request_id, "Error", tb.format_exc(), str(exc)[:255])
        raise
    _finish(db, event_id, instance_id, request_id, "Success", None, None)


def _finish(db: Database, event_id: int | None, instance_id: str, request_id: str, result: str,
            traceback: str | None, message: str | None) -> None:
    if event_id is None:
        return
    with db.transaction() as session:
        row = session.get(models.InstanceActionEvent, event_id)
        if row is not None:
            row.result, row.traceback, row.finish_time = result, traceback, utcnow()
        action = _action(session, instance_id, request_id)
        if action is not None:
            action.finish_time = utcnow()
            if message is not None:
                action.message = "Error"
