"""The volume agent of one storage host: runs its backend for the conductor.

It listens on `volume.<host>` and never touches the database. At start it first resyncs — removes
what a crash left half-made, asks the conductor what this host should hold, deletes files no record
claims, and tells the conductor which records have no file — and only then takes requests, so a
volume is never a file without a record nor a record pointing at nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from stratus.core.bus import Bus, RpcServer
from stratus.core.periodic import Periodic
from stratus.image.client import ImageClient
from stratus.volume.backends.base import Backend
from stratus.volume.exports import NbdExports
from stratus.volume.rpc import AGENT_BINARY, AGENT_TOPIC, CONDUCTOR_TOPIC

log = logging.getLogger("stratus.volume.agent")


class VolumeAgent:
    """The bus endpoint of one storage host. Public methods are what the conductor may call."""

    def __init__(self, bus: Bus, host: str, backend: Backend, *, availability_zone: str = "nova",
                 image: ImageClient | None = None, report_interval: float = 10.0,
                 storage_address: str = "127.0.0.1") -> None:
        self.host = host
        self.backend = backend
        self._bus, self._image = bus, image
        self._zone = availability_zone
        self._exports = NbdExports(storage_address)
        self._server: RpcServer | None = None
        self._heartbeat = Periodic(f"volume heartbeat {host}", self.report, report_interval)

    # --- life -------------------------------------------------------------------------------

    def start(self) -> None:
        """Register, resync, then serve and heartbeat in the background."""
        self.report()
        self.resync()
        self._server = self._bus.serve(AGENT_TOPIC, self, host=self.host)
        self._heartbeat.start()

    def stop(self) -> None:
        self._heartbeat.stop()
        if self._server is not None:
            self._server.stop()
            self._server = None
        self._exports.close_all()

    def report(self) -> None:
        capacity = self.backend.capacity()
        self._bus.call(CONDUCTOR_TOPIC, "report_state", host=self.host, binary=AGENT_BINARY,
                       availability_zone=self._zone, backend=self.backend.name,
                       total_gb=capacity.total_gb, free_gb=capacity.free_gb)

    def resync(self) -> dict[str, Any]:
        """Bring disk and records into agreement after a (re)start; what was done, for the log."""
        removed = self.backend.cleanup_partials()
        expected = self._bus.call(CONDUCTOR_TOPIC, "expected_on_host", host=self.host)
        volumes, snapshots = self.backend.volumes(), self.backend.snapshots()
        orphans = sorted(volumes - set(expected["volumes"]))
        for volume_id in orphans:
            self.backend.delete(volume_id)
        orphan_snapshots = sorted(snapshots - set(expected["snapshots"]))
        for snapshot_id in orphan_snapshots:
            self.backend.delete_snapshot(snapshot_id)
        result = self._bus.call(CONDUCTOR_TOPIC, "host_resynced", host=self.host,
                                volumes=sorted(volumes - set(orphans)),
                                snapshots=sorted(snapshots - set(orphan_snapshots)))
        done = {"partials": removed, "orphans": orphans, "orphan_snapshots": orphan_snapshots, **result}
        if any(done.values()):
            log.info("volume agent %s resynced: %s", self.host, done)
        return done

    # --- what the conductor calls -------------------------------------------------------------

    def create_volume(self, volume_id: str, size: int) -> None:
        self.backend.create(volume_id, size)

    def create_volume_from_image(self, volume_id: str, size: int, image_id: str, disk_format: str) -> None:
        if self._image is None:
            raise RuntimeError(f"volume agent {self.host} has no image service to read from")
        self.backend.create_from_image(volume_id, size, self._image.download(image_id), disk_format)

    def create_volume_from_snapshot(self, volume_id: str, size: int, snapshot_id: str) -> None:
        self.backend.create_from_snapshot(volume_id, snapshot_id, size)

    def clone_volume(self, volume_id: str, size: int, source_id: str) -> None:
        self.backend.clone(volume_id, source_id, size)

    def extend_volume(self, volume_id: str, size: int) -> None:
        self.backend.extend(volume_id, size)

    def delete_volume(self, volume_id: str) -> None:
        self._exports.close(volume_id)
        self.backend.delete(volume_id)

    def create_snapshot(self, snapshot_id: str, volume_id: str) -> None:
        self.backend.create_snapshot(snapshot_id, volume_id)

    def delete_snapshot(self, snapshot_id: str) -> None:
        self.backend.delete_snapshot(snapshot_id)

    def upload_to_image(self, volume_id: str, image_id: str, disk_format: str) -> None:
        if self._image is None:
            raise RuntimeError(f"volume agent {self.host} has no image service to upload to")
        try:
            self._image.set_formats(image_id, disk_format, "bare")
            self._image.upload(image_id, self.backend.read_as(volume_id, disk_format))
        except Exception:
            # A half-made image helps nobody: it goes, and the conductor hears why.
            try:
                self._image.delete_image(image_id)
            except Exception as exc:
                log.warning("volume agent %s: could not delete image %s: %s", self.host, image_id, exc)
            raise

    def connection(self, volume_id: str, connector_host: str | None) -> dict[str, Any]:
        """How a compute host reaches the volume: its path when the host is this one, an NBD export
        (the volume's format decoded by qemu-nbd, so the client sees raw) otherwise."""
        path = self.backend.path(volume_id)
        if not path.exists():
            raise RuntimeError(f"volume {volume_id} is not on host {self.host}")
        if connector_host in (None, "", self.host):
            return {"driver_volume_type": "local",
                    "data": {"device_path": str(path), "format": self.backend.disk_format(),
                             "volume_id": volume_id}}
        export = self._exports.export(volume_id, path, self.backend.disk_format())
        return {"driver_volume_type": "nbd",
                "data": {"host": export.address, "port": export.port, "export_name": export.name,
                         "format": "raw", "volume_id": volume_id}}

    def disconnect(self, volume_id: str) -> bool:
        """Stop the volume's NBD export, if it has one; whether it had."""
        return self._exports.close(volume_id)
