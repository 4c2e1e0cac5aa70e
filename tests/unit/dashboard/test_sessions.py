"""Dashboard sessions: signed ids, rotation at login, idle and token expiry."""

from __future__ import annotations

import pytest

from stratus.dashboard import sessions
from stratus.dashboard.sessions import SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_cookie_loads_its_session_and_a_tampered_one_does_not() -> None:
    store = SessionStore("secret", idle_timeout=600)
    session = store.new()
    cookie = store.cookie_value(session)
    assert store.load(cookie) is session
    session_id, _, signature = cookie.partition(".")
    forged = signature[:-1] + ("B" if signature.endswith("A") else "A")
    assert store.load(f"{session_id}.{forged}") is None
    assert store.load(session_id) is None
    assert store.load(f"{'x' * len(session_id)}.{signature}") is None
    # Another secret (another dashboard, or a restart without a configured key) signs differently.
    assert SessionStore("other", idle_timeout=600).load(cookie) is None


def test_rotate_gives_a_new_id_and_csrf_token_and_ends_the_old() -> None:
    store = SessionStore("secret", idle_timeout=600)
    old = store.new()
    old.flash("error", "kept")
    new = store.rotate(old)
    assert new.id != old.id and new.csrf_token != old.csrf_token
    assert store.load(store.cookie_value(old)) is None
    assert new.take_flashes() == [("error", "kept")]


def test_session_ends_at_token_expiry_and_when_idle() -> None:
    clock = Clock()
    store = SessionStore("secret", idle_timeout=600, clock=clock)
    session = store.new()
    session.token, session.token_expires = "tok", clock.now + 3600
    cookie = store.cookie_value(session)
    clock.now += 500
    assert store.load(cookie) is session  # each request counts as activity
    clock.now += 500
    assert store.load(cookie) is session
    clock.now = session.token_expires
    assert store.load(cookie) is None and len(store) == 0
    idle = store.new()
    clock.now += 601
    assert store.load(store.cookie_value(idle)) is None


def test_stale_anonymous_sessions_are_dropped_as_new_ones_come() -> None:
    clock = Clock()
    store = SessionStore("secret", idle_timeout=60, clock=clock)
    for _ in range(100):
        store.new()
    clock.now += 61
    store.new()
    assert len(store) == 1


def test_a_flood_of_anonymous_sessions_evicts_the_oldest_and_keeps_logged_in_ones(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions, "MAX_ANONYMOUS", 5)
    clock = Clock()
    store = SessionStore("secret", idle_timeout=600, clock=clock)
    user = store.new()
    user.token, user.token_expires = "tok", clock.now + 3600
    made = []
    for _ in range(20):
        clock.now += 1
        made.append(store.new())
    assert len(store) == 6
    assert store.load(store.cookie_value(user)) is user
    assert store.load(store.cookie_value(made[-1])) is made[-1]
    assert store.load(store.cookie_value(made[0])) is None
