"""Server-side sessions: the browser holds only a signed random id; the token stays here.

A session starts anonymous (it carries the CSRF token of the login form), becomes a user's at login
under a new id (so an id planted before login is worth nothing), and ends at logout, when its token
expires, or after `idle_timeout` seconds without a request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

COOKIE_NAME = "stratus_session"
# Anonymous sessions (one per visit to the login form) kept at most; past it the oldest go first, so
# a flood of visits cannot fill the memory. Logged-in sessions are never evicted this way.
MAX_ANONYMOUS = 10_000


@dataclass
class Session:
    id: str
    csrf_token: str
    last_seen: float
    token: str = ""
    token_expires: float = 0.0  # epoch seconds
    user: dict[str, Any] = field(default_factory=dict)
    project: dict[str, Any] = field(default_factory=dict)
    roles: list[str] = field(default_factory=list)
    catalog: list[dict[str, Any]] = field(default_factory=list)
    projects: list[dict[str, Any]] = field(default_factory=list)
    # Messages shown once on the next page ("level", "text").
    flashes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def logged_in(self) -> bool:
        return bool(self.token)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def flash(self, level: str, text: str) -> None:
        self.flashes.append((level, text))

    def take_flashes(self) -> list[tuple[str, str]]:
        out, self.flashes = self.flashes, []
        return out


class SessionStore:
    """Sessions in memory, keyed by id; cookies are `id.signature` (HMAC-SHA256 of the id)."""

    def __init__(self, secret: str, *, idle_timeout: float, clock: Callable[[], float] = time.time) -> None:
        self._key = hashlib.sha256(b"stratus-dashboard-session:" + secret.encode()).digest()
        self._sessions: dict[str, Session] = {}
        self.idle_timeout = idle_timeout
        self.clock = clock

    def _sign(self, session_id: str) -> str:
        mac = hmac.new(self._key, session_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def cookie_value(self, session: Session) -> str:
        return f"{session.id}.{self._sign(session.id)}"

    def new(self) -> Session:
        self._expire_old()
        session = Session(id=secrets.token_urlsafe(32), csrf_token=secrets.token_urlsafe(32),
                          last_seen=self.clock())
        self._sessions[session.id] = session
        return session

    def load(self, cookie: str | None) -> Session | None:
        """The live session the cookie names, or None (bad signature, unknown, idle or expired)."""
        if not cookie or "." not in cookie:
            return None
        session_id, _, signature = cookie.partition(".")
        if not hmac.compare_digest(signature, self._sign(session_id)):
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self.clock()
        if now - session.last_seen > self.idle_timeout or (session.logged_in and now >= session.token_expires):
            self.end(session)
            return None
        session.last_seen = now
        return session

    def rotate(self, old: Session) -> Session:
        """A fresh id and CSRF token for what `old` held (at login); `old` ends."""
        self.end(old)
        session = self.new()
        session.flashes = old.flashes
        return session

    def end(self, session: Session) -> None:
        self._sessions.pop(session.id, None)

    def __len__(self) -> int:
        return len(self._sessions)

    def _expire_old(self) -> None:
        # Anonymous sessions are made by every visit to the login page: drop the stale ones as we go.
        now = self.clock()
        stale = [sid for sid, s in self._sessions.items()
                 if now - s.last_seen > self.idle_timeout or (s.logged_in and now >= s.token_expires)]
        for sid in stale:
            del self._sessions[sid]
        anonymous = [s for s in self._sessions.values() if not s.logged_in]
        if len(anonymous) >= MAX_ANONYMOUS:
            anonymous.sort(key=lambda s: s.last_seen)
            for session in anonymous[:len(anonymous) - MAX_ANONYMOUS + 1]:
                del self._sessions[session.id]
