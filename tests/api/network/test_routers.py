"""Routers API: fields, external gateway, interfaces by subnet and by port, extra routes, delete, isolation."""

from __future__ import annotations

from typing import Any

import pytest

from stratus.network.notify import Changes
from tests.api.network.helpers import counting, create, fault, member_headers
from tests.conftest import NetworkHarness, make_network

EXTERNAL_CIDR = "203.0.113.0/24"  # a documentation range: nothing is ever sent there


def external_network(network: NetworkHarness, cidr: str = EXTERNAL_CIDR) -> tuple[dict[str, Any], dict[str, Any]]:
    """An admin's external network with one subnet."""
    admin = network.as_admin()
    net = create(network, "network", admin, name="public", **{"router:external": True})
    subnet = create(network, "subnet", admin, network_id=net["id"], cidr=cidr, ip_version=4, name="public-v4")
    return net, subnet


def private_network(network: NetworkHarness, headers: dict[str, str], cidr: str = "10.0.0.0/24",
                    **subnet_fields: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    net = create(network, "network", headers, name=f"net-{cidr}")
    subnet = create(network, "subnet", headers, network_id=net["id"], cidr=cidr, ip_version=4, **subnet_fields)
    return net, subnet


def put(network: NetworkHarness, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    return network.client.put(f"/v2.0/{path}", json=body, headers=headers)


def update_router(network: NetworkHarness, router_id: str, headers: dict[str, str], **fields: Any) -> Any:
    return put(network, f"routers/{router_id}", {"router": fields}, headers)


def ports_of(network: NetworkHarness, **filters: str) -> list[dict[str, Any]]:
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    response = network.client.get(f"/v2.0/ports?{query}", headers=network.as_admin())
    assert response.status_code == 200, response.text
    return response.json()["ports"]  # type: ignore[no-any-return]


@pytest.fixture
def sent(network: NetworkHarness, monkeypatch: pytest.MonkeyPatch) -> list[Changes]:
    """What the agents are told, one `Changes` per committed transaction."""
    record: list[Changes] = []
    monkeypatch.setattr(network.service.agents, "send", record.append)
    return record


def test_a_router_shows_the_reference_fields_and_lists_for_its_project_only(network: NetworkHarness) -> None:
    alice, bob = member_headers(network, "alice"), member_headers(network, "bob")
    router = create(network, "router", alice, name="r1", description="first")
    assert router["name"] == "r1" and router["description"] == "first"
    assert router["status"] == "ACTIVE" and router["admin_state_up"] is True
    assert router["external_gateway_info"] is None and router["routes"] == []
    assert router["distributed"] is False and router["ha"] is False and router["flavor_id"] is None
    assert router["availability_zone_hints"] == [] and router["availability_zones"] == ["nova"]
    assert router["project_id"] == router["tenant_id"] and router["revision_number"] == 0
    assert router["tags"] == [] and router["created_at"].endswith("Z")
    shown = network.client.get(f"/v2.0/routers/{router['id']}", headers=alice).json()["router"]
    assert shown == router
    create(network, "router", bob, name="r-bob")
    names = [r["name"] for r in network.client.get("/v2.0/routers", headers=alice).json()["routers"]]
    assert names == ["r1"]
    admin_names = {r["name"] for r in network.client.get("/v2.0/routers", headers=network.as_admin()).json()["routers"]}
    assert admin_names == {"r1", "r-bob"}
    filtered = network.client.get("/v2.0/routers?name=r1&fields=id&fields=name", headers=network.as_admin())
    assert filtered.json()["routers"] == [{"id": router["id"], "name": "r1"}]
    # Another project's router is simply not there.
    assert fault(network.client.get(f"/v2.0/routers/{router['id']}", headers=bob), 404)["type"] == "RouterNotFound"
    assert fault(update_router(network, router["id"], bob, name="x"), 404)["type"] == "RouterNotFound"
    assert fault(network.client.delete(f"/v2.0/routers/{router['id']}", headers=bob), 404)["type"] == "RouterNotFound"
    updated = update_router(network, router["id"], alice, name="renamed", admin_state_up=False)
    assert updated.status_code == 200, updated.text
    assert updated.json()["router"]["name"] == "renamed" and updated.json()["router"]["admin_state_up"] is False
    assert updated.json()["router"]["revision_number"] == 1


def test_unsupported_router_attributes_are_refused(network: NetworkHarness) -> None:
    alice = member_headers(network)
    for bad in ({"distributed": True}, {"ha": True}, {"routes": []}, {"bogus": 1},
                {"availability_zone_hints": ["elsewhere"]}):
        response = network.client.post("/v2.0/routers", json={"router": bad}, headers=alice)
        assert response.status_code == 400, (bad, response.text)
    assert network.client.get("/v2.0/routers", headers=alice).json()["routers"] == []


def test_the_gateway_is_a_port_on_the_external_network_made_and_removed_with_the_setting(
        network: NetworkHarness, sent: list[Changes]) -> None:
    alice = member_headers(network)
    public, public_subnet = external_network(network)
    router = create(network, "router", alice, name="r", external_gateway_info={"network_id": public["id"]})
    info = router["external_gateway_info"]
    assert info["network_id"] == public["id"] and info["enable_snat"] is True
    [address] = info["external_fixed_ips"]
    assert address["subnet_id"] == public_subnet["id"] and address["ip_address"].startswith("203.0.113.")
    [gateway] = ports_of(network, device_owner="network:router_gateway")
    assert gateway["device_id"] == router["id"] and gateway["network_id"] == public["id"]
    assert gateway["project_id"] == ""  # as Neutron: no project owns (or pays quota for) a gateway port
    assert gateway["fixed_ips"] == [address]
    # The project does not see the gateway port among its ports.
    assert network.client.get("/v2.0/ports", headers=alice).json()["ports"] == []
    assert router["id"] in set().union(*(c.routers for c in sent))
    # Clearing the gateway ({} as the CLI's `router unset --external-gateway` sends) deletes the port.
    cleared = update_router(network, router["id"], alice, external_gateway_info={})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["router"]["external_gateway_info"] is None
    assert ports_of(network, device_owner="network:router_gateway") == []
    # Set again by update; null clears it too.
    again = update_router(network, router["id"], alice, external_gateway_info={"network_id": public["id"]})
    assert again.status_code == 200, again.text
    assert again.json()["router"]["external_gateway_info"]["network_id"] == public["id"]
    assert len(ports_of(network, device_owner="network:router_gateway")) == 1
    # Setting the same network again keeps the same port and address.
    same = update_router(network, router["id"], alice, external_gateway_info={"network_id": public["id"]})
    assert same.json()["router"]["external_gateway_info"] == again.json()["router"]["external_gateway_info"]
    assert update_router(network, router["id"], alice, external_gateway_info=None).status_code == 200
    assert ports_of(network, device_owner="network:router_gateway") == []


def test_a_gateway_needs_a_visible_external_network(network: NetworkHarness) -> None:
    alice, bob = member_headers(network, "alice"), member_headers(network, "bob")
    private, _ = private_network(network, alice)
    error = fault(network.client.post("/v2.0/routers", json={"router": {
        "external_gateway_info": {"network_id": private["id"]}}}, headers=alice), 400)
    assert error["type"] == "BadRequest" and "not a valid external network" in error["message"]
    bobs, _ = private_network(network, bob)
    router = create(network, "router", alice)
    response = update_router(network, router["id"], alice, external_gateway_info={"network_id": bobs["id"]})
    assert fault(response, 404)["type"] == "NetworkNotFound"
    response = update_router(network, router["id"], alice, external_gateway_info={"enable_snat": False})
    assert response.status_code == 400
    assert [r["id"] for r in network.client.get("/v2.0/routers", headers=alice).json()["routers"]] == [router["id"]]
    assert ports_of(network, device_owner="network:router_gateway") == []


def test_choosing_gateway_addresses_or_snat_is_for_admins(network: NetworkHarness) -> None:
    alice, admin = member_headers(network), network.as_admin()
    public, public_subnet = external_network(network)
    wanted = {"network_id": public["id"], "external_fixed_ips": [{"ip_address": "203.0.113.50"}]}
    response = network.client.post("/v2.0/routers", json={"router": {"external_gateway_info": wanted}}, headers=alice)
    assert response.status_code == 403, response.text
    response = network.client.post("/v2.0/routers", json={"router": {"external_gateway_info": {
        "network_id": public["id"], "enable_snat": False}}}, headers=alice)
    assert response.status_code == 403, response.text
    assert network.client.get("/v2.0/routers", headers=alice).json()["routers"] == []
    # Saying what is already so is allowed.
    router = create(network, "router", alice, external_gateway_info={"network_id": public["id"], "enable_snat": True})
    before = router["external_gateway_info"]["external_fixed_ips"]
    response = update_router(network, router["id"], admin, external_gateway_info=wanted)
    assert response.status_code == 200, response.text
    info = response.json()["router"]["external_gateway_info"]
    assert info["external_fixed_ips"] == [{"subnet_id": public_subnet["id"], "ip_address": "203.0.113.50"}]
    assert info["external_fixed_ips"] != before
    response = update_router(network, router["id"], admin,
                             external_gateway_info={"network_id": public["id"], "enable_snat": False})
    assert response.json()["router"]["external_gateway_info"]["enable_snat"] is False
    # The address stays when only SNAT changes.
    assert response.json()["router"]["external_gateway_info"]["external_fixed_ips"] == info["external_fixed_ips"]
    # An address another port holds is refused.
    other = create(network, "router", admin)
    response = update_router(network, other["id"], admin, external_gateway_info=wanted)
    assert fault(response, 409)["type"] == "IpAddressInUse"
    assert len(ports_of(network, device_owner="network:router_gateway")) == 1


def test_interfaces_by_subnet_take_the_gateway_address(network: NetworkHarness, sent: list[Changes]) -> None:
    alice = member_headers(network)
    net, subnet = private_network(network, alice, "10.0.0.0/24")
    router = create(network, "router", alice, name="r")
    response = put(network, f"routers/{router['id']}/add_router_interface", {"subnet_id": subnet["id"]}, alice)
    assert response.status_code == 200, response.text
    info = response.json()
    assert set(info) == {"id", "subnet_id", "subnet_ids", "port_id", "network_id", "tenant_id", "project_id", "tags"}
    assert info["id"] == router["id"] and info["subnet_id"] == subnet["id"] and info["subnet_ids"] == [subnet["id"]]
    assert info["network_id"] == net["id"] and info["project_id"] == info["tenant_id"] == subnet["project_id"]
    port = network.client.get(f"/v2.0/ports/{info['port_id']}", headers=alice).json()["port"]
    assert port["device_owner"] == "network:router_interface" and port["device_id"] == router["id"]
    assert port["fixed_ips"] == [{"subnet_id": subnet["id"], "ip_address": "10.0.0.1"}]
    assert any(router["id"] in c.routers for c in sent)
    # The same subnet twice, or an overlapping one, is refused.
    again = put(network, f"routers/{router['id']}/add_router_interface", {"subnet_id": subnet["id"]}, alice)
    assert "already has a port on subnet" in fault(again, 400)["message"]
    _, overlapping = private_network(network, alice, "10.0.0.0/16")
    response = put(network, f"routers/{router['id']}/add_router_interface", {"subnet_id": overlapping["id"]}, alice)
    assert "overlaps with cidr" in fault(response, 400)["message"]
    # A subnet without a gateway cannot be routed.
    _, no_gateway = private_network(network, alice, "10.9.0.0/24", gateway_ip=None)
    response = put(network, f"routers/{router['id']}/add_router_interface", {"subnet_id": no_gateway["id"]}, alice)
    assert "must have a gateway IP" in fault(response, 400)["message"]
    # Another router cannot take the gateway address already in use.
    second = create(network, "router", alice, name="r2")
    response = put(network, f"routers/{second['id']}/add_router_interface", {"subnet_id": subnet["id"]}, alice)
    assert fault(response, 409)["type"] == "IpAddressInUse"
    for body in ({}, {"subnet_id": subnet["id"], "port_id": info["port_id"]}):
        assert put(network, f"routers/{second['id']}/add_router_interface", body, alice).status_code == 400
    missing = put(network, f"routers/{second['id']}/add_router_interface", {"subnet_id": "nope"}, alice)
    assert fault(missing, 404)["type"] == "SubnetNotFound"
    assert len(ports_of(network, device_owner="network:router_interface")) == 1


def test_an_interface_by_port_makes_the_port_the_routers(network: NetworkHarness) -> None:
    alice = member_headers(network)
    net, subnet = private_network(network, alice, "10.1.0.0/24")
    router = create(network, "router", alice)
    port = create(network, "port", alice, network_id=net["id"], fixed_ips=[{"ip_address": "10.1.0.10"}])
    response = put(network, f"routers/{router['id']}/add_router_interface", {"port_id": port["id"]}, alice)
    assert response.status_code == 200, response.text
    assert response.json()["port_id"] == port["id"] and response.json()["subnet_ids"] == [subnet["id"]]
    shown = network.client.get(f"/v2.0/ports/{port['id']}", headers=alice).json()["port"]
    assert shown["device_owner"] == "network:router_interface" and shown["device_id"] == router["id"]
    # A port that is someone's device already is in use.
    other = create(network, "router", alice)
    response = put(network, f"routers/{other['id']}/add_router_interface", {"port_id": port["id"]}, alice)
    assert fault(response, 409)["type"] == "PortInUse"
    vm_port = create(network, "port", alice, network_id=net["id"], device_id="vm-1", device_owner="compute:nova")
    response = put(network, f"routers/{other['id']}/add_router_interface", {"port_id": vm_port["id"]}, alice)
    assert fault(response, 409)["type"] == "PortInUse"
    # A port without an address cannot be an interface.
    bare = create(network, "port", alice, network_id=net["id"], fixed_ips=[])
    response = put(network, f"routers/{other['id']}/add_router_interface", {"port_id": bare["id"]}, alice)
    assert "at least one fixed IP" in fault(response, 400)["message"]
    # A second port on the same subnet for the same router is refused.
    second = create(network, "port", alice, network_id=net["id"])
    response = put(network, f"routers/{router['id']}/add_router_interface", {"port_id": second["id"]}, alice)
    assert "already has a port on subnet" in fault(response, 400)["message"]
    shown = network.client.get(f"/v2.0/ports/{second['id']}", headers=alice).json()["port"]
    assert shown["device_owner"] == "" and shown["device_id"] == ""


def test_removing_an_interface_deletes_its_port(network: NetworkHarness, sent: list[Changes]) -> None:
    alice = member_headers(network)
    net, subnet = private_network(network, alice, "10.2.0.0/24")
    net2, subnet2 = private_network(network, alice, "10.3.0.0/24")
    router = create(network, "router", alice)
    by_subnet = put(network, f"routers/{router['id']}/add_router_interface", {"subnet_id": subnet["id"]}, alice).json()
    port = create(network, "port", alice, network_id=net2["id"])
    put(network, f"routers/{router['id']}/add_router_interface", {"port_id": port["id"]}, alice)
    sent.clear()
    response = put(network, f"routers/{router['id']}/remove_router_interface", {"subnet_id": subnet["id"]}, alice)
    assert response.status_code == 200, response.text
    assert response.json() == by_subnet
    assert network.client.get(f"/v2.0/ports/{by_subnet['port_id']}", headers=alice).status_code == 404
    assert any(router["id"] in c.routers and by_subnet["port_id"] in c.deleted_ports for c in sent)
    response = put(network, f"routers/{router['id']}/remove_router_interface", {"subnet_id": subnet["id"]}, alice)
    assert fault(response, 404)["type"] == "RouterInterfaceNotFoundForSubnet"
    # The subnet can be attached again once its gateway address is free.
    assert put(network, f"routers/{router['id']}/add_router_interface", {"subnet_id": subnet["id"]},
               alice).status_code == 200
    response = put(network, f"routers/{router['id']}/remove_router_interface",
                   {"port_id": port["id"], "subnet_id": subnet["id"]}, alice)
    assert fault(response, 400)["type"] == "SubnetMismatchForPort"
    # The router's ports are not deleted through the port API.
    assert fault(network.client.delete(f"/v2.0/ports/{port['id']}", headers=alice), 409)["type"] == "ServicePortInUse"
    response = put(network, f"routers/{router['id']}/remove_router_interface", {"port_id": port["id"]}, alice)
    assert response.status_code == 200, response.text
    assert response.json()["subnet_ids"] == [subnet2["id"]]
    assert network.client.get(f"/v2.0/ports/{port['id']}", headers=alice).status_code == 404
    response = put(network, f"routers/{router['id']}/remove_router_interface", {"port_id": port["id"]}, alice)
    assert fault(response, 404)["type"] == "RouterInterfaceNotFound"
    assert put(network, f"routers/{router['id']}/remove_router_interface", {}, alice).status_code == 400


def test_a_router_with_interfaces_cannot_be_deleted_and_its_gateway_goes_with_it(
        network: NetworkHarness, sent: list[Changes]) -> None:
    alice = member_headers(network)
    public, _ = external_network(network)
    _, subnet = private_network(network, alice)
    router = create(network, "router", alice, external_gateway_info={"network_id": public["id"]})
    put(network, f"routers/{router['id']}/add_router_interface", {"subnet_id": subnet["id"]}, alice)
    response = network.client.delete(f"/v2.0/routers/{router['id']}", headers=alice)
    assert fault(response, 409)["type"] == "RouterInUse"
    put(network, f"routers/{router['id']}/remove_router_interface", {"subnet_id": subnet["id"]}, alice)
    sent.clear()
    assert network.client.delete(f"/v2.0/routers/{router['id']}", headers=alice).status_code == 204
    assert network.client.get(f"/v2.0/routers/{router['id']}", headers=alice).status_code == 404
    assert ports_of(network, device_owner="network:router_gateway") == []
    assert any(router["id"] in c.deleted_routers for c in sent)
    # The external network is free to go now.
    assert network.client.delete(f"/v2.0/networks/{public['id']}", headers=network.as_admin()).status_code == 204


def test_extra_routes_need_a_nexthop_on_an_attached_subnet(network: NetworkHarness) -> None:
    alice = member_headers(network)
    public, _ = external_network(network)
    _, subnet = private_network(network, alice, "10.4.0.0/24")
    router = create(network, "router", alice)
    route = {"destination": "192.168.50.0/24", "nexthop": "10.4.0.20"}
    response = update_router(network, router["id"], alice, routes=[route])
    assert fault(response, 400)["type"] == "InvalidRoutes"
    put(network, f"routers/{router['id']}/add_router_interface", {"subnet_id": subnet["id"]}, alice)
    response = update_router(network, router["id"], alice, routes=[route])
    assert response.status_code == 200, response.text
    assert response.json()["router"]["routes"] == [route]
    for bad in ([{"destination": "192.168.50.1/24", "nexthop": "10.4.0.20"}],
                [{"destination": "nonsense", "nexthop": "10.4.0.20"}],
                [{"destination": "192.168.60.0/24", "nexthop": "10.4.0.1"}],  # the router's own address
                [{"destination": "2001:db8::/64", "nexthop": "10.4.0.20"}],
                [route, route],
                [{"destination": "192.168.60.0/24"}]):
        response = update_router(network, router["id"], alice, routes=bad)
        assert response.status_code == 400, (bad, response.text)
    shown = network.client.get(f"/v2.0/routers/{router['id']}", headers=alice).json()["router"]
    assert shown["routes"] == [route]
    # A nexthop on the gateway's subnet is reachable too.
    update_router(network, router["id"], alice, external_gateway_info={"network_id": public["id"]})
    via_gateway = {"destination": "198.51.100.0/24", "nexthop": "203.0.113.254"}
    response = update_router(network, router["id"], alice, routes=[route, via_gateway])
    assert response.status_code == 200, response.text
    # Neither can the gateway a route needs.
    response = update_router(network, router["id"], alice, external_gateway_info={})
    assert fault(response, 409)["type"] == "RouterExternalGatewayInUseByRoute"
    # The interface the route needs cannot go.
    response = put(network, f"routers/{router['id']}/remove_router_interface", {"subnet_id": subnet["id"]}, alice)
    assert fault(response, 409)["type"] == "RouterInterfaceInUseByRoute"
    # extraroute-atomic: add (existing ones kept, duplicates ignored) and remove.
    extra = {"destination": "172.16.0.0/16", "nexthop": "10.4.0.30"}
    response = put(network, f"routers/{router['id']}/add_extraroutes", {"router": {"routes": [extra, route]}}, alice)
    assert response.status_code == 200, response.text
    assert response.json()["router"]["routes"] == [route, via_gateway, extra]
    response = put(network, f"routers/{router['id']}/remove_extraroutes",
                   {"router": {"routes": [route, via_gateway]}}, alice)
    assert response.json()["router"]["routes"] == [extra]
    response = update_router(network, router["id"], alice, routes=[])
    assert response.json()["router"]["routes"] == []
    response = put(network, f"routers/{router['id']}/remove_router_interface", {"subnet_id": subnet["id"]}, alice)
    assert response.status_code == 200, response.text


def test_a_project_cannot_route_another_projects_subnets_or_ports(network: NetworkHarness) -> None:
    alice, bob = member_headers(network, "alice"), member_headers(network, "bob")
    net, subnet = private_network(network, alice)
    alices_router = create(network, "router", alice)
    put(network, f"routers/{alices_router['id']}/add_router_interface", {"subnet_id": subnet["id"]}, alice)
    port = create(network, "port", alice, network_id=net["id"])
    bobs_router = create(network, "router", bob)
    response = put(network, f"routers/{bobs_router['id']}/add_router_interface", {"subnet_id": subnet["id"]}, bob)
    assert fault(response, 404)["type"] == "SubnetNotFound"
    response = put(network, f"routers/{bobs_router['id']}/add_router_interface", {"port_id": port["id"]}, bob)
    assert fault(response, 404)["type"] == "PortNotFound"
    for action in ("add_router_interface", "remove_router_interface"):
        response = put(network, f"routers/{alices_router['id']}/{action}", {"subnet_id": subnet["id"]}, bob)
        assert fault(response, 404)["type"] == "RouterNotFound"
    # A shared network's subnet belongs to its owner: another project may not route it.
    admin = network.as_admin()
    shared = create(network, "network", admin, name="shared", shared=True)
    shared_subnet = create(network, "subnet", admin, network_id=shared["id"], cidr="10.50.0.0/24", ip_version=4)
    response = put(network, f"routers/{bobs_router['id']}/add_router_interface", {"subnet_id": shared_subnet["id"]},
                   bob)
    assert "not owned by project" in fault(response, 400)["message"]
    # Nothing of Alice's changed.
    assert network.client.get(f"/v2.0/ports/{port['id']}", headers=alice).json()["port"]["device_owner"] == ""
    assert len(ports_of(network, device_owner="network:router_interface")) == 1


def test_the_router_quota_is_enforced(network: NetworkHarness, database_url: str) -> None:
    limited = make_network(network.identity, database_url, quota_router=1)
    try:
        alice = member_headers(limited)
        create(limited, "router", alice, name="one")
        response = limited.client.post("/v2.0/routers", json={"router": {"name": "two"}}, headers=alice)
        error = fault(response, 409)
        assert error["type"] == "OverQuota" and "router" in error["message"]
        assert len(limited.client.get("/v2.0/routers", headers=alice).json()["routers"]) == 1
    finally:
        limited.client.close()
        limited.bus.close()
        limited.service.db.dispose()


def test_listing_routers_costs_the_same_statements_for_few_and_many(network: NetworkHarness) -> None:
    admin = network.as_admin()
    public, _ = external_network(network, "203.0.113.0/26")
    counts = []
    for total in (2, 8):
        while len(network.client.get("/v2.0/routers", headers=admin).json()["routers"]) < total:
            create(network, "router", admin, external_gateway_info={"network_id": public["id"]})
        with counting(network.service.db.engine) as statements:
            routers = network.client.get("/v2.0/routers", headers=admin).json()["routers"]
        assert len(routers) == total and all(r["external_gateway_info"]["external_fixed_ips"] for r in routers)
        counts.append(len(statements))
    assert counts[0] == counts[1]
