"""Which accelerator QEMU should use on this host, decided by booting, not by looking at /dev/kvm.

On some hosts /dev/kvm opens and KVM_CREATE_VM succeeds, yet a Linux guest hangs right after
decompression. So KVM is chosen only when the guest's own kernel, booted under KVM with a tiny
initramfs, prints a marker within a short time; the answer is cached per host, keyed by the host
kernel, the QEMU version and the guest kernel.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Literal

from stratus.guest import debian
from stratus.guest.boot import accel_args, qemu_binary, read_lines, stop
from stratus.guest.build import build, default_cache_dir
from stratus.guest.cpio import CpioWriter

Accel = Literal["kvm", "tcg"]
PROBE_MARKER = "STRATUS-PROBE: alive"
PROBE_TIMEOUT = 20.0
_PROBE_INIT = f"""#!/bin/busybox sh
/bin/busybox mount -t devtmpfs devtmpfs /dev
echo "{PROBE_MARKER}" > /dev/console
/bin/busybox poweroff -f
"""


def choose(cache_dir: Path | None = None) -> Accel:
    """"kvm" when a guest really runs under KVM here, else "tcg"."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    qemu = qemu_binary()
    if not kvm_device_opens():
        return "tcg"
    kernel = build(cache_dir).kernel
    # Keyed by the kernel package, not the image: a new guest recipe with the same kernel needs no probe.
    packaged = debian.kernel()
    answer_file = cache_dir / f"accel-{_host_key(qemu, f'{packaged.package} {packaged.version}')}.json"
    if answer_file.is_file():
        answer = json.loads(answer_file.read_text())["accel"]
        if answer in ("kvm", "tcg"):
            return answer  # type: ignore[no-any-return]
    works = probe(kernel, "kvm", cache_dir)
    chosen: Accel = "kvm" if works else "tcg"
    answer_file.write_text(json.dumps({"accel": chosen, "kvm_probe_booted": works, "qemu": _qemu_version(qemu),
                                       "host_kernel": platform.release(), "guest_kernel": packaged.version}) + "\n")
    return chosen


def kvm_device_opens() -> bool:
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def probe(kernel: Path, accel: Accel, cache_dir: Path, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether `kernel` boots to userspace under `accel` within `timeout` seconds."""
    initrd = _probe_initrd(cache_dir)
    command = [qemu_binary(), "-M", "q35", *accel_args(accel), "-m", "128", "-nodefaults", "-no-user-config",
               "-display", "none", "-no-reboot", "-serial", "stdio", "-kernel", str(kernel), "-initrd", str(initrd),
               "-append", "console=ttyS0 quiet panic=-1"]
    started = time.monotonic()
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        return any(PROBE_MARKER in line for line in read_lines(process, started + timeout))
    finally:
        stop(process)


def _probe_initrd(cache_dir: Path) -> Path:
    path = cache_dir / "accel-probe-initrd.img"
    if not path.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(f".{path.name}.{os.getpid()}")
        with scratch.open("wb") as out:
            archive = CpioWriter(out)
            for directory in ("bin", "dev"):
                archive.directory(directory)
            archive.file_from("bin/busybox", Path("/bin/busybox"), 0o755)
            archive.file("init", _PROBE_INIT.encode(), 0o755)
            archive.close()
        os.replace(scratch, path)
    return path


def _qemu_version(qemu: str) -> str:
    result = subprocess.run([qemu, "--version"], capture_output=True, text=True, check=False)
    return result.stdout.splitlines()[0] if result.stdout else "unknown"


def _host_key(qemu: str, guest_kernel: str) -> str:
    parts = [platform.release(), _qemu_version(qemu), guest_kernel]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
