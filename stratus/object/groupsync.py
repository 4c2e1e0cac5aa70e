"""Group commit for the object files: many writers share one `syncfs` per file system.

A small PUT makes two things durable on each of its three devices: the temp file's bytes and
metadata, then its rename into the object's directory. An fsync each costs a journal commit and a
disk cache flush each, and on one disk a burst of small PUTs queues behind them. Here a writer asks
for "everything written so far on this file system is on disk" and waits; one thread per file system
answers all waiting writers with a single `syncfs(2)` that began after they asked. The order stays
write -> durable -> rename -> durable, as with fsync. Where `syncfs` is missing (not Linux), each
writer fsyncs its own file or directory.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from pathlib import Path

from stratus.object.utils import libc_function

_syncfs: Callable[[int], int] | None = libc_function("syncfs", (ctypes.c_int,))


class _Generation:
    """One syncfs and the writers waiting for it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: OSError | None = None


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

    def _run(self) -> None:
        assert _syncfs is not None
        while True:
            self._wanted.wait()
            with self._lock:
                self._wanted.clear()
                current, self._next = self._next, _Generation()
            if _syncfs(self._fd) != 0:
                code = ctypes.get_errno()
                current.error = OSError(code, f"syncfs: {os.strerror(code)}")
            current.done.set()


_committers: dict[int, FileSystemSync] = {}
_committers_lock = threading.Lock()


def make_durable(fd: int) -> None:
    """Everything written so far on `fd`'s file system (`fd`'s data and metadata included) is on disk."""
    if _syncfs is None:
        os.fsync(fd)
        return
    device = os.fstat(fd).st_dev
    committer = _committers.get(device)
    if committer is None:
        with _committers_lock:
            committer = _committers.setdefault(device, FileSystemSync(fd))
    committer.wait()


def make_dir_durable(path: Path) -> None:
    """The directory's entries (a rename into it) are on disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        make_durable(fd)
    finally:
        os.close(fd)
