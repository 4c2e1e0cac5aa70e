"""Group commit for the object files: many writers share one `syncfs` per file system.

A small PUT makes two things durable on each of its three devices: the temp file's bytes and
metadata, then its rename into the object's directory. An fsync each costs a journal commit and a
disk cache flush each, and on one disk a burst of small PUTs queues behind them. Here a writer asks
for "everything written so far on this file system is on disk" and waits; one thread per file system
answers all waiting writers with a single `syncfs(2)` that began after they asked. The order stays
write -> durable -> rename -> durable, as with fsync. Where `syncfs` is missing (not Linux), each
writer fsyncs its own file or directory.

A writer on an event loop awaits the same sync (`make_durable_async`) instead of parking a thread.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import threading
from collections.abc import Callable

from stratus.object.utils import libc_function

_syncfs: Callable[[int], int] | None = libc_function("syncfs", (ctypes.c_int,))


class _Generation:
    """One syncfs and the writers waiting for it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: OSError | None = None
        self.futures: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def finish(self, error: OSError | None) -> None:
        self.error = error
        self.done.set()
        for loop, future in self.futures:
            loop.call_soon_threadsafe(_settle, future, error)


def _settle(future: asyncio.Future[None], error: OSError | None) -> None:
    if future.done():  # its waiter was cancelled
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class FileSystemSync:
    """One file system's committer: `wait()` returns once a syncfs that started after the call
    has finished (or raises its error)."""

    def __init__(self, fd: int) -> None:
        self._fd = os.dup(fd)  # any open file of the file system names it to syncfs
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        self._next = _Generation()  # the sync that begins next covers everything written before it
        threading.Thread(target=self._run, name="object-syncfs", daemon=True).start()

    def wait(self) -> None:
        with self._lock:
            generation = self._next
        self._wanted.set()
        generation.done.wait()
        if generation.error is not None:
            raise generation.error

    def wait_async(self) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            self._next.futures.append((loop, future))
        self._wanted.set()
        return future

    def _run(self) -> None:
        assert _syncfs is not None
        while True:
            self._wanted.wait()
            with self._lock:
                self._wanted.clear()
                current, self._next = self._next, _Generation()
            error = None
            if _syncfs(self._fd) != 0:
                code = ctypes.get_errno()
                error = OSError(code, f"syncfs: {os.strerror(code)}")
            current.finish(error)


_committers: dict[int, FileSystemSync] = {}
_committers_lock = threading.Lock()


def _committer(fd: int) -> FileSystemSync:
    device = os.fstat(fd).st_dev
    committer = _committers.get(device)
    if committer is None:
        with _committers_lock:
            committer = _committers.setdefault(device, FileSystemSync(fd))
    return committer


def make_durable(fd: int) -> None:
    """Everything written so far on `fd`'s file system (`fd`'s data and metadata included) is on disk."""
    if _syncfs is None:
        os.fsync(fd)
    else:
        _committer(fd).wait()


async def make_durable_async(fd: int) -> None:
    """`make_durable` for a coroutine: the event loop goes on while the sync runs."""
    if _syncfs is None:
        await asyncio.get_running_loop().run_in_executor(None, os.fsync, fd)
    else:
        await _committer(fd).wait_async()

