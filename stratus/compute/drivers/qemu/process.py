"""QEMU processes: started daemonized (in their own session, outside the agent, so an agent restart
leaves them running), found again by pid file, ended by pid. Also the tap devices of their NICs.

A pid alone could name some other process after the VM died and the pid was reused, so a pid
counts only while `/proc/<pid>/cmdline` is a QEMU started for that instance.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from stratus.compute.drivers.base import DriverError
from stratus.compute.drivers.qemu.spec import InstanceDir

log = logging.getLogger("stratus.compute.qemu")

START_TIMEOUT = 120.0


def launch(argv: list[str], where: InstanceDir) -> int:
    """Run QEMU until it daemonizes (its devices are set up by then: a bad disk or option fails
    here, with QEMU's own message), and return the VM's pid."""
    try:
        done = subprocess.run(argv, cwd=where.path, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=START_TIMEOUT, start_new_session=True, check=False)
    except FileNotFoundError:
        raise DriverError(f"{argv[0]} is not installed on this host") from None
    except subprocess.TimeoutExpired:
        raise DriverError(f"QEMU did not start within {START_TIMEOUT:g} s") from None
    if done.returncode != 0:
        message = (done.stderr or done.stdout).decode(errors="replace").strip()
        raise DriverError(f"QEMU could not start instance {where.id}: {message[-2000:]}")
    pid = find(where)
    if pid is None:
        raise DriverError(f"QEMU started instance {where.id} but exited at once; see its console log")
    return pid


def is_running(pid: int, instance_id: str) -> bool:
    """Whether `pid` is a live QEMU of that instance (a zombie waiting to be reaped is not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            if stat.read().rsplit(b")", 1)[-1].split()[0] in (b"Z", b"X"):
                return False  # dead, waiting to be reaped by whoever adopted it
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            args = cmdline.read().split(b"\0")
    except OSError:
        return False
    return bool(args) and b"qemu-system" in args[0] and f"guest={instance_id}".encode() in args


def find(where: InstanceDir) -> int | None:
    """The pid of the instance's running QEMU, or None."""
    try:
        pid = int(where.pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if is_running(pid, where.id) else None


def wait_gone(pid: int, instance_id: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while is_running(pid, instance_id):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def kill(pid: int, instance_id: str) -> None:
    """SIGKILL, then wait until it is gone."""
    if not is_running(pid, instance_id):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if not wait_gone(pid, instance_id, 10.0):
        raise DriverError(f"QEMU process {pid} of instance {instance_id} survived SIGKILL")


# --- tap devices -------------------------------------------------------------------------------

def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


def tap_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def ensure_tap(name: str) -> None:
    """A persistent tap named `name`, up. Whoever comes first (this driver or the network data
    plane) creates it; the other finds it there."""
    if not tap_exists(name):
        done = _ip("tuntap", "add", "dev", name, "mode", "tap")
        if done.returncode != 0 and not tap_exists(name):
            raise DriverError(f"cannot create tap {name}: {done.stderr.strip()}")
    done = _ip("link", "set", "dev", name, "up")
    if done.returncode != 0:
        raise DriverError(f"cannot bring tap {name} up: {done.stderr.strip()}")


def remove_tap(name: str) -> None:
    """Gone whether it was there or not."""
    if not tap_exists(name):
        return
    done = _ip("link", "delete", "dev", name)
    if done.returncode != 0 and tap_exists(name):
        raise DriverError(f"cannot remove tap {name}: {done.stderr.strip()}")
