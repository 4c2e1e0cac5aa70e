"""The on-disk layout of objects, hidden from the servers and daemons.

    DEVICES/<device>/objects/<partition>/<suffix>/<hash>/<timestamp>.data | .ts | .meta
    DEVICES/<device>/objects/<partition>/hashes.json   (suffix hash cache for the replicator)
    DEVICES/<device>/tmp/                              (uploads in progress)
    DEVICES/<device>/quarantined/objects/<hash>-<n>/   (what the auditor found corrupt)
    DEVICES/<device>/expiring/<delete_at>-<partition>-<hash>   (the expirer's index)

`hash` is the md5 of the object's path with the cluster's secret, `suffix` its last three hex
digits. Metadata (name, ETag, size, content type, user metadata, sysmeta) is JSON in the file's
`user.stratus.meta` extended attribute, so data and metadata are renamed into place together.
The newest `.data` or `.ts` wins; a `.meta` newer than the `.data` replaces its user metadata.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from stratus.object.groupsync import make_durable, make_durable_async
from stratus.object.utils import device_path, has_room, hash_path, libc_function, normalize_timestamp

XATTR = "user.stratus.meta"
# A large upload starts the disk writing every WRITEBACK_BYTES (sync_file_range, no wait), so the
# sync before the rename finds little left to flush. That sync still decides durability.
WRITEBACK_BYTES = 8 * 1024 * 1024
RECLAIM_AGE = 7 * 24 * 3600  # tombstones older than this are removed (all replicas have seen them)
# Space is reserved up front only for bodies larger than this: a small body is one write anyway, and
# its reservation would cost the file system an extra extent change (check_room has checked space).
FALLOCATE_ABOVE = 1024 * 1024
HASHES_FILE = "hashes.json"
INVALID_FILE = "hashes.invalid"
META_KEEP_FROM_DATA = ("name", "X-Timestamp", "Content-Length", "ETag")


def _writeback_starter() -> Callable[[int, int, int], int]:
    """Linux's sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE) (0 when started), or a
    stand-in answering -1 where there is none."""
    call = libc_function("sync_file_range", (ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint))
    if call is None:
        return lambda fd, offset, length: -1

    def start(fd: int, offset: int, length: int) -> int:
        return int(call(fd, offset, length, 2))  # SYNC_FILE_RANGE_WRITE; a failure only means no head start

    return start


start_writeback = _writeback_starter()


class DiskFileError(Exception):
    pass


class DeviceUnavailable(DiskFileError):
    """Missing, unmounted or full device: the server answers 507."""


class Conflict(DiskFileError):
    """A newer (or equal) write is already on disk."""


class Corrupt(DiskFileError):
    """Unreadable metadata or data that does not match it."""


def read_meta(path: Path | str) -> dict[str, str]:
    try:
        raw = os.getxattr(path, XATTR)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP):
            raise Corrupt(f"{path}: no metadata") from exc
        raise
    try:
        meta = json.loads(raw)
    except ValueError as exc:
        raise Corrupt(f"{path}: unreadable metadata") from exc
    if not isinstance(meta, dict):
        raise Corrupt(f"{path}: unreadable metadata")
    return {str(k): str(v) for k, v in meta.items()}


def write_meta(fd: int, meta: dict[str, str]) -> None:
    os.setxattr(fd, XATTR, json.dumps(meta, separators=(",", ":")).encode())


def split_name(filename: str) -> tuple[str, str]:
    """`1700000000.12345.data` -> (timestamp, ".data")."""
    stem, dot, ext = filename.rpartition(".")
    return stem, dot + ext


class DiskFileManager:
    """Finds devices and object files; one per node, shared by the server and the daemons."""

    def __init__(self, devices_dir: Path, *, hash_secret: tuple[str, str], mount_check: bool = False,
                 reserve: int = 0, reclaim_age: float = RECLAIM_AGE) -> None:
        self.devices_dir = Path(devices_dir)
        self.secret = hash_secret
        self.mount_check = mount_check
        self.reserve = reserve
        self.reclaim_age = reclaim_age

    def device(self, device: str) -> Path:
        path = device_path(self.devices_dir, device, self.mount_check)
        if path is None:
            raise DeviceUnavailable(f"device {device!r} is not available")
        return path

    def devices(self) -> list[str]:
        try:
            names = sorted(os.listdir(self.devices_dir))
        except FileNotFoundError:
            return []
        return [n for n in names if device_path(self.devices_dir, n, self.mount_check) is not None]

    def check_room(self, device: str, size: int) -> Path:
        path = self.device(device)
        if not has_room(path, size, self.reserve):
            raise DeviceUnavailable(f"device {device!r} is full")
        return path

    def get(self, device: str, partition: int | str, account: str, container: str, obj: str) -> DiskFile:
        name_hash = hash_path(self.secret, account, container, obj)
        return self.by_hash(device, partition, name_hash)

    def by_hash(self, device: str, partition: int | str, name_hash: str) -> DiskFile:
        dev = self.device(device)
        part_dir = dev / "objects" / str(partition)
        return DiskFile(self, dev, part_dir, name_hash)

    def partitions(self, device: str) -> list[str]:
        try:
            return sorted((p for p in os.listdir(self.device(device) / "objects") if p.isdigit()), key=int)
        except FileNotFoundError:
            return []

    # -- suffix hashes (what the replicator compares) --------------------------------------------
    @contextmanager
    def _locked(self, part_dir: Path, *, wait: bool = True) -> Iterator[None]:
        """The partition's lock (BlockingIOError if another holder has it and `wait` is False)."""
        try:
            lock = open(part_dir / ".lock", "a")  # noqa: SIM115 (closed below)
        except FileNotFoundError:  # the partition's directory went (the replicator moved it away)
            part_dir.mkdir(parents=True, exist_ok=True)
            lock = open(part_dir / ".lock", "a")  # noqa: SIM115
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def invalidate(self, part_dir: Path, suffix: str, *, wait: bool = True) -> bool:
        """Mark the suffix's hash as stale; False (nothing marked) if not `wait` and the lock is held."""
        try:
            with self._locked(part_dir, wait=wait), open(part_dir / INVALID_FILE, "a") as out:
                out.write(suffix + "\n")
        except BlockingIOError:
            return False
        return True

    def get_hashes(self, device: str, partition: int | str, recalculate: list[str] | None = None) -> dict[str, str]:
        """Suffix -> md5 of the file names under it, from the cache, recomputing invalidated suffixes."""
        part_dir = self.device(device) / "objects" / str(partition)
        if not part_dir.is_dir():
            return {}
        with self._locked(part_dir):
            try:
                hashes: dict[str, str | None] = json.loads((part_dir / HASHES_FILE).read_text())
                if not isinstance(hashes, dict):
                    raise ValueError
            except (OSError, ValueError):
                # No cache (or a broken one): every suffix on disk is recomputed.
                hashes = {s: None for s in os.listdir(part_dir) if len(s) == 3}
            try:
                invalid = (part_dir / INVALID_FILE).read_text().split()
            except FileNotFoundError:
                invalid = []
            for suffix in invalid + list(recalculate or []):
                hashes[suffix] = None
            changed = bool(invalid or recalculate)
            for suffix, value in list(hashes.items()):
                if value is None:
                    changed = True
                    digest = self._hash_suffix(part_dir / suffix)
                    if digest is None:
                        del hashes[suffix]
                    else:
                        hashes[suffix] = digest
            if changed:
                tmp = part_dir / (HASHES_FILE + ".tmp")
                tmp.write_text(json.dumps(hashes))
                os.replace(tmp, part_dir / HASHES_FILE)
                (part_dir / INVALID_FILE).unlink(missing_ok=True)
            return {k: v for k, v in hashes.items() if v is not None}

    def _hash_suffix(self, suffix_dir: Path) -> str | None:
        md5 = hashlib.md5(usedforsecurity=False)
        try:
            hash_dirs = sorted(os.listdir(suffix_dir))
        except (FileNotFoundError, NotADirectoryError):
            return None
        for name_hash in hash_dirs:
            files = cleanup_dir(suffix_dir / name_hash, self.reclaim_age)
            if not files:
                _rmdir(suffix_dir / name_hash)
                continue
            md5.update(name_hash.encode())
            for name in files:
                md5.update(name.encode())
        if not _rmdir(suffix_dir):
            return md5.hexdigest()
        return None

    def suffix_files(self, device: str, partition: int | str, suffixes: list[str]) -> list[tuple[str, list[str]]]:
        """(hash, [current file names]) for every object under the given suffixes."""
        part_dir = self.device(device) / "objects" / str(partition)
        out = []
        for suffix in suffixes:
            try:
                hash_dirs = sorted(os.listdir(part_dir / suffix))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for name_hash in hash_dirs:
                files = cleanup_dir(part_dir / suffix / name_hash, self.reclaim_age)
                if files:
                    out.append((name_hash, files))
        return out

    def quarantine(self, df: DiskFile) -> Path:
        target_root = df.device_dir / "quarantined" / "objects"
        target_root.mkdir(parents=True, exist_ok=True)
        target = target_root / df.name_hash
        n = 0
        while target.exists():
            n += 1
            target = target_root / f"{df.name_hash}-{n}"
        os.rename(df.path, target)
        self.invalidate(df.part_dir, df.suffix)
        return target


def _rmdir(path: Path) -> bool:
    try:
        os.rmdir(path)
        return True
    except OSError:
        return False


def cleanup_dir(hash_dir: Path, reclaim_age: float = RECLAIM_AGE) -> list[str]:
    """Remove what newer files make obsolete; return the files that remain, newest first.

    Kept: the newest .data or .ts, and the newest .meta if it is newer than that .data.
    A tombstone older than `reclaim_age` goes too (every replica has had time to see it).
    """
    try:
        names = sorted(os.listdir(hash_dir), reverse=True)
    except (FileNotFoundError, NotADirectoryError):
        return []
    keep: list[str] = []
    meta_seen = False
    base_seen = False
    for name in names:
        stamp, ext = split_name(name)
        obsolete = base_seen or ext not in (".data", ".ts", ".meta") or (ext == ".meta" and meta_seen)
        if not obsolete and ext == ".ts":
            try:
                obsolete = time.time() - float(stamp) > reclaim_age
            except ValueError:
                obsolete = True
            base_seen = True  # even a reclaimed tombstone makes everything older obsolete
        if obsolete:
            try:
                os.unlink(hash_dir / name)
            except OSError:
                pass
            continue
        keep.append(name)
        if ext == ".meta":
            meta_seen = True
        else:
            base_seen = True
            if ext == ".ts" and meta_seen:  # a .meta on a tombstone means nothing
                os.unlink(hash_dir / keep.pop(0))
    return keep


class DiskFile:
    """One object's directory. `open()` reads the current state; `create()` writes a new version."""

    def __init__(self, manager: DiskFileManager, device_dir: Path, part_dir: Path, name_hash: str) -> None:
        self.manager = manager
        self.device_dir = device_dir
        self.part_dir = part_dir
        self.name_hash = name_hash
        self.suffix = name_hash[-3:]
        self.path = part_dir / self.suffix / name_hash
        self.data_file: Path | None = None
        self.timestamp: str | None = None  # of the .data or .ts
        self.deleted = False
        self.metadata: dict[str, str] = {}

    def open(self) -> DiskFile:
        """Read the newest state. After it: `timestamp` is None when nothing is stored."""
        files = cleanup_dir(self.path, self.manager.reclaim_age)
        meta_file = files[0] if files and files[0].endswith(".meta") else None
        base = next((f for f in files if not f.endswith(".meta")), None)
        if base is None:
            return self
        self.timestamp, ext = split_name(base)
        if ext == ".ts":
            self.deleted = True
            self.metadata = {"X-Timestamp": self.timestamp}
            return self
        self.data_file = self.path / base
        self.metadata = read_meta(self.data_file)
        if meta_file is not None:
            update = read_meta(self.path / meta_file)
            kept = {k: v for k, v in self.metadata.items()
                    if k in META_KEEP_FROM_DATA or k.lower().startswith("x-object-sysmeta-")
                    or (k == "Content-Type" and "Content-Type" not in update)}
            kept.update(update)
            kept["X-Timestamp"] = self.metadata["X-Timestamp"]
            kept["X-Meta-Timestamp"] = update.get("X-Timestamp", "")
            self.metadata = kept
        return self

    @property
    def newest(self) -> str | None:
        """The newest timestamp of any write (data, tombstone or metadata)."""
        return self.metadata.get("X-Meta-Timestamp") or self.timestamp

    def size(self) -> int:
        return int(self.metadata.get("Content-Length", "0"))

    def _check_newer(self, timestamp: str) -> None:
        current = DiskFile(self.manager, self.device_dir, self.part_dir, self.name_hash).open()
        if current.timestamp is not None and current.timestamp >= timestamp:
            raise Conflict(current.timestamp)

    @contextmanager
    def create(self, size: int | None = None) -> Iterator[DiskFileWriter]:
        """A temp file on the same device; `writer.put(metadata)` renames it into place."""
        self.manager.check_room(self.device_dir.name, size or 0)
        tmp_dir = self.device_dir / "tmp"
        try:
            fd, tmp_path = tempfile.mkstemp(dir=tmp_dir)
        except FileNotFoundError:  # the device's first upload
            tmp_dir.mkdir(exist_ok=True)
            fd, tmp_path = tempfile.mkstemp(dir=tmp_dir)
        writer = DiskFileWriter(self, fd, Path(tmp_path))
        try:
            if size and size > FALLOCATE_ABOVE:
                try:
                    os.posix_fallocate(fd, 0, size)
                except OSError as exc:
                    if exc.errno == errno.ENOSPC:
                        raise DeviceUnavailable("device is full") from exc
                    # Other errors: a file system without fallocate; the writes will tell.
            yield writer
        finally:
            writer.close()
            if not writer.committed:
                Path(tmp_path).unlink(missing_ok=True)

    def write_tombstone(self, timestamp: str, name: str) -> None:
        """A DELETE; the tombstone keeps the name so the replicator can pass it on."""
        self._write_empty(timestamp, ".ts", {"X-Timestamp": timestamp, "name": name})

    def write_metadata(self, timestamp: str, metadata: dict[str, str]) -> None:
        """A POST: a .meta file whose user metadata replaces the data file's."""
        self._write_empty(timestamp, ".meta", {**metadata, "X-Timestamp": timestamp})

    def _write_empty(self, timestamp: str, ext: str, metadata: dict[str, str]) -> None:
        with self.create(0) as writer:
            writer.put(metadata, ext=ext, timestamp=timestamp)


class DiskFileWriter:
    def __init__(self, df: DiskFile, fd: int, tmp_path: Path) -> None:
        self.df, self.fd, self.tmp_path = df, fd, tmp_path
        self.file: IO[bytes] = os.fdopen(fd, "wb", buffering=0)
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.bytes_written = 0
        self.written_back = 0  # bytes the disk was told to start writing
        self.committed = False

    def write(self, chunk: bytes) -> None:
        self.md5.update(chunk)
        mv = memoryview(chunk)
        while mv:
            n = self.file.write(mv)
            mv = mv[n or 0:]
        self.bytes_written += len(chunk)
        if self.bytes_written - self.written_back >= WRITEBACK_BYTES:
            start_writeback(self.fd, self.written_back, self.bytes_written - self.written_back)
            self.written_back = self.bytes_written

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()

    def put(self, metadata: dict[str, str], *, ext: str = ".data", timestamp: str | None = None) -> None:
        """fsync, attach metadata, rename into the object's directory, drop what it makes obsolete."""
        for fd in self._commit(metadata, ext, timestamp):
            make_durable(fd)
        self.df.manager.invalidate(self.df.part_dir, self.df.suffix)

    async def put_async(self, metadata: dict[str, str], *, ext: str = ".data", timestamp: str | None = None) -> None:
        """`put` from a coroutine: the same steps, with the syncs awaited instead of holding a thread.
        The suffix is invalidated here unless the replicator holds the partition's lock: then on a
        thread, which may wait for it. Cancelled midway, the commit still finishes (blocking the
        loop for what is left): half of one would leave a stale suffix hash to the replicator."""
        df = self.df
        cancelled: asyncio.CancelledError | None = None
        for fd in self._commit(metadata, ext, timestamp):
            if cancelled is None:
                try:
                    await make_durable_async(fd)
                    continue
                except asyncio.CancelledError as exc:
                    cancelled = exc
            make_durable(fd)
        if cancelled is not None:
            df.manager.invalidate(df.part_dir, df.suffix)
            raise cancelled
        if not df.manager.invalidate(df.part_dir, df.suffix, wait=False):
            await asyncio.get_running_loop().run_in_executor(None, df.manager.invalidate, df.part_dir, df.suffix)

    def _commit(self, metadata: dict[str, str], ext: str, timestamp: str | None) -> Iterator[int]:
        """The steps of `put`; each file descriptor yielded must be made durable before the next step."""
        timestamp = normalize_timestamp(timestamp or metadata["X-Timestamp"])
        df = self.df
        if ext != ".meta":
            df._check_newer(timestamp)
        elif df.open().timestamp is None or df.deleted:
            raise Conflict("no object to update")
        if ext == ".data":
            os.ftruncate(self.fd, self.bytes_written)  # fallocate may have reserved more
        write_meta(self.fd, metadata)
        yield self.fd
        self.close()
        df.path.mkdir(parents=True, exist_ok=True)
        target = df.path / f"{timestamp}{ext}"
        os.rename(self.tmp_path, target)
        self.committed = True
        directory = os.open(df.path, os.O_RDONLY)
        try:
            yield directory  # the rename
        finally:
            os.close(directory)
        cleanup_dir(df.path, df.manager.reclaim_age)
        delete_at = metadata.get("X-Delete-At", "")
        if ext != ".ts" and delete_at.isdigit():
            index = df.device_dir / "expiring"
            index.mkdir(exist_ok=True)
            (index / f"{int(delete_at):010d}-{df.part_dir.name}-{df.name_hash}").touch()
