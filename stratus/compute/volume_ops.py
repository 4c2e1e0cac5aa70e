"""Volumes on instances as the conductor carries them out, talking to the block storage API with
the compute service user's token and to the host's agent over the bus.

Attach: the API has reserved a block storage attachment and written the mapping (`attaching`);
here the attachment is connected for the instance's host (which gives the connection: a local path
or an NBD export), the agent hot-plugs it, and the attachment is completed (the volume goes
`in-use`). Detach: the agent unplugs, the attachment is deleted (the volume goes `available`), the
mapping goes. A failure gives back what was taken: the attachment is deleted, the mapping removed.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from stratus.compute import instance_actions, models
from stratus.compute.rpc import instance_doc
from stratus.core import errors
from stratus.core.errors import BusTimeout, RemoteError, StratusError

if TYPE_CHECKING:
    from stratus.compute.service import ComputeService
    from stratus.core.db import Database
    from stratus.volume.client import VolumeClient

log = logging.getLogger("stratus.compute.volumes")

_FAILURES = (RemoteError, BusTimeout, StratusError)
# How long a boot waits for its root volume (made from an image) to become available.
BOOT_VOLUME_TIMEOUT = 600.0
BOOT_VOLUME_POLL = 0.5


class VolumeMixin:
    # Provided by the Conductor this is mixed into.
    db: Database
    service: ComputeService

    def agent(self, host: str, method: str, **kwargs: Any) -> Any:
        raise NotImplementedError

    def _volumes(self) -> VolumeClient:
        if self.service.volume is None:
            raise errors.ServiceUnavailable("The block storage service is not reachable.")
        return self.service.volume

    def _forget_mapping(self, mapping_id: int) -> None:
        with self.db.transaction() as session:
            session.execute(sa.delete(models.BlockDeviceMapping).where(models.BlockDeviceMapping.id == mapping_id))

    def _give_back(self, mapping_id: int, attachment_id: str | None) -> None:
        if attachment_id:
            try:
                self._volumes().delete_attachment(attachment_id)
            except StratusError as exc:
                log.warning("could not delete volume attachment %s: %s", attachment_id, exc)
        self._forget_mapping(mapping_id)

    def _plug(self, host: str, doc: dict[str, Any], mapping: dict[str, Any]) -> None:
        """Connect the mapping's attachment for `host`, hot-plug it there, complete it."""
        volumes = self._volumes()
        attachment = volumes.connect_attachment(mapping["attachment_id"], {"host": host})
        self.agent(host, "attach_volume", instance=doc, connection=attachment.get("connection_info") or {},
                   mountpoint=mapping["device_name"])
        volumes.complete_attachment(mapping["attachment_id"])
        with self.db.transaction() as session:
            row = session.get(models.BlockDeviceMapping, mapping["id"])
            if row is not None:
                row.status = "attached"

    def attach_volume(self, instance_id: str, mapping_id: int, request_id: str) -> None:
        """`server add volume`, cast by the API once the attachment is reserved."""
        with self.db.transaction() as session:
            row = session.get(models.Instance, instance_id)
            mapping = session.get(models.BlockDeviceMapping, mapping_id)
            if mapping is None:
                return
            if row is None or row.deleted or not row.host:
                host, doc = None, None
            else:
                host, doc = row.host, instance_doc(row)
            attachment_id = mapping.attachment_id
            found: dict[str, Any] = {"id": mapping.id, "attachment_id": attachment_id,
                                     "device_name": mapping.device_name}
        if host is None or doc is None:
            self._give_back(mapping_id, attachment_id)
            return
        try:
            with instance_actions.event(self.db, instance_id, request_id, "compute_attach_volume", host):
                self._plug(host, doc, found)
        except _FAILURES as exc:
            log.warning("attaching volume mapping %s to %s failed: %s", mapping_id, instance_id, exc)
            self._give_back(mapping_id, attachment_id)

    def detach_volume(self, instance_id: str, mapping_id: int, request_id: str) -> None:
        """`server remove volume`, cast by the API once the mapping is marked `detaching`."""
        with self.db.transaction() as session:
            row = session.get(models.Instance, instance_id)
            mapping = session.get(models.BlockDeviceMapping, mapping_id)
            if mapping is None:
                return
            host = row.host if row is not None and not row.deleted else None
            doc = instance_doc(row) if row is not None and host else None
            attachment_id, device = mapping.attachment_id, mapping.device_name
        try:
            with instance_actions.event(self.db, instance_id, request_id, "compute_detach_volume", host):
                if host and doc is not None:
                    self.agent(host, "detach_volume", instance=doc, connection={}, mountpoint=device)
                if attachment_id:
                    self._volumes().delete_attachment(attachment_id)
        except _FAILURES as exc:
            # The volume stays attached, as the guest and the block storage service still see it.
            log.warning("detaching volume mapping %s from %s failed: %s", mapping_id, instance_id, exc)
            with self.db.transaction() as session:
                current = session.get(models.BlockDeviceMapping, mapping_id)
                if current is not None:
                    current.status = "attached"
            return
        self._forget_mapping(mapping_id)

    # --- boot from volume and delete --------------------------------------------------------

    def _boot_mapping(self, instance_id: str) -> dict[str, Any] | None:
        with self.db.transaction() as session:
            mapping = session.scalar(sa.select(models.BlockDeviceMapping).where(
                models.BlockDeviceMapping.instance_id == instance_id, models.BlockDeviceMapping.boot_index == 0))
            if mapping is None:
                return None
            return {"id": mapping.id, "volume_id": mapping.volume_id, "attachment_id": mapping.attachment_id,
                    "device_name": mapping.device_name, "status": mapping.status}

    def prepare_boot_volume(self, instance_id: str, host: str) -> dict[str, Any] | None:
        """Before the spawn: the root volume is available (a volume made from an image may still be
        copying), reserved for the instance and connected for `host`. Returns what the driver's
        spawn takes as the instance's `root_volume` ({connection, mountpoint}) with the mapping's
        id and attachment; None for a server that boots from an image. Raises StratusError if the
        volume never gets there."""
        mapping = self._boot_mapping(instance_id)
        if mapping is None:
            return None
        volumes = self._volumes()
        if not mapping["attachment_id"]:
            deadline = time.monotonic() + BOOT_VOLUME_TIMEOUT
            while True:
                status = volumes.get_volume(mapping["volume_id"]).get("status")
                if status == "available":
                    break
                if status not in ("creating", "downloading") or time.monotonic() > deadline:
                    raise errors.StratusError(f"Volume {mapping['volume_id']} did not become available "
                                              f"(status {status}).")
                time.sleep(BOOT_VOLUME_POLL)
            attachment = volumes.reserve_attachment(mapping["volume_id"], instance_id)
            with self.db.transaction() as session:
                row = session.get(models.BlockDeviceMapping, mapping["id"])
                if row is not None:
                    row.attachment_id = attachment["id"]
            mapping["attachment_id"] = attachment["id"]
        connected = volumes.connect_attachment(mapping["attachment_id"], {"host": host})
        return {**mapping, "connection": connected.get("connection_info") or {}, "mountpoint": mapping["device_name"]}

    def complete_boot_volume(self, boot_volume: dict[str, Any]) -> None:
        """After the spawn: the root volume is in use by the instance."""
        self._volumes().complete_attachment(boot_volume["attachment_id"])
        with self.db.transaction() as session:
            row = session.get(models.BlockDeviceMapping, boot_volume["id"])
            if row is not None:
                row.status = "attached"

    def release_volumes(self, instance_id: str) -> None:
        """The instance is gone from its host: every attachment is deleted (the volume goes
        `available`) and the volumes marked delete_on_termination are deleted; the mappings go."""
        with self.db.transaction() as session:
            mappings = [(m.id, m.volume_id, m.attachment_id, m.delete_on_termination)
                        for m in session.scalars(sa.select(models.BlockDeviceMapping).where(
                            models.BlockDeviceMapping.instance_id == instance_id))]
        if not mappings:
            return
        volumes = self._volumes()
        for mapping_id, volume_id, attachment_id, delete in mappings:
            try:
                if attachment_id:
                    volumes.delete_attachment(attachment_id)
                if delete:
                    volumes.delete_volume(volume_id)
            except errors.NotFound:
                pass  # deleted already
            except StratusError as exc:
                log.warning("could not release volume %s of %s: %s", volume_id, instance_id, exc)
            self._forget_mapping(mapping_id)
