"""The agent contract end to end: API changes reach a network agent (noop data plane) over the bus
as desired-state documents, the agent reports statuses back through the conductor, and a fresh
agent loads its host's whole state at start-up.

tests/backends/test_network_agent_rabbitmq.py runs these same tests over RabbitMQ.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from stratus.core.db import utcnow
from stratus.network import desired, models, rpc
from stratus.network.agent import NetworkAgent
from stratus.network.conductor import Conductor
from stratus.network.dataplane import NoopDataPlane
from stratus.network.notify import Changes
from tests.api.network.helpers import counting, create
from tests.conftest import NetworkHarness

ADMIN_ONLY = {"binding:host_id"}


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


class Tap:
    """Listens on the agents' fanout topic like an agent and keeps every message."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def __getattr__(self, method: str) -> Callable[..., None]:
        if method.startswith("_"):
            raise AttributeError(method)

        def record(**kwargs: Any) -> None:
            with self._lock:
                self.messages.append((method, kwargs))
        return record

    def of(self, method: str) -> list[dict[str, Any]]:
        with self._lock:
            return [args for name, args in self.messages if name == method]

    def about(self, item_id: str) -> list[str]:
        """The methods of every message whose document or ids mention `item_id`."""
        with self._lock:
            return [name for name, args in self.messages if item_id in repr(args)]


class Cloud:
    """The network API, the conductor on its bus, agents started on demand, and a bus tap."""

    def __init__(self, network: NetworkHarness) -> None:
        self.network = network
        self.admin = network.as_admin()
        self.tap = Tap()
        self._servers = [Conductor(network.service.db).serve(network.bus),
                         network.bus.serve(rpc.AGENT_TOPIC, self.tap)]
        self.agents: list[NetworkAgent] = []

    def agent(self, host: str = "host1", **kwargs: Any) -> tuple[NetworkAgent, NoopDataPlane]:
        plane = NoopDataPlane()
        agent = NetworkAgent(self.network.bus, host, plane, call_timeout=10, **kwargs)
        self.agents.append(agent)
        agent.start()
        assert agent.wait_ready(20), "the agent did not load its state"
        return agent, plane

    def close(self) -> None:
        for agent in self.agents:
            agent.stop()
        for server in self._servers:
            server.stop()

    # --- API shortcuts ------------------------------------------------------------------------------

    def get(self, path: str) -> dict[str, Any]:
        response = self.network.client.get(f"/v2.0/{path}", headers=self.admin)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.network.client.put(f"/v2.0/{path}", json=body, headers=self.admin)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def delete(self, path: str) -> None:
        response = self.network.client.delete(f"/v2.0/{path}", headers=self.admin)
        assert response.status_code == 204, response.text

    def create(self, kind: str, **fields: Any) -> dict[str, Any]:
        return create(self.network, kind, self.admin, **fields)

    def network_with_subnet(self, cidr: str = "10.0.0.0/24", **fields: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        net = self.create("network", name=f"net-{cidr}", **fields)
        nexthop = cidr.rsplit(".", 1)[0] + ".254"
        subnet = self.create("subnet", network_id=net["id"], cidr=cidr, ip_version=4, dns_nameservers=["192.0.2.53"],
                             host_routes=[{"destination": "198.51.100.0/24", "nexthop": nexthop}])
        return net, subnet

    def port(self, network_id: str, host: str = "host1", **fields: Any) -> dict[str, Any]:
        return self.create("port", network_id=network_id, device_owner="compute:nova", device_id="vm-1",
                           **{"binding:host_id": host}, **fields)

    def status(self, kind: str, item_id: str) -> str:
        collection = {"port": "ports", "floatingip": "floatingips"}[kind]
        return self.get(f"{collection}/{item_id}")[kind]["status"]  # type: ignore[no-any-return]

    def ends_with_status(self, kind: str, item_id: str, status: str) -> bool:
        return bool(wait_until(lambda: self.status(kind, item_id) == status))


@pytest.fixture
def cloud(network: NetworkHarness) -> Iterator[Cloud]:
    made = Cloud(network)
    yield made
    made.close()


def dhcp_port_of(cloud: Cloud, network_id: str) -> dict[str, Any]:
    [port] = cloud.get(f"ports?network_id={network_id}&device_owner=network:dhcp")["ports"]
    return port  # type: ignore[no-any-return]


# --- the messages --------------------------------------------------------------------------------------


def test_each_change_is_sent_as_documents_with_the_contract_fields(cloud: Cloud) -> None:
    net, _subnet = cloud.network_with_subnet()
    # The network's document first: changes committed close together are sent as one batch.
    networks = wait_until(lambda: [m["network"] for m in cloud.tap.of("network_update")
                                   if m["network"]["id"] == net["id"] and m["network"]["subnets"]])
    assert networks
    network = networks[-1]
    port = cloud.port(net["id"], host="elsewhere")
    [sent] = wait_until(lambda: [m for m in cloud.tap.of("port_update") if m["port"]["id"] == port["id"]])
    assert set(sent["port"]) == set(rpc.PortDoc.__annotations__)
    assert isinstance(sent["stamp"], int)
    assert set(network) == set(rpc.NetworkDoc.__annotations__)
    assert set(network["subnets"][0]) == set(rpc.SubnetDoc.__annotations__)
    assert set(network["dhcp"]) == set(rpc.DhcpPort.__annotations__)
    assert set(network["dhcp_hosts"][0]) == set(rpc.DhcpHost.__annotations__)
    groups = [m["security_group"] for m in cloud.tap.of("security_group_update")]
    assert groups and set(groups[-1]) == {"id", "stateful", "rules"}  # members travel with ports
    assert set(groups[-1]["rules"][0]) == set(rpc.RuleDoc.__annotations__)
    # A port's change does not re-send its network's document (DHCP hosts come from the port):
    # nothing else carries the port message's stamp (one transaction, one stamp) but its group's rules.
    barrier = cloud.create("network", name="barrier")
    assert wait_until(lambda: cloud.tap.about(barrier["id"]))
    assert sorted(name for name, args in cloud.tap.messages if args["stamp"] == sent["stamp"]) == [
        "port_update", "security_group_update"]


def test_a_rolled_back_transaction_sends_nothing(cloud: Cloud) -> None:
    svc = cloud.network.service
    with pytest.raises(RuntimeError), svc.db.transaction() as session:
        ghost = models.Network(id=models.new_id(), project_id="p", name="ghost")
        session.add(ghost)
        session.flush()
        svc.agents.changed(session, networks=[ghost.id])
        raise RuntimeError("changed my mind")
    barrier = cloud.create("network", name="after")
    assert wait_until(lambda: cloud.tap.about(barrier["id"]))
    assert cloud.tap.about(ghost.id) == []


def test_a_deleted_network_is_sent_as_deleted(cloud: Cloud) -> None:
    _agent, plane = cloud.agent()
    net, _subnet = cloud.network_with_subnet()
    assert plane.wait_for(lambda p: net["id"] in p.networks)
    dhcp = dhcp_port_of(cloud, net["id"])
    cloud.delete(f"networks/{net['id']}")
    assert plane.wait_for(lambda p: net["id"] not in p.networks)
    assert net["id"] in plane.calls_of("remove_network")
    assert wait_until(lambda: [m["port_id"] for m in cloud.tap.of("port_delete")] == [dhcp["id"]])


# --- networks and DHCP ---------------------------------------------------------------------------------


def test_a_dhcp_subnet_reaches_the_dhcp_agent_as_one_network_document(cloud: Cloud) -> None:
    _agent, plane = cloud.agent()
    net, subnet = cloud.network_with_subnet()
    dhcp = dhcp_port_of(cloud, net["id"])
    doc = plane.wait_for(lambda p: p.networks.get(net["id"], {}).get("dhcp") and p.networks[net["id"]])
    shown = cloud.get(f"networks/{net['id']}")["network"]
    assert doc["mtu"] == shown["mtu"]
    assert doc["segment"] == {"network_type": shown["provider:network_type"],
                              "physical_network": shown["provider:physical_network"],
                              "segmentation_id": shown["provider:segmentation_id"]}
    [sub] = doc["subnets"]
    assert sub["id"] == subnet["id"] and sub["cidr"] == "10.0.0.0/24" and sub["gateway_ip"] == subnet["gateway_ip"]
    assert sub["enable_dhcp"] is True and sub["dns_nameservers"] == ["192.0.2.53"]
    assert sub["host_routes"] == [{"destination": "198.51.100.0/24", "nexthop": "10.0.0.254"}]
    assert sub["allocation_pools"] == subnet["allocation_pools"]
    assert doc["dhcp"]["port_id"] == dhcp["id"] and doc["dhcp"]["mac_address"] == dhcp["mac_address"]
    assert doc["dhcp"]["addresses"] == dhcp["fixed_ips"]
    address = dhcp["fixed_ips"][0]["ip_address"]
    assert {"port_id": dhcp["id"], "subnet_id": subnet["id"], "mac_address": dhcp["mac_address"],
            "ip_address": address, "hostname": "host-" + address.replace(".", "-")} in doc["dhcp_hosts"]
    assert cloud.ends_with_status("port", dhcp["id"], "ACTIVE")


def test_ports_elsewhere_join_the_dhcp_hosts_and_leave_when_deleted(cloud: Cloud) -> None:
    _agent, plane = cloud.agent()
    net, _subnet = cloud.network_with_subnet()
    other = cloud.port(net["id"], host="host2")
    address = other["fixed_ips"][0]["ip_address"]

    def reserved(p: NoopDataPlane) -> set[str]:
        return {h["ip_address"] for h in p.networks.get(net["id"], {}).get("dhcp_hosts", [])}

    assert plane.wait_for(lambda p: address in reserved(p))
    assert other["id"] not in plane.ports  # bound to another host: not wired here
    cloud.delete(f"ports/{other['id']}")
    assert plane.wait_for(lambda p: address not in reserved(p))


def test_disabling_dhcp_takes_the_network_off_a_dhcp_only_agent(cloud: Cloud) -> None:
    _agent, plane = cloud.agent(roles=("dhcp",))
    net, subnet = cloud.network_with_subnet()
    assert plane.wait_for(lambda p: net["id"] in p.networks)
    cloud.put(f"subnets/{subnet['id']}", {"subnet": {"enable_dhcp": False}})
    assert plane.wait_for(lambda p: net["id"] not in p.networks)


# --- ports -----------------------------------------------------------------------------------------------


def test_a_port_bound_to_the_host_is_wired_after_its_network_and_group_and_becomes_active(cloud: Cloud) -> None:
    _agent, plane = cloud.agent()
    net, subnet = cloud.network_with_subnet()
    port = cloud.port(net["id"], allowed_address_pairs=[{"ip_address": "10.0.0.200"}])
    doc = plane.wait_for(lambda p: p.ports.get(port["id"]))
    assert doc["host"] == "host1" and doc["network_id"] == net["id"] and doc["mac_address"] == port["mac_address"]
    assert doc["fixed_ips"] == port["fixed_ips"] and doc["security_group_ids"] == port["security_groups"]
    assert doc["allowed_address_pairs"] == [{"ip_address": "10.0.0.200", "mac_address": port["mac_address"]}]
    assert doc["admin_state_up"] is True and doc["port_security_enabled"] is True
    assert doc["segment"] == plane.networks[net["id"]]["segment"] and doc["mtu"] == net["mtu"]
    [group_id] = port["security_groups"]
    group = plane.security_groups[group_id]
    assert {r["direction"] for r in group["rules"]} == {"ingress", "egress"}
    assert sorted(group["members"]["IPv4"]) == sorted([port["fixed_ips"][0]["ip_address"], "10.0.0.200"])
    order = [(m, p if isinstance(p, str) else p.get("id")) for m, p in plane.calls]
    assert order.index(("apply_security_group", group_id)) < order.index(("apply_port", port["id"]))
    assert order.index(("apply_network", net["id"])) < order.index(("apply_port", port["id"]))
    assert cloud.ends_with_status("port", port["id"], "ACTIVE")


def test_unbinding_then_deleting_a_port(cloud: Cloud) -> None:
    _agent, plane = cloud.agent()
    net, _subnet = cloud.network_with_subnet()
    port = cloud.port(net["id"])
    assert cloud.ends_with_status("port", port["id"], "ACTIVE")
    cloud.put(f"ports/{port['id']}", {"port": {"binding:host_id": ""}})
    assert plane.wait_for(lambda p: port["id"] not in p.ports)
    assert cloud.ends_with_status("port", port["id"], "DOWN")
    assert port["security_groups"][0] not in plane.security_groups  # nothing here needs the group
    cloud.put(f"ports/{port['id']}", {"port": {"binding:host_id": "host1"}})
    assert plane.wait_for(lambda p: port["id"] in p.ports)
    assert cloud.ends_with_status("port", port["id"], "ACTIVE")
    cloud.delete(f"ports/{port['id']}")
    assert plane.wait_for(lambda p: port["id"] not in p.ports)
    assert plane.calls_of("remove_port") == [port["id"], port["id"]]


def test_a_port_moved_to_another_host_leaves_this_one_and_stays_active_there(cloud: Cloud) -> None:
    _one, plane1 = cloud.agent("host1")
    _two, plane2 = cloud.agent("host2")
    net, _subnet = cloud.network_with_subnet()
    port = cloud.port(net["id"], host="host1")
    assert cloud.ends_with_status("port", port["id"], "ACTIVE")
    cloud.put(f"ports/{port['id']}", {"port": {"binding:host_id": "host2"}})
    assert plane1.wait_for(lambda p: port["id"] not in p.ports)
    assert plane2.wait_for(lambda p: port["id"] in p.ports)
    time.sleep(0.3)  # host1's DOWN report must not win over host2's ACTIVE
    assert cloud.ends_with_status("port", port["id"], "ACTIVE")


def test_an_admin_down_port_is_wired_but_down(cloud: Cloud) -> None:
    _agent, plane = cloud.agent()
    net, _subnet = cloud.network_with_subnet()
    port = cloud.port(net["id"])
    assert cloud.ends_with_status("port", port["id"], "ACTIVE")
    cloud.put(f"ports/{port['id']}", {"port": {"admin_state_up": False}})
    assert plane.wait_for(lambda p: p.ports[port["id"]]["admin_state_up"] is False)
    assert cloud.ends_with_status("port", port["id"], "DOWN")


# --- security groups ---------------------------------------------------------------------------------------


def test_a_rule_naming_another_group_brings_that_group_and_its_members(cloud: Cloud) -> None:
    _agent, plane = cloud.agent()
    net, _subnet = cloud.network_with_subnet()
    web = cloud.create("security_group", name="web")
    peer = cloud.port(net["id"], host="host9", security_groups=[web["id"]])
    local = cloud.port(net["id"])
    [default] = local["security_groups"]
    assert plane.wait_for(lambda p: local["id"] in p.ports)
    assert web["id"] not in plane.security_groups
    rule = cloud.create("security_group_rule", security_group_id=default, direction="ingress", protocol="tcp",
                        port_range_min=80, port_range_max=80, remote_group_id=web["id"])
    assert plane.wait_for(lambda p: web["id"] in p.security_groups
                          and any(r["id"] == rule["id"] for r in p.security_groups[default]["rules"]))
    assert plane.security_groups[web["id"]]["members"]["IPv4"] == [peer["fixed_ips"][0]["ip_address"]]
    [sent] = [r for r in plane.security_groups[default]["rules"] if r["id"] == rule["id"]]
    assert sent == {"id": rule["id"], "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
                    "port_range_min": 80, "port_range_max": 80, "remote_ip_prefix": None,
                    "remote_group_id": web["id"]}
    # A new member of the remote group shows up in its members without a group message.
    second = cloud.port(net["id"], host="host9", security_groups=[web["id"]])
    address = second["fixed_ips"][0]["ip_address"]
    assert plane.wait_for(lambda p: address in p.security_groups[web["id"]]["members"]["IPv4"])


# --- routers and floating IPs --------------------------------------------------------------------------------


def test_router_gateway_interface_and_floating_ip_reach_the_l3_agent(cloud: Cloud) -> None:
    _agent, plane = cloud.agent()
    public = cloud.create("network", name="public", **{"router:external": True})
    public_subnet = cloud.create("subnet", network_id=public["id"], cidr="203.0.113.0/24", ip_version=4)
    net, subnet = cloud.network_with_subnet()
    router = cloud.create("router", name="r", external_gateway_info={"network_id": public["id"]})
    cloud.put(f"routers/{router['id']}/add_router_interface", {"subnet_id": subnet["id"]})
    port = cloud.port(net["id"])
    fip = cloud.create("floatingip", floating_network_id=public["id"], port_id=port["id"])
    doc = plane.wait_for(lambda p: p.routers.get(router["id"], {}).get("floating_ips") and p.routers[router["id"]])
    gateway = doc["gateway"]
    [gw_port] = cloud.get(f"ports?device_id={router['id']}&device_owner=network:router_gateway")["ports"]
    assert gateway["network_id"] == public["id"] and gateway["port_id"] == gw_port["id"]
    assert gateway["addresses"] == [{"subnet_id": public_subnet["id"], "cidr": "203.0.113.0/24",
                                     "ip_address": gw_port["fixed_ips"][0]["ip_address"],
                                     "gateway_ip": public_subnet["gateway_ip"]}]
    [interface] = doc["interfaces"]
    assert interface["subnet_id"] == subnet["id"] and interface["ip_address"] == subnet["gateway_ip"]
    assert interface["cidr"] == "10.0.0.0/24" and interface["network_id"] == net["id"]
    assert doc["enable_snat"] is True and doc["routes"] == []
    assert doc["floating_ips"] == [{"id": fip["id"], "floating_ip_address": fip["floating_ip_address"],
                                    "fixed_ip_address": port["fixed_ips"][0]["ip_address"], "port_id": port["id"]}]
    assert cloud.ends_with_status("floatingip", fip["id"], "ACTIVE")
    assert cloud.ends_with_status("port", interface["port_id"], "ACTIVE")
    cloud.put(f"floatingips/{fip['id']}", {"floatingip": {"port_id": None}})
    assert plane.wait_for(lambda p: p.routers[router["id"]]["floating_ips"] == [])
    assert cloud.ends_with_status("floatingip", fip["id"], "DOWN")
    cloud.put(f"routers/{router['id']}/remove_router_interface", {"subnet_id": subnet["id"]})
    assert plane.wait_for(lambda p: p.routers[router["id"]]["interfaces"] == [])
    cloud.put(f"routers/{router['id']}", {"router": {"external_gateway_info": {}}})
    assert plane.wait_for(lambda p: p.routers[router["id"]]["gateway"] is None)
    cloud.delete(f"routers/{router['id']}")
    assert plane.wait_for(lambda p: router["id"] not in p.routers)


# --- start-up and agents ------------------------------------------------------------------------------------


def test_an_agent_started_later_gets_its_whole_state_without_any_new_change(cloud: Cloud) -> None:
    public = cloud.create("network", name="public", **{"router:external": True})
    cloud.create("subnet", network_id=public["id"], cidr="203.0.113.0/24", ip_version=4)
    net, subnet = cloud.network_with_subnet()
    router = cloud.create("router", name="r", external_gateway_info={"network_id": public["id"]})
    cloud.put(f"routers/{router['id']}/add_router_interface", {"subnet_id": subnet["id"]})
    port = cloud.port(net["id"], host="late-host")
    elsewhere = cloud.port(net["id"], host="other-host")
    barrier = cloud.create("network", name="barrier")  # once its message is in, all before it are
    assert wait_until(lambda: cloud.tap.about(barrier["id"]))
    sent = len(cloud.tap.messages)
    _agent, plane = cloud.agent("late-host")
    method, state = plane.calls[0]
    assert method == "sync"
    assert [p["id"] for p in state["ports"]] == [port["id"]]
    networks = {n["id"]: n for n in state["networks"]}
    assert set(networks) == {net["id"], public["id"]}  # its port's network, and every DHCP network
    assert {h["ip_address"] for h in networks[net["id"]]["dhcp_hosts"]} >= {
        port["fixed_ips"][0]["ip_address"], elsewhere["fixed_ips"][0]["ip_address"]}
    [group] = state["security_groups"]
    assert group["id"] == port["security_groups"][0]
    assert sorted(group["member_ports"]) == sorted([port["id"], elsewhere["id"]])
    [routed] = state["routers"]
    assert routed["id"] == router["id"] and routed["interfaces"][0]["subnet_id"] == subnet["id"]
    assert len(cloud.tap.messages) == sent  # nothing was sent for it
    assert cloud.ends_with_status("port", port["id"], "ACTIVE")
    # An l2-only agent gets no DHCP network of its own and no router.
    _agent, l2 = cloud.agent("other-host", roles=("l2",))
    _method, state = l2.calls[0]
    assert [n["id"] for n in state["networks"]] == [net["id"]] and state["routers"] == []
    assert state["networks"][0]["dhcp"] is None


def test_agents_appear_with_fresh_heartbeats(cloud: Cloud) -> None:
    began = utcnow() - dt.timedelta(seconds=1)
    cloud.agent("host1", report_interval=0.2)
    with cloud.network.service.db.transaction() as session:
        rows = session.scalars(sa.select(models.Agent).where(models.Agent.host == "host1")).all()
        assert sorted(r.agent_type for r in rows) == sorted(rpc.AGENT_TYPES.values())
        assert all(r.binary == "stratus-network-agent" and r.topic == "network-agent" for r in rows)
        assert all(r.started_at >= began and r.heartbeat_timestamp >= began for r in rows)
        first = {r.id: r.heartbeat_timestamp for r in rows}
        assert {r.agent_type: r.configurations["dataplane"] for r in rows} == {
            t: "noop" for t in rpc.AGENT_TYPES.values()}

    def beaten() -> bool:
        with cloud.network.service.db.transaction() as session:
            return all(session.get(models.Agent, agent_id).heartbeat_timestamp > seen  # type: ignore[union-attr]
                       for agent_id, seen in first.items())

    assert wait_until(beaten)
    listed = cloud.get("agents?host=host1")["agents"]
    assert len(listed) == 3 and all(a["alive"] for a in listed)


# --- cost ------------------------------------------------------------------------------------------------------


def test_documents_are_read_in_a_constant_number_of_statements(cloud: Cloud) -> None:
    public = cloud.create("network", name="public", **{"router:external": True})
    cloud.create("subnet", network_id=public["id"], cidr="203.0.113.0/24", ip_version=4)
    net, subnet = cloud.network_with_subnet()
    router = cloud.create("router", name="r", external_gateway_info={"network_id": public["id"]})
    cloud.put(f"routers/{router['id']}/add_router_interface", {"subnet_id": subnet["id"]})
    counts = []
    ports: list[str] = []
    for total in (2, 12):
        while len(ports) < total:
            port = cloud.port(net["id"], host="busy")
            ports.append(port["id"])
            cloud.create("floatingip", floating_network_id=public["id"], port_id=port["id"])
        changes = Changes(networks={net["id"], public["id"]}, ports=set(ports), routers={router["id"]},
                          security_groups={cloud.get(f"ports/{ports[0]}")["port"]["security_groups"][0]})
        with counting(cloud.network.service.db.engine) as host_state:
            state = Conductor(cloud.network.service.db).get_host_state("busy", list(rpc.ROLES))
        with counting(cloud.network.service.db.engine) as planned, cloud.network.service.db.transaction() as session:
            batch = desired.plan(session, changes)
        assert len(state["ports"]) == total and len(batch.ports) == total
        assert len(batch.routers[router["id"]]["floating_ips"]) == total
        counts.append((len(host_state), len(planned)))
    assert counts[0] == counts[1]
