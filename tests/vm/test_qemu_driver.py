"""The qemu driver with real VMs: the project's guest image booted, driven through its life, and
found again by a new driver object (an agent restart), then destroyed without a trace.

The image service is stood in for by the guest image's own files (served with their real hashes);
the VM has one NIC on a tap that the driver makes and removes, connected to nothing; a volume
(a local file) and a second NIC are hot-plugged and unplugged.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stratus.compute.drivers.base import PAUSED, RUNNING, SHUTDOWN, SUSPENDED
from stratus.compute.drivers.qemu import QemuDriver, process, qmp
from stratus.compute.drivers.qemu.setup import choose_accel
from stratus.compute.drivers.qemu.spec import InstanceDir, tap_name

MARKER = "STRATUS-GUEST: booted"
BOOT_TIMEOUT = 90.0


class GuestFiles:
    """The image service's view of local files: metadata with real hashes, and the bytes."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[Path, str]] = {}

    def add(self, path: Path, disk_format: str) -> str:
        image_id = str(uuid.uuid4())
        self.files[image_id] = (path, disk_format)
        return image_id

    def get_image(self, image_id: str) -> dict[str, Any]:
        path, fmt = self.files[image_id]
        digest = hashlib.sha512()
        with open(path, "rb") as data:
            while block := data.read(1024 * 1024):
                digest.update(block)
        return {"id": image_id, "status": "active", "disk_format": fmt, "os_hash_algo": "sha512",
                "os_hash_value": digest.hexdigest(), "visibility": "public"}

    def download(self, image_id: str) -> Iterator[bytes]:
        with open(self.files[image_id][0], "rb") as data:
            while block := data.read(1024 * 1024):
                yield block


def _require_host() -> None:
    if os.geteuid() != 0:
        pytest.fail("the qemu driver test needs root (it makes a tap device)")
    missing = [tool for tool in ("qemu-system-x86_64", "qemu-img", "ip") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing tools: {', '.join(missing)} (make install puts qemu-system-x86 and qemu-utils in place)")


def _wait_for_marker(driver: QemuDriver, instance: dict[str, Any], count: int, since: float) -> float:
    """Seconds from `since` until the console shows MARKER `count` times."""
    deadline = time.monotonic() + BOOT_TIMEOUT
    while time.monotonic() < deadline:
        if driver.get_console_output(instance).count(MARKER) >= count:
            return time.monotonic() - since
        time.sleep(0.05)
    pytest.fail(f"no boot marker #{count} within {BOOT_TIMEOUT:g} s; console:\n"
                f"{driver.get_console_output(instance)[-3000:]}")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _block_devices(where: InstanceDir) -> list[str]:
    with qmp.connect(where.qmp_socket) as monitor:
        return [str(block.get("qdev")) for block in monitor.execute("query-block")]


@pytest.fixture
def host(tmp_path: Path) -> Iterator[tuple[QemuDriver, GuestFiles, Path]]:
    _require_host()
    from stratus.guest import build

    guest = build()
    files = GuestFiles()
    root = tmp_path / "instances"
    driver = QemuDriver("vmtest", root, files, accel=choose_accel("auto"), shutdown_timeout=15.0,
                        soft_reboot_timeout=15.0)
    driver.guest = guest  # type: ignore[attr-defined]
    yield driver, files, root
    for instance_id in driver.list_instances():  # whatever a failed test left: no VM outlives it
        where = InstanceDir(root, instance_id)
        pid = process.find(where)
        if pid is not None:
            process.kill(pid, instance_id)
        for nic in where.load().nics:
            process.remove_tap(nic.tap)


def test_a_vm_through_its_life(host: tuple[QemuDriver, GuestFiles, Path], tmp_path: Path) -> None:
    driver, files, root = host
    guest = driver.guest  # type: ignore[attr-defined]
    image_meta = {"kernel_id": files.add(guest.kernel, "aki"), "ramdisk_id": files.add(guest.initrd, "ari"),
                  "os_command_line": guest.cmdline, "hw_machine_type": guest.machine, "hw_rng_model": "virtio"}
    port = {"id": str(uuid.uuid4()), "mac_address": "fa:16:3e:12:34:56", "fixed_ips": []}
    instance = {"id": str(uuid.uuid4()), "name": "vm1", "hostname": "vm1", "image_ref": files.add(guest.disk, "qcow2"),
                "flavor": {"vcpus": 1, "ram": 192, "disk": 1, "ephemeral": 1, "swap": 32}}
    where = InstanceDir(root, instance["id"])

    started = time.monotonic()
    driver.spawn(instance, image_meta, [port], None)
    boot_seconds = _wait_for_marker(driver, instance, 1, started)
    pid = process.find(where)
    assert pid is not None
    print(f"\nqemu driver ({driver.accel}): spawn to '{MARKER}' {boot_seconds:.2f} s, "
          f"qemu RSS {_rss_mib(pid):.0f} MiB")
    assert driver.get_info(instance).power_state == RUNNING
    assert Path("/sys/class/net", tap_name(port["id"])).exists()
    assert {p.name for p in where.path.iterdir()} >= {"disk", "disk.eph0", "disk.swap", "console.log", "qmp.sock",
                                                      "pid", "instance.json"}
    root_info = subprocess.run(["qemu-img", "info", "-U", "--output=json", str(where.file("disk"))],
                               capture_output=True, text=True, check=True).stdout
    assert '"virtual-size": 1073741824' in root_info  # grown to the flavor's 1 GB

    driver.pause(instance)
    assert driver.get_info(instance).power_state == PAUSED
    driver.unpause(instance)
    assert driver.get_info(instance).power_state == RUNNING

    driver.suspend(instance)
    assert driver.get_info(instance).power_state == SUSPENDED
    assert process.find(where) is None and where.memory_state.exists()
    driver.resume(instance)
    assert driver.get_info(instance).power_state == RUNNING
    assert driver.get_console_output(instance).count(MARKER) == 1  # resumed, not booted again

    driver.power_off(instance)
    assert driver.get_info(instance).power_state == SHUTDOWN
    assert process.find(where) is None
    since = time.monotonic()
    driver.power_on(instance)
    _wait_for_marker(driver, instance, 2, since)
    assert driver.get_info(instance).power_state == RUNNING

    since = time.monotonic()
    driver.reboot(instance, hard=False)
    _wait_for_marker(driver, instance, 3, since)
    since = time.monotonic()
    driver.reboot(instance, hard=True)
    _wait_for_marker(driver, instance, 4, since)
    assert driver.get_info(instance).power_state == RUNNING

    disk_format, chunks = driver.snapshot(instance)
    snapshot = tmp_path / "snapshot.qcow2"
    with open(snapshot, "wb") as out:
        for chunk in chunks:
            out.write(chunk)
    assert disk_format == "qcow2"
    info = subprocess.run(["qemu-img", "info", "--output=json", str(snapshot)], capture_output=True, text=True,
                          check=True).stdout
    assert '"format": "qcow2"' in info and "backing-filename" not in info
    assert driver.get_info(instance).power_state == RUNNING  # the copy paused it only for a moment
    assert not list(where.path.glob("snapshot-*"))

    volume = tmp_path / "volume.raw"
    volume.write_bytes(bytes(16 * 1024**2))
    connection = {"driver_volume_type": "local", "data": {"device_path": str(volume), "format": "raw"}}
    driver.attach_volume(instance, connection, "/dev/vdb")
    assert "/machine/peripheral/dev-vdb/virtio-backend" in _block_devices(where)
    second = {"id": str(uuid.uuid4()), "mac_address": "fa:16:3e:12:34:57"}
    driver.attach_interface(instance, second)
    assert Path("/sys/class/net", tap_name(second["id"])).exists()
    driver.detach_volume(instance, connection, "/dev/vdb")  # the guest lets go of both (ACPI hot-unplug)
    driver.detach_interface(instance, second)
    assert "/machine/peripheral/dev-vdb/virtio-backend" not in _block_devices(where)
    assert not Path("/sys/class/net", tap_name(second["id"])).exists()

    restarted = QemuDriver("vmtest", root, files)  # what a restarted agent builds
    assert restarted.list_instances() == [instance["id"]]
    assert restarted.get_info(instance).power_state == RUNNING

    pid = process.find(where)
    restarted.destroy(instance, [port])
    restarted.destroy(instance, [port])  # again: nothing left to do, no error
    assert pid is not None and not process.is_running(pid, instance["id"])
    assert not Path("/sys/class/net", tap_name(port["id"])).exists()
    assert not where.path.exists()
    assert restarted.list_instances() == []
    assert sorted(p.name for p in root.iterdir()) == ["_base"]
    assert sorted(restarted.prune_base_images()) == sorted(files.files)
    assert [p.name for p in (root / "_base").iterdir() if not p.name.endswith(".lock")] == []
