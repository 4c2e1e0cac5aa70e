"""What a VM is made of, kept in its instance directory so that any agent (after a restart too)
can start it again exactly: `<instances>/<uuid>/instance.json`.

The directory layout is named here once: the disks, the console log, the QMP socket, the pid
file, the saved memory of a suspended VM.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stratus.compute.drivers.base import DriverError

UUID = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
# Machine types an image may ask for (hw_machine_type); anything else could smuggle options in.
MACHINE = re.compile(r"^(q35|pc|microvm|pc-q35-[0-9]+\.[0-9]+|pc-i440fx-[0-9]+\.[0-9]+)$")
DEFINITION = "instance.json"


def tap_name(port_id: str) -> str:
    """The tap device of a port: the name the network data plane uses for it too."""
    return "tap" + port_id[:11]


def check_id(value: str, what: str = "instance id") -> str:
    if not isinstance(value, str) or not UUID.match(value.lower()):
        raise DriverError(f"{what} {value!r} is not a UUID")
    return value


@dataclass
class Disk:
    name: str             # the QEMU drive and device id: "root", "eph0", "swap"
    path: str
    format: str = "qcow2"


@dataclass
class Nic:
    port_id: str
    mac: str
    bus: str = ""         # the hot-plug slot it went into, if it was hot-plugged

    @property
    def tap(self) -> str:
        return tap_name(self.port_id)

    @property
    def netdev_id(self) -> str:
        return "net-" + self.port_id[:11]

    @property
    def device_id(self) -> str:
        return "nic-" + self.port_id[:11]


@dataclass
class Volume:
    """A block device attached by the volume service: `blockdev` is the QMP blockdev-add argument."""

    name: str             # "vdb" from the mountpoint "/dev/vdb"
    blockdev: dict[str, Any]
    bus: str = ""
    boot: bool = False    # the root disk of a server booted from a volume

    @property
    def node_name(self) -> str:
        return "vol-" + self.name

    @property
    def device_id(self) -> str:
        return "dev-" + self.name


@dataclass
class VmSpec:
    id: str
    vcpus: int
    memory_mb: int
    machine: str = "q35"
    accel: str = "tcg"
    kernel: str = ""
    initrd: str = ""
    append: str = ""
    rng: bool = False     # a virtio-rng fed by the host's /dev/urandom (image property hw_rng_model=virtio)
    disks: list[Disk] = field(default_factory=list)
    nics: list[Nic] = field(default_factory=list)
    volumes: list[Volume] = field(default_factory=list)
    flavor: dict[str, Any] = field(default_factory=dict)
    # Cached base images this VM needs (root backing file, kernel, ramdisk): pruning keeps them.
    base_images: list[str] = field(default_factory=list)

    @property
    def mmio(self) -> bool:
        """microvm has no PCI: its virtio devices sit on MMIO and cannot be hot-plugged."""
        return self.machine == "microvm"

    @property
    def pcie(self) -> bool:
        return self.machine.startswith(("q35", "pc-q35"))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> VmSpec:
        doc = dict(doc)
        disks = [Disk(**d) for d in doc.pop("disks", [])]
        nics = [Nic(**n) for n in doc.pop("nics", [])]
        volumes = [Volume(**v) for v in doc.pop("volumes", [])]
        return cls(**doc, disks=disks, nics=nics, volumes=volumes)


class InstanceDir:
    """The files of one instance."""

    def __init__(self, root: Path, instance_id: str) -> None:
        self.id = check_id(instance_id)
        self.path = root / instance_id

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def definition(self) -> Path:
        return self.path / DEFINITION

    @property
    def console(self) -> Path:
        return self.path / "console.log"

    @property
    def qmp_socket(self) -> Path:
        return self.path / "qmp.sock"

    @property
    def pidfile(self) -> Path:
        return self.path / "pid"

    @property
    def memory_state(self) -> Path:
        """The memory of a suspended VM."""
        return self.path / "memory.state"

    def exists(self) -> bool:
        return self.definition.is_file()

    def load(self) -> VmSpec:
        try:
            return VmSpec.from_json(json.loads(self.definition.read_text()))
        except FileNotFoundError:
            raise DriverError(f"instance {self.id} has no definition on this host") from None

    def save(self, spec: VmSpec) -> None:
        """Written whole to a temp file then renamed: a crash never leaves half a definition."""
        temp = self.path / (DEFINITION + ".tmp")
        temp.write_text(json.dumps(spec.to_json(), indent=1, sort_keys=True))
        os.replace(temp, self.definition)
