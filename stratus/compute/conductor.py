"""The compute conductor: the only compute role that writes the database for the agents.

Agents call it with heartbeats and power states; the API casts it the operations that need a
host (build, delete, and the server actions in `lifecycle.py`). It asks the scheduler for a host,
the network service for ports, and the chosen host's agent to act, and writes down each step in
the instance's vm_state/task_state as the Compute API documents them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from stratus.compute import claims, instance_actions, models, networking, zones
from stratus.compute.drivers.base import NOSTATE, RUNNING, SHUTDOWN
from stratus.compute.lifecycle import LifecycleMixin
from stratus.compute.rpc import AGENT_TOPIC, CONDUCTOR_TOPIC, SCHEDULER_TOPIC, instance_doc
from stratus.compute.scheduler import NoValidHost, RequestSpec
from stratus.compute.service import ComputeService
from stratus.compute.volume_ops import VolumeMixin
from stratus.core.bus import Bus, RpcServer
from stratus.core.db import utcnow
from stratus.core.errors import BusTimeout, RemoteError, StratusError

log = logging.getLogger("stratus.compute.conductor")


@dataclass
class _BuildPlan:
    """What a build needs from the instance's request, read once at its start."""

    spec: RequestSpec
    requests: list[dict[str, Any]]
    group_ids: list[str]
    project_id: str
    zone: str
    boot_volume: bool  # False: the API mapped no root volume (boots from an image)
    action_id: int | None  # the request's action, which the build's events belong to

BUILD_EVENT = "compute__do_build_and_run_instance"
SCHEDULE_EVENT = "conductor_schedule_and_build_instances"


def fault(session: Any, instance_id: str, message: str, code: int = 500, host: str | None = None,
          details: str = "") -> None:
    session.add(models.InstanceFault(instance_id=instance_id, code=code, message=message[:255], host=host,
                                     details=details))


class Conductor(LifecycleMixin, VolumeMixin):
    """Public methods are its bus API (topic `compute-conductor`)."""

    def __init__(self, service: ComputeService, bus: Bus) -> None:
        self.service, self.bus = service, bus
        self.db = service.db
        self.settings = service.settings
        # host -> (the compute node figures this conductor last wrote for it, when); see report_state
        self._written: dict[str, tuple[dict[str, Any], float]] = {}

    def serve(self) -> RpcServer:
        return self.bus.serve(CONDUCTOR_TOPIC, self, workers=self.settings.conductor_workers)

    def agent(self, host: str, method: str, **kwargs: Any) -> Any:
        return self.bus.call(f"{AGENT_TOPIC}.{host}", method, **kwargs)

    # --- agents -------------------------------------------------------------------------------

    def report_state(self, host: str, binary: str, resources: dict[str, Any] | None = None) -> dict[str, Any]:
        """A heartbeat: the service row (made on first report) is seen up now; a compute host's
        resources are written to its compute node when they differ from what this conductor last
        wrote there. Every host sends one every report interval, so this is the conductor's steadiest
        load: prebuilt statements, and an unchanged node is left alone (its updated_at is the
        scheduler's change stamp, so it then has no row to read again either). With several
        conductors another one may have written other figures since: what this one wrote is trusted
        for NODE_REWRITE_INTERVAL only."""
        now, clock = utcnow(), time.monotonic()
        written = None
        with self.db.transaction() as session:
            connection = session.connection()
            service = connection.execute(_FIND_SERVICE, {"b_host": host, "b_binary": binary}).first()
            if service is None:
                topic = AGENT_TOPIC if binary == "nova-compute" else binary.removeprefix("nova-")
                connection.execute(sa.insert(_SERVICES).values(host=host, binary=binary, topic=topic,
                                                               last_seen_up=now, report_count=1))
            else:
                connection.execute(_SEEN_UP, {"b_id": service.id, "last_seen_up": now})
            if resources is not None:
                node = self._node_figures(host, resources)
                # A new service row may be a host deleted and back: its node is written whatever was.
                last, at = self._written.get(host, (None, 0.0))
                if service is None or last != node or clock - at > NODE_REWRITE_INTERVAL:
                    if not connection.execute(_WRITE_NODE, {"b_host": host, **node, "updated_at": now}).rowcount:
                        connection.execute(sa.insert(_NODES).values(host=host, vcpus_used=0, memory_mb_used=0,
                                                                    local_gb_used=0, running_vms=0, updated_at=now,
                                                                    **node))
                    written = node
        if written is not None:  # committed
            self._written[host] = (written, clock)
        return {"disabled": bool(service is not None and service.disabled)}

    def _node_figures(self, host: str, resources: dict[str, Any]) -> dict[str, Any]:
        s = self.settings
        node: dict[str, Any] = {name: resources[name] for name in _REPORTED if name in resources}
        node.update(hypervisor_hostname=resources.get("hypervisor_hostname") or host,
                    cpu_allocation_ratio=s.cpu_allocation_ratio, ram_allocation_ratio=s.ram_allocation_ratio,
                    disk_allocation_ratio=s.disk_allocation_ratio)
        return node

    def instances_on_host(self, host: str) -> list[str]:
        with self.db.transaction() as session:
            return list(session.scalars(sa.select(models.Instance.id).where(
                models.Instance.host == host, models.Instance.deleted.is_(False))))

    def sync_power_states(self, host: str, states: dict[str, int]) -> int:
        """An agent's view after it (re)started: instances that should run but do not are stopped."""
        changed = 0
        with self.db.transaction() as session:
            rows = session.scalars(sa.select(models.Instance).where(
                models.Instance.id.in_(list(states)), models.Instance.host == host,
                models.Instance.deleted.is_(False)))
            for row in rows:
                power = int(states[row.id])
                if row.power_state != power:
                    row.power_state = power
                    changed += 1
                if row.task_state is None and row.vm_state == "active" and power in (NOSTATE, SHUTDOWN):
                    row.vm_state = "stopped"
                    changed += 1
        return changed

    # --- build --------------------------------------------------------------------------------

    def build_instance(self, instance_id: str, request_id: str, admin_password: str | None = None) -> None:
        """Ports, then up to max_attempts hosts; ERROR with a fault (and everything freed) if none works.
        The action's events are written in the build's own transactions: a boot costs few commits."""
        with self.db.transaction() as session:
            schedule_event = instance_actions.begin(session, instance_id, request_id, SCHEDULE_EVENT)
            row = session.get(models.Instance, instance_id)
            if row is None or row.deleted or row.task_state == "deleting":
                plan = None
            else:
                row.task_state = "scheduling"
                plan = _BuildPlan(RequestSpec.from_dict(row.request_spec["scheduler"]),
                                  row.request_spec.get("networks", []), row.request_spec.get("security_group_ids", []),
                                  row.project_id, row.availability_zone or self.settings.default_availability_zone,
                                  bool(row.request_spec.get("boot_volume", True)),
                                  instance_actions.action_of(session, schedule_event))
        try:
            finished = plan is not None and self._build(plan, instance_id, request_id, admin_password, schedule_event)
        except Exception as exc:
            # Not one of the failures _build handles (a database or connection error): the
            # instance must still end in ERROR, holding nothing, rather than building forever.
            log.exception("build of %s failed unexpectedly", instance_id)
            self._fail_build(instance_id, f"Build of instance {instance_id} failed: {exc}",
                             self._ports_made_for(instance_id))
            with self.db.transaction() as session:
                instance_actions.finish(session, schedule_event, instance_id, request_id, exc)
            raise
        if not finished:
            with self.db.transaction() as session:
                instance_actions.finish(session, schedule_event, instance_id, request_id)

    def _build(self, plan: _BuildPlan, instance_id: str, request_id: str, admin_password: str | None,
               schedule_event: int | None) -> bool:
        """True when the server is ACTIVE (and the schedule event finished with it)."""
        network = self.service.network
        spec = plan.spec
        ports: list[dict[str, Any]] = []
        info: list[dict[str, Any]] = []
        tried: list[str] = []
        last_error = "No valid host was found. "
        for _attempt in range(self.settings.max_attempts):
            try:
                host = self.bus.call(SCHEDULER_TOPIC, "select_destination", spec=spec.to_dict())
            except NoValidHost as exc:
                last_error = exc.message
                break
            tried.append(host)
            if not self._place(instance_id, host):
                self._abandon(instance_id, request_id)
                return False
            if network is not None and plan.requests and not ports:
                try:  # the ports are made bound to the first host
                    ports = networking.allocate(network, instance_id, plan.project_id, plan.zone, plan.requests,
                                                plan.group_ids, host)
                except StratusError as exc:
                    self._fail_build(instance_id, f"Build of instance {instance_id} aborted: Failed to allocate "
                                     f"the network(s): {exc.message}", [])
                    return False
            build_event: int | None = None
            try:
                if network is not None and ports:
                    if ports[0].get("binding:host_id") != host:
                        ports = networking.bind(network, ports, host)
                    info = networking.network_info(network, ports, floating_ips=False,
                                                   names=networking.labels(plan.requests))
                with self.db.transaction() as session:
                    row = session.get(models.Instance, instance_id)
                    if row is None or row.deleted or row.task_state == "deleting":
                        doc = None
                    else:
                        if info:
                            row.network_info = info
                        row.task_state = "spawning"
                        doc = instance_doc(row)
                        image_meta = {k.removeprefix("image_"): v for k, v in (row.system_metadata or {}).items()}
                        build_event = instance_actions.begin(session, instance_id, request_id, BUILD_EVENT, host,
                                                             action_id=plan.action_id)
                if doc is None:
                    self._abandon(instance_id, request_id)
                    return False
                boot_volume = self.prepare_boot_volume(instance_id, host) if plan.boot_volume else None
                if boot_volume is not None:
                    doc["root_volume"] = {"connection": boot_volume["connection"],
                                          "mountpoint": boot_volume["mountpoint"]}
                power = self.agent(host, "spawn", instance=doc, image_meta=image_meta,
                                   network_info=networking.ports_of(info), admin_password=admin_password)
                if boot_volume is not None:
                    self._complete_or_destroy(instance_id, host, boot_volume, doc, info)
            except (RemoteError, BusTimeout, StratusError) as exc:
                last_error = f"Build of instance {instance_id} on host {host} failed: {exc}"
                log.warning("%s", last_error)
                with self.db.transaction() as session:
                    instance_actions.finish(session, build_event, instance_id, request_id, exc)
                    fault(session, instance_id, last_error, host=host)
                    claims.release(session, instance_id, host)
                    row = session.get(models.Instance, instance_id)
                    if row is not None:
                        row.host = row.node = None
                        if not row.deleted and row.task_state != "deleting":
                            row.task_state = "scheduling"
                spec.ignore_hosts.append(host)
                continue
            except Exception as exc:
                with self.db.transaction() as session:
                    instance_actions.finish(session, build_event, instance_id, request_id, exc)
                raise
            with self.db.transaction() as session:
                instance_actions.finish(session, build_event, instance_id, request_id)
                if _update_wanted(session, instance_id, vm_state="active", task_state=None,
                                  power_state=int(power or RUNNING), launched_at=utcnow()):
                    instance_actions.finish(session, schedule_event, instance_id, request_id)
                    return True
            self._abandon(instance_id, request_id)
            return False
        if len(tried) == self.settings.max_attempts:
            last_error = f"Exceeded maximum number of retries. {last_error}"
        self._fail_build(instance_id, last_error, ports)
        return False

    def _complete_or_destroy(self, instance_id: str, host: str, boot_volume: dict[str, Any], doc: dict[str, Any],
                             info: list[dict[str, Any]]) -> None:
        """The root volume's attachment completed; if it cannot be, the VM just spawned goes again
        (so the next host can be tried) and the error is raised."""
        try:
            self.complete_boot_volume(boot_volume)
        except (RemoteError, BusTimeout, StratusError):
            try:
                self.agent(host, "destroy", instance=doc, network_info=networking.ports_of(info))
            except (RemoteError, BusTimeout) as exc:
                log.warning("destroy of %s on %s after a failed volume attachment failed: %s", instance_id, host,
                            exc)
            raise

    def _ports_made_for(self, instance_id: str) -> list[dict[str, Any]]:
        """The instance's ports as the network service knows them, the ones the user brought marked."""
        network = self.service.network
        if network is None:
            return []
        with self.db.transaction() as session:
            row = session.get(models.Instance, instance_id)
            requests = list((row.request_spec or {}).get("networks", [])) if row is not None else []
        brought = {request["port"] for request in requests if request.get("port")}
        return [{**port, "_preexisting": port["id"] in brought} for port in network.list_ports(device_id=instance_id)]

    def _abandon(self, instance_id: str, request_id: str) -> None:
        """The instance was deleted while it was being built: the delete may have run before the
        VM or its ports existed, so whatever the build made goes now."""
        self.delete_instance(instance_id, request_id, force=True)

    def _place(self, instance_id: str, host: str) -> bool:
        with self.db.transaction() as session:
            zone = session.connection().scalar(sa.select(_INSTANCES.c.availability_zone).where(
                _INSTANCES.c.id == instance_id, _STILL_WANTED))
            changes: dict[str, Any] = {"host": host, "node": host}
            if not zone:
                changes["availability_zone"] = zones.zone_of(session, host, self.settings.default_availability_zone)
            return _update_wanted(session, instance_id, **changes)

    def _fail_build(self, instance_id: str, message: str, ports: list[dict[str, Any]]) -> None:
        """ERROR with a fault; ports, claims and (host = NULL) quota are given back."""
        network = self.service.network
        if network is not None and ports:
            networking.deallocate(network, ports)
        with self.db.transaction() as session:
            claims.release(session, instance_id)
            row = session.get(models.Instance, instance_id)
            if row is None:
                return
            row.vm_state, row.task_state, row.power_state = "error", None, NOSTATE
            row.host = row.node = None
            row.network_info = []
            fault(session, instance_id, message)

    def _set(self, instance_id: str, **changes: Any) -> None:
        with self.db.transaction() as session:
            row = session.get(models.Instance, instance_id)
            if row is not None and not row.deleted:
                for name, value in changes.items():
                    setattr(row, name, value)

    # --- delete -------------------------------------------------------------------------------

    def delete_instance(self, instance_id: str, request_id: str, force: bool = False) -> None:
        """Destroy on the host (if any), free ports and claims, and mark the row deleted (`force`:
        also when it is marked deleted already)."""
        with self.db.transaction() as session:
            row = session.get(models.Instance, instance_id)
            if row is None or (row.deleted and not force):
                return
            host, doc, info = row.host, instance_doc(row), list(row.network_info or [])
        if host:
            try:
                with instance_actions.event(self.db, instance_id, request_id, "compute_terminate_instance", host):
                    self.agent(host, "destroy", instance=doc, network_info=networking.ports_of(info))
            except (RemoteError, BusTimeout) as exc:
                # The host is gone or broken: the instance is deleted all the same; its agent's
                # resync finds nothing to keep for it.
                log.warning("destroy of %s on %s failed: %s", instance_id, host, exc)
        network = self.service.network
        if network is not None:
            ports = networking.ports_of(info)
            known = {p["id"] for p in ports}
            try:  # also ports attached after the cache was last written
                ports += [{**p, "_preexisting": False} for p in network.list_ports(device_id=instance_id)
                          if p["id"] not in known]
            except StratusError as exc:
                log.warning("could not list the ports of %s: %s", instance_id, exc)
            networking.deallocate(network, ports)
        if self.service.volume is not None:
            self.release_volumes(instance_id)
        self.finish_delete(instance_id)

    def finish_delete(self, instance_id: str) -> None:
        with self.db.transaction() as session:
            claims.release(session, instance_id)
            row = session.get(models.Instance, instance_id)
            if row is None:
                return
            now = utcnow()
            row.deleted, row.deleted_at, row.terminated_at = True, now, now
            row.vm_state, row.task_state, row.power_state = "deleted", None, NOSTATE
            row.network_info = []
            session.execute(sa.delete(models.ServerGroupMember).where(
                models.ServerGroupMember.instance_id == instance_id))


_INSTANCES = cast(sa.Table, models.Instance.__table__)
_SERVICES = cast(sa.Table, models.Service.__table__)
_NODES = cast(sa.Table, models.ComputeNode.__table__)
# What an agent's heartbeat says of its host, copied to the compute node as it comes.
_REPORTED = ("vcpus", "memory_mb", "local_gb", "hypervisor_type", "hypervisor_version", "host_ip", "cpu_info")
NODE_REWRITE_INTERVAL = 60.0  # seconds
# A heartbeat's statements, built once (building them cost more than running them).
_FIND_SERVICE = sa.select(_SERVICES.c.id, _SERVICES.c.disabled).where(
    _SERVICES.c.host == sa.bindparam("b_host"), _SERVICES.c.binary == sa.bindparam("b_binary"))
_SEEN_UP = sa.update(_SERVICES).where(_SERVICES.c.id == sa.bindparam("b_id")).values(
    report_count=_SERVICES.c.report_count + 1)
_WRITE_NODE = sa.update(_NODES).where(_NODES.c.host == sa.bindparam("b_host"))
# An instance a build may still change: not deleted, and no delete under way. The build's own
# updates are plain UPDATEs under this condition rather than loads of the whole (JSON-heavy) row.
_STILL_WANTED = sa.and_(_INSTANCES.c.deleted.is_(False), sa.func.coalesce(_INSTANCES.c.task_state, "") != "deleting")


def _update_wanted(session: Session, instance_id: str, **changes: Any) -> bool:
    """Apply `changes` to the instance if a build may still change it; whether it did."""
    update = sa.update(_INSTANCES).where(_INSTANCES.c.id == instance_id, _STILL_WANTED).values(**changes)
    return bool(session.connection().execute(update).rowcount)
