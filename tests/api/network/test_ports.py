"""Ports API: addresses (automatic, requested, IPv6), MAC, security groups, binding, updates, delete,
quota, isolation, filters and what the agents are told."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from stratus.network import ipam
from stratus.network.notify import Changes
from tests.api.network.helpers import create, fault, member_headers
from tests.conftest import NetworkHarness


def _network(network: NetworkHarness, headers: dict[str, str], cidr: str = "10.0.0.0/24", *,
             dhcp: bool = False, **net_fields: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    net = create(network, "network", headers, name=net_fields.pop("name", f"net-{cidr}"), **net_fields)
    subnet = create(network, "subnet", headers, network_id=net["id"], cidr=cidr, ip_version=4, enable_dhcp=dhcp)
    return net, subnet


def _post(network: NetworkHarness, headers: dict[str, str], **fields: Any) -> Any:
    return network.client.post("/v2.0/ports", json={"port": fields}, headers=headers)


def _put(network: NetworkHarness, port_id: str, headers: dict[str, str], **fields: Any) -> Any:
    return network.client.put(f"/v2.0/ports/{port_id}", json={"port": fields}, headers=headers)


def _list(network: NetworkHarness, headers: dict[str, str], query: str = "") -> list[dict[str, Any]]:
    response = network.client.get(f"/v2.0/ports{query}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["ports"]  # type: ignore[no-any-return]


def _addresses(port: dict[str, Any]) -> list[str]:
    return [ip["ip_address"] for ip in port["fixed_ips"]]


@pytest.fixture
def sent(network: NetworkHarness, monkeypatch: pytest.MonkeyPatch) -> list[Changes]:
    """What the agents are told, one `Changes` per committed transaction."""
    record: list[Changes] = []
    monkeypatch.setattr(network.service.agents, "send", record.append)
    return record


def test_a_port_gets_an_address_a_mac_and_the_default_group(network: NetworkHarness, sent: list[Changes]) -> None:
    alice = member_headers(network)
    net, subnet = _network(network, alice)
    sent.clear()
    port = create(network, "port", alice, network_id=net["id"], name="p1", description="first")
    assert port["name"] == "p1" and port["description"] == "first" and port["network_id"] == net["id"]
    assert port["status"] == "DOWN" and port["admin_state_up"] is True
    assert port["device_id"] == "" and port["device_owner"] == ""
    assert port["mac_address"].startswith("fa:16:3e:") and len(port["mac_address"]) == 17
    [fixed] = port["fixed_ips"]
    assert fixed["subnet_id"] == subnet["id"]
    address = ipaddress.ip_address(fixed["ip_address"])
    assert ipaddress.ip_address("10.0.0.2") <= address <= ipaddress.ip_address("10.0.0.254")
    groups = network.client.get("/v2.0/security-groups?name=default", headers=alice).json()["security_groups"]
    assert port["security_groups"] == [groups[0]["id"]]
    assert port["port_security_enabled"] is True and port["allowed_address_pairs"] == []
    assert port["extra_dhcp_opts"] == [] and port["ip_allocation"] == "immediate" and port["dns_name"] == ""
    assert port["qos_policy_id"] is None and port["propagate_uplink_status"] is False
    assert port["project_id"] == port["tenant_id"] == net["project_id"] and port["revision_number"] == 0
    assert port["tags"] == [] and port["created_at"].endswith("Z")
    # The binding is the operator's business.
    assert not [key for key in port if key.startswith("binding:")]
    admin_view = network.client.get(f"/v2.0/ports/{port['id']}", headers=network.as_admin()).json()["port"]
    assert admin_view["binding:host_id"] == "" and admin_view["binding:vif_type"] == "unbound"
    assert admin_view["binding:vnic_type"] == "normal" and admin_view["binding:profile"] == {}
    assert admin_view["binding:vif_details"] == {}
    assert network.client.get(f"/v2.0/ports/{port['id']}", headers=alice).json()["port"] == port
    assert [c.ports for c in sent] == [{port["id"]}]
    assert sent[0].security_groups == set(port["security_groups"])


def test_requested_fixed_ips(network: NetworkHarness) -> None:
    alice = member_headers(network)
    net, subnet = _network(network, alice)
    by_both = create(network, "port", alice, network_id=net["id"],
                     fixed_ips=[{"subnet_id": subnet["id"], "ip_address": "10.0.0.50"}])
    assert by_both["fixed_ips"] == [{"subnet_id": subnet["id"], "ip_address": "10.0.0.50"}]
    by_address = create(network, "port", alice, network_id=net["id"], fixed_ips=[{"ip_address": "10.0.0.51"}])
    assert by_address["fixed_ips"] == [{"subnet_id": subnet["id"], "ip_address": "10.0.0.51"}]
    by_subnet = create(network, "port", alice, network_id=net["id"], fixed_ips=[{"subnet_id": subnet["id"]}])
    assert [ip["subnet_id"] for ip in by_subnet["fixed_ips"]] == [subnet["id"]]
    two = create(network, "port", alice, network_id=net["id"],
                 fixed_ips=[{"ip_address": "10.0.0.60"}, {"ip_address": "10.0.0.61"}])
    assert _addresses(two) == ["10.0.0.60", "10.0.0.61"]
    # An address outside the pools but inside the CIDR may be asked for (the gateway, for a router port).
    gateway = create(network, "port", alice, network_id=net["id"], fixed_ips=[{"ip_address": "10.0.0.1"}])
    assert _addresses(gateway) == ["10.0.0.1"]
    none = create(network, "port", alice, network_id=net["id"], fixed_ips=[])
    assert none["fixed_ips"] == [] and none["security_groups"] == []
    before = len(_list(network, alice))
    error = fault(_post(network, alice, network_id=net["id"], fixed_ips=[{"ip_address": "10.0.0.50"}]), 409)
    assert error["type"] == "IpAddressInUse"
    assert error["message"] == (f"Unable to complete operation for network {net['id']}. "
                                "The IP address 10.0.0.50 is in use.")
    for bad, kind in (({"subnet_id": subnet["id"], "ip_address": "10.0.1.5"}, "InvalidIpForSubnet"),
                      ({"ip_address": "192.168.0.5"}, "InvalidIpForNetwork"),
                      ({"ip_address": "10.0.0.0"}, "InvalidIpForNetwork"),
                      ({"ip_address": "10.0.0.255"}, "InvalidIpForNetwork"),
                      ({"ip_address": "banana"}, "InvalidInput"),
                      ({}, "InvalidInput")):
        assert fault(_post(network, alice, network_id=net["id"], fixed_ips=[bad]), 400)["type"] == kind, bad
    # A second request in one port that fails leaves the first address free.
    assert fault(_post(network, alice, network_id=net["id"],
                       fixed_ips=[{"ip_address": "10.0.0.70"}, {"ip_address": "10.0.0.50"}]), 409)
    other_net, other_subnet = _network(network, alice, "10.1.0.0/24")
    assert fault(_post(network, alice, network_id=net["id"], fixed_ips=[{"subnet_id": other_subnet["id"]}]),
                 400)["type"] == "InvalidInput"
    assert fault(_post(network, alice, network_id=net["id"], fixed_ips=[{"subnet_id": "nope"}]), 404)["type"] == \
        "SubnetNotFound"
    assert len(_list(network, alice)) == before
    assert _addresses(create(network, "port", alice, network_id=net["id"],
                             fixed_ips=[{"ip_address": "10.0.0.70"}])) == ["10.0.0.70"]


def test_a_full_subnet_gives_409_and_a_deleted_port_gives_its_address_back(network: NetworkHarness) -> None:
    alice = member_headers(network)
    # A /29: .1 gateway, .2-.6 in the pool, .7 broadcast.
    net, subnet = _network(network, alice, "10.2.0.0/29")
    taken = [_addresses(create(network, "port", alice, network_id=net["id"]))[0] for _ in range(5)]
    assert sorted(taken) == [f"10.2.0.{i}" for i in range(2, 7)]
    error = fault(_post(network, alice, network_id=net["id"]), 409)
    assert error["type"] == "IpAddressGenerationFailure"
    assert error["message"] == f"No more IP addresses available on network {net['id']}."
    assert fault(_post(network, alice, network_id=net["id"], fixed_ips=[{"subnet_id": subnet["id"]}]), 409)[
        "type"] == "IpAddressGenerationFailure"
    victim = next(p for p in _list(network, alice) if _addresses(p) == ["10.2.0.4"])
    assert network.client.delete(f"/v2.0/ports/{victim['id']}", headers=alice).status_code == 204
    assert network.client.get(f"/v2.0/ports/{victim['id']}", headers=alice).status_code == 404
    assert _addresses(create(network, "port", alice, network_id=net["id"])) == ["10.2.0.4"]


def test_a_network_without_subnets_gives_ports_without_addresses_or_groups(network: NetworkHarness) -> None:
    alice = member_headers(network)
    net = create(network, "network", alice, name="bare")
    port = create(network, "port", alice, network_id=net["id"])
    assert port["fixed_ips"] == [] and port["security_groups"] == []


def test_ipv6_slaac_addresses_are_eui64_and_dhcpv6_stateful_ones_come_from_the_pool(network: NetworkHarness) -> None:
    alice = member_headers(network)
    net, v4 = _network(network, alice, "10.3.0.0/24")
    slaac = create(network, "subnet", alice, network_id=net["id"], cidr="2001:db8:3::/64", ip_version=6,
                   ipv6_ra_mode="slaac", ipv6_address_mode="slaac")
    port = create(network, "port", alice, network_id=net["id"])
    by_subnet = {ip["subnet_id"]: ip["ip_address"] for ip in port["fixed_ips"]}
    assert set(by_subnet) == {v4["id"], slaac["id"]}
    assert by_subnet[slaac["id"]] == ipam.eui64("2001:db8:3::/64", port["mac_address"])
    # SLAAC addresses are made up, not asked for.
    error = fault(_post(network, alice, network_id=net["id"],
                        fixed_ips=[{"subnet_id": slaac["id"], "ip_address": "2001:db8:3::99"}]), 400)
    assert error["type"] == "InvalidInput" and "automatic addresses" in error["message"]
    # A chosen MAC gives its own EUI-64 address.
    chosen = create(network, "port", alice, network_id=net["id"], mac_address="fa:16:3e:11:22:33",
                    fixed_ips=[{"subnet_id": slaac["id"]}])
    assert _addresses(chosen) == ["2001:db8:3:0:f816:3eff:fe11:2233"]

    net6 = create(network, "network", alice, name="v6")
    stateful = create(network, "subnet", alice, network_id=net6["id"], cidr="fd00:6::/120", ip_version=6,
                      ipv6_ra_mode="dhcpv6-stateful", ipv6_address_mode="dhcpv6-stateful", enable_dhcp=True)
    dhcp_port = _list(network, alice, f"?network_id={net6['id']}&device_owner=network:dhcp")
    assert len(dhcp_port) == 1
    port6 = create(network, "port", alice, network_id=net6["id"])
    [address] = _addresses(port6)
    assert port6["fixed_ips"][0]["subnet_id"] == stateful["id"]
    value = ipaddress.ip_address(address)
    assert value in ipaddress.ip_network("fd00:6::/120") and value not in (
        ipaddress.ip_address("fd00:6::"), ipaddress.ip_address("fd00:6::1"))
    assert address != _addresses(dhcp_port[0])[0]
    wanted = create(network, "port", alice, network_id=net6["id"], fixed_ips=[{"ip_address": "fd00:6::42"}])
    assert _addresses(wanted) == ["fd00:6::42"]


def test_mac_addresses(network: NetworkHarness) -> None:
    alice = member_headers(network)
    net, _ = _network(network, alice)
    port = create(network, "port", alice, network_id=net["id"], mac_address="FA:16:3E:AA:BB:CC")
    assert port["mac_address"] == "fa:16:3e:aa:bb:cc"
    error = fault(_post(network, alice, network_id=net["id"], mac_address="fa:16:3e:aa:bb:cc"), 409)
    assert error["type"] == "MacAddressInUse"
    for bad in ("fa:16:3e:aa:bb", "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01", "zz:16:3e:aa:bb:cc"):
        assert fault(_post(network, alice, network_id=net["id"], mac_address=bad), 400)["type"] == "InvalidInput"
    macs = {p["mac_address"] for p in (create(network, "port", alice, network_id=net["id"]) for _ in range(5))}
    assert len(macs) == 5
    assert len(_list(network, alice)) == 6


def test_security_groups_and_port_security(network: NetworkHarness) -> None:
    alice, bob = member_headers(network, "alice"), member_headers(network, "bob")
    net, _ = _network(network, alice)
    web = create(network, "security_group", alice, name="web")
    bobs = create(network, "security_group", bob, name="bobs")
    port = create(network, "port", alice, network_id=net["id"], security_groups=[web["id"]])
    assert port["security_groups"] == [web["id"]]
    assert create(network, "port", alice, network_id=net["id"], security_groups=[])["security_groups"] == []
    assert fault(_post(network, alice, network_id=net["id"], security_groups=[bobs["id"]]), 404)["type"] == \
        "SecurityGroupNotFound"
    assert fault(_post(network, alice, network_id=net["id"], security_groups=[web["id"]],
                       port_security_enabled=False), 400)["type"] == "PortSecurityAndIPRequiredForSecurityGroups"
    open_port = create(network, "port", alice, network_id=net["id"], port_security_enabled=False)
    assert open_port["port_security_enabled"] is False and open_port["security_groups"] == []
    # A network without port security gives its ports none by default.
    insecure, _ = _network(network, alice, "10.9.0.0/24", name="insecure", port_security_enabled=False)
    plain = create(network, "port", alice, network_id=insecure["id"])
    assert plain["port_security_enabled"] is False and plain["security_groups"] == []
    # Turning port security off needs the groups gone first (or in the same request).
    error = fault(_put(network, port["id"], alice, port_security_enabled=False), 409)
    assert error["type"] == "PortSecurityPortHasSecurityGroup"
    done = _put(network, port["id"], alice, port_security_enabled=False, security_groups=[])
    assert done.status_code == 200, done.text
    assert done.json()["port"]["port_security_enabled"] is False and done.json()["port"]["security_groups"] == []
    assert fault(_put(network, port["id"], alice, allowed_address_pairs=[{"ip_address": "10.0.0.200"}]), 409)[
        "type"] == "AddressPairAndPortSecurityRequired"


def test_allowed_address_pairs(network: NetworkHarness) -> None:
    alice = member_headers(network)
    net, _ = _network(network, alice)
    port = create(network, "port", alice, network_id=net["id"], allowed_address_pairs=[
        {"ip_address": "10.0.0.200"}, {"ip_address": "192.168.0.0/24", "mac_address": "fa:16:3e:00:00:01"}])
    assert port["allowed_address_pairs"] == [
        {"ip_address": "10.0.0.200", "mac_address": port["mac_address"]},
        {"ip_address": "192.168.0.0/24", "mac_address": "fa:16:3e:00:00:01"}]
    assert fault(_post(network, alice, network_id=net["id"], allowed_address_pairs=[{"ip_address": "x"}]), 400)
    assert fault(_post(network, alice, network_id=net["id"], port_security_enabled=False,
                       allowed_address_pairs=[{"ip_address": "10.0.0.9"}]), 409)["type"] == \
        "AddressPairAndPortSecurityRequired"
    updated = _put(network, port["id"], alice, allowed_address_pairs=[])
    assert updated.status_code == 200 and updated.json()["port"]["allowed_address_pairs"] == []


def test_update_fixed_ips_keeps_kept_addresses_and_releases_removed_ones(network: NetworkHarness,
                                                                          sent: list[Changes]) -> None:
    alice = member_headers(network)
    net, subnet = _network(network, alice)
    port = create(network, "port", alice, network_id=net["id"], fixed_ips=[{"ip_address": "10.0.0.10"}])
    sent.clear()
    response = _put(network, port["id"], alice, name="renamed", admin_state_up=False, device_id="vm-1",
                    device_owner="compute:nova",
                    fixed_ips=[{"ip_address": "10.0.0.10"}, {"ip_address": "10.0.0.11"}])
    assert response.status_code == 200, response.text
    updated = response.json()["port"]
    assert updated["name"] == "renamed" and updated["admin_state_up"] is False
    assert (updated["device_id"], updated["device_owner"]) == ("vm-1", "compute:nova")
    assert _addresses(updated) == ["10.0.0.10", "10.0.0.11"] and updated["revision_number"] == 1
    assert sent[-1].ports == {port["id"]} and sent[-1].security_groups == set(port["security_groups"])
    # A bare subnet keeps the port's address on it; the other address is released.
    response = _put(network, port["id"], alice, fixed_ips=[{"subnet_id": subnet["id"]}])
    assert _addresses(response.json()["port"]) == ["10.0.0.10"]
    assert _addresses(create(network, "port", alice, network_id=net["id"],
                             fixed_ips=[{"ip_address": "10.0.0.11"}])) == ["10.0.0.11"]
    assert fault(_put(network, port["id"], alice, fixed_ips=[{"ip_address": "10.0.0.11"}]), 409)["type"] == \
        "IpAddressInUse"
    # Failed update changed nothing.
    assert _addresses(network.client.get(f"/v2.0/ports/{port['id']}", headers=alice).json()["port"]) == [
        "10.0.0.10"]
    # An address needs security groups gone first.
    assert fault(_put(network, port["id"], alice, fixed_ips=[]), 409)["type"] == "PortSecurityPortHasSecurityGroup"
    cleared = _put(network, port["id"], alice, fixed_ips=[], security_groups=[])
    assert cleared.status_code == 200 and cleared.json()["port"]["fixed_ips"] == []
    assert _addresses(create(network, "port", alice, network_id=net["id"],
                             fixed_ips=[{"ip_address": "10.0.0.10"}])) == ["10.0.0.10"]
    assert fault(_put(network, port["id"], alice, network_id=net["id"]), 400)


def test_binding_attributes_are_admin_only(network: NetworkHarness, sent: list[Changes]) -> None:
    alice = member_headers(network)
    admin = network.as_admin()
    net, _ = _network(network, alice)
    assert fault(_post(network, alice, network_id=net["id"], **{"binding:host_id": "node1"}), 403)
    port = create(network, "port", alice, network_id=net["id"])
    assert fault(_put(network, port["id"], alice, **{"binding:host_id": "node1"}), 403)
    assert fault(_put(network, port["id"], alice, mac_address="fa:16:3e:01:02:03"), 403)
    bound = _put(network, port["id"], admin, **{"binding:host_id": "node1", "binding:profile": {"a": "b"}})
    assert bound.status_code == 200, bound.text
    view = bound.json()["port"]
    assert view["binding:host_id"] == "node1" and view["binding:vif_type"] == "bridge"
    assert view["binding:profile"] == {"a": "b"}
    assert not [key for key in network.client.get(f"/v2.0/ports/{port['id']}", headers=alice).json()["port"]
                if key.startswith("binding:")]
    assert [p["id"] for p in _list(network, admin, "?binding:host_id=node1")] == [port["id"]]
    # A bound port keeps its MAC.
    assert fault(_put(network, port["id"], admin, mac_address="fa:16:3e:01:02:03"), 409)["type"] == "PortBound"
    # Moving it tells the old host it is gone from there.
    sent.clear()
    moved = _put(network, port["id"], admin, **{"binding:host_id": "node2"})
    assert moved.status_code == 200
    assert sent[-1].ports == {port["id"]} and sent[-1].deleted_ports == {port["id"]: (net["id"], "node1")}
    unbound = _put(network, port["id"], admin, **{"binding:host_id": ""}).json()["port"]
    assert unbound["binding:vif_type"] == "unbound"
    changed = _put(network, port["id"], admin, mac_address="fa:16:3e:01:02:03")
    assert changed.status_code == 200 and changed.json()["port"]["mac_address"] == "fa:16:3e:01:02:03"
    created = create(network, "port", admin, network_id=net["id"], **{"binding:host_id": "node3"})
    assert created["binding:vif_type"] == "bridge" and created["binding:vif_details"] == {"port_filter": True}


def test_port_quota(network: NetworkHarness) -> None:
    alice = member_headers(network)
    net, _ = _network(network, alice)
    response = network.client.put(f"/v2.0/quotas/{net['project_id']}", json={"quota": {"port": 2}},
                                  headers=network.as_admin())
    assert response.status_code == 200, response.text
    create(network, "port", alice, network_id=net["id"])
    create(network, "port", alice, network_id=net["id"])
    error = fault(_post(network, alice, network_id=net["id"]), 409)
    assert error["type"] == "OverQuota" and "port" in error["message"]
    assert len(_list(network, alice)) == 2


def test_isolation_private_and_shared_networks(network: NetworkHarness) -> None:
    alice, bob = member_headers(network, "alice"), member_headers(network, "bob")
    admin = network.as_admin()
    private, _ = _network(network, alice)
    alices = create(network, "port", alice, network_id=private["id"])
    for response in (network.client.get(f"/v2.0/ports/{alices['id']}", headers=bob),
                     _put(network, alices["id"], bob, name="mine"),
                     network.client.delete(f"/v2.0/ports/{alices['id']}", headers=bob)):
        assert fault(response, 404)["type"] == "PortNotFound"
    assert _list(network, bob) == []
    assert fault(_post(network, bob, network_id=private["id"]), 404)["type"] == "NetworkNotFound"
    # A shared network takes Bob's ports, which are his alone.
    shared = create(network, "network", admin, name="shared", shared=True)
    shared_subnet = create(network, "subnet", admin, network_id=shared["id"], cidr="10.50.0.0/24", ip_version=4,
                           enable_dhcp=False)
    bobs = create(network, "port", bob, network_id=shared["id"])
    assert bobs["project_id"] != shared["project_id"] and len(bobs["fixed_ips"]) == 1
    assert [p["id"] for p in _list(network, bob)] == [bobs["id"]]
    assert network.client.get(f"/v2.0/ports/{bobs['id']}", headers=alice).status_code == 404
    # ... but choosing an address, a MAC or a network device owner there is the owner's.
    assert fault(_post(network, bob, network_id=shared["id"], fixed_ips=[{"ip_address": "10.50.0.77"}]), 403)
    assert fault(_post(network, bob, network_id=shared["id"], mac_address="fa:16:3e:12:34:56"), 403)
    assert fault(_post(network, bob, network_id=shared["id"], device_owner="network:dhcp"), 403)
    ok = create(network, "port", bob, network_id=shared["id"], fixed_ips=[{"subnet_id": shared_subnet["id"]}])
    assert ok["fixed_ips"][0]["subnet_id"] == shared_subnet["id"]
    # An external network that is not shared is seen, but only the admin puts ports on it.
    external = create(network, "network", admin, name="public", **{"router:external": True})
    create(network, "subnet", admin, network_id=external["id"], cidr="203.0.113.0/24", ip_version=4)
    assert fault(_post(network, bob, network_id=external["id"]), 403)
    assert create(network, "port", admin, network_id=external["id"])["network_id"] == external["id"]
    # An admin sees all ports and may create one for another project.
    assert {alices["id"], bobs["id"]} <= {p["id"] for p in _list(network, admin)}
    for_alice = create(network, "port", admin, network_id=private["id"], project_id=alices["project_id"])
    assert for_alice["project_id"] == alices["project_id"]
    assert fault(_post(network, bob, network_id=shared["id"], project_id=alices["project_id"]), 403)


def test_list_filters(network: NetworkHarness) -> None:
    alice = member_headers(network)
    net, subnet = _network(network, alice)
    other, other_subnet = _network(network, alice, "10.60.0.0/24")
    web = create(network, "security_group", alice, name="web")
    a = create(network, "port", alice, network_id=net["id"], name="a", fixed_ips=[{"ip_address": "10.0.0.21"}],
               device_id="vm-a", device_owner="compute:nova", security_groups=[web["id"]])
    b = create(network, "port", alice, network_id=net["id"], name="b", fixed_ips=[{"ip_address": "10.0.0.122"}])
    c = create(network, "port", alice, network_id=other["id"], name="c", admin_state_up=False)

    def names(query: str) -> list[str]:
        return sorted(p["name"] for p in _list(network, alice, query))

    assert names("?fixed_ips=ip_address%3D10.0.0.21") == ["a"]
    assert names(f"?fixed_ips=subnet_id%3D{subnet['id']}") == ["a", "b"]
    assert names(f"?fixed_ips=subnet_id%3D{other_subnet['id']}") == ["c"]
    assert names("?fixed_ips=ip_address_substr%3D.12") == ["b"]
    assert names(f"?fixed_ips=ip_address%3D10.0.0.21&fixed_ips=subnet_id%3D{other_subnet['id']}") == []
    assert names("?fixed_ips=ip_address%3D10.0.0.21&fixed_ips=ip_address%3D10.0.0.122") == ["a", "b"]
    assert names("?device_id=vm-a") == ["a"]
    assert names("?device_owner=compute:nova") == ["a"]
    assert names(f"?mac_address={b['mac_address']}") == ["b"]
    assert names(f"?network_id={other['id']}") == ["c"]
    assert names(f"?security_groups={web['id']}") == ["a"]
    assert names("?admin_state_up=false") == ["c"]
    assert names("?name=a&name=c") == ["a", "c"]
    assert names(f"?id={c['id']}") == ["c"]
    assert names("?status=DOWN") == ["a", "b", "c"]
    assert [p["name"] for p in _list(network, alice, "?sort_key=name&sort_dir=desc")] == ["c", "b", "a"]
    assert _list(network, alice, "?fields=id&fields=name&name=a") == [{"id": a["id"], "name": "a"}]
    page = network.client.get("/v2.0/ports?limit=2&sort_key=name", headers=alice).json()
    assert [p["name"] for p in page["ports"]] == ["a", "b"] and page["ports_links"][0]["rel"] == "next"
    assert network.client.get("/v2.0/ports?fixed_ips=nonsense", headers=alice).status_code == 400
    assert network.client.get("/v2.0/ports?bogus=1", headers=alice).status_code == 400
    # Members cannot filter on what they cannot see.
    assert network.client.get("/v2.0/ports?binding:host_id=x", headers=alice).status_code == 400


def test_delete_tells_the_agents_and_router_ports_are_refused(network: NetworkHarness, sent: list[Changes]) -> None:
    alice = member_headers(network)
    net, subnet = _network(network, alice)
    port = create(network, "port", alice, network_id=net["id"])
    sent.clear()
    assert network.client.delete(f"/v2.0/ports/{port['id']}", headers=alice).status_code == 204
    assert sent[-1].deleted_ports == {port["id"]: (net["id"], "")}
    assert sent[-1].security_groups == set(port["security_groups"])
    assert network.client.delete(f"/v2.0/ports/{port['id']}", headers=alice).status_code == 404
    router = create(network, "router", alice, name="r")
    added = network.client.put(f"/v2.0/routers/{router['id']}/add_router_interface",
                               json={"subnet_id": subnet["id"]}, headers=alice)
    assert added.status_code == 200, added.text
    interface = _list(network, alice, "?device_owner=network:router_interface")[0]
    assert _addresses(interface) == ["10.0.0.1"]
    error = fault(network.client.delete(f"/v2.0/ports/{interface['id']}", headers=alice), 409)
    assert error["type"] == "ServicePortInUse"
    assert error["message"] == (f"Port {interface['id']} cannot be deleted directly via the port API: "
                                "has device owner network:router_interface.")
