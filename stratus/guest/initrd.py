"""The initrd: busybox, the kernel modules the root disk needs, and an init that mounts the root."""

from __future__ import annotations

import gzip
import lzma
from pathlib import Path

from stratus.guest.cpio import CpioWriter
from stratus.guest.debian import GuestBuildError
from stratus.guest.recipe import FILES_DIR, Recipe


def module_bytes(path: Path) -> bytes:
    """The module's ELF bytes: busybox insmod here loads uncompressed modules only."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".ko"):
        return data
    raise GuestBuildError(f"kernel module {path} is compressed in a format the build cannot read")


def module_file_name(path: Path) -> str:
    name = path.name
    for suffix in (".xz", ".zst", ".gz"):
        name = name.removesuffix(suffix)
    return name


def write_initrd(recipe: Recipe, target: Path) -> None:
    with target.open("wb") as out:
        archive = CpioWriter(out)
        for directory in ("bin", "dev", "proc", "sys", "newroot", "modules"):
            archive.directory(directory)
        archive.file_from("bin/busybox", recipe.busybox, 0o755)
        archive.symlink("bin/sh", "busybox")
        archive.file_from("init", FILES_DIR / "initrd-init", 0o755)
        names = []
        for module in recipe.modules:
            name = module_file_name(module)
            archive.file(f"modules/{name}", module_bytes(module), 0o644)
            names.append(name)
        archive.file("modules.order", ("\n".join(names) + "\n").encode())
        archive.close()
