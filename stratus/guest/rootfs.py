"""The root disk: a directory tree of busybox, dropbear and the init scripts, made into an ext4 file
system without mounting anything (mkfs.ext4 -d) and converted to qcow2."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from stratus.guest.debian import GuestBuildError
from stratus.guest.recipe import FILES_DIR, ROOT_SIZE_MIB, Recipe

# Where each file of files/ goes in the guest, and its mode.
_PLACED = {
    "inittab": ("etc/inittab", 0o644),
    "rcS": ("etc/init.d/rcS", 0o755),
    "rcK": ("etc/init.d/rcK", 0o755),
    "network-up": ("etc/init.d/network-up", 0o755),
    "ctrl-alt-del": ("etc/init.d/ctrl-alt-del", 0o755),
    "udhcpc-script": ("etc/udhcpc.script", 0o755),
    # busybox acpid runs the power button's handler from this path under its config directory.
    "acpi-power-button": ("etc/acpi/PWRF/00000080", 0o755),
    "passwd": ("etc/passwd", 0o644),
    "group": ("etc/group", 0o644),
    "shells": ("etc/shells", 0o644),
}


def populate(recipe: Recipe, root: Path) -> None:
    for directory in ("proc", "sys", "dev", "run", "tmp", "mnt", "etc/dropbear", "var/log", "usr/bin", "usr/sbin",
                      "sbin", "bin"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    (root / "root").mkdir(mode=0o700)
    (root / "tmp").chmod(0o1777)
    _install(recipe.busybox, root / "bin/busybox", 0o755)
    for applet in _busybox_applets(recipe.busybox):
        link = root / applet
        if applet == "bin/busybox" or link.exists():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/bin/busybox")
    for program in recipe.programs:
        _install(program, root / program.relative_to("/"), 0o755)
    for library in recipe.libraries:
        _install(library, root / library.relative_to("/"), 0o755)
    for name, (where, mode) in _PLACED.items():
        _install(FILES_DIR / name, root / where, mode)
    (root / "etc/hostname").write_text("stratus-guest\n")
    (root / "etc/resolv.conf").write_text("")
    (root / "etc/stratus-guest-release").write_text(f"recipe={recipe.digest}\nkernel={recipe.kernel.release}\n")


def make_disk(root: Path, raw: Path, qcow2: Path) -> None:
    """ext4 of ROOT_SIZE_MIB from `root`, as a qcow2 file (`raw` is scratch space, removed after)."""
    with raw.open("wb") as f:
        f.truncate(ROOT_SIZE_MIB * 1024 * 1024)
    _run(["mkfs.ext4", "-q", "-F", "-L", "stratus-root", "-m", "0", "-E", "root_owner=0:0", "-d", str(root), str(raw)])
    _run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)])
    raw.unlink()


def _busybox_applets(busybox: Path) -> list[str]:
    """Where each applet lives (bin/sh, sbin/init, usr/bin/wget...), as busybox itself says."""
    result = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True, check=True)
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def _install(source: Path, target: Path, mode: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)  # follows symlinks: the guest gets the library itself
    target.chmod(mode)


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise GuestBuildError(f"{' '.join(command[:2])} failed: {result.stderr.strip() or result.stdout.strip()}")
