"""Image data as files in one directory: written under a temporary name, fsynced, then renamed,
so a crash mid-upload never leaves a half-written image under its real name."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from stratus.core import errors

CHUNK = 1024 * 1024
# Flush to disk every so often while writing: the final fsync then has little left to do, and
# the kernel never sits on gigabytes of dirty pages of one upload.
FLUSH_EVERY = 64 * 1024 * 1024
_PREFIX = ".partial-"


class FileWriter:
    def __init__(self, root: Path, image_id: str) -> None:
        self.final = root / image_id
        self.temporary = root / f"{_PREFIX}{image_id}-{uuid.uuid4().hex}"
        self._handle = open(self.temporary, "xb")  # noqa: SIM115 - closed by commit/abort
        self._unflushed = 0

    def write(self, chunk: bytes) -> None:
        self._handle.write(chunk)
        self._unflushed += len(chunk)
        if self._unflushed >= FLUSH_EVERY:
            self._handle.flush()
            os.fdatasync(self._handle.fileno())
            self._unflushed = 0

    def commit(self) -> str:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self.temporary, self.final)
        directory = os.open(self.final.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return self.final.name

    def abort(self) -> None:
        self._handle.close()
        self.temporary.unlink(missing_ok=True)


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        # Leftovers of uploads interrupted by a crash.
        for leftover in root.glob(f"{_PREFIX}*"):
            leftover.unlink(missing_ok=True)

    def _path(self, location: str) -> Path:
        path = self.root / location
        if path.parent != self.root or location.startswith("."):
            raise errors.BadRequest("invalid image location")
        return path

    def writer(self, image_id: str) -> FileWriter:
        return FileWriter(self.root, image_id)

    def read(self, location: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        try:
            handle = open(self._path(location), "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError as exc:
            raise errors.NotFound("Image data not found in the store.") from exc
        with handle:
            handle.seek(offset)
            remaining = length
            while remaining is None or remaining > 0:
                chunk = handle.read(CHUNK if remaining is None else min(CHUNK, remaining))
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def delete(self, location: str) -> None:
        self._path(location).unlink(missing_ok=True)
