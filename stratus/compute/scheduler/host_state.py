"""The scheduler's in-memory view of every compute host, kept fresh from the database.

All hosts are loaded in one bulk query per table; then, at most once a `REFRESH_INTERVAL`, only the
rows whose `updated_at` moved are read again (every claim, release and heartbeat moves it), and all
of them once a `FULL_RELOAD_INTERVAL` (to see deleted hosts). The scheduler's own decisions are
added at once as *pending* resources (so concurrent decisions spread instead of piling onto one
host), and turned into used ones when the claim commits. The guarded UPDATE in `claims.py` is the
truth: a stale view costs a retry on the next candidate, never an overcommitted host.

Each host is a `HostState` with plain slots; the figures the built-in filters and weighers read are
also kept as one list per figure across all hosts (`HostStates.columns`), so that a decision at
10,000 hosts is a few C-speed passes over lists rather than 10,000 Python calls per filter.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from stratus.compute import models
from stratus.compute.zones import AZ_KEY
from stratus.core.config import ComputeConfig
from stratus.core.db import Database

log = logging.getLogger("stratus.compute.scheduler")

REFRESH_INTERVAL = 1.0
FULL_RELOAD_INTERVAL = 60.0
# Rows are read again from a little before the newest updated_at seen, so that a transaction that
# stamped its row just before that one but committed just after is not missed.
MARGIN = dt.timedelta(seconds=2)
COMPUTE_BINARY = "nova-compute"
NEVER = float("-inf")
_EPOCH = dt.datetime(1970, 1, 1)

# What a hypervisor type can run, as (architecture, hypervisor type, vm mode) triples; a host may
# report its own list as cpu_info["supported_instances"].
_HV_TYPES = {"fake": ("qemu", "kvm", "fake"), "qemu": ("qemu", "kvm"), "kvm": ("qemu", "kvm"),
             "qemu-kvm": ("qemu", "kvm")}


def epoch(value: dt.datetime) -> float:
    """Seconds since the epoch of a naive UTC timestamp (the way every column stores them)."""
    return (value - _EPOCH).total_seconds()


class HostState:
    """One host: its node's capacity and use, its service's state, its aggregates. Plain slots, read
    by the filters and weighers thousands of times per decision."""

    __slots__ = ("host", "nodename", "vcpus", "memory_mb", "local_gb", "vcpus_used", "memory_mb_used",
                 "local_gb_used", "running_vms", "cpu_allocation_ratio", "ram_allocation_ratio",
                 "disk_allocation_ratio", "hypervisor_type", "hypervisor_version", "cpu_info", "updated_at",
                 "supported_instances", "disabled", "forced_down", "last_seen_up", "up_until", "zone",
                 "aggregate_metadata", "pending_vcpus", "pending_memory_mb", "pending_disk_gb",
                 "pending_instances", "vcpus_free", "ram_free", "disk_free", "free_ram_mb", "free_disk_mb",
                 "num_instances", "pos", "table")

    def __init__(self, host: str, zone: str) -> None:
        self.host = self.nodename = host
        self.vcpus = self.memory_mb = self.local_gb = 0
        self.vcpus_used = self.memory_mb_used = self.local_gb_used = self.running_vms = 0
        self.cpu_allocation_ratio = self.ram_allocation_ratio = self.disk_allocation_ratio = 1.0
        self.hypervisor_type, self.hypervisor_version = "", 0
        self.cpu_info: dict[str, Any] = {}
        self.updated_at: dt.datetime | None = None
        self.supported_instances: tuple[tuple[str, str, str], ...] = ()
        self.disabled, self.forced_down = False, False
        self.last_seen_up: float | None = None
        self.up_until = NEVER  # alive while the clock is at or before this (-inf: down, disabled)
        self.zone = zone
        self.aggregate_metadata: dict[str, frozenset[str]] = {}
        self.pending_vcpus = self.pending_memory_mb = self.pending_disk_gb = self.pending_instances = 0
        # Where this host's figures also live: column lists shared by all hosts (see HostStates).
        self.pos = 0
        self.table: dict[str, list[Any]] | None = None
        self.derive()

    def __repr__(self) -> str:
        return (f"<HostState {self.host} vcpus {self.vcpus_used}/{self.vcpus} ram {self.memory_mb_used}/"
                f"{self.memory_mb} disk {self.local_gb_used}/{self.local_gb} vms {self.running_vms}>")

    def derive(self) -> None:
        """Recompute the figures the filters and weighers read (after any change of the ones above)."""
        vcpus_used = self.vcpus_used + self.pending_vcpus
        memory_used = self.memory_mb_used + self.pending_memory_mb
        disk_used = self.local_gb_used + self.pending_disk_gb
        # What may still be claimed, with the allocation ratios (the claim's own guard).
        self.vcpus_free = self.vcpus * self.cpu_allocation_ratio - vcpus_used
        self.ram_free = self.memory_mb * self.ram_allocation_ratio - memory_used
        self.disk_free = self.local_gb * self.disk_allocation_ratio - disk_used
        # Nova's host state figures (without the ratios), for the weighers and JSON queries.
        self.free_ram_mb = self.memory_mb - memory_used
        self.free_disk_mb = (self.local_gb - disk_used) * 1024
        self.num_instances = self.running_vms + self.pending_instances
        self.sync()

    def sync(self) -> None:
        """Copy the column figures into the shared columns."""
        table = self.table
        if table is not None:
            pos = self.pos
            for name in COLUMNS:
                table[name][pos] = getattr(self, name)

    def set_node(self, row: Any) -> None:
        (_, self.vcpus, self.memory_mb, self.local_gb, self.vcpus_used, self.memory_mb_used, self.local_gb_used,
         self.running_vms, self.cpu_allocation_ratio, self.ram_allocation_ratio, self.disk_allocation_ratio,
         self.hypervisor_type, self.hypervisor_version, cpu_info, self.updated_at, nodename) = row
        self.nodename = nodename or self.host
        self.cpu_info = cpu_info or {}
        self.supported_instances = supported_instances(self.hypervisor_type, self.cpu_info)
        self.derive()

    def set_service(self, disabled: bool, forced_down: bool, last_seen_up: dt.datetime | None,
                    down_time: float) -> None:
        self.disabled, self.forced_down = bool(disabled), bool(forced_down)
        self.last_seen_up = None if last_seen_up is None else epoch(last_seen_up)
        if self.disabled or self.forced_down or self.last_seen_up is None:
            self.up_until = NEVER
        else:
            self.up_until = self.last_seen_up + down_time
        self.sync()

    def set_aggregates(self, metadata: dict[str, frozenset[str]], default_zone: str) -> None:
        self.aggregate_metadata = metadata
        zones = metadata.get(AZ_KEY)
        self.zone = min(zones) if zones else default_zone
        self.sync()

    def add_pending(self, vcpus: int, memory_mb: int, disk_gb: int, sign: int = 1) -> None:
        self.pending_vcpus += sign * vcpus
        self.pending_memory_mb += sign * memory_mb
        self.pending_disk_gb += sign * disk_gb
        self.pending_instances += sign
        self.derive()

    def add_used(self, vcpus: int, memory_mb: int, disk_gb: int) -> None:
        self.vcpus_used += vcpus
        self.memory_mb_used += memory_mb
        self.local_gb_used += disk_gb
        self.running_vms += 1
        self.derive()


# Figures also kept as one list per figure across all hosts (in the order of HostStates.hosts), so
# that the built-in filters and weighers run over plain lists at C speed.
COLUMNS = ("up_until", "ram_free", "vcpus_free", "disk_free", "free_ram_mb", "free_disk_mb", "num_instances", "zone")
_SUPPORTED: dict[tuple[str, str], tuple[tuple[str, str, str], ...]] = {}


def supported_instances(hypervisor_type: str, cpu_info: dict[str, Any]) -> tuple[tuple[str, str, str], ...]:
    reported = cpu_info.get("supported_instances")
    if isinstance(reported, list):
        return tuple((str(a).lower(), str(h).lower(), str(m).lower()) for a, h, m in
                     (item for item in reported if isinstance(item, list | tuple) and len(item) == 3))
    arch = str(cpu_info.get("arch") or "x86_64").lower()
    kind = (hypervisor_type or "").lower()
    found = _SUPPORTED.get((arch, kind))
    if found is None:  # one shared tuple per kind of host: filters can cache their verdict by it
        kinds = _HV_TYPES.get(kind, (kind,) if kind else ())
        found = _SUPPORTED[(arch, kind)] = tuple((arch, hv, "hvm") for hv in kinds)
    return found


_NODE_COLUMNS = (models.ComputeNode.host, models.ComputeNode.vcpus, models.ComputeNode.memory_mb,
                 models.ComputeNode.local_gb, models.ComputeNode.vcpus_used, models.ComputeNode.memory_mb_used,
                 models.ComputeNode.local_gb_used, models.ComputeNode.running_vms,
                 models.ComputeNode.cpu_allocation_ratio, models.ComputeNode.ram_allocation_ratio,
                 models.ComputeNode.disk_allocation_ratio, models.ComputeNode.hypervisor_type,
                 models.ComputeNode.hypervisor_version, models.ComputeNode.cpu_info, models.ComputeNode.updated_at,
                 models.ComputeNode.hypervisor_hostname)
_SERVICE_COLUMNS = (models.Service.host, models.Service.disabled, models.Service.forced_down,
                    models.Service.last_seen_up, models.Service.updated_at)


_AGGREGATE_QUERY = (sa.select(models.AggregateHost.host, models.AggregateMetadata.key, models.AggregateMetadata.value)
                    .join(models.AggregateMetadata,
                          models.AggregateMetadata.aggregate_id == models.AggregateHost.aggregate_id)
                    .order_by(models.AggregateHost.host, models.AggregateMetadata.key, models.AggregateMetadata.value))
_CHUNK = 500


def _rows_of(session: Any, query: Any, column: Any, hosts: list[str]) -> list[Any]:
    """The query's rows for these hosts, in chunks (engines cap the parameters of one statement)."""
    rows: list[Any] = []
    for start in range(0, len(hosts), _CHUNK):
        rows += session.execute(query.where(column.in_(hosts[start:start + _CHUNK]))).all()
    return rows


class HostStates:
    """Every host's state, as objects (`hosts`, `by_name`) and as `columns` (one list per figure in
    COLUMNS, aligned with `hosts`: HostState.pos is a host's index). `lock` guards every change
    (refresh, pending, claimed) and the decisions that read them."""

    def __init__(self, db: Database, settings: ComputeConfig, clock: Callable[[], float]) -> None:
        self.db, self.settings, self.clock = db, settings, clock
        self.lock = threading.RLock()
        self.by_name: dict[str, HostState] = {}
        self.hosts: list[HostState] = []
        self.columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
        self._refreshing = threading.Lock()
        self._node_mark: dt.datetime | None = None
        self._service_mark: dt.datetime | None = None
        # host -> (disabled, forced_down, last_seen_up, updated_at) of its nova-compute service
        self._services: dict[str, tuple[bool, bool, dt.datetime | None, dt.datetime | None]] = {}
        self._aggregate_rows: list[tuple[str, str, str]] | None = None
        self._metadata: dict[str, dict[str, frozenset[str]]] = {}
        self.refreshed_at = NEVER
        self.loaded_at = NEVER
        self._loads = 0

    # -- reading the database --------------------------------------------------------------------

    def refresh(self, *, full: bool = False) -> None:
        """Read what changed since the last refresh, or everything when `full` or when a periodic
        full read is due. A call within REFRESH_INTERVAL of the last refresh does nothing; one that
        finds another thread refreshing goes on with the current view, except a first load or an
        asked-for full read, which wait (and are not repeated if the other thread did one)."""
        now = self.clock()
        due = now - self.loaded_at >= FULL_RELOAD_INTERVAL
        if not full and not due and now - self.refreshed_at < REFRESH_INTERVAL:
            return
        wait = full or self.loaded_at == NEVER
        loads = self._loads
        if not self._refreshing.acquire(blocking=wait):
            return
        try:
            if wait and self._loads != loads:
                return  # the thread this one waited for read everything
            self._read(full or due)
            self.refreshed_at = now
            if full or due:
                self.loaded_at = now
                self._loads += 1
        finally:
            self._refreshing.release()

    def _read(self, full: bool) -> None:
        """Incremental: the rows stamped since the newest stamp seen. Full: at the first load every
        row; later only every row's stamp, then the rows whose stamp differs from the view's (a
        fraction of the cost at 10,000 hosts), and hosts whose rows are gone leave the view."""
        node_q = sa.select(*_NODE_COLUMNS)
        service_q = sa.select(*_SERVICE_COLUMNS).where(models.Service.binary == COMPUTE_BINARY)
        node_hosts: set[str] | None = None
        service_hosts: set[str] | None = None
        with self.db.transaction() as session:
            if full and self.by_name:
                node_stamps: dict[str, dt.datetime] = {h: stamp for h, stamp in session.execute(
                    sa.select(models.ComputeNode.host, models.ComputeNode.updated_at))}
                service_stamps: dict[str, dt.datetime] = {h: stamp for h, stamp in session.execute(
                    sa.select(models.Service.host, models.Service.updated_at)
                    .where(models.Service.binary == COMPUTE_BINARY))}
                node_hosts, service_hosts = set(node_stamps), set(service_stamps)
                moved = [h for h, stamp in node_stamps.items()
                         if (state := self.by_name.get(h)) is None or state.updated_at != stamp]
                moved_services = [h for h, stamp in service_stamps.items()
                                  if h not in self._services or self._services[h][3] != stamp]
                nodes = _rows_of(session, node_q, models.ComputeNode.host, moved)
                services = _rows_of(session, service_q, models.Service.host, moved_services)
            else:
                if not full and self._node_mark is not None:
                    node_q = node_q.where(models.ComputeNode.updated_at >= self._node_mark - MARGIN)
                if not full and self._service_mark is not None:
                    service_q = service_q.where(models.Service.updated_at >= self._service_mark - MARGIN)
                nodes = list(session.execute(node_q).all())
                services = list(session.execute(service_q).all())
                if full:
                    node_hosts, service_hosts = {row[0] for row in nodes}, {row[0] for row in services}
            aggregate_rows = [tuple(row) for row in session.execute(_AGGREGATE_QUERY)]
        with self.lock:
            self._apply(nodes, services, aggregate_rows, node_hosts, service_hosts)

    def _apply(self, nodes: Sequence[Any], services: Sequence[Any], aggregate_rows: list[Any],
               node_hosts: set[str] | None, service_hosts: set[str] | None) -> None:
        """Take in rows read; `node_hosts` / `service_hosts` (after a full read): every row there is."""
        down_time, default_zone = self.settings.service_down_time, self.settings.default_availability_zone
        if aggregate_rows != self._aggregate_rows:
            self._aggregate_rows = aggregate_rows
            grouped: dict[str, dict[str, set[str]]] = {}
            for host, key, value in aggregate_rows:
                grouped.setdefault(host, {}).setdefault(key, set()).add(value)
            # Hosts with the same metadata share one dict: filters can cache their verdict by it.
            shared: dict[frozenset[tuple[str, frozenset[str]]], dict[str, frozenset[str]]] = {}
            self._metadata = {}
            for host, keys in grouped.items():
                frozen = {k: frozenset(v) for k, v in keys.items()}
                self._metadata[host] = shared.setdefault(frozenset(frozen.items()), frozen)
            for state in self.by_name.values():
                state.set_aggregates(self._metadata.get(state.host, {}), default_zone)
        for host, disabled, forced_down, last_seen_up, updated_at in services:
            self._services[host] = (disabled, forced_down, last_seen_up, updated_at)
            if updated_at is not None and (self._service_mark is None or updated_at > self._service_mark):
                self._service_mark = updated_at
            known = self.by_name.get(host)
            if known is not None:
                known.set_service(disabled, forced_down, last_seen_up, down_time)
        if service_hosts is not None:
            for host in [h for h in self._services if h not in service_hosts]:
                del self._services[host]
                if host in self.by_name:
                    self.by_name[host].set_service(False, False, None, down_time)
        changed = False
        for row in nodes:
            host, updated_at = row[0], row[14]
            if updated_at is not None and (self._node_mark is None or updated_at > self._node_mark):
                self._node_mark = updated_at
            found = self.by_name.get(host)
            if found is None:
                found = self.by_name[host] = HostState(host, default_zone)
                found.set_aggregates(self._metadata.get(host, {}), default_zone)
                changed = True
            found.set_node(row)
            service = self._services.get(host)
            found.set_service(*(service[:3] if service else (False, False, None)), down_time)
        if node_hosts is not None:
            for host in [h for h in self.by_name if h not in node_hosts]:
                self.by_name.pop(host).table = None
                changed = True
        if changed:
            self._index()

    def _index(self) -> None:
        """Order the hosts by name and lay out the columns anew (after hosts came or went)."""
        self.hosts = sorted(self.by_name.values(), key=lambda s: s.host)
        self.columns = {name: [getattr(state, name) for state in self.hosts] for name in COLUMNS}
        for pos, state in enumerate(self.hosts):
            state.pos, state.table = pos, self.columns

    def reload_host(self, host: str) -> None:
        """Read one host's node row again (after a claim on it was refused)."""
        with self.db.transaction() as session:
            row = session.execute(sa.select(*_NODE_COLUMNS).where(models.ComputeNode.host == host)).first()
        with self.lock:
            state = self.by_name.get(host)
            if state is None:
                return
            if row is None:
                del self.by_name[host]
                state.table = None
                self._index()
            else:
                state.set_node(row)

    # -- the scheduler's own decisions -------------------------------------------------------------

    def reserve(self, state: HostState, vcpus: int, memory_mb: int, disk_gb: int) -> None:
        with self.lock:
            state.add_pending(vcpus, memory_mb, disk_gb)

    def unreserve(self, state: HostState, vcpus: int, memory_mb: int, disk_gb: int) -> None:
        with self.lock:
            state.add_pending(vcpus, memory_mb, disk_gb, sign=-1)

    def claimed(self, state: HostState, vcpus: int, memory_mb: int, disk_gb: int, at: dt.datetime) -> None:
        """A reservation's claim committed (stamping the node `at`): pending becomes used, unless a
        refresh already read the row as the claim left it."""
        with self.lock:
            state.add_pending(vcpus, memory_mb, disk_gb, sign=-1)
            if state.updated_at is None or state.updated_at < at:
                state.add_used(vcpus, memory_mb, disk_gb)
                state.updated_at = at
