"""Volumes on instances, as the compute API sees them: device names, the os-volume_attachments
view, the `volumes_attached` of a server, and the boot-from-volume part of a server create body.

The block storage service owns the volumes; compute keeps only a block device mapping per volume
an instance has, naming the device and the block storage attachment that backs it.
"""

from __future__ import annotations

import re
import string
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from stratus.compute import models
from stratus.core import errors

ROOT_DEVICE = "/dev/vda"
_DEVICE = re.compile(r"^/dev/vd[a-z]$")
# What a server in these states can have a volume attached to or detached from (as Nova allows).
ATTACHABLE_STATES = ("active", "stopped", "paused", "suspended", "resized", "shelved_offloaded")


def next_device(used: set[str], wanted: str | None = None) -> str:
    """`wanted` when it is a free virtio disk name; otherwise the first free one after the root disk."""
    if wanted:
        if not _DEVICE.match(wanted):
            raise errors.BadRequest(f"The supplied device path ({wanted}) is invalid.")
        if wanted in used or wanted == ROOT_DEVICE:
            raise errors.BadRequest(f"The supplied device path ({wanted}) is in use.")
        return wanted
    for letter in string.ascii_lowercase[1:]:
        name = f"/dev/vd{letter}"
        if name not in used:
            return name
    raise errors.BadRequest("No free device name is left on this instance.")


def mappings_of(session: Session, instance_id: str) -> list[models.BlockDeviceMapping]:
    return list(session.scalars(sa.select(models.BlockDeviceMapping)
                                .where(models.BlockDeviceMapping.instance_id == instance_id)
                                .order_by(models.BlockDeviceMapping.id)))


def attachment_view(row: models.BlockDeviceMapping) -> dict[str, Any]:
    """One volumeAttachment (microversions before 2.70: no tag; before 2.79: no delete_on_termination)."""
    return {"id": row.volume_id, "serverId": row.instance_id, "volumeId": row.volume_id, "device": row.device_name}


def volumes_attached(session: Session, instance_ids: list[str]) -> dict[str, list[dict[str, str]]]:
    """`os-extended-volumes:volumes_attached` of many servers in one query."""
    found: dict[str, list[dict[str, str]]] = defaultdict(list)
    if not instance_ids:
        return found
    rows = session.scalars(sa.select(models.BlockDeviceMapping)
                           .where(models.BlockDeviceMapping.instance_id.in_(instance_ids))
                           .order_by(models.BlockDeviceMapping.id))
    for row in rows:
        found[row.instance_id].append({"id": row.volume_id})
    return found


@dataclass
class BootVolume:
    """The root disk of a boot-from-volume server: an existing volume, or one made from an image."""

    source_type: str  # "volume" | "image"
    uuid: str
    size_gb: int | None
    delete_on_termination: bool


def _truthy(value: Any) -> bool:
    return value in (True, "true", "True", "1", 1)


def boot_volume(bdms: list[dict[str, Any]]) -> BootVolume | None:
    """The boot-index-0 mapping to a volume, checked; None when the server boots from an image.

    Mappings this cloud does not carry out (snapshots, blank volumes, more than the root disk) are
    refused with 400 rather than ignored."""
    found: BootVolume | None = None
    for bdm in bdms:
        source = bdm.get("source_type")
        destination = bdm.get("destination_type") or ("volume" if source == "volume" else "local")
        boot_index = bdm.get("boot_index")
        is_boot = boot_index is not None and str(boot_index) == "0"
        if destination == "local":
            if source == "image" and is_boot:
                continue  # an ordinary boot from an image, given as a mapping
            raise errors.BadRequest("Only the root disk may be given as a local block device mapping.")
        if destination != "volume":
            raise errors.BadRequest(f"Invalid destination_type {destination!r} in block_device_mapping_v2.")
        if source not in ("volume", "image"):
            raise errors.BadRequest(f"Block device mappings from source_type {source!r} are not supported.")
        if not is_boot:
            raise errors.BadRequest("Only the boot volume (boot_index 0) can be given at create; attach "
                                    "further volumes to the server afterwards.")
        uuid = bdm.get("uuid")
        if not isinstance(uuid, str) or not uuid:
            raise errors.BadRequest("A block device mapping from a volume or an image needs a uuid.")
        size = bdm.get("volume_size")
        size_gb: int | None = None
        if size is not None:
            try:
                size_gb = int(size)
            except (TypeError, ValueError):
                raise errors.BadRequest(f"Invalid volume_size {size!r}.") from None
            if size_gb < 1:
                raise errors.BadRequest(f"Invalid volume_size {size!r}.")
        if source == "image" and size_gb is None:
            raise errors.BadRequest("Images with destination_type 'volume' need to have a non-zero size specified")
        found = BootVolume(source, uuid, size_gb, _truthy(bdm.get("delete_on_termination", False)))
    return found
