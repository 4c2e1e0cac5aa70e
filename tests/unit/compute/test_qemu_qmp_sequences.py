"""The QMP commands the qemu driver sends for each operation, against a recording fake monitor
(the real QEMU runs in tests/vm/test_qemu_driver.py)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from stratus.compute.drivers import base
from stratus.compute.drivers.base import DriverError, InstanceNotFound
from stratus.compute.drivers.qemu import devices, process, vm
from stratus.compute.drivers.qemu.driver import QemuDriver
from stratus.compute.drivers.qemu.spec import Disk, InstanceDir, Nic, VmSpec

INSTANCE = "0b5f3a52-1c1e-4d4f-9a51-2f0d3f1f7c10"
PORT = "5d0c7e7a-8f53-4b87-a3f3-0d7c0b0f54a1"


class FakeQmp:
    """Answers like QEMU would and records what it was sent, across conversations."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any] | None]] = []
        self.status = "running"
        self.events: list[dict[str, Any]] = []
        self.fail: dict[str, str] = {}

    def __call__(self, socket_path: Path) -> FakeQmp:
        return self

    def __enter__(self) -> FakeQmp:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        self.sent.append((command, arguments))
        if command in self.fail:
            raise DriverError(self.fail[command])
        if command == "query-status":
            return {"status": self.status}
        if command == "query-migrate":
            return {"status": "completed"}
        if command == "stop":
            self.status = "paused"
        if command == "cont":
            self.status = "running"
        return {}

    def wait_event(self, names: tuple[str, ...], timeout: float,
                   data: dict[str, Any] | None = None) -> dict[str, Any] | None:
        for event in self.events:
            if event["event"] in names and all(event.get("data", {}).get(k) == v for k, v in (data or {}).items()):
                self.events.remove(event)
                return event
        return None

    def commands(self) -> list[str]:
        return [name for name, _ in self.sent if name != "query-status"]


@pytest.fixture
def qmp() -> FakeQmp:
    return FakeQmp()


@pytest.fixture
def alive(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The VM's process as the driver sees it: `pid` None means not running; `exits` says whether
    it goes away when waited for."""
    state: dict[str, Any] = {"pid": os.getpid(), "exits": True, "launched": []}
    monkeypatch.setattr(process, "find", lambda where: state["pid"])

    def wait_gone(pid: int, instance_id: str, timeout: float) -> bool:
        if state["exits"]:
            state["pid"] = None
        return bool(state["exits"])

    def launch(argv: list[str], where: InstanceDir) -> int:
        state["launched"].append(argv)
        state["pid"] = os.getpid()
        return os.getpid()

    monkeypatch.setattr(process, "wait_gone", wait_gone)
    monkeypatch.setattr(process, "kill", lambda pid, instance_id: state.update(pid=None, killed=True))
    monkeypatch.setattr(process, "launch", launch)
    monkeypatch.setattr(process, "ensure_tap", lambda name: state.setdefault("taps", []).append(name))
    return state


@pytest.fixture
def driver(tmp_path: Path, qmp: FakeQmp) -> QemuDriver:
    drv = QemuDriver("node1", tmp_path, None, shutdown_timeout=1.0, soft_reboot_timeout=1.0, connect=qmp)
    where = InstanceDir(tmp_path, INSTANCE)
    where.path.mkdir()
    where.save(VmSpec(id=INSTANCE, vcpus=1, memory_mb=128, disks=[Disk("root", str(where.file("disk")))]))
    return drv


DOC = {"id": INSTANCE}


def test_power_states_come_from_query_status(driver: QemuDriver, qmp: FakeQmp, alive: dict[str, Any]) -> None:
    for status, power in (("running", base.RUNNING), ("paused", base.PAUSED), ("inmigrate", base.PAUSED),
                          ("shutdown", base.SHUTDOWN), ("guest-panicked", base.CRASHED)):
        qmp.status = status
        assert driver.get_info(DOC).power_state == power
    alive["pid"] = None
    assert driver.get_info(DOC).power_state == base.SHUTDOWN
    (driver.root / INSTANCE / "memory.state").write_bytes(b"saved")
    assert driver.get_info(DOC).power_state == base.SUSPENDED
    with pytest.raises(InstanceNotFound):
        driver.get_info({"id": "9b5f3a52-1c1e-4d4f-9a51-2f0d3f1f7c10"})


def test_list_instances_names_only_defined_instances(driver: QemuDriver, tmp_path: Path) -> None:
    (tmp_path / "_base").mkdir()
    (tmp_path / "1b5f3a52-1c1e-4d4f-9a51-2f0d3f1f7c10").mkdir()  # no definition: half made, not an instance
    assert driver.list_instances() == [INSTANCE]


def test_pause_unpause_are_stop_cont(driver: QemuDriver, qmp: FakeQmp, alive: dict[str, Any]) -> None:
    driver.pause(DOC)
    driver.unpause(DOC)
    assert qmp.commands() == ["stop", "cont"]


def test_pause_of_a_stopped_vm_is_refused(driver: QemuDriver, alive: dict[str, Any]) -> None:
    alive["pid"] = None
    with pytest.raises(DriverError, match="not running"):
        driver.pause(DOC)


def test_hard_reboot_is_a_reset(driver: QemuDriver, qmp: FakeQmp, alive: dict[str, Any]) -> None:
    driver.reboot(DOC, hard=True)
    assert qmp.commands() == ["system_reset", "cont"]


def test_soft_reboot_sends_ctrl_alt_del_and_waits_for_the_guests_reset(driver: QemuDriver, qmp: FakeQmp,
                                                                       alive: dict[str, Any]) -> None:
    qmp.events.append({"event": "RESET", "data": {"guest": True}})
    driver.reboot(DOC, hard=False)
    assert qmp.commands() == ["send-key"]
    keys = qmp.sent[-1][1]
    assert keys == {"keys": [{"type": "qcode", "data": k} for k in ("ctrl", "alt", "delete")]}


def test_soft_reboot_falls_back_to_a_reset_when_the_guest_ignores_it(driver: QemuDriver, qmp: FakeQmp,
                                                                     alive: dict[str, Any]) -> None:
    driver.reboot(DOC, hard=False)
    assert qmp.commands() == ["send-key", "system_reset"]


def test_soft_reboot_of_a_guest_that_powers_off_on_ctrl_alt_del_starts_it_again(
        driver: QemuDriver, qmp: FakeQmp, alive: dict[str, Any]) -> None:
    qmp.events.append({"event": "SHUTDOWN", "data": {"guest": True, "reason": "guest-shutdown"}})
    driver.reboot(DOC, hard=False)
    assert qmp.commands() == ["send-key"]
    assert len(alive["launched"]) == 1


def test_power_off_presses_the_power_button_then_forces(driver: QemuDriver, qmp: FakeQmp,
                                                        alive: dict[str, Any]) -> None:
    alive["exits"] = False  # the guest ignores ACPI
    driver.power_off(DOC)
    assert qmp.commands() == ["system_powerdown", "quit"]
    assert alive.get("killed")


def test_power_off_of_a_guest_that_obeys_needs_no_force(driver: QemuDriver, qmp: FakeQmp,
                                                        alive: dict[str, Any]) -> None:
    driver.power_off(DOC)
    assert qmp.commands() == ["system_powerdown"]
    assert not alive.get("killed")


def test_power_on_starts_qemu_from_the_definition(driver: QemuDriver, alive: dict[str, Any]) -> None:
    alive["pid"] = None
    driver.power_on(DOC)
    assert len(alive["launched"]) == 1 and f"guest={INSTANCE}" in alive["launched"][0]


def test_suspend_saves_memory_to_a_file_and_quits(driver: QemuDriver, qmp: FakeQmp, alive: dict[str, Any],
                                                   tmp_path: Path) -> None:
    where = InstanceDir(tmp_path, INSTANCE)
    where.file("memory.state.part").write_bytes(b"memory")  # what `cat` would have written
    driver.suspend(DOC)
    assert qmp.commands() == ["stop", "migrate", "query-migrate", "quit"]
    assert qmp.sent[1][1] == {"uri": f"exec:cat > {where.file('memory.state.part')}"}
    assert where.memory_state.read_bytes() == b"memory"


def test_resume_starts_qemu_on_the_saved_memory_and_continues(driver: QemuDriver, qmp: FakeQmp,
                                                              alive: dict[str, Any], tmp_path: Path) -> None:
    where = InstanceDir(tmp_path, INSTANCE)
    where.memory_state.write_bytes(b"memory")
    alive["pid"] = None
    qmp.status = "paused"
    driver.resume(DOC)
    assert alive["launched"][0][-2:] == ["-incoming", f"exec:cat {where.memory_state}"]
    assert qmp.commands() == ["cont"]
    assert not where.memory_state.exists()


def test_attach_and_detach_a_local_volume(driver: QemuDriver, qmp: FakeQmp, alive: dict[str, Any],
                                          tmp_path: Path) -> None:
    volume_file = tmp_path / "volume"
    volume_file.write_bytes(b"\0" * 4096)
    connection = {"driver_volume_type": "local", "data": {"device_path": str(volume_file)}}
    driver.attach_volume(DOC, connection, "/dev/vdb")
    assert qmp.sent == [
        ("blockdev-add", {"driver": "raw", "read-only": False, "file": {"driver": "file", "filename": str(volume_file)},
                          "node-name": "vol-vdb"}),
        ("device_add", {"driver": "virtio-blk-pci", "drive": "vol-vdb", "id": "dev-vdb", "bus": "hotplug1"})]
    assert InstanceDir(tmp_path, INSTANCE).load().volumes[0].bus == "hotplug1"  # kept for the next start
    qmp.sent.clear()
    qmp.events.append({"event": "DEVICE_DELETED", "data": {"device": "dev-vdb"}})
    driver.detach_volume(DOC, connection, "/dev/vdb")
    assert qmp.sent == [("device_del", {"id": "dev-vdb"}), ("blockdev-del", {"node-name": "vol-vdb"})]
    assert InstanceDir(tmp_path, INSTANCE).load().volumes == []


def test_detach_keeps_the_block_node_while_the_guest_holds_the_device(driver: QemuDriver, qmp: FakeQmp,
                                                                      alive: dict[str, Any], tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    volume_file = tmp_path / "volume"
    volume_file.write_bytes(b"\0" * 4096)
    connection = {"driver_volume_type": "local", "data": {"device_path": str(volume_file)}}
    driver.attach_volume(DOC, connection, "/dev/vdb")
    qmp.sent.clear()
    monkeypatch.setattr(devices, "UNPLUG_TIMEOUT", 0.01)
    with pytest.raises(DriverError, match="did not release"):
        driver.detach_volume(DOC, connection, "/dev/vdb")
    assert [name for name, _ in qmp.sent] == ["device_del"]
    assert len(InstanceDir(tmp_path, INSTANCE).load().volumes) == 1


def test_a_failed_device_add_removes_the_block_node_again(driver: QemuDriver, qmp: FakeQmp,
                                                          alive: dict[str, Any], tmp_path: Path) -> None:
    volume_file = tmp_path / "volume"
    volume_file.write_bytes(b"\0" * 4096)
    qmp.fail["device_add"] = "Bus 'hotplug1' does not support hotplugging"
    with pytest.raises(DriverError):
        driver.attach_volume(DOC, {"driver_volume_type": "local", "data": {"device_path": str(volume_file)}},
                             "/dev/vdb")
    assert [name for name, _ in qmp.sent] == ["blockdev-add", "device_add", "blockdev-del"]
    assert InstanceDir(tmp_path, INSTANCE).load().volumes == []


def test_a_local_qcow2_volume_is_opened_as_qcow2(tmp_path: Path) -> None:
    (tmp_path / "v").write_bytes(b"")
    volume = devices.volume_from_connection(
        {"driver_volume_type": "local", "data": {"device_path": str(tmp_path / "v"), "format": "qcow2"}}, "/dev/vdb")
    assert volume.blockdev == {"driver": "qcow2", "read-only": False,
                               "file": {"driver": "file", "filename": str(tmp_path / "v")}}


def test_an_nbd_volume_is_a_raw_node_on_an_nbd_client() -> None:
    volume = devices.volume_from_connection(
        {"driver_volume_type": "nbd", "data": {"host": "10.0.0.5", "port": 10809, "export_name": "volume-1",
                                               "format": "raw"}}, "/dev/vdc")
    assert volume.name == "vdc"
    assert volume.blockdev == {"driver": "raw", "read-only": False, "file": {
        "driver": "nbd", "server": {"type": "inet", "host": "10.0.0.5", "port": "10809"}, "export": "volume-1"}}


@pytest.mark.parametrize(("connection", "mountpoint"), [
    ({"driver_volume_type": "iscsi", "data": {}}, "/dev/vdb"),
    ({"driver_volume_type": "local", "data": {"device_path": "relative/path"}}, "/dev/vdb"),
    ({"driver_volume_type": "nbd", "data": {"host": "h"}}, "/dev/vdb"),
    ({"driver_volume_type": "nbd", "data": {"host": "h", "port": 1, "export": "a,b"}}, "/dev/vdb"),
    ({"driver_volume_type": "local", "data": {"device_path": "/dev/null"}}, "/dev/vdb,x"),
    ({"driver_volume_type": "local", "data": {"device_path": "/dev/null", "format": "vmdk"}}, "/dev/vdb"),
])
def test_unusable_volume_connections_are_refused(connection: dict[str, Any], mountpoint: str) -> None:
    with pytest.raises(DriverError):
        devices.volume_from_connection(connection, mountpoint)


def test_attach_and_detach_an_interface(driver: QemuDriver, qmp: FakeQmp, alive: dict[str, Any],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    removed: list[str] = []
    monkeypatch.setattr(process, "remove_tap", removed.append)
    driver.attach_interface(DOC, {"id": PORT, "mac_address": "FA:16:3E:00:00:02"})
    assert alive["taps"] == ["tap5d0c7e7a-8f"]
    assert qmp.sent == [
        ("netdev_add", {"type": "tap", "id": "net-5d0c7e7a-8f", "ifname": "tap5d0c7e7a-8f", "script": "no",
                        "downscript": "no"}),
        ("device_add", {"driver": "virtio-net-pci", "netdev": "net-5d0c7e7a-8f", "mac": "fa:16:3e:00:00:02",
                        "id": "nic-5d0c7e7a-8f", "bus": "hotplug1"})]
    qmp.sent.clear()
    qmp.events.append({"event": "DEVICE_DELETED", "data": {"device": "nic-5d0c7e7a-8f"}})
    driver.detach_interface(DOC, {"id": PORT})
    assert qmp.sent == [("device_del", {"id": "nic-5d0c7e7a-8f"}), ("netdev_del", {"id": "net-5d0c7e7a-8f"})]
    assert removed == ["tap5d0c7e7a-8f"]


def test_a_microvm_takes_no_hotplug(tmp_path: Path, qmp: FakeQmp, alive: dict[str, Any]) -> None:
    drv = QemuDriver("node1", tmp_path, None, connect=qmp)
    where = InstanceDir(tmp_path, INSTANCE)
    where.path.mkdir()
    where.save(VmSpec(id=INSTANCE, vcpus=1, memory_mb=128, machine="microvm", kernel="/k"))
    with pytest.raises(DriverError, match="cannot take hot-plugged"):
        drv.attach_interface(DOC, {"id": PORT, "mac_address": "fa:16:3e:00:00:02"})
    assert qmp.sent == []


def test_a_stopped_vm_gets_the_device_at_its_next_start(driver: QemuDriver, qmp: FakeQmp,
                                                        alive: dict[str, Any], tmp_path: Path) -> None:
    alive["pid"] = None
    driver.attach_interface(DOC, {"id": PORT, "mac_address": "fa:16:3e:00:00:02"})
    assert qmp.sent == []
    assert InstanceDir(tmp_path, INSTANCE).load().nics == [Nic(PORT, "fa:16:3e:00:00:02")]


def test_spawn_refuses_machine_types_that_could_carry_options(tmp_path: Path, qmp: FakeQmp,
                                                              alive: dict[str, Any]) -> None:
    drv = QemuDriver("node1", tmp_path, None, connect=qmp)
    doc = {"id": "1b5f3a52-1c1e-4d4f-9a51-2f0d3f1f7c10", "image_ref": "2b5f3a52-1c1e-4d4f-9a51-2f0d3f1f7c10",
           "flavor": {"vcpus": 1, "ram": 128, "disk": 1}}
    with pytest.raises(DriverError, match="machine type"):
        drv.spawn(doc, {"hw_machine_type": "q35,accel=kvm"}, [], None)
    assert not (tmp_path / doc["id"]).exists()  # a failed spawn leaves nothing behind


class OneImage:
    def __init__(self, owner: str, visibility: str) -> None:
        self.owner, self.visibility, self.downloads = owner, visibility, 0

    def get_image(self, image_id: str) -> dict[str, Any]:
        return {"id": image_id, "status": "active", "disk_format": "aki", "owner": self.owner,
                "visibility": self.visibility, "checksum": hashlib.md5(b"kernel").hexdigest()}

    def download(self, image_id: str) -> Any:
        self.downloads += 1
        yield b"kernel"


@pytest.mark.parametrize(("owner", "visibility", "allowed"), [
    ("project-b", "private", False), ("project-b", "shared", False), ("project-a", "private", True),
    ("project-b", "public", True), ("project-b", "community", True)])
def test_a_kernel_image_of_another_project_is_not_downloaded(tmp_path: Path, qmp: FakeQmp, alive: dict[str, Any],
                                                             owner: str, visibility: str, allowed: bool) -> None:
    images = OneImage(owner, visibility)
    drv = QemuDriver("node1", tmp_path, images, connect=qmp)
    doc = {"id": "1b5f3a52-1c1e-4d4f-9a51-2f0d3f1f7c10", "project_id": "project-a",
           "image_ref": "2b5f3a52-1c1e-4d4f-9a51-2f0d3f1f7c10", "flavor": {"vcpus": 1, "ram": 128, "disk": 1}}
    kernel = {"kernel_id": "3b5f3a52-1c1e-4d4f-9a51-2f0d3f1f7c10"}
    if allowed:
        drv.spawn(doc, kernel, [], None)
        assert images.downloads == 2  # the kernel and the root disk
    else:
        with pytest.raises(DriverError, match="not one this project may use"):
            drv.spawn(doc, kernel, [], None)
        assert images.downloads == 0


def test_host_resources_are_the_real_hosts(tmp_path: Path) -> None:
    res = QemuDriver("node1", tmp_path, None).host_resources()
    assert res.hypervisor_type == "QEMU" and res.hypervisor_hostname == "node1"
    assert res.vcpus == os.cpu_count()
    assert res.memory_mb > 0 and res.local_gb > 0


def test_resize_on_another_host_is_refused(driver: QemuDriver, alive: dict[str, Any]) -> None:
    with pytest.raises(DriverError, match="same host"):
        driver.migrate_disk_and_power_off(DOC, "node2", {"vcpus": 2, "ram": 256, "disk": 1})


def test_power_state_names_cover_qemus_run_states() -> None:
    assert vm.POWER_STATES["running"] == base.RUNNING
    assert vm.POWER_STATES["suspended"] == base.PAUSED  # a guest in ACPI S3 is not Nova's SUSPENDED


def test_resize_on_this_host_grows_the_disk_and_revert_puts_the_old_one_back(
        tmp_path: Path, qmp: FakeQmp, alive: dict[str, Any]) -> None:
    from stratus.compute.drivers.qemu import disks

    drv = QemuDriver("node1", tmp_path, None, shutdown_timeout=1.0, connect=qmp)
    where = InstanceDir(tmp_path, INSTANCE)
    where.path.mkdir()
    disks.create_blank(where.file("disk"), disks.GIB)
    old = {"vcpus": 1, "ram": 128, "disk": 1, "ephemeral": 0, "swap": 0}
    where.save(VmSpec(id=INSTANCE, vcpus=1, memory_mb=128, flavor=old, disks=[Disk("root", str(where.file("disk")))]))
    new = {"vcpus": 2, "ram": 256, "disk": 2, "ephemeral": 1, "swap": 0}

    drv.migrate_disk_and_power_off(DOC, "node1", new)
    assert qmp.commands() == ["system_powerdown"] and alive["pid"] is None
    drv.finish_migration({"id": INSTANCE, "flavor": new}, {}, [])
    resized = where.load()
    assert (resized.vcpus, resized.memory_mb) == (2, 256)
    assert disks.image_info(where.file("disk"))["virtual-size"] == 2 * disks.GIB
    assert disks.image_info(where.file("disk.eph0"))["virtual-size"] == disks.GIB
    assert "-smp" in alive["launched"][-1] and alive["launched"][-1][alive["launched"][-1].index("-smp") + 1] == "2"

    drv.finish_revert_migration({"id": INSTANCE, "flavor": old}, [])
    reverted = where.load()
    assert (reverted.vcpus, reverted.memory_mb) == (1, 128)
    assert disks.image_info(where.file("disk"))["virtual-size"] == disks.GIB
    assert not where.file("disk.eph0").exists()
    assert not (tmp_path / "_resize" / INSTANCE).exists()
    assert len(alive["launched"]) == 2


def test_confirm_drops_what_the_resize_kept(driver: QemuDriver, alive: dict[str, Any], tmp_path: Path) -> None:
    driver.migrate_disk_and_power_off(DOC, "node1", {"vcpus": 1, "ram": 128, "disk": 0})
    assert (tmp_path / "_resize" / INSTANCE / "instance.json").is_file()
    driver.confirm_migration(DOC)
    assert not (tmp_path / "_resize" / INSTANCE).exists()
