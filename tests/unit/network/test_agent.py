"""The network agent's logic against a fake conductor on the in-process bus (no database).

Messages are handed to the agent's endpoint directly, in the order a test chooses (the bus may
deliver them in any order; stamps decide), except where the bus itself is what is tested.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from stratus.core.bus import Bus
from stratus.network.agent import AgentEndpoint, NetworkAgent
from stratus.network.dataplane import NoopDataPlane
from stratus.network.rpc import AGENT_TYPES, CONDUCTOR_TOPIC, ROLES, HostState

HOST = "host1"
SEGMENT = {"network_type": "vxlan", "physical_network": None, "segmentation_id": 42}


def network_doc(network_id: str = "net1", *, dhcp: bool = True, hosts: list[dict[str, Any]] | None = None,
                mtu: int = 1450) -> dict[str, Any]:
    subnet = {"id": f"{network_id}-sub", "ip_version": 4, "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1",
              "enable_dhcp": dhcp, "ipv6_address_mode": None, "ipv6_ra_mode": None, "dns_nameservers": [],
              "host_routes": [], "allocation_pools": [{"start": "10.0.0.2", "end": "10.0.0.254"}]}
    return {"id": network_id, "admin_state_up": True, "mtu": mtu, "segment": SEGMENT, "subnets": [subnet],
            "dhcp": {"port_id": f"{network_id}-dhcp", "mac_address": "fa:16:3e:00:00:01",
                     "addresses": [{"subnet_id": f"{network_id}-sub", "ip_address": "10.0.0.2"}]} if dhcp else None,
            "dhcp_hosts": hosts or []}


def port_doc(port_id: str, ip: str, *, host: str = HOST, groups: tuple[str, ...] = ("sg1",), network_id: str = "net1",
             admin_state_up: bool = True, pairs: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"id": port_id, "network_id": network_id, "host": host, "mac_address": f"fa:16:3e:00:01:{ip[-2:]:0>2}",
            "admin_state_up": admin_state_up, "device_owner": "compute:nova", "device_id": "vm",
            "fixed_ips": [{"subnet_id": f"{network_id}-sub", "ip_address": ip}], "port_security_enabled": True,
            "security_group_ids": list(groups),
            "allowed_address_pairs": [{"ip_address": p, "mac_address": "fa:16:3e:00:09:09"} for p in pairs],
            "segment": SEGMENT, "mtu": 1450}


def group_doc(group_id: str = "sg1", *, remote: str | None = None, members: dict[str, list[str]] | None = None,
              full: bool = True) -> dict[str, Any]:
    rule = {"id": f"{group_id}-r", "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
            "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": None, "remote_group_id": remote}
    doc: dict[str, Any] = {"id": group_id, "stateful": True, "rules": [rule]}
    if full:
        doc["member_ports"] = members or {}
    return doc


def router_doc(router_id: str = "r1", fips: tuple[str, ...] = (), admin_state_up: bool = True) -> dict[str, Any]:
    return {"id": router_id, "admin_state_up": admin_state_up, "enable_snat": True, "gateway": None,
            "interfaces": [{"port_id": f"{router_id}-if", "subnet_id": "net1-sub", "network_id": "net1",
                            "mac_address": "fa:16:3e:00:02:01", "ip_address": "10.0.0.1", "cidr": "10.0.0.0/24",
                            "segment": SEGMENT, "mtu": 1450}],
            "routes": [],
            "floating_ips": [{"id": f, "floating_ip_address": f"203.0.113.{i + 10}",
                              "fixed_ip_address": f"10.0.0.{i + 10}", "port_id": f"p{i}"} for i, f in enumerate(fips)]}


def hosts_of(plane: NoopDataPlane, network_id: str = "net1") -> set[str]:
    return {h["ip_address"] for h in plane.networks[network_id]["dhcp_hosts"]}


def ipv4_members(plane: NoopDataPlane, group_id: str = "sg1") -> set[str]:
    members = plane.security_groups[group_id]["members"]
    assert len(set(members["IPv4"])) == len(members["IPv4"])  # no repeats
    return set(members["IPv4"])


class FakeConductor:
    """Answers like the conductor, from documents a test sets; records what agents report."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {"networks": [], "ports": [], "routers": [], "security_groups": []}
        self.documents: dict[str, dict[str, Any]] = {}
        self.stamp = 100
        self.reports: list[tuple[dict[str, Any], bool]] = []
        self.port_statuses: list[tuple[dict[str, str], str]] = []
        self.fip_statuses: list[tuple[str, dict[str, str]]] = []
        self.calls: list[str] = []
        self.changed = threading.Condition()

    def _note(self, name: str) -> None:
        with self.changed:
            self.calls.append(name)
            self.changed.notify_all()

    def report_state(self, agent: dict[str, Any], start_flag: bool = False) -> dict[str, Any]:
        self.reports.append((agent, start_flag))
        self._note("report_state")
        return {"id": "a", "admin_state_up": True}

    def get_host_state(self, host: str, roles: list[str]) -> HostState:
        self._note("get_host_state")
        return HostState(stamp=self.stamp, host=host, roles=roles, **self.state)  # type: ignore[typeddict-item]

    def get_documents(self, networks: list[str] = (), ports: list[str] = (), routers: list[str] = (),  # type: ignore[assignment]
                      security_groups: list[str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
        self._note("get_documents")
        return {"stamp": self.stamp, "ports": [], "routers": [],
                "networks": [self.documents[n] for n in networks if n in self.documents],
                "security_groups": [self.documents[g] for g in security_groups if g in self.documents]}

    def update_port_statuses(self, statuses: dict[str, str], host: str = "") -> int:
        self.port_statuses.append((statuses, host))
        self._note("update_port_statuses")
        return len(statuses)

    def update_floatingip_statuses(self, router_id: str, statuses: dict[str, str]) -> int:
        self.fip_statuses.append((router_id, statuses))
        self._note("update_floatingip_statuses")
        return len(statuses)

    def last_port_status(self, port_id: str) -> str | None:
        found = None
        for statuses, _host in list(self.port_statuses):
            found = statuses.get(port_id, found)
        return found

    def last_fip_status(self, fip_id: str) -> str | None:
        found = None
        for _router, statuses in list(self.fip_statuses):
            found = statuses.get(fip_id, found)
        return found

    def wait(self, predicate: Any, timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not (value := predicate()) and time.monotonic() < deadline:
                self.changed.wait(0.05)
        return value


@pytest.fixture
def bus() -> Iterator[Bus]:
    bus = Bus("memory://", exchange=f"agent-test-{uuid.uuid4().hex[:8]}", default_timeout=5)
    yield bus
    bus.close()


@pytest.fixture
def conductor(bus: Bus) -> Iterator[FakeConductor]:
    fake = FakeConductor()
    server = bus.serve(CONDUCTOR_TOPIC, fake)
    yield fake
    server.stop()


class Node:
    def __init__(self, bus: Bus, roles: tuple[str, ...] = ROLES, **kwargs: Any) -> None:
        self.plane = NoopDataPlane()
        self.agent = NetworkAgent(bus, HOST, self.plane, roles=roles, call_timeout=2, **kwargs)
        self.endpoint = AgentEndpoint(self.agent)

    def start(self) -> Node:
        self.agent.start()
        assert self.agent.wait_ready(10)
        return self


@pytest.fixture
def nodes(bus: Bus) -> Iterator[list[Node]]:
    made: list[Node] = []
    yield made
    for node in made:
        node.agent.stop()


@pytest.fixture
def node(bus: Bus, conductor: FakeConductor, nodes: list[Node]) -> Node:
    """An agent whose host has port p1 (10.0.0.11) in group sg1 on network net1 (DHCP on)."""
    conductor.state = {
        "networks": [network_doc(hosts=[{"port_id": "p1", "subnet_id": "net1-sub", "mac_address": "m1",
                                         "ip_address": "10.0.0.11", "hostname": "host-10-0-0-11"}])],
        "ports": [port_doc("p1", "10.0.0.11")],
        "routers": [],
        "security_groups": [group_doc(members={"p1": ["10.0.0.11"]})],
    }
    made = Node(bus).start()
    nodes.append(made)
    return made


# --- start-up ---------------------------------------------------------------------------------------


def test_start_loads_the_host_state_into_the_data_plane_and_reports_every_role(
        node: Node, conductor: FakeConductor) -> None:
    method, state = node.plane.calls[0]
    assert method == "sync"
    assert [p["id"] for p in state["ports"]] == ["p1"]
    assert [g["id"] for g in state["security_groups"]] == ["sg1"]
    assert state["security_groups"][0]["members"] == {"IPv4": ["10.0.0.11"], "IPv6": []}
    assert state["security_groups"][0]["member_ports"] == {"p1": ["10.0.0.11"]}
    assert state["networks"][0]["dhcp"]["port_id"] == "net1-dhcp"
    started = [(agent["agent_type"], start) for agent, start in conductor.reports]
    assert sorted(started) == sorted((AGENT_TYPES[r], True) for r in ROLES)
    assert all(agent["host"] == HOST and agent["topic"] == "network-agent" for agent, _ in conductor.reports)
    assert conductor.wait(lambda: conductor.last_port_status("p1") == "ACTIVE")
    assert conductor.wait(lambda: conductor.last_port_status("net1-dhcp") == "ACTIVE")


def test_start_waits_for_the_conductor_instead_of_failing(bus: Bus, nodes: list[Node]) -> None:
    made = Node(bus, max_backoff=0.2)
    nodes.append(made)
    made.agent.start()
    assert not made.agent.wait_ready(1.0)
    assert made.plane.calls == []
    fake = FakeConductor()
    server = bus.serve(CONDUCTOR_TOPIC, fake)
    try:
        assert made.agent.wait_ready(10)
        assert made.plane.calls[0][0] == "sync"
        assert any(start for _agent, start in fake.reports)
    finally:
        made.agent.stop()
        server.stop()


def test_an_unreachable_broker_is_retried_and_stop_still_returns() -> None:
    bus = Bus("amqp://guest:guest@127.0.0.1:1//", default_timeout=0.5)
    agent = NetworkAgent(bus, HOST, NoopDataPlane(), call_timeout=0.3, max_backoff=0.2)
    try:
        agent.start()
        assert not agent.wait_ready(1.5)
        assert agent._thread is not None and agent._thread.is_alive()
        began = time.monotonic()
        agent.stop()
        assert time.monotonic() - began < 6
        assert not agent._thread.is_alive()
    finally:
        bus.close()


def test_heartbeats_repeat(bus: Bus, conductor: FakeConductor, nodes: list[Node]) -> None:
    made = Node(bus, report_interval=0.2).start()
    nodes.append(made)
    assert conductor.wait(lambda: sum(1 for _a, start in conductor.reports if not start) >= 2 * len(ROLES))


# --- ports ------------------------------------------------------------------------------------------


def test_a_port_bound_here_is_applied_after_its_network_and_groups(node: Node, conductor: FakeConductor) -> None:
    conductor.documents["sg2"] = group_doc("sg2", remote="sg3", members={})
    conductor.documents["sg3"] = group_doc("sg3", members={"p9": ["10.0.0.99"]})
    node.endpoint.port_update(port_doc("p2", "10.0.0.12", groups=("sg2",)), stamp=200)
    methods = [(m, p if isinstance(p, str) else p.get("id")) for m, p in node.plane.calls]
    assert methods.index(("apply_security_group", "sg2")) < methods.index(("apply_port", "p2"))
    assert methods.index(("apply_security_group", "sg3")) < methods.index(("apply_port", "p2"))
    assert node.plane.security_groups["sg3"]["members"]["IPv4"] == ["10.0.0.99"]
    assert conductor.wait(lambda: conductor.last_port_status("p2") == "ACTIVE")


def test_a_port_bound_elsewhere_is_not_applied_but_joins_dhcp_and_members(node: Node) -> None:
    node.endpoint.port_update(port_doc("p2", "10.0.0.12", host="host2", pairs=("192.0.2.0/28",)), stamp=200)
    assert "p2" not in node.plane.ports
    assert hosts_of(node.plane) == {"10.0.0.11", "10.0.0.12"}
    assert ipv4_members(node.plane) == {"10.0.0.11", "10.0.0.12", "192.0.2.0/28"}
    assert node.plane.security_groups["sg1"]["member_ports"]["p2"] == ["10.0.0.12", "192.0.2.0/28"]
    node.endpoint.port_update(port_doc("p2", "10.0.0.12", host="host2", groups=()), stamp=300)
    assert ipv4_members(node.plane) == {"10.0.0.11"}
    assert hosts_of(node.plane) == {"10.0.0.11", "10.0.0.12"}
    node.endpoint.port_delete("p2", network_id="net1", host="host2", stamp=400)
    assert hosts_of(node.plane) == {"10.0.0.11"}


def test_an_address_two_members_share_stays_until_both_leave(node: Node) -> None:
    node.endpoint.port_update(port_doc("p2", "10.0.0.12", host="host2", pairs=("10.0.0.100",)), stamp=200)
    node.endpoint.port_update(port_doc("p3", "10.0.0.13", host="host2", pairs=("10.0.0.100",)), stamp=210)
    assert ipv4_members(node.plane) == {"10.0.0.11", "10.0.0.12", "10.0.0.13", "10.0.0.100"}
    node.endpoint.port_delete("p2", network_id="net1", host="host2", stamp=220)
    assert ipv4_members(node.plane) == {"10.0.0.11", "10.0.0.13", "10.0.0.100"}
    node.endpoint.port_update(port_doc("p3", "10.0.0.13", host="host2", pairs=("2001:db8::5",)), stamp=230)
    assert ipv4_members(node.plane) == {"10.0.0.11", "10.0.0.13"}
    assert node.plane.security_groups["sg1"]["members"]["IPv6"] == ["2001:db8::5"]


def test_a_port_moved_away_is_removed_and_reported_down(node: Node, conductor: FakeConductor) -> None:
    assert conductor.wait(lambda: conductor.last_port_status("p1") == "ACTIVE")
    node.endpoint.port_update(port_doc("p1", "10.0.0.11", host="host2"), stamp=200)
    assert "p1" not in node.plane.ports
    assert node.plane.calls_of("remove_port") == ["p1"]
    assert conductor.wait(lambda: conductor.last_port_status("p1") == "DOWN")
    assert ({"p1": "DOWN"}, HOST) in conductor.port_statuses or any(
        s.get("p1") == "DOWN" and h == HOST for s, h in conductor.port_statuses)
    # Nothing here needs the group any more; the network stays for DHCP.
    assert "sg1" not in node.plane.security_groups
    assert "net1" in node.plane.networks


def test_an_l2_only_agent_lets_go_of_the_network_with_its_last_port(bus: Bus, conductor: FakeConductor,
                                                                   nodes: list[Node]) -> None:
    conductor.state = {"networks": [network_doc()], "ports": [port_doc("p1", "10.0.0.11")], "routers": [],
                       "security_groups": [group_doc(members={"p1": ["10.0.0.11"]})]}
    made = Node(bus, roles=("l2",)).start()
    nodes.append(made)
    assert made.plane.networks["net1"]["dhcp"] is None  # no dhcp role: no DHCP server here
    made.endpoint.router_update(router_doc(), stamp=150)
    assert made.plane.routers == {}
    made.endpoint.port_delete("p1", network_id="net1", host=HOST, stamp=200)
    assert made.plane.ports == {} and made.plane.networks == {} and made.plane.security_groups == {}
    assert [m for m, _ in made.plane.calls[1:]] == ["remove_port", "remove_security_group", "remove_network"]


def test_admin_down_port_is_applied_but_reported_down(node: Node, conductor: FakeConductor) -> None:
    node.endpoint.port_update(port_doc("p1", "10.0.0.11", admin_state_up=False), stamp=200)
    assert node.plane.ports["p1"]["admin_state_up"] is False
    assert conductor.wait(lambda: conductor.last_port_status("p1") == "DOWN")


def test_a_port_the_data_plane_cannot_wire_stays_down(node: Node, conductor: FakeConductor) -> None:
    node.plane.unwirable.add("p2")
    node.endpoint.port_update(port_doc("p2", "10.0.0.12"), stamp=200)
    assert "p2" in node.plane.ports
    assert conductor.wait(lambda: conductor.last_port_status("p2") == "DOWN")


def test_network_mtu_change_reaches_the_ports_on_it(node: Node) -> None:
    node.endpoint.network_update(network_doc(mtu=1400, hosts=[]), stamp=200)
    assert node.plane.ports["p1"]["mtu"] == 1400
    assert node.plane.networks["net1"]["mtu"] == 1400


# --- order and staleness -----------------------------------------------------------------------------


def test_an_older_message_does_not_undo_a_newer_one(node: Node) -> None:
    node.endpoint.port_update(port_doc("p1", "10.0.0.11", host="host2"), stamp=300)
    node.endpoint.port_update(port_doc("p1", "10.0.0.11"), stamp=200)  # arrived late
    assert "p1" not in node.plane.ports
    node.endpoint.router_delete("r1", stamp=300)
    node.endpoint.router_update(router_doc("r1"), stamp=250)
    assert node.plane.routers == {}


def test_messages_older_than_the_loaded_state_are_dropped(node: Node) -> None:
    calls = len(node.plane.calls)
    node.endpoint.port_update(port_doc("p7", "10.0.0.17"), stamp=50)  # the state was read at 100
    node.endpoint.network_delete("net1", stamp=99)
    assert len(node.plane.calls) == calls


def test_an_older_full_document_keeps_newer_port_changes(node: Node) -> None:
    node.endpoint.port_update(port_doc("p2", "10.0.0.12", host="host2"), stamp=300)
    # A network document read before p2 existed arrives after p2's message.
    node.endpoint.network_update(network_doc(hosts=[{"port_id": "p1", "subnet_id": "net1-sub", "mac_address": "m1",
                                                     "ip_address": "10.0.0.11", "hostname": "host-10-0-0-11"}]),
                                 stamp=250)
    assert hosts_of(node.plane) == {"10.0.0.11", "10.0.0.12"}


def test_a_rules_update_keeps_the_members(node: Node) -> None:
    node.endpoint.security_group_update(group_doc("sg1", full=False), stamp=200)
    assert node.plane.security_groups["sg1"]["members"]["IPv4"] == ["10.0.0.11"]


def test_messages_reach_the_agent_over_the_bus(bus: Bus, node: Node) -> None:
    bus.fanout("network-agent", "port_update", port=port_doc("p5", "10.0.0.15"), stamp=500)
    assert node.plane.wait_for(lambda plane: "p5" in plane.ports, 5)


# --- routers and floating IPs ----------------------------------------------------------------------------


def test_floating_ip_statuses_follow_the_router(node: Node, conductor: FakeConductor) -> None:
    node.plane.unwirable.add("fip3")
    node.endpoint.router_update(router_doc("r1", fips=("fip1", "fip2", "fip3")), stamp=200)
    assert node.plane.routers["r1"]["floating_ips"][0]["id"] == "fip1"
    assert conductor.wait(lambda: conductor.last_fip_status("fip1") == "ACTIVE"
                          and conductor.last_fip_status("fip3") == "DOWN")
    assert conductor.wait(lambda: conductor.last_port_status("r1-if") == "ACTIVE")
    node.endpoint.router_update(router_doc("r1", fips=("fip2",)), stamp=300)
    assert conductor.wait(lambda: conductor.last_fip_status("fip1") == "DOWN")
    node.endpoint.router_delete("r1", stamp=400)
    assert conductor.wait(lambda: conductor.last_fip_status("fip2") == "DOWN")
    assert node.plane.calls_of("remove_router") == ["r1"]


# --- failures ------------------------------------------------------------------------------------------


def test_a_data_plane_failure_brings_a_resync(node: Node, conductor: FakeConductor) -> None:
    broken = threading.Event()
    original = node.plane.apply_port

    def fail_once(doc: Any) -> Any:
        if not broken.is_set():
            broken.set()
            raise OSError("bridge went away")
        return original(doc)

    node.plane.apply_port = fail_once  # type: ignore[method-assign]
    node.endpoint.port_update(port_doc("p2", "10.0.0.12"), stamp=200)
    assert conductor.wait(lambda: conductor.calls.count("get_host_state") >= 2)
    assert node.plane.wait_for(lambda plane: sum(1 for m, _ in plane.calls if m == "sync") >= 2)


def test_stop_stops_listening(bus: Bus, node: Node) -> None:
    node.agent.stop()
    calls = len(node.plane.calls)
    bus.fanout("network-agent", "port_update", port=port_doc("p5", "10.0.0.15"), stamp=500)
    time.sleep(0.3)
    assert len(node.plane.calls) == calls


def test_unknown_roles_are_refused(bus: Bus) -> None:
    with pytest.raises(ValueError):
        NetworkAgent(bus, HOST, NoopDataPlane(), roles=("l2", "firewall"))
