"""Subnets API: defaults, validation, IPv6 modes, updates, the DHCP port, delete, quota and isolation."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.network.helpers import create, fault, member_headers
from tests.conftest import NetworkHarness


def _net(network: NetworkHarness, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    return create(network, "network", headers, name=fields.pop("name", "net"), **fields)


def _post(network: NetworkHarness, headers: dict[str, str], **fields: Any) -> Any:
    return network.client.post("/v2.0/subnets", json={"subnet": fields}, headers=headers)


def _put(network: NetworkHarness, subnet_id: str, headers: dict[str, str], **fields: Any) -> Any:
    return network.client.put(f"/v2.0/subnets/{subnet_id}", json={"subnet": fields}, headers=headers)


def _ports(network: NetworkHarness, headers: dict[str, str], query: str = "") -> list[dict[str, Any]]:
    response = network.client.get(f"/v2.0/ports{query}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["ports"]  # type: ignore[no-any-return]


def test_an_ipv4_subnet_gets_the_first_host_as_gateway_and_the_rest_as_its_pool(network: NetworkHarness) -> None:
    alice = member_headers(network)
    net = _net(network, alice)
    subnet = create(network, "subnet", alice, network_id=net["id"], cidr="10.1.0.0/24", ip_version=4, name="s1")
    assert subnet["gateway_ip"] == "10.1.0.1"
    assert subnet["allocation_pools"] == [{"start": "10.1.0.2", "end": "10.1.0.254"}]
    assert subnet["enable_dhcp"] is True and subnet["ip_version"] == 4 and subnet["cidr"] == "10.1.0.0/24"
    assert subnet["dns_nameservers"] == [] and subnet["host_routes"] == []
    assert subnet["ipv6_ra_mode"] is None and subnet["ipv6_address_mode"] is None
    assert subnet["subnetpool_id"] is None and subnet["segment_id"] is None and subnet["service_types"] == []
    assert subnet["dns_publish_fixed_ip"] is False and subnet["tags"] == []
    assert subnet["project_id"] == subnet["tenant_id"] and subnet["revision_number"] == 0
    assert subnet["created_at"].endswith("Z") and subnet["updated_at"].endswith("Z")
    shown = network.client.get(f"/v2.0/subnets/{subnet['id']}", headers=alice).json()["subnet"]
    assert shown == subnet
    assert network.client.get(f"/v2.0/networks/{net['id']}", headers=alice).json()["network"]["subnets"] == [
        subnet["id"]]


def test_gateway_none_chosen_pools_dns_routes_and_no_dhcp(network: NetworkHarness) -> None:
    alice = member_headers(network)
    net = _net(network, alice)
    subnet = create(network, "subnet", alice, network_id=net["id"], cidr="192.168.5.0/24", ip_version=4,
                    gateway_ip=None, enable_dhcp=False,
                    allocation_pools=[{"start": "192.168.5.100", "end": "192.168.5.120"},
                                      {"start": "192.168.5.10", "end": "192.168.5.20"}],
                    dns_nameservers=["8.8.8.8", "1.1.1.1"],
                    host_routes=[{"destination": "172.16.0.0/16", "nexthop": "192.168.5.254"}])
    assert subnet["gateway_ip"] is None and subnet["enable_dhcp"] is False
    assert subnet["allocation_pools"] == [{"start": "192.168.5.10", "end": "192.168.5.20"},
                                          {"start": "192.168.5.100", "end": "192.168.5.120"}]
    assert subnet["dns_nameservers"] == ["8.8.8.8", "1.1.1.1"]
    assert subnet["host_routes"] == [{"destination": "172.16.0.0/16", "nexthop": "192.168.5.254"}]
    # Without DHCP, no DHCP port.
    assert _ports(network, alice) == []
    # Without a gateway the pool covers the first host too.
    other = create(network, "subnet", alice, network_id=_net(network, alice, name="n2")["id"], cidr="10.9.0.0/29",
                   ip_version=4, gateway_ip=None, enable_dhcp=False)
    assert other["allocation_pools"] == [{"start": "10.9.0.1", "end": "10.9.0.6"}]


def test_a_gateway_inside_the_cidr_splits_the_default_pool(network: NetworkHarness) -> None:
    alice = member_headers(network)
    net = _net(network, alice)
    subnet = create(network, "subnet", alice, network_id=net["id"], cidr="10.2.0.0/28", ip_version=4,
                    gateway_ip="10.2.0.7", enable_dhcp=False)
    assert subnet["allocation_pools"] == [{"start": "10.2.0.1", "end": "10.2.0.6"},
                                          {"start": "10.2.0.8", "end": "10.2.0.14"}]


@pytest.mark.parametrize(("fields", "status", "kind"), [
    ({"cidr": "10.0.0.0/33"}, 400, "InvalidInput"),
    ({"cidr": "not-a-cidr"}, 400, "InvalidInput"),
    ({"cidr": "10.0.0.5/24"}, 400, "InvalidInput"),
    ({"cidr": "2001:db8::/64"}, 400, "InvalidInput"),  # ip_version 4
    ({"ip_version": 5}, 400, "InvalidInput"),
    ({"gateway_ip": "10.0.0.0"}, 400, "InvalidInput"),
    ({"gateway_ip": "10.0.0.255"}, 400, "InvalidInput"),
    ({"gateway_ip": "2001:db8::1"}, 400, "InvalidInput"),
    ({"allocation_pools": [{"start": "10.0.0.10", "end": "10.0.1.5"}]}, 400, "OutOfBoundsAllocationPool"),
    ({"allocation_pools": [{"start": "10.0.0.0", "end": "10.0.0.5"}]}, 400, "OutOfBoundsAllocationPool"),
    ({"allocation_pools": [{"start": "10.0.0.9", "end": "10.0.0.5"}]}, 400, "InvalidAllocationPool"),
    ({"allocation_pools": [{"start": "10.0.0.2", "end": "10.0.0.50"}, {"start": "10.0.0.40", "end": "10.0.0.60"}]},
     409, "OverlappingAllocationPools"),
    ({"gateway_ip": "10.0.0.20", "allocation_pools": [{"start": "10.0.0.10", "end": "10.0.0.30"}]},
     409, "GatewayConflictWithAllocationPools"),
    # The default gateway (.1) inside a chosen pool conflicts too.
    ({"allocation_pools": [{"start": "10.0.0.1", "end": "10.0.0.30"}]}, 409, "GatewayConflictWithAllocationPools"),
    ({"dns_nameservers": ["8.8.8.8", "8.8.8.8"]}, 400, "InvalidInput"),
    ({"dns_nameservers": ["nameserver"]}, 400, "InvalidInput"),
    ({"dns_nameservers": [f"10.0.0.{i}" for i in range(2, 8)]}, 400, "DNSNameServersExhausted"),
    ({"host_routes": [{"destination": "2001:db8::/64", "nexthop": "10.0.0.9"}]}, 400, "InvalidInput"),
    ({"host_routes": [{"destination": "172.16.0.0/12", "nexthop": "bad"}]}, 400, "InvalidInput"),
    ({"ipv6_address_mode": "slaac"}, 400, "InvalidInput"),  # an IPv4 subnet
    ({"subnetpool_id": "f8c4b0f2-8f04-4a3c-9a0a-111111111111"}, 400, "BadRequest"),
    ({"unknown": 1}, 400, "BadRequest"),
])
def test_invalid_subnets_are_refused_and_nothing_is_created(network: NetworkHarness, fields: dict[str, Any],
                                                            status: int, kind: str) -> None:
    alice = member_headers(network)
    net = _net(network, alice)
    request = {"network_id": net["id"], "cidr": "10.0.0.0/24", "ip_version": 4, **fields}
    error = fault(_post(network, alice, **request), status)
    assert error["type"] == kind, error
    assert network.client.get("/v2.0/subnets", headers=alice).json()["subnets"] == []
    assert _ports(network, alice) == []


def test_neutron_wording_of_pool_errors(network: NetworkHarness) -> None:
    alice = member_headers(network)
    net = _net(network, alice)
    error = fault(_post(network, alice, network_id=net["id"], cidr="10.0.0.0/24", ip_version=4,
                        gateway_ip="10.0.0.20", allocation_pools=[{"start": "10.0.0.10", "end": "10.0.0.30"}]), 409)
    assert error["message"] == "Gateway ip 10.0.0.20 conflicts with allocation pool 10.0.0.10-10.0.0.30."
    error = fault(_post(network, alice, network_id=net["id"], cidr="10.0.0.0/24", ip_version=4,
                        allocation_pools=[{"start": "10.0.0.10", "end": "10.0.1.30"}]), 400)
    assert error["message"] == "The allocation pool 10.0.0.10-10.0.1.30 spans beyond the subnet cidr 10.0.0.0/24."


def test_cidrs_may_not_overlap_within_a_network_but_may_across_networks_and_projects(network: NetworkHarness) -> None:
    alice, bob = member_headers(network, "alice"), member_headers(network, "bob")
    net = _net(network, alice)
    create(network, "subnet", alice, network_id=net["id"], cidr="10.0.0.0/16", ip_version=4)
    error = fault(_post(network, alice, network_id=net["id"], cidr="10.0.5.0/24", ip_version=4), 400)
    assert error["type"] == "InvalidInput" and "overlaps with another subnet" in error["message"]
    # Another IP version on the same network is fine.
    create(network, "subnet", alice, network_id=net["id"], cidr="fd00:1::/64", ip_version=6)
    create(network, "subnet", alice, network_id=_net(network, alice, name="other")["id"], cidr="10.0.0.0/24",
           ip_version=4)
    create(network, "subnet", bob, network_id=_net(network, bob)["id"], cidr="10.0.0.0/16", ip_version=4)


def test_ipv6_slaac_subnet_and_mode_rules(network: NetworkHarness) -> None:
    alice = member_headers(network)
    net = _net(network, alice)
    subnet = create(network, "subnet", alice, network_id=net["id"], cidr="2001:db8:1::/64", ip_version=6,
                    ipv6_ra_mode="slaac", ipv6_address_mode="slaac")
    assert subnet["gateway_ip"] == "2001:db8:1::1"
    assert subnet["allocation_pools"] == [{"start": "2001:db8:1::2", "end": "2001:db8:1:0:ffff:ffff:ffff:ffff"}]
    assert (subnet["ipv6_ra_mode"], subnet["ipv6_address_mode"]) == ("slaac", "slaac")
    for bad in ({"cidr": "2001:db8:2::/80", "ipv6_address_mode": "slaac"},
                {"cidr": "2001:db8:2::/64", "ipv6_address_mode": "slaac", "ipv6_ra_mode": "dhcpv6-stateful"},
                {"cidr": "2001:db8:2::/64", "ipv6_address_mode": "slaac", "enable_dhcp": False},
                {"cidr": "2001:db8:2::/64", "ipv6_address_mode": "stateful"}):
        error = fault(_post(network, alice, network_id=_net(network, alice, name="x")["id"], ip_version=6, **bad),
                      400)
        assert error["type"] == "InvalidInput", bad


def test_an_ipv6_subnet_pool_skips_the_subnet_router_anycast_address(network: NetworkHarness) -> None:
    alice = member_headers(network)
    net = _net(network, alice)
    subnet = create(network, "subnet", alice, network_id=net["id"], cidr="fd00:9::/120", ip_version=6,
                    gateway_ip=None, ipv6_address_mode="dhcpv6-stateful", ipv6_ra_mode="dhcpv6-stateful")
    assert subnet["allocation_pools"] == [{"start": "fd00:9::1", "end": "fd00:9::ff"}]


def test_a_dhcp_subnet_gives_the_network_a_dhcp_port_that_does_not_keep_it_in_use(network: NetworkHarness) -> None:
    alice = member_headers(network)
    net = _net(network, alice)
    v4 = create(network, "subnet", alice, network_id=net["id"], cidr="10.3.0.0/24", ip_version=4)
    dhcp = _ports(network, alice, "?device_owner=network:dhcp")
    assert len(dhcp) == 1
    port = dhcp[0]
    assert port["device_id"].startswith("dhcp") and port["device_id"].endswith(net["id"])
    assert port["security_groups"] == [] and port["project_id"] == net["project_id"]
    assert [ip["subnet_id"] for ip in port["fixed_ips"]] == [v4["id"]]
    address = port["fixed_ips"][0]["ip_address"]
    assert address != "10.3.0.1" and address.startswith("10.3.0.")
    # A second DHCP subnet adds an address to the same port.
    v6 = create(network, "subnet", alice, network_id=net["id"], cidr="fd00:3::/64", ip_version=6)
    port = _ports(network, alice, "?device_owner=network:dhcp")[0]
    assert sorted(ip["subnet_id"] for ip in port["fixed_ips"]) == sorted([v4["id"], v6["id"]])
    # Turning DHCP off takes the address back.
    assert _put(network, v6["id"], alice, enable_dhcp=False).status_code == 200
    port = _ports(network, alice, "?device_owner=network:dhcp")[0]
    assert [ip["subnet_id"] for ip in port["fixed_ips"]] == [v4["id"]]
    # Deleting the subnets goes past the DHCP port, which goes when it holds nothing.
    assert network.client.delete(f"/v2.0/subnets/{v4['id']}", headers=alice).status_code == 204
    assert _ports(network, alice) == []
    assert network.client.delete(f"/v2.0/networks/{net['id']}", headers=alice).status_code == 204


def test_update_changes_what_may_change_and_refuses_the_rest(network: NetworkHarness) -> None:
    alice = member_headers(network)
    net = _net(network, alice)
    subnet = create(network, "subnet", alice, network_id=net["id"], cidr="10.4.0.0/24", ip_version=4,
                    enable_dhcp=False)
    response = _put(network, subnet["id"], alice, name="renamed", description="d", dns_nameservers=["9.9.9.9"],
                    host_routes=[{"destination": "0.0.0.0/0", "nexthop": "10.4.0.254"}],
                    allocation_pools=[{"start": "10.4.0.10", "end": "10.4.0.20"}], gateway_ip="10.4.0.254")
    assert response.status_code == 200, response.text
    updated = response.json()["subnet"]
    assert updated["name"] == "renamed" and updated["description"] == "d"
    assert updated["dns_nameservers"] == ["9.9.9.9"] and updated["gateway_ip"] == "10.4.0.254"
    assert updated["allocation_pools"] == [{"start": "10.4.0.10", "end": "10.4.0.20"}]
    assert updated["revision_number"] == 1
    for read_only in ({"cidr": "10.5.0.0/24"}, {"ip_version": 6}, {"network_id": net["id"]}):
        assert fault(_put(network, subnet["id"], alice, **read_only), 400)["message"].startswith(
            "Cannot update read-only attribute")
    assert fault(_put(network, subnet["id"], alice, gateway_ip="10.4.0.15"), 409)["type"] == \
        "GatewayConflictWithAllocationPools"
    assert fault(_put(network, subnet["id"], alice, allocation_pools=[{"start": "10.4.0.200", "end": "10.4.0.254"}]),
                 409)["type"] == "GatewayConflictWithAllocationPools"
    shown = network.client.get(f"/v2.0/subnets/{subnet['id']}", headers=alice).json()["subnet"]
    assert shown["gateway_ip"] == "10.4.0.254" and shown["revision_number"] == 1
    # No gateway at all.
    assert _put(network, subnet["id"], alice, gateway_ip=None).json()["subnet"]["gateway_ip"] is None
    # Turning DHCP on creates the DHCP port.
    assert _put(network, subnet["id"], alice, enable_dhcp=True).status_code == 200
    assert len(_ports(network, alice, "?device_owner=network:dhcp")) == 1


def test_a_subnet_with_a_port_address_cannot_be_deleted(network: NetworkHarness) -> None:
    alice = member_headers(network)
    net = _net(network, alice)
    subnet = create(network, "subnet", alice, network_id=net["id"], cidr="10.6.0.0/24", ip_version=4)
    port = create(network, "port", alice, network_id=net["id"])
    error = fault(network.client.delete(f"/v2.0/subnets/{subnet['id']}", headers=alice), 409)
    assert error["type"] == "SubnetInUse"
    assert network.client.delete(f"/v2.0/ports/{port['id']}", headers=alice).status_code == 204
    assert network.client.delete(f"/v2.0/subnets/{subnet['id']}", headers=alice).status_code == 204
    assert network.client.get(f"/v2.0/subnets/{subnet['id']}", headers=alice).status_code == 404


def test_a_slaac_subnet_is_deleted_past_the_addresses_it_made_up(network: NetworkHarness) -> None:
    alice = member_headers(network)
    net = _net(network, alice)
    v4 = create(network, "subnet", alice, network_id=net["id"], cidr="10.7.0.0/24", ip_version=4)
    v6 = create(network, "subnet", alice, network_id=net["id"], cidr="2001:db8:7::/64", ip_version=6,
                ipv6_address_mode="slaac", ipv6_ra_mode="slaac")
    port = create(network, "port", alice, network_id=net["id"])
    assert {ip["subnet_id"] for ip in port["fixed_ips"]} == {v4["id"], v6["id"]}
    assert network.client.delete(f"/v2.0/subnets/{v6['id']}", headers=alice).status_code == 204
    shown = network.client.get(f"/v2.0/ports/{port['id']}", headers=alice).json()["port"]
    assert [ip["subnet_id"] for ip in shown["fixed_ips"]] == [v4["id"]]


def test_subnet_quota(network: NetworkHarness) -> None:
    alice = member_headers(network)
    project_id = _net(network, alice, name="probe")["project_id"]
    response = network.client.put(f"/v2.0/quotas/{project_id}", json={"quota": {"subnet": 1}},
                                  headers=network.as_admin())
    assert response.status_code == 200, response.text
    net = _net(network, alice)
    create(network, "subnet", alice, network_id=net["id"], cidr="10.8.0.0/24", ip_version=4)
    error = fault(_post(network, alice, network_id=net["id"], cidr="10.9.0.0/24", ip_version=4), 409)
    assert error["type"] == "OverQuota"
    assert len(network.client.get("/v2.0/subnets", headers=alice).json()["subnets"]) == 1


def test_isolation_private_shared_and_external_networks(network: NetworkHarness) -> None:
    alice, bob = member_headers(network, "alice"), member_headers(network, "bob")
    admin = network.as_admin()
    private = _net(network, alice)
    subnet = create(network, "subnet", alice, network_id=private["id"], cidr="10.10.0.0/24", ip_version=4)
    # Bob sees nothing of Alice's private network.
    assert network.client.get(f"/v2.0/subnets/{subnet['id']}", headers=bob).status_code == 404
    assert network.client.get("/v2.0/subnets", headers=bob).json()["subnets"] == []
    assert fault(_post(network, bob, network_id=private["id"], cidr="10.11.0.0/24", ip_version=4), 404)["type"] == \
        "NetworkNotFound"
    assert _put(network, subnet["id"], bob, name="x").status_code == 404
    assert network.client.delete(f"/v2.0/subnets/{subnet['id']}", headers=bob).status_code == 404
    # A shared network's subnets are seen by all, changed only by its owner (403 for others).
    shared = create(network, "network", admin, name="shared", shared=True)
    shared_subnet = create(network, "subnet", admin, network_id=shared["id"], cidr="10.12.0.0/24", ip_version=4)
    assert network.client.get(f"/v2.0/subnets/{shared_subnet['id']}", headers=bob).status_code == 200
    assert [s["id"] for s in network.client.get("/v2.0/subnets", headers=bob).json()["subnets"]] == [
        shared_subnet["id"]]
    assert fault(_post(network, bob, network_id=shared["id"], cidr="10.13.0.0/24", ip_version=4), 403)
    assert _put(network, shared_subnet["id"], bob, name="mine").status_code == 403
    assert network.client.delete(f"/v2.0/subnets/{shared_subnet['id']}", headers=bob).status_code == 403
    # The admin sees everything.
    assert len(network.client.get("/v2.0/subnets", headers=admin).json()["subnets"]) == 2


def test_list_filters_fields_and_sorting(network: NetworkHarness) -> None:
    alice = member_headers(network)
    net = _net(network, alice)
    create(network, "subnet", alice, network_id=net["id"], cidr="10.20.0.0/24", ip_version=4, name="b")
    create(network, "subnet", alice, network_id=net["id"], cidr="fd00:20::/64", ip_version=6, name="a",
           enable_dhcp=False)
    get = network.client.get
    assert [s["name"] for s in get("/v2.0/subnets?ip_version=6", headers=alice).json()["subnets"]] == ["a"]
    assert [s["name"] for s in get("/v2.0/subnets?cidr=10.20.0.0/24", headers=alice).json()["subnets"]] == ["b"]
    assert [s["name"] for s in get("/v2.0/subnets?enable_dhcp=false", headers=alice).json()["subnets"]] == ["a"]
    assert [s["name"] for s in get("/v2.0/subnets?sort_key=name", headers=alice).json()["subnets"]] == ["a", "b"]
    assert get("/v2.0/subnets?fields=id&fields=cidr", headers=alice).json()["subnets"][0].keys() == {"id", "cidr"}
    assert get("/v2.0/subnets?bogus=1", headers=alice).status_code == 400
