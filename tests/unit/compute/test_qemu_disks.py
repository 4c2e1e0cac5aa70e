"""The qemu driver's disks: base images cached once per host (checked, locked, pruned) and the
qcow2 files instances write, made with the real qemu-img."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stratus.compute.drivers.base import DriverError
from stratus.compute.drivers.qemu import disks


def test_qemu_img_is_installed() -> None:
    assert shutil.which("qemu-img"), "qemu-img is missing: `make install` installs qemu-utils"


class Images:
    """Images as the image service describes and serves them, from local files; counts downloads."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[Path, str]] = {}
        self.downloads = 0
        self.lie_about_hash = False

    def add(self, path: Path, disk_format: str) -> str:
        image_id = str(uuid.uuid4())
        self.files[image_id] = (path, disk_format)
        return image_id

    def get_image(self, image_id: str) -> dict[str, Any]:
        path, fmt = self.files[image_id]
        digest = hashlib.sha512(path.read_bytes() + (b"x" if self.lie_about_hash else b"")).hexdigest()
        return {"id": image_id, "status": "active", "disk_format": fmt, "os_hash_algo": "sha512",
                "os_hash_value": digest}

    def download(self, image_id: str) -> Iterator[bytes]:
        self.downloads += 1
        data = self.files[image_id][0].read_bytes()
        for start in range(0, len(data), 4096):
            time.sleep(0.001)  # slow enough that concurrent fetches overlap
            yield data[start:start + 4096]


def _qcow2(path: Path, size: str = "64M", backing: Path | None = None) -> Path:
    args = ["qemu-img", "create", "-q", "-f", "qcow2"]
    if backing is not None:
        args += ["-b", str(backing), "-F", "raw"]
    subprocess.run([*args, str(path), size], check=True)
    return path


def test_concurrent_spawns_of_one_image_download_it_once(tmp_path: Path) -> None:
    images = Images()
    image_id = images.add(_qcow2(tmp_path / "src.qcow2"), "qcow2")
    cache = disks.ImageCache(tmp_path / "_base", images)
    results: list[disks.BaseImage] = []

    def fetch() -> None:
        with cache.locked(image_id):
            results.append(cache.fetch(image_id))

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert images.downloads == 1
    assert {r.path for r in results} == {tmp_path / "_base" / image_id}
    assert results[0].format == "qcow2" and results[0].virtual_size == 64 * 1024**2
    assert not [p for p in (tmp_path / "_base").iterdir() if p.name.endswith(".part")]


def test_a_download_whose_hash_differs_is_refused_and_not_kept(tmp_path: Path) -> None:
    images = Images()
    image_id = images.add(_qcow2(tmp_path / "src.qcow2"), "qcow2")
    images.lie_about_hash = True
    cache = disks.ImageCache(tmp_path / "_base", images)
    with pytest.raises(DriverError, match="does not match"), cache.locked(image_id):
        cache.fetch(image_id)
    assert cache.cached() == []
    assert not [p for p in (tmp_path / "_base").iterdir() if not p.name.endswith(".lock")]


def test_an_image_with_a_backing_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret").write_bytes(b"\0" * 65536)
    images = Images()
    image_id = images.add(_qcow2(tmp_path / "evil.qcow2", backing=tmp_path / "secret"), "qcow2")
    cache = disks.ImageCache(tmp_path / "_base", images)
    with pytest.raises(DriverError, match="refers to other files"), cache.locked(image_id):
        cache.fetch(image_id)
    assert cache.cached() == []


def test_an_unusable_disk_format_is_refused(tmp_path: Path) -> None:
    images = Images()
    image_id = images.add(_qcow2(tmp_path / "x.iso"), "iso")
    with pytest.raises(DriverError, match="cannot back"):
        disks.ImageCache(tmp_path / "_base", images).fetch(image_id)


def test_root_overlay_is_backed_by_the_base_and_grown_to_the_flavor(tmp_path: Path) -> None:
    base = disks.BaseImage("x", _qcow2(tmp_path / "base", "64M"), "qcow2", 64 * 1024**2)
    disks.create_overlay(base, tmp_path / "disk", 1 * disks.GIB)
    info = disks.image_info(tmp_path / "disk")
    assert info["virtual-size"] == disks.GIB
    assert info["backing-filename"] == str(tmp_path / "base")
    # A flavor disk smaller than the image (or 0) keeps the image's size.
    disks.create_overlay(base, tmp_path / "small", 0)
    assert disks.image_info(tmp_path / "small")["virtual-size"] == 64 * 1024**2
    disks.grow(tmp_path / "small", 128 * 1024**2)
    assert disks.image_info(tmp_path / "small")["virtual-size"] == 128 * 1024**2


def test_blank_disks_are_sparse(tmp_path: Path) -> None:
    disks.create_blank(tmp_path / "disk.eph0", 10 * disks.GIB)
    assert disks.image_info(tmp_path / "disk.eph0")["virtual-size"] == 10 * disks.GIB
    assert (tmp_path / "disk.eph0").stat().st_size < 1024**2


def test_flatten_folds_the_backing_chain_into_one_file_streamed_then_removed(tmp_path: Path) -> None:
    raw = tmp_path / "base.raw"
    raw.write_bytes(b"stratus!" * 8192)
    base = disks.BaseImage("x", raw, "raw", raw.stat().st_size)
    disks.create_overlay(base, tmp_path / "disk")
    disks.flatten(tmp_path / "disk", tmp_path / "snap.qcow2")
    info = disks.image_info(tmp_path / "snap.qcow2")
    assert info["format"] == "qcow2" and "backing-filename" not in info
    out = tmp_path / "out.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(tmp_path / "snap.qcow2"), str(out)], check=True)
    assert out.read_bytes() == raw.read_bytes()
    data = b"".join(disks.stream_file(tmp_path / "snap.qcow2"))
    assert data[:4] == b"QFI\xfb"
    assert not (tmp_path / "snap.qcow2").exists()


def test_prune_removes_only_unused_images_not_used_lately(tmp_path: Path) -> None:
    images = Images()
    kept, unused, fresh = (images.add(_qcow2(tmp_path / f"{n}.qcow2"), "qcow2") for n in range(3))
    cache = disks.ImageCache(tmp_path / "_base", images)
    for image_id in (kept, unused, fresh):
        with cache.locked(image_id):
            cache.fetch(image_id)
    old = time.time() - 7200
    for image_id in (kept, unused):
        os.utime(tmp_path / "_base" / f"{image_id}.json", (old, old))
    assert cache.prune(lambda: {kept}, min_age=3600) == [unused]
    assert sorted(cache.cached()) == sorted([kept, fresh])
    assert sorted(cache.prune(lambda: set())) == sorted([kept, fresh])
    assert cache.cached() == []
