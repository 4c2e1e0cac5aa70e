"""Revoked tokens: events kept in memory so that validation needs no database query.

An event revokes every token issued at or before `issued_before` whose fields match all of the
event's non-null fields. Other processes' events are read back at most every `refresh` seconds.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from stratus.core.db import Database, utcnow
from stratus.identity.models import RevocationEvent
from stratus.identity.tokens import TokenPayload

FIELDS = ("audit_id", "audit_chain_id", "user_id", "project_id", "domain_id", "app_cred_id")


@dataclass(frozen=True)
class Event:
    issued_before: dt.datetime
    audit_id: str | None = None
    audit_chain_id: str | None = None
    user_id: str | None = None
    project_id: str | None = None
    domain_id: str | None = None
    app_cred_id: str | None = None

    def key(self) -> tuple[str, str]:
        for name in FIELDS:
            value = getattr(self, name)
            if value is not None:
                return name, value
        raise ValueError("a revocation event needs at least one field")

    def matches(self, token: dict[str, str | None], issued_at: dt.datetime) -> bool:
        if issued_at > self.issued_before:
            return False
        return all(getattr(self, name) in (None, token[name]) for name in FIELDS)


def _token_fields(p: TokenPayload) -> dict[str, str | None]:
    return {"audit_id": p.audit_ids[0], "audit_chain_id": p.audit_chain_id, "user_id": p.user_id,
            "project_id": p.project_id, "domain_id": p.domain_id, "app_cred_id": p.app_cred_id}


class RevocationList:
    def __init__(self, db: Database, *, refresh: float, token_lifetime: int) -> None:
        self.db = db
        self.refresh = refresh
        self.token_lifetime = dt.timedelta(seconds=token_lifetime)
        self._events: dict[tuple[str, str], list[Event]] = {}
        self._last_id = 0
        self._loaded_at = 0.0
        self._lock = threading.Lock()
        # Called with each event once its transaction commits (e.g. to tell token caches elsewhere).
        self.listeners: list[Callable[[Event], None]] = []
        self._unannounced: list[Event] = []

    def revoke(self, session: Session, **fields: str | None) -> None:
        """Record a revocation in the caller's transaction (so the change that causes it and the
        revocation commit together); this process honours it at once, the others within `refresh`.
        """
        event = Event(issued_before=utcnow(), **fields)
        session.add(RevocationEvent(issued_before=event.issued_before, **fields))
        self._add(event)
        with self._lock:
            self._unannounced.append(event)

    def announce(self) -> None:
        """Tell the listeners about events recorded since the last call (after their commit)."""
        with self._lock:
            events, self._unannounced = self._unannounced, []
        for event in events:
            for listener in self.listeners:
                listener(event)

    def _add(self, event: Event) -> None:
        with self._lock:
            bucket = self._events.setdefault(event.key(), [])
            if event not in bucket:  # our own events come back from the database on reload
                bucket.append(event)

    def load(self) -> None:
        """Read events written since the last load (by any process), dropping expired ones."""
        cutoff = utcnow() - self.token_lifetime
        with self.db.transaction() as session:
            rows = session.scalars(
                sa.select(RevocationEvent).where(RevocationEvent.id > self._last_id,
                                                 RevocationEvent.issued_before >= cutoff)
                .order_by(RevocationEvent.id)).all()
        for row in rows:
            self._add(Event(row.issued_before, **{name: getattr(row, name) for name in FIELDS}))
            self._last_id = max(self._last_id, row.id)
        with self._lock:
            for key in list(self._events):
                kept = [e for e in self._events[key] if e.issued_before >= cutoff]
                if kept:
                    self._events[key] = kept
                else:
                    del self._events[key]
        self._loaded_at = time.monotonic()

    def needs_refresh(self) -> bool:
        return time.monotonic() - self._loaded_at >= self.refresh

    def is_revoked(self, payload: TokenPayload) -> bool:
        fields = _token_fields(payload)
        for name in FIELDS:
            value = fields[name]
            if value is None:
                continue
            for event in self._events.get((name, value), ()):
                if event.matches(fields, payload.issued_at):
                    return True
        return False
