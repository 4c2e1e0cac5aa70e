"""Booting the guest image with QEMU directly: the bare boot that benchmarks compare against, and the
command line pieces the accelerator probe and the tests share."""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import time
from collections.abc import Iterator

from stratus.core.errors import StratusError
from stratus.guest.image import GuestImage

MARKER = "STRATUS-GUEST:"


class QemuMissing(StratusError):
    """No qemu-system-x86_64 on this machine."""


class BootTimeout(StratusError):
    """The guest did not print what was awaited in time."""


def qemu_binary() -> str:
    path = shutil.which("qemu-system-x86_64")
    if path is None:
        raise QemuMissing("qemu-system-x86_64 is not installed: apt-get install qemu-system-x86")
    return path


def accel_args(accel: str) -> list[str]:
    if accel == "kvm":
        return ["-accel", "kvm"]
    if accel == "tcg":
        # One translation thread per vCPU where the host allows it; a larger translation cache saves
        # re-translating the kernel's hot paths.
        return ["-accel", "tcg,thread=multi,tb-size=256"]
    raise ValueError(f"unknown accelerator {accel!r}")


def direct_boot_args(guest: GuestImage, accel: str, *, memory_mib: int = 256) -> list[str]:
    """A VM with no firmware work to do: kernel and initrd given to QEMU, the disk, a serial console."""
    return [qemu_binary(), "-M", guest.machine, *accel_args(accel), "-m", str(memory_mib), "-nodefaults",
            "-no-user-config", "-display", "none", "-no-reboot", "-kernel", str(guest.kernel),
            "-initrd", str(guest.initrd), "-append", guest.cmdline]


def read_lines(process: subprocess.Popen[bytes], deadline: float) -> Iterator[str]:
    """Lines of the process's stdout until it closes or `deadline` (time.monotonic()) passes."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    os.set_blocking(fd, False)
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(timeout=left):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                yield line.decode(errors="replace").rstrip("\r")
    if buffer:
        yield buffer.decode(errors="replace")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()


def bare_boot_seconds(guest: GuestImage, accel: str, *, until: str = MARKER, timeout: float = 120.0) -> float:
    """Seconds from starting QEMU to the guest's first console line containing `until`.

    The guest boots with no network and a throw-away overlay (snapshot=on), so the cached disk is
    never written; this is the physical limit a cloud's boot time is compared against.
    """
    return bare_boot_marker_times(guest, accel, [until], timeout=timeout)[until]


def bare_boot_marker_times(guest: GuestImage, accel: str, markers: list[str], *,
                           timeout: float = 120.0) -> dict[str, float]:
    """Seconds from starting QEMU to the first console line containing each of `markers`, one boot."""
    command = [*direct_boot_args(guest, accel), "-serial", "stdio", "-nic", "none", "-device", "virtio-rng-pci",
               "-drive", f"file={guest.disk},if=virtio,format=qcow2,snapshot=on"]
    started = time.monotonic()
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen: list[str] = []
    found: dict[str, float] = {}
    try:
        for line in read_lines(process, started + timeout):
            for marker in markers:
                if marker in line and marker not in found:
                    found[marker] = time.monotonic() - started
            if len(found) == len(markers):
                return found
            seen.append(line)
    finally:
        stop(process)
    missing = [marker for marker in markers if marker not in found]
    tail = "\n".join(seen[-15:])
    raise BootTimeout(f"the guest printed no {missing!r} within {timeout:.0f} s under {accel}; console:\n{tail}")
