"""What the guest is made of, taken from Debian packages installed on this machine.

The guest is built only from Debian packages (the kernel, busybox-static, dropbear-bin and the
shared libraries dropbear links to), read through dpkg so that a package upgrade changes the recipe
hash and the image is rebuilt.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from stratus.core.errors import StratusError

# The Debian packages the guest is made from (the kernel comes through linux-image-amd64's dependency;
# e2fsprogs gives resize2fs, which grows the root file system to a disk larger than the image).
GUEST_PACKAGES = ("linux-image-amd64", "busybox-static", "dropbear-bin", "e2fsprogs")
# The tools the build runs on this machine, and the Debian package that brings each one.
BUILD_TOOLS = {"mkfs.ext4": "e2fsprogs", "qemu-img": "qemu-utils", "dpkg-query": "dpkg", "ldd": "libc-bin"}


class GuestBuildError(StratusError):
    """The guest image cannot be built on this machine (a package or tool is missing)."""


@dataclass(frozen=True)
class Kernel:
    package: str          # e.g. linux-image-6.1.0-57-amd64
    version: str          # the package version
    release: str          # the module directory name, e.g. 6.1.0-57-amd64
    vmlinuz: Path
    modules_dir: Path


def require_tools() -> None:
    missing = [f"{tool} (Debian package {pkg})" for tool, pkg in BUILD_TOOLS.items() if shutil.which(tool) is None]
    if missing:
        raise GuestBuildError("the guest image build needs " + ", ".join(missing) + ": apt-get install them")


def package_version(package: str) -> str:
    result = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}|${Version}", package],
                            capture_output=True, text=True, check=False)
    status, _, version = result.stdout.partition("|")
    if result.returncode != 0 or not status.startswith("ii"):
        raise GuestBuildError(f"the guest image needs the Debian package {package}: apt-get install {package}")
    return version


def package_files(package: str) -> list[Path]:
    result = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=True)
    return [Path(line) for line in result.stdout.splitlines() if line.startswith("/")]


def kernel() -> Kernel:
    """The kernel package that linux-image-amd64 depends on, and its vmlinuz and module tree."""
    package_version("linux-image-amd64")
    depends = subprocess.run(["dpkg-query", "-W", "-f=${Depends}", "linux-image-amd64"],
                             capture_output=True, text=True, check=True).stdout
    match = re.search(r"(linux-image-[0-9][^\s,(|]*)", depends)
    if match is None:
        raise GuestBuildError(f"cannot tell which kernel linux-image-amd64 depends on: {depends!r}")
    package = match.group(1)
    version = package_version(package)
    files = package_files(package)
    vmlinuz = next((f for f in files if f.name.startswith("vmlinuz-")), None)
    if vmlinuz is None or not vmlinuz.is_file():
        raise GuestBuildError(f"{package} has no vmlinuz")
    release = vmlinuz.name.removeprefix("vmlinuz-")
    modules_dir = Path("/lib/modules") / release
    if not (modules_dir / "modules.dep").is_file():
        raise GuestBuildError(f"{modules_dir}/modules.dep is missing: run depmod {release}")
    return Kernel(package=package, version=version, release=release, vmlinuz=vmlinuz, modules_dir=modules_dir)


def module_load_order(modules_dir: Path, wanted: list[str]) -> list[Path]:
    """The module files for `wanted` (names as modprobe takes them) with their dependencies first.

    Built-in modules (listed in modules.builtin) need no file and are skipped.
    """
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
        by_name[_module_name(path)] = path
    builtin = {_module_name(line) for line in _read_lines(modules_dir / "modules.builtin")}
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in deps.get(path, []):
            visit(dep)
        order.append(path)

    for name in wanted:
        key = name.replace("-", "_")
        if key in by_name:
            visit(by_name[key])
        elif key not in builtin:
            raise GuestBuildError(f"kernel module {name} is neither in {modules_dir}/modules.dep nor built in")
    return [modules_dir / path for path in order]


def _module_name(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    for suffix in (".ko.xz", ".ko.zst", ".ko.gz", ".ko"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def _read_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.is_file() else []


def shared_libraries(binary: Path) -> list[Path]:
    """The shared libraries (and the dynamic loader) `binary` needs, as ldd resolves them here."""
    result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
    if "not a dynamic executable" in result.stdout + result.stderr:
        return []
    if result.returncode != 0:
        raise GuestBuildError(f"ldd {binary} failed: {result.stderr.strip()}")
    libraries: list[Path] = []
    for line in result.stdout.splitlines():
        line = line.strip()
        if "=>" in line:
            target = line.split("=>", 1)[1].split("(")[0].strip()
            if target == "not found" or not target:
                raise GuestBuildError(f"{binary} needs a library that is not installed: {line}")
            libraries.append(Path(target))
        elif line.startswith("/"):
            libraries.append(Path(line.split()[0]))
    return libraries
