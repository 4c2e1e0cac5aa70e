"""Boot from volume in the qemu driver: the root volume is the disk the firmware boots, and the
volume service's connection becomes it as it is."""

from __future__ import annotations

from pathlib import Path

from stratus.compute.drivers.qemu import command, devices
from stratus.compute.drivers.qemu.spec import InstanceDir, VmSpec, Volume

INSTANCE = "6a1c2b4e-3d5f-4e7a-8b9c-0d1e2f3a4b5c"


def _devices(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == "-device"]


def test_a_root_volume_is_booted_and_an_attached_one_is_not(tmp_path: Path) -> None:
    path = tmp_path / "volume-1"
    path.write_bytes(b"")
    root = devices.volume_from_connection({"driver_volume_type": "local", "data": {"device_path": str(path)}},
                                          "/dev/vda")
    root.boot = True
    other = devices.volume_from_connection({"driver_volume_type": "local", "data": {"device_path": str(path)}},
                                           "/dev/vdb")
    spec = VmSpec(id=INSTANCE, vcpus=1, memory_mb=128, volumes=[root, other])
    argv = command.build(spec, InstanceDir(tmp_path, INSTANCE))
    blk = [d for d in _devices(argv) if d.startswith("virtio-blk")]
    assert [d for d in blk if "bootindex=0" in d] == [d for d in blk if "id=dev-vda" in d]
    assert len(blk) == 2 and "-drive" not in argv  # no image root disk beside the volume


def test_the_boot_flag_survives_the_saved_definition() -> None:
    spec = VmSpec(id=INSTANCE, vcpus=1, memory_mb=128)
    spec.volumes.append(Volume("vda", {"driver": "raw", "file": {"driver": "file", "filename": "/x"}},
                                       boot=True))
    assert VmSpec.from_json(spec.to_json()).volumes[0].boot is True
