"""The on-disk layout: atomic writes, newest wins, tombstones, .meta, suffix hashes, quarantine."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from stratus.object import diskfile
from stratus.object.diskfile import (
    Conflict,
    DeviceUnavailable,
    DiskFile,
    DiskFileManager,
    cleanup_dir,
    read_meta,
)
from stratus.object.utils import hash_path, normalize_timestamp
from tests.loops import run_in_own_thread

SECRET = ("", "test-secret")


@pytest.fixture
def manager(tmp_path: Path) -> DiskFileManager:
    (tmp_path / "d1").mkdir()
    return DiskFileManager(tmp_path, hash_secret=SECRET)


def ts(offset: float = 0.0) -> str:
    return normalize_timestamp(time.time() + offset)


def put(df: DiskFile, data: bytes, timestamp: str, **extra: str) -> None:
    with df.create(len(data)) as writer:
        writer.write(data)
        writer.put({"name": "/a/c/o", "X-Timestamp": timestamp, "Content-Length": str(len(data)),
                    "ETag": writer.md5.hexdigest(), "Content-Type": "text/plain", **extra})


def test_layout_and_metadata_kept_with_the_data(manager: DiskFileManager, tmp_path: Path) -> None:
    df = manager.get("d1", 5, "a", "c", "o")
    stamp = ts()
    put(df, b"hello", stamp, **{"x-object-meta-color": "blue"})
    name_hash = hash_path(SECRET, "a", "c", "o")
    data_file = tmp_path / "d1" / "objects" / "5" / name_hash[-3:] / name_hash / f"{stamp}.data"
    assert data_file.read_bytes() == b"hello"
    assert read_meta(data_file)["x-object-meta-color"] == "blue"
    opened = manager.get("d1", 5, "a", "c", "o").open()
    assert opened.timestamp == stamp and opened.metadata["ETag"] == "5d41402abc4b2a76b9719d911017c592"
    assert os.listdir(tmp_path / "d1" / "tmp") == []


def test_an_unfinished_write_leaves_nothing(manager: DiskFileManager, tmp_path: Path) -> None:
    df = manager.get("d1", 5, "a", "c", "o")
    with pytest.raises(RuntimeError), df.create(10) as writer:
        writer.write(b"half")
        raise RuntimeError("client went away")
    assert manager.get("d1", 5, "a", "c", "o").open().timestamp is None
    assert os.listdir(tmp_path / "d1" / "tmp") == []


def test_newest_wins_and_older_writes_conflict(manager: DiskFileManager) -> None:
    df = manager.get("d1", 5, "a", "c", "o")
    put(df, b"new", ts(10))
    with pytest.raises(Conflict):
        put(manager.get("d1", 5, "a", "c", "o"), b"old", ts())
    with pytest.raises(Conflict):
        manager.get("d1", 5, "a", "c", "o").write_tombstone(ts(), "/a/c/o")
    assert manager.get("d1", 5, "a", "c", "o").open().metadata["Content-Length"] == "3"


def test_tombstone_hides_the_data_and_removes_it(manager: DiskFileManager) -> None:
    df = manager.get("d1", 5, "a", "c", "o")
    put(df, b"x", ts())
    stamp = ts(1)
    manager.get("d1", 5, "a", "c", "o").write_tombstone(stamp, "/a/c/o")
    opened = manager.get("d1", 5, "a", "c", "o").open()
    assert opened.deleted and opened.timestamp == stamp
    assert os.listdir(df.path) == [f"{stamp}.ts"]


def test_meta_replaces_user_metadata_but_keeps_sysmeta(manager: DiskFileManager) -> None:
    df = manager.get("d1", 5, "a", "c", "o")
    put(df, b"x", ts(), **{"x-object-meta-a": "1", "x-object-sysmeta-slo": "yes"})
    manager.get("d1", 5, "a", "c", "o").write_metadata(ts(1), {"x-object-meta-b": "2"})
    meta = manager.get("d1", 5, "a", "c", "o").open().metadata
    assert meta["x-object-meta-b"] == "2" and "x-object-meta-a" not in meta
    assert meta["x-object-sysmeta-slo"] == "yes" and meta["Content-Type"] == "text/plain"


def test_old_tombstones_are_reclaimed(tmp_path: Path) -> None:
    hash_dir = tmp_path / "h"
    hash_dir.mkdir()
    (hash_dir / f"{normalize_timestamp(1000)}.data").touch()
    (hash_dir / f"{normalize_timestamp(2000)}.ts").touch()
    assert cleanup_dir(hash_dir, reclaim_age=3600) == []
    assert os.listdir(hash_dir) == []


def test_suffix_hashes_change_with_writes(manager: DiskFileManager) -> None:
    df = manager.get("d1", 5, "a", "c", "o")
    put(df, b"x", ts())
    first = manager.get_hashes("d1", 5)
    assert list(first) == [df.suffix]
    assert manager.get_hashes("d1", 5) == first  # cached
    manager.get("d1", 5, "a", "c", "o").write_tombstone(ts(1), "/a/c/o")
    assert manager.get_hashes("d1", 5)[df.suffix] != first[df.suffix]


def test_quarantine_moves_the_object_away(manager: DiskFileManager, tmp_path: Path) -> None:
    df = manager.get("d1", 5, "a", "c", "o")
    put(df, b"x", ts())
    before = manager.get_hashes("d1", 5)
    target = manager.quarantine(manager.get("d1", 5, "a", "c", "o"))
    assert target.parent == tmp_path / "d1" / "quarantined" / "objects"
    assert manager.get("d1", 5, "a", "c", "o").open().timestamp is None
    assert manager.get_hashes("d1", 5) != before


def test_missing_device_and_full_device(manager: DiskFileManager, tmp_path: Path) -> None:
    with pytest.raises(DeviceUnavailable):
        manager.get("nope", 1, "a", "c", "o")
    full = DiskFileManager(tmp_path, hash_secret=SECRET, reserve=1 << 62)
    with pytest.raises(DeviceUnavailable), full.get("d1", 1, "a", "c", "o").create(1):
        pass


def test_delete_at_is_indexed_for_the_expirer(manager: DiskFileManager, tmp_path: Path) -> None:
    put(manager.get("d1", 5, "a", "c", "o"), b"x", ts(), **{"X-Delete-At": "1900000000"})
    entries = os.listdir(tmp_path / "d1" / "expiring")
    assert entries == [f"1900000000-5-{hash_path(SECRET, 'a', 'c', 'o')}"]


def test_the_auditor_keeps_to_its_read_rate(manager: DiskFileManager) -> None:
    from stratus.object.auditor import ObjectAuditor

    for i in range(3):
        df = manager.get("d1", 5, "a", "c", f"o{i}")
        with df.create(50_000) as writer:
            writer.write(b"z" * 50_000)
            writer.put({"name": f"/a/c/o{i}", "X-Timestamp": ts(), "Content-Length": "50000",
                        "ETag": writer.md5.hexdigest()})
    started = time.monotonic()
    assert ObjectAuditor(manager, bytes_per_second=300_000).run_once() == {"checked": 3, "quarantined": 0}
    assert time.monotonic() - started >= 0.4  # 150 kB at 300 kB/s


def test_a_large_write_starts_the_disk_writing_as_it_goes(manager: DiskFileManager,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Every WRITEBACK_BYTES the writer asks the kernel to start writing back (the fsync at the
    end then has little left); the data and its checksum are unchanged."""
    started: list[tuple[int, int]] = []
    real = diskfile.start_writeback

    def recording(fd: int, offset: int, length: int) -> int:
        started.append((offset, length))
        return real(fd, offset, length)

    monkeypatch.setattr(diskfile, "start_writeback", recording)
    piece = os.urandom(1024 * 1024)
    df = manager.get("d1", 5, "a", "c", "big")
    with df.create() as writer:
        for _ in range(20):
            writer.write(piece)
        writer.put({"name": "/a/c/big", "X-Timestamp": ts(), "Content-Length": str(writer.bytes_written),
                    "ETag": writer.md5.hexdigest()})
    step = diskfile.WRITEBACK_BYTES
    assert started == [(0, step), (step, step)]
    opened = manager.get("d1", 5, "a", "c", "big").open()
    assert opened.data_file is not None and opened.data_file.read_bytes() == piece * 20


def test_writeback_uses_the_kernel_call(tmp_path: Path) -> None:
    with open(tmp_path / "f", "wb") as out:
        out.write(b"x" * 4096)
        out.flush()
        assert diskfile.start_writeback(out.fileno(), 0, 4096) == 0, "sync_file_range (Linux's libc) is missing"


def put_from_a_coroutine(df: DiskFile, data: bytes, timestamp: str,
                         during: Callable[[asyncio.Task[None]], Awaitable[None]] | None = None) -> None:
    """`put_async` on a loop of its own thread; `during(task)` runs beside the write."""

    async def write() -> None:
        with df.create(len(data)) as writer:
            writer.write(data)
            await writer.put_async({"name": "/a/c/o", "X-Timestamp": timestamp, "Content-Length": str(len(data)),
                                    "ETag": writer.md5.hexdigest(), "Content-Type": "text/plain"})

    async def main() -> None:
        task = asyncio.ensure_future(write())
        if during is not None:
            await during(task)
        await asyncio.gather(task, return_exceptions=True)

    run_in_own_thread(main())


def test_a_write_from_a_coroutine_waits_for_the_replicators_lock(manager: DiskFileManager) -> None:
    df = manager.get("d1", 5, "a", "c", "o")
    put(df, b"x", ts())
    first = manager.get_hashes("d1", 5)

    async def hold_the_lock(task: asyncio.Task[None]) -> None:
        # The replicator's hashing holds the partition's lock on another thread while the write commits.
        released = threading.Event()
        held = threading.Event()

        def replicator() -> None:
            with manager._locked(df.part_dir):
                held.set()
                released.wait(5)

        threading.Thread(target=replicator).start()
        held.wait(5)
        await asyncio.sleep(0.2)
        assert not task.done()  # the suffix is not yet marked stale: the write waits on a thread
        released.set()

    put_from_a_coroutine(manager.get("d1", 5, "a", "c", "o"), b"newer", ts(1), hold_the_lock)
    assert manager.get("d1", 5, "a", "c", "o").open().size() == 5
    assert manager.get_hashes("d1", 5)[df.suffix] != first[df.suffix]


def test_a_cancelled_write_still_commits_whole(manager: DiskFileManager, monkeypatch: pytest.MonkeyPatch) -> None:
    df = manager.get("d1", 5, "a", "c", "o")
    put(df, b"x", ts())
    first = manager.get_hashes("d1", 5)
    waiting = threading.Event()

    async def slow_sync(fd: int) -> None:
        waiting.set()
        await asyncio.sleep(5)

    monkeypatch.setattr(diskfile, "make_durable_async", slow_sync)

    async def cancel_during_the_sync(task: asyncio.Task[None]) -> None:
        while not waiting.is_set():
            await asyncio.sleep(0.01)
        task.cancel()

    put_from_a_coroutine(manager.get("d1", 5, "a", "c", "o"), b"newer", ts(1), cancel_during_the_sync)
    assert manager.get("d1", 5, "a", "c", "o").open().size() == 5
    assert manager.get_hashes("d1", 5)[df.suffix] != first[df.suffix]
