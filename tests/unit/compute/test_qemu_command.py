"""The qemu driver's command line: what QEMU is told to build for a VM spec."""

from __future__ import annotations

from pathlib import Path

import pytest

from stratus.compute.drivers.base import DriverError
from stratus.compute.drivers.qemu import command
from stratus.compute.drivers.qemu.spec import Disk, InstanceDir, Nic, VmSpec, Volume, tap_name

INSTANCE = "0b5f3a52-1c1e-4d4f-9a51-2f0d3f1f7c10"
PORT = "5d0c7e7a-8f53-4b87-a3f3-0d7c0b0f54a1"


def _spec(**changes: object) -> VmSpec:
    spec = VmSpec(id=INSTANCE, vcpus=2, memory_mb=256, disks=[Disk("root", "/srv/i/disk")],
                  nics=[Nic(PORT, "fa:16:3e:00:00:01")])
    for key, value in changes.items():
        setattr(spec, key, value)
    return spec


def _value_after(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == flag]


def test_command_line_has_only_what_the_guest_needs(tmp_path: Path) -> None:
    where = InstanceDir(tmp_path, INSTANCE)
    argv = command.build(_spec(), where)
    assert argv[0] == "qemu-system-x86_64"
    assert "-nodefaults" in argv and "-no-user-config" in argv and "-daemonize" in argv
    assert _value_after(argv, "-accel") == ["tcg"]
    assert _value_after(argv, "-machine") == ["q35"]
    assert _value_after(argv, "-smp") == ["2"] and _value_after(argv, "-m") == ["256"]
    assert _value_after(argv, "-name") == [f"guest={INSTANCE}"]
    assert _value_after(argv, "-pidfile") == [str(where.pidfile)]
    # The serial console is appended to console.log, so a restart keeps the earlier boots.
    chardevs = _value_after(argv, "-chardev")
    assert f"file,id=console,path={where.console},append=on" in chardevs
    assert _value_after(argv, "-serial") == ["chardev:console"]
    # QMP on a socket named relative to the instance directory (QEMU runs there).
    assert "socket,id=qmp,path=qmp.sock,server=on,wait=off" in chardevs
    assert _value_after(argv, "-mon") == ["chardev=qmp,mode=control"]
    devices = _value_after(argv, "-device")
    assert "virtio-blk-pci,drive=drive-root,id=root,bootindex=0" in devices
    assert _value_after(argv, "-drive") == ["file=/srv/i/disk,format=qcow2,if=none,id=drive-root,discard=unmap"]


def test_nic_is_a_virtio_net_on_the_ports_tap() -> None:
    argv = command.build(_spec(), InstanceDir(Path("/srv"), INSTANCE))
    tap = tap_name(PORT)
    assert tap == "tap5d0c7e7a-8f"
    assert _value_after(argv, "-netdev") == [f"tap,id=net-5d0c7e7a-8f,ifname={tap},script=no,downscript=no"]
    assert "virtio-net-pci,netdev=net-5d0c7e7a-8f,mac=fa:16:3e:00:00:01,id=nic-5d0c7e7a-8f" in \
        _value_after(argv, "-device")


def test_direct_kernel_boot_takes_the_images_command_line_and_no_boot_index() -> None:
    argv = command.build(_spec(kernel="/c/k", initrd="/c/r", append="console=ttyS0 quiet"),
                         InstanceDir(Path("/srv"), INSTANCE))
    assert _value_after(argv, "-kernel") == ["/c/k"]
    assert _value_after(argv, "-initrd") == ["/c/r"]
    assert _value_after(argv, "-append") == ["console=ttyS0 quiet"]
    assert not any("bootindex" in device for device in _value_after(argv, "-device"))


def test_no_append_when_the_image_gives_no_command_line() -> None:
    argv = command.build(_spec(kernel="/c/k"), InstanceDir(Path("/srv"), INSTANCE))
    assert "-append" not in argv and "-initrd" not in argv


def test_q35_gets_hotplug_root_ports_and_microvm_mmio_devices() -> None:
    q35 = _value_after(command.build(_spec(), InstanceDir(Path("/srv"), INSTANCE)), "-device")
    assert [d for d in q35 if d.startswith("pcie-root-port")] == [
        f"pcie-root-port,id=hotplug{n},chassis={n}" for n in range(1, command.HOTPLUG_PORTS + 1)]
    micro = _value_after(command.build(_spec(machine="microvm", kernel="/k"), InstanceDir(Path("/srv"), INSTANCE)),
                         "-device")
    assert not any(d.startswith("pcie-root-port") for d in micro)
    assert any(d.startswith("virtio-blk-device,") for d in micro)
    assert any(d.startswith("virtio-net-device,") for d in micro)
    pc = _value_after(command.build(_spec(machine="pc"), InstanceDir(Path("/srv"), INSTANCE)), "-device")
    assert not any(d.startswith("pcie-root-port") for d in pc)


def test_rng_device_only_when_the_image_asks_for_it() -> None:
    assert "-object" not in command.build(_spec(), InstanceDir(Path("/srv"), INSTANCE))
    argv = command.build(_spec(rng=True), InstanceDir(Path("/srv"), INSTANCE))
    assert _value_after(argv, "-object") == ["rng-random,id=rng0,filename=/dev/urandom"]
    assert "virtio-rng-pci,rng=rng0" in _value_after(argv, "-device")


def test_commas_in_paths_are_escaped(tmp_path: Path) -> None:
    where = InstanceDir(tmp_path / "a,b", INSTANCE)
    argv = command.build(_spec(disks=[Disk("root", "/x,y/disk")]), where)
    assert _value_after(argv, "-drive")[0].startswith("file=/x,,y/disk,format=qcow2")
    assert any(f"path={tmp_path}/a,,b/" in c for c in _value_after(argv, "-chardev"))


def test_attached_volumes_and_hotplugged_nics_come_back_on_their_slots() -> None:
    volume = Volume("vdb", {"driver": "raw", "read-only": False, "file": {"driver": "file", "filename": "/v/1"}},
                    bus="hotplug2")
    spec = _spec(volumes=[volume], nics=[Nic(PORT, "fa:16:3e:00:00:01", bus="hotplug1")])
    argv = command.build(spec, InstanceDir(Path("/srv"), INSTANCE))
    assert _value_after(argv, "-blockdev") == [
        "driver=raw,read-only=off,file.driver=file,file.filename=/v/1,node-name=vol-vdb"]
    devices = _value_after(argv, "-device")
    assert "virtio-blk-pci,drive=vol-vdb,id=dev-vdb,bus=hotplug2" in devices
    assert any(d.startswith("virtio-net-pci,") and d.endswith(",bus=hotplug1") for d in devices)
    assert command.free_bus(spec) == "hotplug3"


def test_resume_waits_for_the_saved_memory() -> None:
    argv = command.build(_spec(), InstanceDir(Path("/srv"), INSTANCE),
                         incoming=command.incoming_from_file("/srv/it's/memory.state"))
    assert argv[-2:] == ["-incoming", "exec:cat '/srv/it'\"'\"'s/memory.state'"]


def test_instance_dir_refuses_ids_that_are_not_uuids(tmp_path: Path) -> None:
    with pytest.raises(DriverError):
        InstanceDir(tmp_path, "../etc")
