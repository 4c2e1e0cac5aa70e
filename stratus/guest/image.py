"""The built guest: where its files are and how to boot it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class GuestImage:
    disk: Path          # qcow2 root disk (ext4 on /dev/vda, no partition table)
    kernel: Path        # vmlinuz for direct kernel boot
    initrd: Path        # loads the virtio/ext4 modules and switches to the root disk
    cmdline: str
    machine: str        # QEMU machine type, e.g. "q35"
    recipe_hash: str = ""

    def save(self, path: Path) -> None:
        fields = {key: str(value) for key, value in asdict(self).items()}
        path.write_text(json.dumps(fields, indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> GuestImage:
        fields = json.loads(path.read_text())
        return cls(disk=Path(fields["disk"]), kernel=Path(fields["kernel"]), initrd=Path(fields["initrd"]),
                   cmdline=fields["cmdline"], machine=fields["machine"], recipe_hash=fields.get("recipe_hash", ""))
