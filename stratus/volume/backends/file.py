"""The file backend: one sparse raw or qcow2 file per volume under a storage directory, made and
changed with `qemu-img`. Snapshots are full (sparse) copies, so a volume and its snapshots never
depend on each other's files.

Layout: `volume-<id>` and `snapshot-<id>` (the format is the configured one); anything being made
is `<name>.part` until it is complete and renamed, so a crash never leaves a half-made volume
under its real name.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from stratus.volume.backends.base import BackendError, Capacity

log = logging.getLogger("stratus.volume.file")

GIB = 1024**3
_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_CHUNK = 1024 * 1024
# Formats `qemu-img convert` may read an image from; anything else is refused, never guessed.
_IMAGE_FORMATS = {"raw", "qcow2", "vmdk", "vdi", "vhd", "vhdx", "iso"}
_QEMU_NAMES = {"vhd": "vpc", "iso": "raw"}


def _checked_id(value: str) -> str:
    # Ids become file names: only a UUID may.
    if not _ID.fullmatch(value):
        raise BackendError(f"not a volume or snapshot id: {value!r}")
    return value


def _run(*args: str) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=3600, check=False)
    except FileNotFoundError as exc:
        raise BackendError(f"{args[0]} is not installed (Debian package qemu-utils)") from exc
    if done.returncode != 0:
        raise BackendError(f"{' '.join(args[:2])} failed: {done.stderr.strip()[:200]}")
    return done.stdout


class FileBackend:
    name = "file"

    def __init__(self, root: Path, file_format: str = "raw", capacity_gb: int = 0) -> None:
        self.root = root
        self.format = file_format
        self.capacity_gb = capacity_gb
        root.mkdir(parents=True, exist_ok=True)

    # --- what is here -----------------------------------------------------------------------

    def path(self, volume_id: str) -> Path:
        return self.root / f"volume-{_checked_id(volume_id)}"

    def _snapshot_path(self, snapshot_id: str) -> Path:
        return self.root / f"snapshot-{_checked_id(snapshot_id)}"

    def disk_format(self) -> str:
        return self.format

    def capacity(self) -> Capacity:
        usage = shutil.disk_usage(self.root)
        if self.capacity_gb:
            used = sum(entry.stat().st_blocks * 512 for entry in self.root.iterdir() if entry.is_file())
            return Capacity(float(self.capacity_gb), max(0.0, self.capacity_gb - used / GIB))
        return Capacity(usage.total / GIB, usage.free / GIB)

    def _ids(self, prefix: str) -> set[str]:
        return {entry.name[len(prefix):] for entry in self.root.iterdir()
                if entry.name.startswith(prefix) and _ID.fullmatch(entry.name[len(prefix):])}

    def volumes(self) -> set[str]:
        return self._ids("volume-")

    def snapshots(self) -> set[str]:
        return self._ids("snapshot-")

    def cleanup_partials(self) -> list[str]:
        """Remove what a crash left half-made; the names removed."""
        removed = []
        for entry in self.root.iterdir():
            if entry.name.endswith(".part") or entry.name.startswith(".download-"):
                entry.unlink(missing_ok=True)
                removed.append(entry.name)
        return removed

    # --- making -----------------------------------------------------------------------------

    def _publish(self, part: Path, final: Path) -> None:
        """Make a complete file visible under its real name (atomic, durable)."""
        with open(part, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(part, final)
        dir_fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _part(self, final: Path) -> Path:
        if final.exists():
            raise BackendError(f"{final.name} exists already")
        return final.with_name(final.name + ".part")

    def create(self, volume_id: str, size_gb: int) -> None:
        final = self.path(volume_id)
        part = self._part(final)
        _run("qemu-img", "create", "-q", "-f", self.format, str(part), f"{size_gb}G")
        self._publish(part, final)

    def _convert_in(self, source: Path, source_format: str, final: Path, size_gb: int) -> None:
        """Copy `source` into a new volume file of at least `size_gb` (sparse, in our format)."""
        part = self._part(final)
        try:
            _run("qemu-img", "convert", "-q", "-f", source_format, "-O", self.format, str(source), str(part))
            virtual = self.virtual_size(part)
            if virtual > size_gb * GIB:
                raise BackendError(f"the source is {virtual} bytes, larger than the volume's {size_gb} GiB")
            if virtual < size_gb * GIB:
                _run("qemu-img", "resize", "-q", "-f", self.format, str(part), f"{size_gb}G")
            self._publish(part, final)
        except BaseException:
            part.unlink(missing_ok=True)
            raise

    def virtual_size(self, path: Path) -> int:
        import json

        info = json.loads(_run("qemu-img", "info", "--output=json", "-f", self.format, str(path)))
        return int(info["virtual-size"])

    def create_from_image(self, volume_id: str, size_gb: int, chunks: Iterable[bytes],
                          image_format: str = "raw") -> None:
        if image_format not in _IMAGE_FORMATS:
            raise BackendError(f"cannot make a volume from an image in format {image_format!r}")
        fd, name = tempfile.mkstemp(prefix=".download-", dir=self.root)
        download = Path(name)
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
            # The image service checked the format; qemu-img is told it, never left to guess.
            self._convert_in(download, _QEMU_NAMES.get(image_format, image_format), self.path(volume_id), size_gb)
        finally:
            download.unlink(missing_ok=True)

    def create_from_snapshot(self, volume_id: str, snapshot_id: str, size_gb: int) -> None:
        source = self._snapshot_path(snapshot_id)
        if not source.exists():
            raise BackendError(f"snapshot {snapshot_id} is not on this host")
        self._convert_in(source, self.format, self.path(volume_id), size_gb)

    def clone(self, volume_id: str, source_id: str, size_gb: int) -> None:
        source = self.path(source_id)
        if not source.exists():
            raise BackendError(f"volume {source_id} is not on this host")
        self._convert_in(source, self.format, self.path(volume_id), size_gb)

    def extend(self, volume_id: str, size_gb: int) -> None:
        path = self.path(volume_id)
        if not path.exists():
            raise BackendError(f"volume {volume_id} is not on this host")
        _run("qemu-img", "resize", "-q", "-f", self.format, str(path), f"{size_gb}G")

    def delete(self, volume_id: str) -> None:
        self.path(volume_id).unlink(missing_ok=True)

    def create_snapshot(self, snapshot_id: str, volume_id: str) -> None:
        source = self.path(volume_id)
        if not source.exists():
            raise BackendError(f"volume {volume_id} is not on this host")
        final = self._snapshot_path(snapshot_id)
        part = self._part(final)
        try:
            _run("qemu-img", "convert", "-q", "-f", self.format, "-O", self.format, str(source), str(part))
            self._publish(part, final)
        except BaseException:
            part.unlink(missing_ok=True)
            raise

    def delete_snapshot(self, snapshot_id: str) -> None:
        self._snapshot_path(snapshot_id).unlink(missing_ok=True)

    def read_as(self, volume_id: str, disk_format: str) -> Iterator[bytes]:
        """The volume's content as an image of `disk_format` (raw or qcow2), streamed."""
        if disk_format not in ("raw", "qcow2"):
            raise BackendError(f"cannot upload a volume as {disk_format!r} (raw or qcow2)")
        source = self.path(volume_id)
        if not source.exists():
            raise BackendError(f"volume {volume_id} is not on this host")
        fd, name = tempfile.mkstemp(prefix=".download-", dir=self.root)
        os.close(fd)
        out = Path(name)
        try:
            _run("qemu-img", "convert", "-q", "-f", self.format, "-O", disk_format, str(source), str(out))
            with open(out, "rb") as handle:
                while chunk := handle.read(_CHUNK):
                    yield chunk
        finally:
            out.unlink(missing_ok=True)
