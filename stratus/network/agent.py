"""The network node agent: keeps a host's data plane at the desired state the service sends.

One `NetworkAgent` per host plays some of the roles "l2" (the ports bound to the host, their
networks and security groups), "dhcp" (every network with a DHCP-enabled subnet) and "l3" (every
router). It never touches the database: it asks the conductor (rpc.CONDUCTOR_TOPIC) for the full
state at start-up and after an outage, listens to the fanout topic rpc.AGENT_TOPIC for changes,
hands the data plane what concerns it (one call at a time), and reports back which ports and
floating IPs are wired, plus a heartbeat every `report_interval` seconds.

How messages are applied (the contract is in rpc.py):
- stale messages are dropped: per resource the newest stamp wins, and nothing older than the last
  full state counts;
- a port bound to this host is applied (its network and groups first, fetched from the conductor
  when not kept yet); a port this host had that is now bound elsewhere or unbound is removed and
  reported DOWN; ports are reported ACTIVE when the data plane wired them and admin_state_up is
  true, else DOWN;
- every port message also updates the `dhcp_hosts` of the networks and the members of the groups
  kept here;
- networks, groups and routers nothing here needs any more are removed from the data plane.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from time import monotonic
from typing import TYPE_CHECKING, Any

from stratus.core.bus import Bus, RpcServer
from stratus.core.errors import BusTimeout, RemoteError, ServiceUnavailable
from stratus.network.dataplane.base import DataPlane, Wired
from stratus.network.held import HeldGroup, HeldNetwork
from stratus.network.rpc import (
    AGENT_TOPIC,
    AGENT_TYPES,
    CONDUCTOR_TOPIC,
    ROLES,
    AgentReport,
    DhcpHost,
    HostState,
    NetworkDoc,
    PortDoc,
    RouterDoc,
    SecurityGroupDoc,
    dhcp_subnet_ids,
)

if TYPE_CHECKING:
    from stratus.core.config import NetworkConfig

log = logging.getLogger("stratus.network.agent")

BINARY = "stratus-network-agent"
# How long after a newer message an older one may still arrive: beyond it, stamps are forgotten
# and anything that old is dropped (microseconds, as stamps are).
_HORIZON = 300 * 1_000_000


class NetworkAgent:
    def __init__(self, bus: Bus, host: str, dataplane: DataPlane, roles: Iterable[str] = ROLES,
                 report_interval: float = 30.0, *, call_timeout: float = 10.0, availability_zone: str = "nova",
                 max_backoff: float = 30.0) -> None:
        self.host = host
        self.roles = tuple(r for r in ROLES if r in set(roles))
        self._serves_dhcp = "dhcp" in self.roles
        unknown = set(roles) - set(ROLES)
        if unknown or not self.roles:
            raise ValueError(f"agent roles must be some of {ROLES}, not {sorted(roles)}")
        self.dataplane = dataplane
        self.report_interval = report_interval
        self.availability_zone = availability_zone
        self._bus = bus
        self._call_timeout = call_timeout
        self._max_backoff = max_backoff
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._ready = threading.Event()
        # Everything below is guarded by _lock: message handlers and resyncs take turns.
        self._lock = threading.RLock()
        self._synced = False
        self._needs_resync = False
        self._floor = 0
        self._newest = 0
        self._stamps: dict[tuple[str, str], int] = {}
        self._recent_ports: dict[str, tuple[int, PortDoc | None]] = {}
        self._ports: dict[str, PortDoc] = {}
        self._networks: dict[str, HeldNetwork] = {}
        self._groups: dict[str, HeldGroup] = {}
        self._routers: dict[str, RouterDoc] = {}
        # What the data plane was last given, and whether each port came out wired.
        self._applied_ports: dict[str, PortDoc] = {}
        self._applied_networks: dict[str, NetworkDoc] = {}
        self._applied_groups: dict[str, SecurityGroupDoc] = {}
        self._wired_ports: dict[str, bool] = {}
        self._dirty_ports: set[str] = set()
        self._dirty_networks: set[str] = set()
        self._dirty_groups: set[str] = set()
        self._unbound: set[str] = set()
        # Statuses waiting to be reported (the newest per id wins).
        self._report_lock = threading.Lock()
        self._port_statuses: dict[str, str] = {}
        self._fip_statuses: dict[str, dict[str, str]] = defaultdict(dict)

    # --- life -----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start in the background: report, listen, load the host's state, heartbeat. If the bus
        or the conductor cannot be reached, keep trying (with backoff) until `stop()`."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"network-agent {self.host}", daemon=True)
        self._thread.start()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Whether the agent loaded its host's state (within `timeout` seconds)."""
        return self._ready.wait(timeout)

    def stop(self, timeout: float | None = None) -> None:
        """Stop listening and reporting; what the data plane built stays."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self._call_timeout + 5 if timeout is None else timeout)

    def resync(self) -> None:
        """Ask for a full state reload (in the background)."""
        self._needs_resync = True
        self._wake.set()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def _run(self) -> None:
        server: RpcServer | None = None
        backoff, next_beat = 0.5, 0.0
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                try:
                    if server is None:
                        # Report first (the conductor is there), listen, then read the state: no
                        # change can slip between the state and the first message.
                        self._report(start_flag=True)
                        next_beat = monotonic() + self.report_interval
                        server = self._bus.serve(AGENT_TOPIC, AgentEndpoint(self), host=self.host)
                    if not self._synced or self._needs_resync:
                        self._needs_resync = False
                        self._resync_now()
                    self._send_statuses()
                    if monotonic() >= next_beat:
                        self._report(start_flag=False)
                        next_beat = monotonic() + self.report_interval
                        self._forget_old()
                except Exception as exc:
                    expected = isinstance(exc, ServiceUnavailable | BusTimeout | RemoteError)
                    log.log(logging.WARNING if expected else logging.ERROR,
                            "network agent %s: %s (retrying in %.1f s)", self.host, exc, backoff,
                            exc_info=not expected)
                    if self._synced:
                        self._needs_resync = True  # messages may have been lost meanwhile
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, self._max_backoff)
                    continue
                backoff = 0.5
                self._wake.wait(max(0.0, next_beat - monotonic()))
        finally:
            if server is not None:
                server.stop()

    # --- talking to the conductor ---------------------------------------------------------------------

    def _call(self, method: str, **kwargs: Any) -> Any:
        return self._bus.call(CONDUCTOR_TOPIC, method, timeout=self._call_timeout, **kwargs)

    def _report(self, start_flag: bool) -> None:
        with self._lock:
            counts = {"l2": {"devices": len(self._ports)},
                      "dhcp": {"networks": sum(1 for n in self._applied_networks.values() if n["dhcp"])},
                      "l3": {"routers": len(self._routers),
                             "floating_ips": sum(len(r["floating_ips"]) for r in self._routers.values())}}
        for role in self.roles:
            report = AgentReport(host=self.host, agent_type=AGENT_TYPES[role], binary=BINARY, topic=AGENT_TOPIC,
                                 availability_zone=self.availability_zone if role in ("dhcp", "l3") else None,
                                 configurations={"dataplane": self.dataplane.name, "roles": list(self.roles),
                                                 **counts[role]})
            self._call("report_state", agent=report, start_flag=start_flag)

    def _send_statuses(self) -> None:
        with self._report_lock:
            ports, self._port_statuses = self._port_statuses, {}
            fips, self._fip_statuses = self._fip_statuses, defaultdict(dict)
        try:
            if ports:
                self._call("update_port_statuses", statuses=ports, host=self.host)
                ports = {}
            while fips:
                router_id, statuses = next(iter(fips.items()))
                self._call("update_floatingip_statuses", router_id=router_id, statuses=statuses)
                del fips[router_id]
        finally:  # what was not sent goes back, unless a newer status came meanwhile
            with self._report_lock:
                for port_id, status in ports.items():
                    self._port_statuses.setdefault(port_id, status)
                for router_id, statuses in fips.items():
                    for fip_id, status in statuses.items():
                        self._fip_statuses[router_id].setdefault(fip_id, status)

    def _port_status(self, port_id: str, status: str) -> None:
        with self._report_lock:
            self._port_statuses[port_id] = status
        self._wake.set()

    def _fip_status(self, router_id: str, statuses: dict[str, str]) -> None:
        if statuses:
            with self._report_lock:
                self._fip_statuses[router_id].update(statuses)
            self._wake.set()

    # --- full state -----------------------------------------------------------------------------------

    def _resync_now(self) -> None:
        with self._lock:  # messages wait meanwhile; those older than the state are then dropped
            state: HostState = self._call("get_host_state", host=self.host, roles=list(self.roles))
            self._load_state(state)
        self._ready.set()

    def _load_state(self, state: HostState) -> None:
        stamp = state["stamp"]
        self._floor = max(self._floor, stamp)
        self._newest = max(self._newest, stamp)
        self._forget_old()
        before_ports, before_routers = set(self._ports), dict(self._routers)
        self._ports = {p["id"]: p for p in state["ports"] if "l2" in self.roles and p["host"] == self.host}
        self._networks = {}
        for doc in state["networks"]:
            self._hold_network(doc, stamp)
        self._groups = {}
        for group in state["security_groups"]:
            self._hold_group(group, stamp)
        self._routers = {r["id"]: r for r in state["routers"]} if "l3" in self.roles else {}
        self._release_unneeded()
        view = HostState(stamp=stamp, host=self.host, roles=list(self.roles),
                         networks=[n.view(self._serves_dhcp) for n in self._networks.values()],
                         ports=[self._port_view(p) for p in self._ports.values()],
                         routers=list(self._routers.values()),
                         security_groups=[g.view() for g in self._groups.values()])
        wired = self.dataplane.sync(view)
        self._applied_networks = {d["id"]: d for d in view["networks"]}
        self._applied_ports = {d["id"]: d for d in view["ports"]}
        self._applied_groups = {d["id"]: d for d in view["security_groups"]}
        self._dirty_ports, self._dirty_networks, self._dirty_groups, self._unbound = set(), set(), set(), set()
        self._wired_ports = {p: p in wired.ports for p in self._ports}
        self._synced = True
        for port in self._ports.values():
            self._port_status(port["id"], self._status_of(port))
        for port_id in before_ports - self._ports.keys():
            self._port_status(port_id, "DOWN")
        for network in view["networks"]:
            self._report_dhcp(network, wired)
        for router in self._routers.values():
            self._report_router(router, before_routers.get(router["id"]), wired)
        for router_id, old in before_routers.items():
            if router_id not in self._routers:
                self._fip_status(router_id, {f["id"]: "DOWN" for f in old["floating_ips"]})

    def _forget_old(self) -> None:
        """Stamps older than the horizon (or than the last full state) are dropped, and so is any
        message that old."""
        with self._lock:
            self._floor = max(self._floor, self._newest - _HORIZON)
            self._stamps = {k: s for k, s in self._stamps.items() if s >= self._floor}
            self._recent_ports = {k: v for k, v in self._recent_ports.items() if v[0] >= self._floor}

    # --- messages -------------------------------------------------------------------------------------

    def _handle(self, apply: Callable[..., None], *args: Any, stamp: int) -> None:
        with self._lock:
            if not self._synced or stamp < self._floor:
                return  # the state being (or already) loaded is newer
            self._newest = max(self._newest, stamp)
            try:
                apply(*args, stamp)
                self._flush()
            except Exception:
                log.exception("network agent %s: could not apply %s; will resync", self.host, apply.__name__)
                self.resync()

    def _fresh(self, kind: str, item_id: str, stamp: int) -> bool:
        """Whether a message is not older than what was applied for the same thing; if so, note it."""
        if self._stamps.get((kind, item_id), -1) > stamp:
            return False
        self._stamps[(kind, item_id)] = stamp
        return True

    def on_network_update(self, doc: NetworkDoc, stamp: int) -> None:
        if not self._fresh("network", doc["id"], stamp):
            return
        kept = doc["id"] in self._networks
        if kept or self._dhcp_serves(doc) or any(p["network_id"] == doc["id"] for p in self._ports.values()):
            old = self._networks[doc["id"]].doc if kept else None
            self._hold_network(doc, stamp)
            if old is not None and (old["mtu"], old["segment"]) != (doc["mtu"], doc["segment"]):
                self._dirty_ports |= {p for p, d in self._ports.items() if d["network_id"] == doc["id"]}

    def on_network_delete(self, network_id: str, stamp: int) -> None:
        if self._fresh("network", network_id, stamp):
            self._networks.pop(network_id, None)

    def on_port_update(self, doc: PortDoc, stamp: int) -> None:
        port_id = doc["id"]
        if self._recent_ports.get(port_id, (-1, None))[0] > stamp:
            return
        self._recent_ports[port_id] = (stamp, doc)
        self._derive(port_id, doc, stamp, doc["network_id"])
        if "l2" in self.roles and doc["host"] == self.host:
            self._ports[port_id] = doc
            self._unbound.discard(port_id)
            self._dirty_ports.add(port_id)
        elif self._ports.pop(port_id, None) is not None:
            self._unbound.add(port_id)

    def on_port_delete(self, port_id: str, network_id: str | None, stamp: int) -> None:
        if self._recent_ports.get(port_id, (-1, None))[0] > stamp:
            return
        self._recent_ports[port_id] = (stamp, None)
        self._derive(port_id, None, stamp, network_id)
        self._ports.pop(port_id, None)
        self._unbound.discard(port_id)

    def on_router_update(self, doc: RouterDoc, stamp: int) -> None:
        if "l3" not in self.roles or not self._fresh("router", doc["id"], stamp):
            return
        old = self._routers.get(doc["id"])
        self._routers[doc["id"]] = doc
        self._report_router(doc, old, self.dataplane.apply_router(doc))

    def on_router_delete(self, router_id: str, stamp: int) -> None:
        if not self._fresh("router", router_id, stamp):
            return
        old = self._routers.pop(router_id, None)
        if old is not None:
            self.dataplane.remove_router(router_id)
            self._fip_status(router_id, {f["id"]: "DOWN" for f in old["floating_ips"]})

    def on_security_group_update(self, doc: SecurityGroupDoc, stamp: int) -> None:
        if not self._fresh("security_group", doc["id"], stamp):
            return
        kept = self._groups.get(doc["id"])
        if kept is not None:  # the members are kept here; the message carries the rules
            kept.doc = SecurityGroupDoc(id=doc["id"], stateful=doc["stateful"], rules=doc["rules"])
            self._dirty_groups.add(doc["id"])

    def on_security_group_delete(self, security_group_id: str, stamp: int) -> None:
        if self._fresh("security_group", security_group_id, stamp):
            self._groups.pop(security_group_id, None)

    # --- keeping documents ----------------------------------------------------------------------------

    def _hold_network(self, doc: NetworkDoc, stamp: int) -> None:
        hosts: dict[str, list[DhcpHost]] = defaultdict(list)
        for entry in doc["dhcp_hosts"]:
            hosts[entry["port_id"]].append(entry)
        network = HeldNetwork(doc, stamp, dict(hosts))
        for port_id, (port_stamp, port) in self._recent_ports.items():
            if port_stamp > stamp:  # a port message newer than the document
                network.take_port(port_id, port)
        self._networks[doc["id"]] = network
        self._stamps[("network", doc["id"])] = max(stamp, self._stamps.get(("network", doc["id"]), stamp))
        self._dirty_networks.add(doc["id"])

    def _hold_group(self, doc: SecurityGroupDoc, stamp: int) -> None:
        group = HeldGroup(SecurityGroupDoc(id=doc["id"], stateful=doc["stateful"], rules=doc["rules"]), stamp)
        for member, addresses in doc.get("member_ports", {}).items():
            group.set_member(member, list(addresses))
        for port_id, (port_stamp, port) in self._recent_ports.items():
            if port_stamp > stamp:
                group.take_port(port_id, port)
        self._groups[doc["id"]] = group
        self._stamps[("security_group", doc["id"])] = max(stamp, self._stamps.get(("security_group", doc["id"]), stamp))
        self._dirty_groups.add(doc["id"])

    def _derive(self, port_id: str, port: PortDoc | None, stamp: int, network_id: str | None) -> None:
        """A port changed (None: went): update the DHCP reservations and group members kept here."""
        networks = [self._networks[network_id]] if network_id in self._networks else (
            list(self._networks.values()) if network_id is None else [])
        for network in networks:
            if network.hosts_stamp <= stamp and network.take_port(port_id, port):
                self._dirty_networks.add(network.doc["id"])
        for group in self._groups.values():
            if group.members_stamp <= stamp and group.take_port(port_id, port):
                self._dirty_groups.add(group.doc["id"])

    def _dhcp_serves(self, doc: NetworkDoc) -> bool:
        return self._serves_dhcp and bool(dhcp_subnet_ids(doc))

    def _needs(self) -> tuple[set[str], set[str]]:
        """The networks and groups the local ports need (a network DHCP serves is kept anyway)."""
        networks = {p["network_id"] for p in self._ports.values()}
        groups = {g for p in self._ports.values() for g in p["security_group_ids"]}
        remote = {r["remote_group_id"] for g in groups if g in self._groups
                  for r in self._groups[g].doc["rules"] if r["remote_group_id"]}
        return networks, groups | remote

    def _release_unneeded(self) -> None:
        networks, groups = self._needs()
        for network_id in [n for n, kept in self._networks.items()
                           if n not in networks and not self._dhcp_serves(kept.doc)]:
            del self._networks[network_id]
        for group_id in [g for g in self._groups if g not in groups]:
            del self._groups[group_id]

    def _fetch_missing(self) -> None:
        """Ask the conductor for the networks and groups local ports need and are not kept here
        (twice at most: the groups fetched may name remote groups)."""
        for _round in range(2):
            networks, groups = self._needs()
            missing_networks, missing_groups = networks - self._networks.keys(), groups - self._groups.keys()
            if not missing_networks and not missing_groups:
                return
            try:
                found = self._call("get_documents", networks=sorted(missing_networks),
                                   security_groups=sorted(missing_groups))
            except Exception as exc:
                log.warning("network agent %s: could not fetch %s %s: %s", self.host, sorted(missing_networks),
                            sorted(missing_groups), exc)
                self.resync()
                return
            for doc in found["networks"]:
                if not self._fresh("network", doc["id"], found["stamp"]):
                    continue
                self._hold_network(doc, found["stamp"])
            for group in found["security_groups"]:
                self._hold_group(group, found["stamp"])

    # --- handing documents to the data plane ------------------------------------------------------------

    def _flush(self) -> None:
        """Bring the data plane to what is kept here: groups and networks before the ports that use
        them, removals after the ports that used them."""
        self._fetch_missing()
        self._release_unneeded()
        for group_id in sorted(self._dirty_groups & self._groups.keys()):
            view = self._groups[group_id].view()
            if self._applied_groups.get(group_id) != view:
                self.dataplane.apply_security_group(view)
                self._applied_groups[group_id] = view
        for network_id in sorted(self._dirty_networks & self._networks.keys()):
            network = self._networks[network_id].view(self._serves_dhcp)
            before = self._applied_networks.get(network_id)
            if before != network:
                wired = self.dataplane.apply_network(network)
                self._applied_networks[network_id] = network
                self._report_dhcp(network, wired, before)
        for port_id in sorted(self._dirty_ports & self._ports.keys()):
            port = self._ports[port_id]
            port_view = self._port_view(port)
            if self._applied_ports.get(port_id) != port_view:
                self._wired_ports[port_id] = port_id in self.dataplane.apply_port(port_view).ports
                self._applied_ports[port_id] = port_view
            self._port_status(port_id, self._status_of(port))
        for port_id in [p for p in self._applied_ports if p not in self._ports]:
            self.dataplane.remove_port(port_id)
            del self._applied_ports[port_id]
            self._wired_ports.pop(port_id, None)
        for port_id in self._unbound:
            self._port_status(port_id, "DOWN")
        for group_id in [g for g in self._applied_groups if g not in self._groups]:
            self.dataplane.remove_security_group(group_id)
            del self._applied_groups[group_id]
        for network_id in [n for n in self._applied_networks if n not in self._networks]:
            self.dataplane.remove_network(network_id)
            del self._applied_networks[network_id]
        self._dirty_ports, self._dirty_networks, self._dirty_groups, self._unbound = set(), set(), set(), set()

    def _port_view(self, port: PortDoc) -> PortDoc:
        network = self._networks.get(port["network_id"])
        if network is None:
            return port
        view = PortDoc(**port)
        view["mtu"], view["segment"] = network.doc["mtu"], network.doc["segment"]
        return view

    # --- statuses ---------------------------------------------------------------------------------------

    def _status_of(self, port: PortDoc) -> str:
        return "ACTIVE" if port["admin_state_up"] and self._wired_ports.get(port["id"]) else "DOWN"

    def _report_dhcp(self, network: NetworkDoc, wired: Wired, before: NetworkDoc | None = None) -> None:
        """The DHCP port's status, when it is new here or its wiring changed (not on every
        reservation change: a busy network would have the conductor write for nothing)."""
        if network["dhcp"] is None:
            return
        port_id = network["dhcp"]["port_id"]
        up = port_id in wired.ports
        if before is None or before["dhcp"] != network["dhcp"] or self._wired_ports.get(port_id) != up:
            self._port_status(port_id, "ACTIVE" if up else "DOWN")
        self._wired_ports[port_id] = up

    def _report_router(self, router: RouterDoc, old: RouterDoc | None, wired: Wired) -> None:
        up = router["admin_state_up"]
        ports = {i["port_id"] for i in router["interfaces"]}
        if router["gateway"] is not None:
            ports.add(router["gateway"]["port_id"])
        for port_id in sorted(ports):
            self._port_status(port_id, "ACTIVE" if up and port_id in wired.ports else "DOWN")
        statuses = {f["id"]: "ACTIVE" if up and f["id"] in wired.floating_ips else "DOWN"
                    for f in router["floating_ips"]}
        for fip in old["floating_ips"] if old is not None else []:
            statuses.setdefault(fip["id"], "DOWN")  # no longer through this router
        self._fip_status(router["id"], statuses)


class AgentEndpoint:
    """The methods the service fans out to agents (rpc.py); only these are reachable on the bus."""

    def __init__(self, agent: NetworkAgent) -> None:
        self._agent = agent

    def network_update(self, network: NetworkDoc, stamp: int) -> None:
        self._agent._handle(self._agent.on_network_update, network, stamp=stamp)

    def network_delete(self, network_id: str, stamp: int) -> None:
        self._agent._handle(self._agent.on_network_delete, network_id, stamp=stamp)

    def port_update(self, port: PortDoc, stamp: int) -> None:
        self._agent._handle(self._agent.on_port_update, port, stamp=stamp)

    def port_delete(self, port_id: str, stamp: int, network_id: str | None = None, host: str | None = None) -> None:
        self._agent._handle(self._agent.on_port_delete, port_id, network_id, stamp=stamp)

    def router_update(self, router: RouterDoc, stamp: int) -> None:
        self._agent._handle(self._agent.on_router_update, router, stamp=stamp)

    def router_delete(self, router_id: str, stamp: int) -> None:
        self._agent._handle(self._agent.on_router_delete, router_id, stamp=stamp)

    def security_group_update(self, security_group: SecurityGroupDoc, stamp: int) -> None:
        self._agent._handle(self._agent.on_security_group_update, security_group, stamp=stamp)

    def security_group_delete(self, security_group_id: str, stamp: int) -> None:
        self._agent._handle(self._agent.on_security_group_delete, security_group_id, stamp=stamp)


def from_config(bus: Bus, settings: NetworkConfig, plane: DataPlane | None = None) -> NetworkAgent:
    """The agent `stratus up` runs: this host, every role, the configured data plane (or `plane`)."""
    from stratus.network import dataplane

    return NetworkAgent(bus, settings.host or socket.gethostname(), plane or dataplane.load(settings.agent_dataplane),
                        report_interval=settings.agent_report_interval)
