"""`build()`: the guest image, made once per recipe and kept in a cache directory."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

from stratus.guest import rootfs
from stratus.guest.image import GuestImage
from stratus.guest.initrd import write_initrd
from stratus.guest.kernel import extract_pvh_vmlinux
from stratus.guest.recipe import CMDLINE, MACHINE, Recipe

MANIFEST = "guest.json"
# Older recipes are kept a while: a process started before an upgrade may still be reading one.
KEEP_RECIPES = 3


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stratus" / "guest"


def build(cache_dir: Path | None = None) -> GuestImage:
    """The guest image for this machine's packages: from the cache when this recipe was built before."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    recipe = Recipe.current()
    target = cache_dir / recipe.digest
    manifest = target / MANIFEST
    if manifest.is_file():
        return GuestImage.load(manifest)
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Builds of the same recipe from several processes (parallel tests, agents) wait for each other.
    with (cache_dir / f".{recipe.digest}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if manifest.is_file():
            return GuestImage.load(manifest)
        scratch = Path(tempfile.mkdtemp(prefix=f".build-{recipe.digest}-", dir=cache_dir))
        try:
            scratch.chmod(0o755)  # QEMU may run as another user: the files must be readable
            guest = _build_into(recipe, scratch, target)
            os.replace(scratch, target)  # the directory appears whole or not at all
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        prune(cache_dir)
    return guest


def prune(cache_dir: Path, keep: int = KEEP_RECIPES) -> list[Path]:
    """Remove all but the `keep` newest built recipes (each holds a ~65 MiB kernel); return what went."""
    built = [entry for entry in cache_dir.iterdir()
             if not entry.name.startswith(".") and (entry / MANIFEST).is_file()]  # not builds in progress
    built.sort(key=lambda entry: (entry / MANIFEST).stat().st_mtime, reverse=True)
    for old in built[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    return built[keep:]


def _build_into(recipe: Recipe, scratch: Path, final: Path) -> GuestImage:
    root = scratch / "root"
    rootfs.populate(recipe, root)
    rootfs.make_disk(root, scratch / "disk.raw", scratch / "disk.qcow2")
    shutil.rmtree(root)
    vmlinux = extract_pvh_vmlinux(recipe.kernel.vmlinuz)
    kernel_name = "vmlinux" if vmlinux is not None else "vmlinuz"
    if vmlinux is not None:
        (scratch / kernel_name).write_bytes(vmlinux)
    else:
        shutil.copyfile(recipe.kernel.vmlinuz, scratch / kernel_name)
    write_initrd(recipe, scratch / "initrd.img")
    guest = GuestImage(disk=final / "disk.qcow2", kernel=final / kernel_name, initrd=final / "initrd.img",
                       cmdline=CMDLINE, machine=MACHINE, recipe_hash=recipe.digest)
    guest.save(scratch / MANIFEST)
    return guest
