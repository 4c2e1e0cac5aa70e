"""The recipe of the guest image: its inputs, and the hash that names the cached result."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from stratus.guest import debian

FILES_DIR = Path(__file__).with_name("files")
# The modules of this package whose code shapes the image: a change to them is a new recipe.
_BUILDER_SOURCES = ("recipe.py", "rootfs.py", "initrd.py", "cpio.py", "debian.py", "kernel.py", "build.py")

# The drivers the initrd loads (the Debian kernel has them as modules): the virtio PCI transport,
# disk, NIC and entropy source (with a virtio-rng device the first boot's SSH host key needs no
# wait for the kernel's random pool), ext4 (its checksums need crc32c: the generic one, because TCG's default CPU has no
# SSE4.2 for crc32c-intel), and the ACPI power button with evdev so acpid sees QMP system_powerdown.
KERNEL_MODULES = ["virtio_pci", "virtio_mmio", "virtio_blk", "virtio_net", "virtio_rng", "crc32c_generic", "ext4",
                  "button", "evdev"]

# The kernel command line. Besides the console and root it turns off work a small VM does not need,
# which matters most under TCG where every instruction is emulated: no CPU-bug mitigations, no
# crypto self-tests, no audit, no probing of the PS/2 mouse; a panic powers off at once (QEMU runs
# with -no-reboot) instead of hanging.
CMDLINE = ("console=ttyS0 root=/dev/vda rw quiet panic=-1 mitigations=off cryptomgr.notests audit=0 "
           "i8042.noaux tsc=reliable no_timer_check random.trust_cpu=on")
MACHINE = "q35"
# Virtual size of the root file system; the qcow2 file holds only what is used.
ROOT_SIZE_MIB = 128


@dataclass(frozen=True)
class Recipe:
    kernel: debian.Kernel
    busybox: Path
    programs: list[Path]                   # dropbear, dropbearkey, resize2fs: dynamically linked
    libraries: list[Path]                  # their shared libraries and the loader
    modules: list[Path]                    # kernel module files in load order
    versions: dict[str, str] = field(default_factory=dict)
    digest: str = ""

    @classmethod
    def current(cls) -> Recipe:
        """Read this machine's packages; raises GuestBuildError when one is missing."""
        debian.require_tools()
        versions = {package: debian.package_version(package) for package in debian.GUEST_PACKAGES}
        kernel = debian.kernel()
        versions[kernel.package] = kernel.version
        busybox = Path("/bin/busybox")
        if busybox not in debian.package_files("busybox-static"):
            raise debian.GuestBuildError("busybox-static does not ship /bin/busybox")
        programs = [_program("dropbear-bin", "dropbear"), _program("dropbear-bin", "dropbearkey"),
                    _program("e2fsprogs", "resize2fs")]
        libraries = sorted({lib for program in programs for lib in debian.shared_libraries(program)})
        modules = debian.module_load_order(kernel.modules_dir, KERNEL_MODULES)
        recipe = cls(kernel=kernel, busybox=busybox, programs=programs, libraries=libraries, modules=modules,
                     versions=versions)
        return cls(**{**recipe.__dict__, "digest": recipe._digest()})

    def _digest(self) -> str:
        h = hashlib.sha256()
        description = {"programs": [str(p) for p in self.programs], "versions": self.versions,
                       "release": self.kernel.release, "cmdline": CMDLINE,
                       "machine": MACHINE, "modules": [str(m) for m in self.modules],
                       "root_size_mib": ROOT_SIZE_MIB}
        h.update(json.dumps(description, sort_keys=True).encode())
        # Shared libraries come from packages not named above (libc6, zlib1g, ...): hash their bytes.
        for path in self.libraries:
            h.update(str(path).encode())
            h.update(hashlib.sha256(path.read_bytes()).digest())
        for name in sorted(os.listdir(FILES_DIR)):
            h.update(name.encode())
            h.update((FILES_DIR / name).read_bytes())
        here = Path(__file__).parent
        for name in _BUILDER_SOURCES:
            h.update((here / name).read_bytes())
        return h.hexdigest()[:16]


def _program(package: str, name: str) -> Path:
    found = [path for path in debian.package_files(package) if path.name == name and path.is_file()]
    if not found:
        raise debian.GuestBuildError(f"the Debian package {package} does not ship {name}")
    return found[0]
