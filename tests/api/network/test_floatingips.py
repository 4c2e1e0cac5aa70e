"""Floating IPs API: allocate, associate through a router, disassociate, release, errors, isolation, quota."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from stratus.network.notify import Changes
from tests.api.network.helpers import counting, create, fault, member_headers
from tests.api.network.test_routers import (
    external_network,
    ports_of,
    private_network,
    put,
)
from tests.conftest import NetworkHarness, make_network

THREADS = 6


@pytest.fixture
def sent(network: NetworkHarness, monkeypatch: pytest.MonkeyPatch) -> list[Changes]:
    """What the agents are told, one `Changes` per committed transaction."""
    record: list[Changes] = []
    monkeypatch.setattr(network.service.agents, "send", record.append)
    return record


def routed_port(network: NetworkHarness, headers: dict[str, str], public: dict[str, Any],
                cidr: str = "10.0.0.0/24") -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A port on a private subnet attached to a router whose gateway is on `public`: (router, subnet, port)."""
    net, subnet = private_network(network, headers, cidr)
    router = create(network, "router", headers, external_gateway_info={"network_id": public["id"]})
    attached = put(network, f"routers/{router['id']}/add_router_interface", {"subnet_id": subnet["id"]}, headers)
    assert attached.status_code == 200, attached.text
    port = create(network, "port", headers, network_id=net["id"], device_id="vm-1", device_owner="compute:nova")
    return router, subnet, port


def set_port(network: NetworkHarness, fip_id: str, headers: dict[str, str], **fields: Any) -> Any:
    return put(network, f"floatingips/{fip_id}", {"floatingip": fields}, headers)


def test_a_floating_ip_is_an_address_of_the_external_network_held_by_a_port_of_no_project(
        network: NetworkHarness) -> None:
    alice = member_headers(network)
    public, public_subnet = external_network(network)
    fip = create(network, "floatingip", alice, floating_network_id=public["id"], description="web")
    assert fip["floating_network_id"] == public["id"] and fip["floating_ip_address"].startswith("203.0.113.")
    assert fip["floating_ip_address"] not in ("203.0.113.0", "203.0.113.1", "203.0.113.255")
    assert fip["status"] == "DOWN" and fip["description"] == "web"
    for name in ("port_id", "fixed_ip_address", "router_id", "port_details", "qos_policy_id"):
        assert fip[name] is None, name
    assert fip["dns_name"] == "" and fip["dns_domain"] == "" and fip["tags"] == []
    assert fip["project_id"] == fip["tenant_id"] and fip["revision_number"] == 0
    [holder] = ports_of(network, device_owner="network:floatingip")
    assert holder["device_id"] == fip["id"] and holder["project_id"] == ""
    assert holder["fixed_ips"] == [{"subnet_id": public_subnet["id"], "ip_address": fip["floating_ip_address"]}]
    assert network.client.get(f"/v2.0/floatingips/{fip['id']}", headers=alice).json()["floatingip"] == fip
    listed = network.client.get(f"/v2.0/floatingips?floating_network_id={public['id']}", headers=alice).json()
    assert [f["id"] for f in listed["floatingips"]] == [fip["id"]]
    # Its port is not deleted through the port API, even by an admin.
    response = network.client.delete(f"/v2.0/ports/{holder['id']}", headers=network.as_admin())
    assert fault(response, 409)["type"] == "ServicePortInUse"
    # Releasing it frees the address and its port.
    assert network.client.delete(f"/v2.0/floatingips/{fip['id']}", headers=alice).status_code == 204
    assert network.client.get(f"/v2.0/floatingips/{fip['id']}", headers=alice).status_code == 404
    assert ports_of(network, device_owner="network:floatingip") == []


def test_a_floating_ip_needs_an_external_network_with_ipv4(network: NetworkHarness) -> None:
    alice, bob, admin = member_headers(network, "alice"), member_headers(network, "bob"), network.as_admin()
    private, _ = private_network(network, alice)
    response = network.client.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": private["id"]}},
                                   headers=alice)
    assert "is not a valid external network" in fault(response, 400)["message"]
    bobs, _ = private_network(network, bob)
    response = network.client.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": bobs["id"]}},
                                   headers=alice)
    assert fault(response, 404)["type"] == "NetworkNotFound"
    v6_only = create(network, "network", admin, name="v6", **{"router:external": True})
    create(network, "subnet", admin, network_id=v6_only["id"], cidr="2001:db8::/64", ip_version=6)
    response = network.client.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": v6_only["id"]}},
                                   headers=alice)
    assert "does not contain any IPv4 subnet" in fault(response, 400)["message"]
    assert network.client.post("/v2.0/floatingips", json={"floatingip": {}}, headers=alice).status_code == 400
    assert network.client.get("/v2.0/floatingips", headers=alice).json()["floatingips"] == []
    assert ports_of(network, device_owner="network:floatingip") == []


def test_choosing_the_floating_address_is_for_admins(network: NetworkHarness) -> None:
    alice, admin = member_headers(network), network.as_admin()
    public, public_subnet = external_network(network)
    wanted = {"floating_network_id": public["id"], "floating_ip_address": "203.0.113.77"}
    assert network.client.post("/v2.0/floatingips", json={"floatingip": wanted}, headers=alice).status_code == 403
    fip = create(network, "floatingip", admin, **wanted)
    assert fip["floating_ip_address"] == "203.0.113.77"
    response = network.client.post("/v2.0/floatingips", json={"floatingip": wanted}, headers=admin)
    assert fault(response, 409)["type"] == "IpAddressInUse"
    by_subnet = create(network, "floatingip", alice, floating_network_id=public["id"], subnet_id=public_subnet["id"])
    assert by_subnet["floating_ip_address"].startswith("203.0.113.")
    response = network.client.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": public["id"], "subnet_id": "not-a-subnet"}}, headers=alice)
    assert response.status_code == 400, response.text
    assert len(ports_of(network, device_owner="network:floatingip")) == 2


def test_associating_with_a_routed_port_and_disassociating(network: NetworkHarness, sent: list[Changes]) -> None:
    alice = member_headers(network)
    public, _ = external_network(network)
    router, subnet, port = routed_port(network, alice, public)
    fip = create(network, "floatingip", alice, floating_network_id=public["id"])
    sent.clear()
    response = set_port(network, fip["id"], alice, port_id=port["id"])
    assert response.status_code == 200, response.text
    body = response.json()["floatingip"]
    assert body["port_id"] == port["id"] and body["router_id"] == router["id"]
    assert body["fixed_ip_address"] == port["fixed_ips"][0]["ip_address"]
    assert body["status"] == "DOWN"  # the agent makes it ACTIVE once the NAT rules are in place
    assert body["port_details"] == {
        "name": port["name"], "network_id": port["network_id"], "mac_address": port["mac_address"],
        "admin_state_up": True, "status": port["status"], "device_id": "vm-1", "device_owner": "compute:nova"}
    assert body["revision_number"] == 1
    assert any(router["id"] in c.routers for c in sent)
    listed = network.client.get(f"/v2.0/floatingips?port_id={port['id']}", headers=alice).json()["floatingips"]
    assert [f["id"] for f in listed] == [fip["id"]]
    # The gateway and the interface it needs cannot go while it is associated.
    response = put(network, f"routers/{router['id']}", {"router": {"external_gateway_info": {}}}, alice)
    assert fault(response, 409)["type"] == "RouterExternalGatewayInUseByFloatingIp"
    response = put(network, f"routers/{router['id']}/remove_router_interface", {"subnet_id": subnet["id"]}, alice)
    assert fault(response, 409)["type"] == "RouterInterfaceInUseByFloatingIP"
    # A second floating IP for the same fixed address is refused.
    other = create(network, "floatingip", alice, floating_network_id=public["id"])
    response = set_port(network, other["id"], alice, port_id=port["id"])
    assert fault(response, 409)["type"] == "FloatingIPPortAlreadyAssociated"
    sent.clear()
    response = set_port(network, fip["id"], alice, port_id=None)
    assert response.status_code == 200, response.text
    body = response.json()["floatingip"]
    assert body["port_id"] is None and body["fixed_ip_address"] is None and body["router_id"] is None
    assert body["port_details"] is None and body["status"] == "DOWN"
    assert any(router["id"] in c.routers for c in sent)
    # Now the other one may take the address, and the association can be made at creation too.
    assert set_port(network, other["id"], alice, port_id=port["id"]).status_code == 200
    set_port(network, other["id"], alice, port_id=None)
    direct = create(network, "floatingip", alice, floating_network_id=public["id"], port_id=port["id"],
                    fixed_ip_address=port["fixed_ips"][0]["ip_address"])
    assert direct["router_id"] == router["id"] and direct["port_id"] == port["id"]


def test_association_needs_a_router_between_the_subnet_and_the_floating_network(network: NetworkHarness) -> None:
    alice, admin = member_headers(network), network.as_admin()
    public, _ = external_network(network)
    net, subnet = private_network(network, alice)
    port = create(network, "port", alice, network_id=net["id"])
    fip = create(network, "floatingip", alice, floating_network_id=public["id"])
    error = fault(set_port(network, fip["id"], alice, port_id=port["id"]), 404)
    assert error["type"] == "ExternalGatewayForFloatingIPNotFound"
    assert error["message"] == (f"External network {public['id']} is not reachable from subnet {subnet['id']}. "
                                f"Therefore, cannot associate Port {port['id']} with a Floating IP.")
    # An interface is not enough: the router's gateway must be on the floating IP's network.
    router = create(network, "router", alice)
    put(network, f"routers/{router['id']}/add_router_interface", {"subnet_id": subnet["id"]}, alice)
    assert fault(set_port(network, fip["id"], alice, port_id=port["id"]), 404)["type"] == \
        "ExternalGatewayForFloatingIPNotFound"
    elsewhere = create(network, "network", admin, name="other-public", **{"router:external": True})
    create(network, "subnet", admin, network_id=elsewhere["id"], cidr="198.51.100.0/24", ip_version=4)
    put(network, f"routers/{router['id']}", {"router": {"external_gateway_info": {"network_id": elsewhere["id"]}}},
        alice)
    assert fault(set_port(network, fip["id"], alice, port_id=port["id"]), 404)["type"] == \
        "ExternalGatewayForFloatingIPNotFound"
    put(network, f"routers/{router['id']}", {"router": {"external_gateway_info": {"network_id": public["id"]}}}, alice)
    # Wrong or missing fixed addresses.
    response = set_port(network, fip["id"], alice, port_id=port["id"], fixed_ip_address="10.0.0.200")
    assert "does not have fixed ip" in fault(response, 400)["message"]
    response = set_port(network, fip["id"], alice, fixed_ip_address=port["fixed_ips"][0]["ip_address"])
    assert "without a port_id" in fault(response, 400)["message"]
    assert fault(set_port(network, fip["id"], alice, port_id="no-such-port"), 404)["type"] == "PortNotFound"
    # The router's own ports are not for floating IPs.
    interface = ports_of(network, device_owner="network:router_interface")[0]
    assert set_port(network, fip["id"], alice, port_id=interface["id"]).status_code == 400
    shown = network.client.get(f"/v2.0/floatingips/{fip['id']}", headers=alice).json()["floatingip"]
    assert shown["port_id"] is None and shown["revision_number"] == 0
    # Read-only attributes cannot be changed.
    response = set_port(network, fip["id"], alice, floating_network_id=public["id"])
    assert response.status_code == 400
    assert set_port(network, fip["id"], alice, port_id=port["id"]).json()["floatingip"]["router_id"] == router["id"]


def test_deleting_an_associated_port_disassociates_its_floating_ip(network: NetworkHarness) -> None:
    alice = member_headers(network)
    public, _ = external_network(network)
    _, _, port = routed_port(network, alice, public)
    fip = create(network, "floatingip", alice, floating_network_id=public["id"], port_id=port["id"])
    assert network.client.delete(f"/v2.0/ports/{port['id']}", headers=alice).status_code == 204
    shown = network.client.get(f"/v2.0/floatingips/{fip['id']}", headers=alice).json()["floatingip"]
    assert shown["port_id"] is None and shown["fixed_ip_address"] is None and shown["router_id"] is None


def test_projects_cannot_see_or_use_each_others_floating_ips_and_ports(network: NetworkHarness) -> None:
    alice, bob = member_headers(network, "alice"), member_headers(network, "bob")
    public, _ = external_network(network)
    _, _, alices_port = routed_port(network, alice, public)
    alices = create(network, "floatingip", alice, floating_network_id=public["id"])
    bobs = create(network, "floatingip", bob, floating_network_id=public["id"])
    assert fault(network.client.get(f"/v2.0/floatingips/{alices['id']}", headers=bob), 404)["type"] == \
        "FloatingIPNotFound"
    assert fault(set_port(network, alices["id"], bob, port_id=None), 404)["type"] == "FloatingIPNotFound"
    assert network.client.delete(f"/v2.0/floatingips/{alices['id']}", headers=bob).status_code == 404
    assert [f["id"] for f in network.client.get("/v2.0/floatingips", headers=bob).json()["floatingips"]] == \
        [bobs["id"]]
    assert fault(set_port(network, bobs["id"], bob, port_id=alices_port["id"]), 404)["type"] == "PortNotFound"
    response = network.client.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": public["id"], "port_id": alices_port["id"]}}, headers=bob)
    assert fault(response, 404)["type"] == "PortNotFound"
    assert len(network.client.get("/v2.0/floatingips", headers=network.as_admin()).json()["floatingips"]) == 2
    assert network.client.get(f"/v2.0/floatingips/{alices['id']}", headers=alice).json()["floatingip"]["port_id"] \
        is None


def test_the_floating_ip_quota_is_enforced_and_holding_ports_do_not_count_as_ports(
        network: NetworkHarness, database_url: str) -> None:
    limited = make_network(network.identity, database_url, quota_floatingip=2, quota_port=1)
    try:
        alice = member_headers(limited)
        public, _ = external_network(limited)
        for _ in range(2):
            create(limited, "floatingip", alice, floating_network_id=public["id"])
        response = limited.client.post("/v2.0/floatingips", json={"floatingip": {
            "floating_network_id": public["id"]}}, headers=alice)
        error = fault(response, 409)
        assert error["type"] == "OverQuota" and "floatingip" in error["message"]
        assert len(limited.client.get("/v2.0/floatingips", headers=alice).json()["floatingips"]) == 2
        assert len(ports_of(limited, device_owner="network:floatingip")) == 2
        # The project's one port is still its to make.
        net = create(limited, "network", alice)
        create(limited, "subnet", alice, network_id=net["id"], cidr="10.0.0.0/24", ip_version=4, enable_dhcp=False)
        create(limited, "port", alice, network_id=net["id"])
    finally:
        limited.client.close()
        limited.bus.close()
        limited.service.db.dispose()


def test_listing_floating_ips_costs_the_same_statements_for_few_and_many(network: NetworkHarness) -> None:
    alice = member_headers(network)
    public, _ = external_network(network)
    router, subnet, _ = routed_port(network, alice, public)
    counts = []
    for total in (2, 8):
        while len(network.client.get("/v2.0/floatingips", headers=alice).json()["floatingips"]) < total:
            port = create(network, "port", alice, network_id=subnet["network_id"])
            create(network, "floatingip", alice, floating_network_id=public["id"], port_id=port["id"])
        with counting(network.service.db.engine) as statements:
            fips = network.client.get("/v2.0/floatingips", headers=alice).json()["floatingips"]
        assert len(fips) == total and all(f["port_details"] and f["router_id"] == router["id"] for f in fips)
        counts.append(len(statements))
    assert counts[0] == counts[1]


def test_parallel_associations_of_one_fixed_ip_let_exactly_one_win(network: NetworkHarness) -> None:
    alice = member_headers(network)
    public, _ = external_network(network)
    _, _, port = routed_port(network, alice, public)
    fips = [create(network, "floatingip", alice, floating_network_id=public["id"]) for _ in range(THREADS)]
    start = threading.Barrier(THREADS)

    def associate(fip: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        start.wait()
        response = set_port(network, fip["id"], alice, port_id=port["id"])
        return response.status_code, response.json()

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(associate, fips))
    assert sorted(status for status, _ in results) == [200] + [409] * (THREADS - 1), results
    assert {body["NeutronError"]["type"] for status, body in results if status == 409} == {
        "FloatingIPPortAlreadyAssociated"}
    listed = network.client.get(f"/v2.0/floatingips?port_id={port['id']}", headers=alice).json()["floatingips"]
    [winner] = [body["floatingip"] for status, body in results if status == 200]
    assert [f["id"] for f in listed] == [winner["id"]]
