"""Group commit: every writer returns only after a syncfs that began after it asked, writers that
ask together share syncs, and a failed sync reaches the writers that waited for it."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from stratus.object import groupsync
from tests.loops import run_in_own_thread


class RecordingSyncfs:
    """Stands in for the system call: records when each call began and ended."""

    def __init__(self, seconds: float = 0.01, result: int = 0) -> None:
        self.seconds, self.result = seconds, result
        self.calls: list[tuple[float, float]] = []

    def __call__(self, fd: int) -> int:
        began = time.monotonic()
        time.sleep(self.seconds)
        self.calls.append((began, time.monotonic()))
        return self.result


def install(monkeypatch: pytest.MonkeyPatch, fake: RecordingSyncfs) -> RecordingSyncfs:
    monkeypatch.setattr(groupsync, "_syncfs", fake)
    monkeypatch.setattr(groupsync, "_committers", {})
    return fake


@pytest.fixture
def fake_syncfs(monkeypatch: pytest.MonkeyPatch) -> RecordingSyncfs:
    return install(monkeypatch, RecordingSyncfs())


@pytest.fixture
def failing_syncfs(monkeypatch: pytest.MonkeyPatch) -> RecordingSyncfs:
    return install(monkeypatch, RecordingSyncfs(result=-1))


def assert_each_waited_for_a_later_sync(asked_and_returned: list[tuple[float, float]], fake: RecordingSyncfs) -> None:
    for asked, returned in asked_and_returned:
        assert any(asked <= began and ended <= returned for began, ended in fake.calls)


def test_each_writer_waits_for_a_sync_that_began_after_it_asked(fake_syncfs: RecordingSyncfs,
                                                                tmp_path: Path) -> None:
    asked_and_returned: list[tuple[float, float]] = []
    lock = threading.Lock()

    def writer() -> None:
        fd = os.open(tmp_path, os.O_RDONLY)
        try:
            for _ in range(5):
                asked = time.monotonic()
                groupsync.make_durable(fd)
                with lock:
                    asked_and_returned.append((asked, time.monotonic()))
        finally:
            os.close(fd)

    threads = [threading.Thread(target=writer) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(asked_and_returned) == 80
    assert_each_waited_for_a_later_sync(asked_and_returned, fake_syncfs)
    # 80 requests from 16 writers at once are answered by far fewer syncs.
    assert len(fake_syncfs.calls) <= 40


def test_a_failed_sync_raises_in_its_waiters(failing_syncfs: RecordingSyncfs, tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        with pytest.raises(OSError, match="syncfs"):
            groupsync.make_durable(fd)
    finally:
        os.close(fd)


def test_real_syncfs_or_fsync_on_this_machine(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"x" * 4096)
    with open(path, "rb") as handle:
        groupsync.make_durable(handle.fileno())
        run_in_own_thread(groupsync.make_durable_async(handle.fileno()))


def test_without_syncfs_each_writer_fsyncs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    synced: list[int] = []
    monkeypatch.setattr(groupsync, "_syncfs", None)
    monkeypatch.setattr(groupsync.os, "fsync", synced.append)
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        groupsync.make_durable(fd)
    finally:
        os.close(fd)
    assert synced == [fd]


def test_coroutines_share_syncs_with_each_other_and_with_threads(fake_syncfs: RecordingSyncfs,
                                                                 tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY)

    async def one() -> tuple[float, float]:
        asked = time.monotonic()
        await groupsync.make_durable_async(fd)
        return asked, time.monotonic()

    async def many() -> list[tuple[float, float]]:
        blocking = asyncio.get_running_loop().run_in_executor(None, groupsync.make_durable, fd)
        results = await asyncio.gather(*[one() for _ in range(40)])
        await blocking
        return list(results)

    try:
        asked_and_returned = run_in_own_thread(many())
    finally:
        os.close(fd)
    assert len(asked_and_returned) == 40
    assert_each_waited_for_a_later_sync(asked_and_returned, fake_syncfs)
    assert len(fake_syncfs.calls) <= 3


def test_a_failed_sync_raises_in_its_coroutines(failing_syncfs: RecordingSyncfs, tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY)

    async def wait() -> str:
        try:
            await groupsync.make_durable_async(fd)
        except OSError as exc:
            return str(exc)
        return "no error"

    try:
        assert "syncfs" in run_in_own_thread(wait())
    finally:
        os.close(fd)


def test_a_cancelled_coroutine_does_not_break_the_next_sync(fake_syncfs: RecordingSyncfs, tmp_path: Path) -> None:
    fake_syncfs.seconds = 0.05
    fd = os.open(tmp_path, os.O_RDONLY)

    async def cancel_one_then_wait() -> int:
        waiter = asyncio.ensure_future(groupsync.make_durable_async(fd))
        await asyncio.sleep(0.01)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        await groupsync.make_durable_async(fd)
        return len(fake_syncfs.calls)

    try:
        assert run_in_own_thread(cancel_one_then_wait()) >= 2
    finally:
        os.close(fd)
