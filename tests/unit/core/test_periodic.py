"""Periodic work: passes come every interval, a failing pass does not end them, stop ends them."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest

from stratus.core.errors import BusTimeout
from stratus.core.periodic import Periodic


def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_passes_repeat_every_interval_and_stop_ends_them() -> None:
    passes: list[float] = []
    work = Periodic("test-periodic", lambda: passes.append(time.monotonic()), 0.05)
    started = time.monotonic()
    work.start()
    _wait_for(lambda: len(passes) >= 3)
    work.stop()
    count = len(passes)
    time.sleep(0.2)
    assert len(passes) == count
    assert passes[0] - started >= 0.04  # not at once: after one interval
    assert not any(t.name == "test-periodic" for t in threading.enumerate())


def test_at_once_runs_the_first_pass_without_waiting() -> None:
    ran = threading.Event()
    work = Periodic("test-at-once", ran.set, 60.0, at_once=True)
    work.start()
    try:
        assert ran.wait(2.0)
    finally:
        work.stop()


def test_a_failing_pass_is_logged_and_the_next_one_still_runs(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def work() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise BusTimeout("no answer to compute-conductor.report_state within 60 s")
        if len(calls) == 2:
            raise ValueError("a bug")

    periodic = Periodic("test-failing", work, 0.02)
    with caplog.at_level(logging.WARNING, logger="stratus.periodic"):
        periodic.start()
        _wait_for(lambda: len(calls) >= 3)
        periodic.stop()
    failures = [r for r in caplog.records if r.name == "stratus.periodic"]
    assert [r.getMessage() for r in failures[:2]] == [
        "test-failing failed: no answer to compute-conductor.report_state within 60 s", "test-failing failed: a bug"]
    # The peer being away is said in a line; an unexpected error comes with its traceback.
    assert not failures[0].exc_info and failures[1].exc_info


def test_it_starts_again_after_a_stop() -> None:
    passes: list[int] = []
    work = Periodic("test-restart", lambda: passes.append(1), 0.02)
    work.start()
    _wait_for(lambda: len(passes) >= 1)
    work.stop()
    count = len(passes)
    work.start()
    _wait_for(lambda: len(passes) > count)
    work.stop()
