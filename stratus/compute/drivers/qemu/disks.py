"""Disks of the qemu driver: base images cached per host, and the qcow2 files instances write.

A base image is downloaded once per host into `<instances>/_base/<image id>` — streamed to a
temp name while its hash is checked against the image service's `os_hash_value` (or `checksum`),
then renamed — and never written afterwards: each root disk is a qcow2 overlay backed by it. A
lock file per image makes concurrent spawns of one image (from any process) download it once,
and keeps pruning from removing a base while a spawn is putting an overlay on it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from stratus.compute.drivers.base import DriverError
from stratus.compute.drivers.qemu.spec import check_id

log = logging.getLogger("stratus.compute.qemu")

# Image disk formats QEMU can back an overlay with (Glance name -> QEMU driver).
QEMU_FORMATS = {"qcow2": "qcow2", "raw": "raw", "ami": "raw", "aki": "raw", "ari": "raw",
                "vmdk": "vmdk", "vdi": "vdi", "vhd": "vpc", "vhdx": "vhdx"}
GIB = 1024**3


class ImageSource(Protocol):
    """The image service as the driver needs it (`stratus.image.client.ImageClient` is one)."""

    def get_image(self, image_id: str) -> dict[str, Any]: ...

    def download(self, image_id: str) -> Iterable[bytes]: ...


@dataclass
class BaseImage:
    image_id: str
    path: Path
    format: str          # QEMU's name of its format
    virtual_size: int    # bytes the guest sees


def qemu_img(*args: str, timeout: float = 600) -> str:
    try:
        done = subprocess.run(["qemu-img", *args], capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise DriverError("qemu-img is not installed on this host") from None
    if done.returncode != 0:
        raise DriverError(f"qemu-img {args[0]} failed: {done.stderr.strip()[-1000:]}")
    return done.stdout


def image_info(path: Path, fmt: str | None = None, *, force_share: bool = False) -> dict[str, Any]:
    args = ["info", "--output=json"] + (["-f", fmt] if fmt else []) + (["-U"] if force_share else [])
    return json.loads(qemu_img(*args, str(path)))  # type: ignore[no-any-return]


def create_overlay(base: BaseImage, path: Path, size: int | None = None) -> None:
    """A qcow2 file backed by `base`, `size` bytes large (at least the base's size)."""
    size = max(size or 0, base.virtual_size)
    qemu_img("create", "-q", "-f", "qcow2", "-b", str(base.path), "-F", base.format, str(path), str(size))


def create_blank(path: Path, size: int) -> None:
    """A sparse qcow2 disk (ephemeral or swap): it takes room only as the guest writes."""
    qemu_img("create", "-q", "-f", "qcow2", str(path), str(size))


def grow(path: Path, size: int) -> None:
    """Grow a (stopped VM's) qcow2 disk to `size` bytes; never shrink it."""
    if image_info(path, "qcow2")["virtual-size"] < size:
        qemu_img("resize", "-q", "-f", "qcow2", str(path), str(size))


def flatten(path: Path, dest: Path, *, force_share: bool = False) -> None:
    """`path` with its whole backing chain, as one standalone qcow2 file at `dest`."""
    qemu_img("convert", "-q", "-f", "qcow2", *(["-U"] if force_share else []), "-O", "qcow2", str(path), str(dest),
             timeout=3600)


def stream_file(path: Path, chunk: int = 1024 * 1024, *, remove: bool = True) -> Iterator[bytes]:
    """A file's bytes; the file is removed once read (or abandoned), when `remove`."""
    try:
        with open(path, "rb") as source:
            while block := source.read(chunk):
                yield block
    finally:
        if remove:
            path.unlink(missing_ok=True)


class ImageCache:
    def __init__(self, base_dir: Path, images: ImageSource | None) -> None:
        self.dir = base_dir
        self.images = images

    def path(self, image_id: str) -> Path:
        return self.dir / check_id(image_id, "image id")

    @contextlib.contextmanager
    def locked(self, image_id: str) -> Iterator[None]:
        """Hold the image's lock (between threads and between processes alike: flock)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / f".{check_id(image_id, 'image id')}.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def fetch(self, image_id: str) -> BaseImage:
        """The cached base image, downloaded first if this host has not got it.
        Call with the image's lock held (`locked`)."""
        path = self.path(image_id)
        meta_path = path.with_name(path.name + ".json")
        if path.exists() and meta_path.exists():
            meta = json.loads(meta_path.read_text())
            os.utime(meta_path)  # last use, for pruning
            return BaseImage(image_id, path, meta["format"], meta["virtual_size"])
        if self.images is None:
            raise DriverError(f"image {image_id} is not cached on this host and no image service is configured")
        image = self.images.get_image(image_id)
        if image.get("status") != "active":
            raise DriverError(f"image {image_id} is {image.get('status')}, not active")
        fmt = QEMU_FORMATS.get(str(image.get("disk_format")))
        if fmt is None:
            raise DriverError(f"image {image_id}: disk format {image.get('disk_format')!r} cannot back a QEMU disk")
        temp = path.with_name(f".{path.name}.part")
        try:
            self._download(image, temp)
            info = image_info(temp, fmt)
            if info.get("backing-filename") or info.get("format-specific", {}).get("data", {}).get("data-file"):
                raise DriverError(f"image {image_id} refers to other files; refused")
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)
        meta_path.write_text(json.dumps({"format": fmt, "virtual_size": info["virtual-size"]}))
        log.info("cached image %s (%s, %d bytes)", image_id, fmt, path.stat().st_size)
        return BaseImage(image_id, path, fmt, int(info["virtual-size"]))

    def _download(self, image: dict[str, Any], temp: Path) -> None:
        algo, expected = image.get("os_hash_algo"), image.get("os_hash_value")
        if not (algo and expected and algo in hashlib.algorithms_available):
            algo, expected = "md5", image.get("checksum")
        if not expected:
            raise DriverError(f"image {image['id']} has no checksum to verify its download against")
        digest = hashlib.new(str(algo))
        with open(temp, "wb") as out:
            for chunk in self.images.download(image["id"]):  # type: ignore[union-attr]
                out.write(chunk)
                digest.update(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != expected:
            raise DriverError(f"image {image['id']}: the download's {algo} does not match the image service's")

    def cached(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return [p.name for p in self.dir.iterdir() if not p.name.startswith(".") and p.suffix != ".json"]

    def prune(self, in_use: Callable[[], set[str]], min_age: float = 0.0) -> list[str]:
        """Remove the cached images that no instance uses and none used for `min_age` seconds.
        `in_use()` is asked again under each image's lock, so a spawn that has just put an overlay
        on an image (under that lock) keeps it. Lock files stay: another process may wait on one."""
        removed = []
        for image_id in self.cached():
            path = self.path(image_id)
            meta_path = path.with_name(path.name + ".json")
            try:
                last_use = meta_path.stat().st_mtime
            except FileNotFoundError:
                last_use = 0.0
            if time.time() - last_use < min_age or image_id in in_use():
                continue
            with self.locked(image_id):
                if image_id in in_use():
                    continue
                path.unlink(missing_ok=True)
                meta_path.unlink(missing_ok=True)
            removed.append(image_id)
        return removed
