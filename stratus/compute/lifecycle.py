"""Server actions as the conductor carries them out: power operations, rebuild, snapshot, and the
resize/migrate dance (a claim on the destination while the source keeps its own, until the user
confirms or reverts).

The API has already checked the request and set the task_state; here the host's agent acts and
the outcome is written down. A failure puts the server back where it was (or in ERROR when the
hypervisor left it unknown), with a fault and an Error event in its instance action.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from stratus.compute import claims, instance_actions, models, networking
from stratus.compute.drivers.base import NOSTATE
from stratus.compute.rpc import SCHEDULER_TOPIC, instance_doc
from stratus.compute.scheduler import NoValidHost, RequestSpec
from stratus.core.db import utcnow
from stratus.core.errors import BusTimeout, RemoteError, StratusError

if TYPE_CHECKING:
    from stratus.compute.service import ComputeService
    from stratus.core.bus import Bus
    from stratus.core.db import Database

log = logging.getLogger("stratus.compute.lifecycle")

# action -> (agent power operation, vm_state after success, event name)
POWER_ACTIONS = {
    "stop": ("power_off", "stopped", "compute_stop_instance"),
    "start": ("power_on", "active", "compute_start_instance"),
    "pause": ("pause", "paused", "compute_pause_instance"),
    "unpause": ("unpause", "active", "compute_unpause_instance"),
    "suspend": ("suspend", "suspended", "compute_suspend_instance"),
    "resume": ("resume", "active", "compute_resume_instance"),
}
_FAILURES = (RemoteError, BusTimeout, StratusError)


class LifecycleMixin:
    # Provided by the Conductor this is mixed into.
    db: Database
    service: ComputeService
    bus: Bus

    def agent(self, host: str, method: str, **kwargs: Any) -> Any:
        raise NotImplementedError

    def _set(self, instance_id: str, **changes: Any) -> None:
        raise NotImplementedError

    def instance_action(self, instance_id: str, action: str, request_id: str,
                        params: dict[str, Any] | None = None) -> None:
        """Carry out `action` (cast by the API once it set the task_state)."""
        params = params or {}
        with self.db.transaction() as session:
            row = session.get(models.Instance, instance_id)
            if row is None or row.deleted:
                return
            host, doc, vm_state = row.host or "", instance_doc(row), row.vm_state
        handler = getattr(self, f"_do_{action}", None)
        if not host:  # never placed (a build that failed): nothing can act on it
            self._failed(instance_id, None, vm_state, f"{action} failed: the instance is on no host")
            return
        try:
            if action in POWER_ACTIONS:
                operation, after, event = POWER_ACTIONS[action]
                with instance_actions.event(self.db, instance_id, request_id, event, host):
                    power = self.agent(host, "power", instance=doc, operation=operation)
                self._done(instance_id, vm_state=after, power_state=power)
            elif action == "reboot":
                with instance_actions.event(self.db, instance_id, request_id, "compute_reboot_instance", host):
                    power = self.agent(host, "reboot", instance=doc, hard=bool(params.get("hard")))
                self._done(instance_id, vm_state="active", power_state=power)
            elif handler is not None:
                handler(instance_id, host, doc, request_id, params)
            else:
                raise ValueError(f"unknown instance action {action!r}")
        except _FAILURES as exc:
            log.warning("%s of %s failed: %s", action, instance_id, exc)
            self._failed(instance_id, host, vm_state, f"{action} failed: {exc}")

    # --- outcomes -----------------------------------------------------------------------------

    def _done(self, instance_id: str, **changes: Any) -> None:
        changes.setdefault("task_state", None)
        self._set(instance_id, **changes)

    def _failed(self, instance_id: str, host: str | None, vm_state: str, message: str) -> None:
        with self.db.transaction() as session:
            row = session.get(models.Instance, instance_id)
            if row is None or row.deleted:
                return
            row.task_state = None
            row.vm_state = vm_state
            session.add(models.InstanceFault(instance_id=instance_id, code=500, message=message[:255], host=host))

    # --- rebuild and snapshot -------------------------------------------------------------------

    def _do_rebuild(self, instance_id: str, host: str, doc: dict[str, Any], request_id: str,
                    params: dict[str, Any]) -> None:
        with self.db.transaction() as session:
            row = session.get(models.Instance, instance_id)
            info = list(row.network_info or []) if row is not None else []
        with instance_actions.event(self.db, instance_id, request_id, "compute_rebuild_instance", host):
            power = self.agent(host, "rebuild", instance=doc, image_meta=params.get("image_meta", {}),
                               network_info=networking.ports_of(info), admin_password=params.get("admin_password"))
        self._done(instance_id, vm_state="active", power_state=power, launched_at=utcnow())

    def _do_snapshot(self, instance_id: str, host: str, doc: dict[str, Any], request_id: str,
                     params: dict[str, Any]) -> None:
        image_id = params["image_id"]
        self._set(instance_id, task_state="image_uploading")
        try:
            with instance_actions.event(self.db, instance_id, request_id, "compute_snapshot_instance", host):
                self.agent(host, "snapshot", instance=doc, image_id=image_id)
        except _FAILURES:
            # The image would stay queued for ever: it goes, as Nova deletes a failed snapshot.
            if self.service.image is not None:
                try:
                    self.service.image.delete_image(image_id)
                except StratusError as exc:
                    log.warning("could not delete the failed snapshot %s: %s", image_id, exc)
            raise
        self._done(instance_id)

    # --- resize and migrate ---------------------------------------------------------------------

    def _do_resize(self, instance_id: str, source: str, doc: dict[str, Any], request_id: str,
                   params: dict[str, Any]) -> None:
        """To another host with `params["flavor"]` (a flavor copy; the same flavor for a migrate)."""
        new_flavor = params["flavor"]
        migration_type = params.get("migration_type", "resize")
        with self.db.transaction() as session:
            row = session.get(models.Instance, instance_id)
            assert row is not None
            spec = RequestSpec.from_dict({**row.request_spec["scheduler"], "instance_id": instance_id})
            migration = models.Migration(instance_id=instance_id, project_id=row.project_id, user_id=row.user_id,
                                         migration_type=migration_type, source_compute=source, source_node=source,
                                         old_flavor_id=row.flavor_id, new_flavor_id=new_flavor["id"],
                                         status="pre-migrating")
            session.add(migration)
            session.flush()
            migration_id = migration.id
            info = list(row.network_info or [])
            image_meta = {k.removeprefix("image_"): v for k, v in (row.system_metadata or {}).items()}
        spec.vcpus, spec.memory_mb = new_flavor["vcpus"], new_flavor["ram"]
        spec.disk_gb = new_flavor["disk"] + new_flavor.get("ephemeral", 0) + -(-new_flavor.get("swap", 0) // 1024)
        spec.flavor_extra_specs = dict(new_flavor.get("extra_specs", {}))
        spec.ignore_hosts = [source]
        spec.force_host = params.get("host")
        try:
            with instance_actions.event(self.db, instance_id, request_id, "conductor_migrate_server"):
                dest = self.bus.call(SCHEDULER_TOPIC, "select_destination", spec=spec.to_dict())
        except NoValidHost as exc:
            self._migration_status(migration_id, "error")
            self._failed(instance_id, source, "active", exc.message)
            return
        self._migration_status(migration_id, "migrating", dest_compute=dest, dest_node=dest)
        moved = {**doc, "flavor": new_flavor, "host": dest}
        try:
            with instance_actions.event(self.db, instance_id, request_id, "compute_resize_instance", source):
                self.agent(source, "migrate_out", instance=doc, dest_host=dest, new_flavor=new_flavor)
            network = self.service.network
            if network is not None and info:
                ports = networking.bind(network, networking.ports_of(info), dest)
                info = networking.network_info(network, ports)
            with instance_actions.event(self.db, instance_id, request_id, "compute_finish_resize", dest):
                power = self.agent(dest, "migrate_in", instance=moved, image_meta=image_meta,
                                   network_info=networking.ports_of(info))
        except _FAILURES as exc:
            with self.db.transaction() as session:
                claims.release(session, instance_id, dest)
            self._migration_status(migration_id, "error")
            self._failed(instance_id, source, "error", f"Resize failed: {exc}")
            return
        self._migration_status(migration_id, "finished")
        with self.db.transaction() as session:
            row = session.get(models.Instance, instance_id)
            if row is None:
                return
            row.old_flavor, row.flavor, row.new_flavor = dict(row.flavor), new_flavor, None
            row.flavor_id = new_flavor["id"]
            row.vcpus, row.memory_mb = new_flavor["vcpus"], new_flavor["ram"]
            row.root_gb, row.ephemeral_gb = new_flavor["disk"], new_flavor.get("ephemeral", 0)
            row.host = row.node = dest
            row.network_info = info
            row.vm_state, row.task_state, row.power_state = "resized", None, int(power or NOSTATE)

    def _finished_migration(self, session: Any, instance_id: str) -> models.Migration | None:
        return session.scalar(sa.select(models.Migration).where(
            models.Migration.instance_id == instance_id, models.Migration.status == "finished")
            .order_by(models.Migration.id.desc()).limit(1))

    def _do_confirm_resize(self, instance_id: str, host: str, doc: dict[str, Any], request_id: str,
                           params: dict[str, Any]) -> None:
        with self.db.transaction() as session:
            migration = self._finished_migration(session, instance_id)
            source = migration.source_compute if migration is not None else None
        if source and source != host:
            with instance_actions.event(self.db, instance_id, request_id, "compute_confirm_resize", source):
                self.agent(source, "confirm_migration", instance=doc)
        with self.db.transaction() as session:
            if source and source != host:
                claims.release(session, instance_id, source)
            migration = self._finished_migration(session, instance_id)
            if migration is not None:
                migration.status = "confirmed"
            row = session.get(models.Instance, instance_id)
            if row is not None:
                row.old_flavor = None
                row.vm_state, row.task_state = "active", None

    def _do_revert_resize(self, instance_id: str, dest: str, doc: dict[str, Any], request_id: str,
                          params: dict[str, Any]) -> None:
        with self.db.transaction() as session:
            migration = self._finished_migration(session, instance_id)
            row = session.get(models.Instance, instance_id)
            if migration is None or row is None or row.old_flavor is None:
                raise StratusError("no finished migration to revert")
            source, old_flavor, info = migration.source_compute or dest, dict(row.old_flavor), list(row.network_info)
        with instance_actions.event(self.db, instance_id, request_id, "compute_revert_resize", dest):
            self.agent(dest, "destroy", instance=doc, network_info=networking.ports_of(info))
        network = self.service.network
        if network is not None and info:
            info = networking.network_info(network, networking.bind(network, networking.ports_of(info), source))
        back = {**doc, "flavor": old_flavor, "host": source}
        with instance_actions.event(self.db, instance_id, request_id, "compute_finish_revert_resize", source):
            power = self.agent(source, "revert_migration", instance=back, network_info=networking.ports_of(info))
        with self.db.transaction() as session:
            if source != dest:
                claims.release(session, instance_id, dest)
            migration = self._finished_migration(session, instance_id)
            if migration is not None:
                migration.status = "reverted"
            row = session.get(models.Instance, instance_id)
            if row is not None:
                row.flavor, row.old_flavor, row.flavor_id = old_flavor, None, old_flavor["id"]
                row.vcpus, row.memory_mb = old_flavor["vcpus"], old_flavor["ram"]
                row.root_gb, row.ephemeral_gb = old_flavor["disk"], old_flavor.get("ephemeral", 0)
                row.host = row.node = source
                row.network_info = info
                row.vm_state, row.task_state, row.power_state = "active", None, int(power or NOSTATE)

    def _migration_status(self, migration_id: int, status: str, **changes: Any) -> None:
        with self.db.transaction() as session:
            migration = session.get(models.Migration, migration_id)
            if migration is not None:
                migration.status = status
                for name, value in changes.items():
                    setattr(migration, name, value)
