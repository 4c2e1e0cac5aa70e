"""The volume conductor: the only volume role that writes the database for the agents.

The API writes a record in its transitional state (`creating`, `deleting`, `extending`, ...) and
casts the operation here; the conductor picks a host (the scheduler), asks that host's agent to
act and writes down the outcome: the steady state, or `error*` with a fault message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from stratus.core.bus import Bus, RpcServer
from stratus.core.db import utcnow
from stratus.core.errors import NotFound
from stratus.volume import models
from stratus.volume.rpc import AGENT_TOPIC, CONDUCTOR_TOPIC
from stratus.volume.scheduler import NoValidBackend, select_host
from stratus.volume.service import VolumeService

log = logging.getLogger("stratus.volume.conductor")


def _short(exc: BaseException) -> str:
    return str(exc)[:255] or type(exc).__name__


class Conductor:
    """Public methods are its bus API (topic `volume-conductor`)."""

    def __init__(self, service: VolumeService, bus: Bus) -> None:
        self.service, self.bus = service, bus
        self.db = service.db
        self.settings = service.settings

    def serve(self) -> RpcServer:
        return self.bus.serve(CONDUCTOR_TOPIC, self)

    def _agent(self, host: str, method: str, **kwargs: Any) -> Any:
        return self.bus.call(f"{AGENT_TOPIC}.{host}", method, timeout=self.settings.operation_timeout, **kwargs)

    # --- agents -------------------------------------------------------------------------------

    def report_state(self, host: str, binary: str, availability_zone: str = "nova", backend: str | None = None,
                     total_gb: float = 0.0, free_gb: float = 0.0) -> dict[str, Any]:
        with self.db.transaction() as session:
            row = session.scalar(sa.select(models.Service).where(models.Service.host == host,
                                                                 models.Service.binary == binary))
            if row is None:
                row = models.Service(host=host, binary=binary)
                session.add(row)
            row.availability_zone = availability_zone
            row.backend = backend
            row.total_gb, row.free_gb = total_gb, free_gb
            row.last_seen_up = utcnow()
            return {"disabled": row.disabled}

    def expected_on_host(self, host: str) -> dict[str, list[str]]:
        """The volumes and snapshots whose records say they live (or are being made) on `host`."""
        with self.db.transaction() as session:
            volumes = session.scalars(sa.select(models.Volume.id).where(models.Volume.host == host))
            snapshots = session.scalars(sa.select(models.Snapshot.id).where(models.Snapshot.host == host))
            return {"volumes": list(volumes), "snapshots": list(snapshots)}

    def host_resynced(self, host: str, volumes: list[str], snapshots: list[str]) -> dict[str, list[str]]:
        """An agent restarted holding these files: records of `host` without a file are settled.

        One still `creating` lost its agent mid-way: error. One that should exist and does not:
        error (its record stays, saying so). One being deleted whose file is gone: removed.
        """
        present, present_snaps = set(volumes), set(snapshots)
        failed, finished = [], []
        with self.db.transaction() as session:
            for row in session.scalars(sa.select(models.Volume).where(models.Volume.host == host)):
                if row.id in present:
                    if row.status == "creating":  # the file was complete: the create finished
                        row.status, row.launched_at = "available", utcnow()
                        finished.append(row.id)
                    continue
                if row.status in ("deleting", "error_deleting"):
                    session.delete(row)
                    finished.append(row.id)
                elif row.status != "error":
                    row.status, row.fault = "error", "The volume's storage host restarted without its data."
                    failed.append(row.id)
            for snap in session.scalars(sa.select(models.Snapshot).where(models.Snapshot.host == host)):
                if snap.id in present_snaps:
                    if snap.status == "creating":
                        snap.status, snap.progress = "available", "100%"
                    continue
                if snap.status in ("deleting", "error_deleting"):
                    session.delete(snap)
                elif snap.status != "error":
                    snap.status = "error"
                    failed.append(snap.id)
        return {"failed": failed, "finished": finished}

    # --- helpers ------------------------------------------------------------------------------

    def _settle(self, model: type[Any], row_id: str, *, only_if: str | None = None, **changes: Any) -> None:
        """Write the outcome, unless the row moved on meanwhile (deleted, or settled by a resync)."""
        with self.db.transaction() as session:
            row = session.get(model, row_id)
            if row is not None and (only_if is None or row.status == only_if):
                for name, value in changes.items():
                    setattr(row, name, value)

    def _attempt(self, model: type[Any], row_id: str, work: Callable[[], None], *, done: dict[str, Any],
                 failed: dict[str, Any], only_if: str | None = None) -> bool:
        try:
            work()
        except Exception as exc:
            log.warning("%s %s: %s", model.__tablename__, row_id, exc)
            if model is models.Volume:
                failed = {**failed, "fault": _short(exc)}
            self._settle(model, row_id, only_if=only_if, **failed)
            return False
        self._settle(model, row_id, only_if=only_if, **done)
        return True

    # --- volumes ------------------------------------------------------------------------------

    def create_volume(self, volume_id: str, image_format: str | None = None) -> None:
        """Place the `creating` volume on a host, have its agent make it, then `available` (or `error`)."""
        with self.db.transaction() as session:
            row = session.get(models.Volume, volume_id)
            if row is None or row.status != "creating":
                return
            only_host = None
            if row.snapshot_id:
                snap = session.get(models.Snapshot, row.snapshot_id)
                only_host = snap.host if snap is not None else None
            elif row.source_volid:
                source = session.get(models.Volume, row.source_volid)
                only_host = source.host if source is not None else None
            vtype = session.get(models.VolumeType, row.volume_type_id) if row.volume_type_id else None
            try:
                host = select_host(session, self.settings, size=row.size, availability_zone=row.availability_zone,
                                   extra_specs=dict(vtype.extra_specs) if vtype else {}, only_host=only_host)
            except NoValidBackend as exc:
                row.status, row.fault = "error", _short(exc)
                return
            # Written before the agent makes anything: a file on this host always has its record.
            row.host = host
            doc = {"volume_id": row.id, "size": row.size}
            image_id, snapshot_id, source_id = row.image_id, row.snapshot_id, row.source_volid

        def work() -> None:
            if image_id:
                self._agent(host, "create_volume_from_image", image_id=image_id,
                            disk_format=image_format or "raw", **doc)
            elif snapshot_id:
                self._agent(host, "create_volume_from_snapshot", snapshot_id=snapshot_id, **doc)
            elif source_id:
                self._agent(host, "clone_volume", source_id=source_id, **doc)
            else:
                self._agent(host, "create_volume", **doc)

        self._attempt(models.Volume, volume_id, work, done={"status": "available", "launched_at": utcnow()},
                      failed={"status": "error"}, only_if="creating")

    def delete_volume(self, volume_id: str, cascade: bool = False) -> None:
        """Delete the `deleting` volume's file (and its snapshots' with cascade), then its record."""
        with self.db.transaction() as session:
            row = session.get(models.Volume, volume_id)
            if row is None or row.status != "deleting":
                return
            host = row.host
            snapshots = list(session.scalars(sa.select(models.Snapshot.id).where(
                models.Snapshot.volume_id == volume_id)))
        try:
            if host is not None:
                for snapshot_id in snapshots if cascade else []:
                    self._agent(host, "delete_snapshot", snapshot_id=snapshot_id)
                self._agent(host, "delete_volume", volume_id=volume_id)
        except Exception as exc:
            log.warning("volume %s: delete failed: %s", volume_id, exc)
            self._settle(models.Volume, volume_id, status="error_deleting", fault=_short(exc))
            return
        with self.db.transaction() as session:
            if cascade:
                session.execute(sa.delete(models.Snapshot).where(models.Snapshot.volume_id == volume_id))
            session.execute(sa.delete(models.Attachment).where(models.Attachment.volume_id == volume_id))
            session.execute(sa.delete(models.Volume).where(models.Volume.id == volume_id))

    def extend_volume(self, volume_id: str, old_size: int, back_to: str) -> None:
        """Grow the file to the size the API reserved; on failure the old size comes back."""
        with self.db.transaction() as session:
            row = session.get(models.Volume, volume_id)
            if row is None or row.status != "extending" or row.host is None:
                return
            host, size = row.host, row.size
        self._attempt(models.Volume, volume_id, lambda: self._agent(host, "extend_volume", volume_id=volume_id,
                                                                    size=size),
                      done={"status": back_to}, failed={"status": "error_extending", "size": old_size})

    def upload_to_image(self, volume_id: str, image_id: str, disk_format: str, back_to: str) -> None:
        with self.db.transaction() as session:
            row = session.get(models.Volume, volume_id)
            if row is None or row.host is None:
                return
            host = row.host
        self._attempt(models.Volume, volume_id,
                      lambda: self._agent(host, "upload_to_image", volume_id=volume_id, image_id=image_id,
                                          disk_format=disk_format),
                      done={"status": back_to}, failed={"status": back_to})

    def initialize_connection(self, volume_id: str, connector: dict[str, Any]) -> dict[str, Any]:
        """The connection info a compute host uses (a call: the API waits for it)."""
        with self.db.transaction() as session:
            row = session.get(models.Volume, volume_id)
            if row is None or row.host is None:
                raise NotFound(f"Volume {volume_id} could not be found.")
            host = row.host
        return self._agent(host, "connection", volume_id=volume_id,  # type: ignore[no-any-return]
                           connector_host=connector.get("host"))

    def terminate_connection(self, volume_id: str) -> bool:
        """The volume's exports end (a local path needs no teardown)."""
        with self.db.transaction() as session:
            row = session.get(models.Volume, volume_id)
            if row is None or row.host is None:
                return False
            host = row.host
        return bool(self._agent(host, "disconnect", volume_id=volume_id))

    # --- snapshots ----------------------------------------------------------------------------

    def create_snapshot(self, snapshot_id: str) -> None:
        with self.db.transaction() as session:
            snap = session.get(models.Snapshot, snapshot_id)
            if snap is None or snap.status != "creating":
                return
            volume = session.get(models.Volume, snap.volume_id)
            if volume is None or volume.host is None:
                snap.status = "error"
                return
            snap.host = host = volume.host
        self._attempt(models.Snapshot, snapshot_id,
                      lambda: self._agent(host, "create_snapshot", snapshot_id=snapshot_id,
                                          volume_id=snap.volume_id),
                      done={"status": "available", "progress": "100%"}, failed={"status": "error"})

    def delete_snapshot(self, snapshot_id: str) -> None:
        with self.db.transaction() as session:
            snap = session.get(models.Snapshot, snapshot_id)
            if snap is None or snap.status != "deleting":
                return
            host = snap.host
        try:
            if host is not None:
                self._agent(host, "delete_snapshot", snapshot_id=snapshot_id)
        except Exception as exc:
            log.warning("snapshot %s: delete failed: %s", snapshot_id, exc)
            self._settle(models.Snapshot, snapshot_id, status="error_deleting")
            return
        with self.db.transaction() as session:
            session.execute(sa.delete(models.Snapshot).where(models.Snapshot.id == snapshot_id))
