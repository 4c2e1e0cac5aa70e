"""The official `openstack` CLI against `stratus up`: networks, subnets, ports, routers, floating IPs,
security groups and network quotas."""

from __future__ import annotations

from typing import Any

from tests.clients.conftest import Cloud, unique


def _fixed_ips(port: dict[str, Any]) -> list[dict[str, str]]:
    # The CLI prints fixed_ips as a list of dicts in JSON output.
    value = port["fixed_ips"]
    assert isinstance(value, list), value
    return value


def test_network_create_list_show_set_delete(cloud: Cloud) -> None:
    name = unique("net")
    made = cloud.run("network", "create", "--description", "first", name)
    assert made["name"] == name and made["status"] == "ACTIVE" and made["admin_state_up"] is True
    assert made["provider:network_type"] == "vxlan" and made["mtu"] == 1450
    assert name in {n["Name"] for n in cloud.run("network", "list")}
    cloud.run_raw("network", "set", "--name", f"{name}-renamed", "--mtu", "1400", "--disable", made["id"])
    shown = cloud.run("network", "show", made["id"])
    assert (shown["name"], shown["mtu"], shown["admin_state_up"], shown["description"]) == (
        f"{name}-renamed", 1400, False, "first")
    cloud.run_raw("network", "delete", made["id"])
    gone = cloud.run_raw("network", "show", made["id"], check=False)
    assert gone.returncode != 0 and "No Network found" in gone.stderr


def test_shared_external_and_vlan_provider_networks_as_admin(cloud: Cloud) -> None:
    shared = cloud.run("network", "create", "--share", unique("shared"))
    assert shared["shared"] is True
    external = cloud.run("network", "create", "--external", unique("ext"))
    assert external["router:external"] is True
    vlan = cloud.run("network", "create", "--provider-network-type", "vlan", "--provider-physical-network",
                     "physnet1", "--provider-segment", "123", unique("vlan"))
    assert (vlan["provider:network_type"], vlan["provider:physical_network"], vlan["provider:segmentation_id"]) == (
        "vlan", "physnet1", 123)
    listed = {n["ID"] for n in cloud.run("network", "list", "--external")}
    assert external["id"] in listed and shared["id"] not in listed
    assert shared["id"] in {n["ID"] for n in cloud.run("network", "list", "--share")}
    for net in (shared, external, vlan):
        cloud.run_raw("network", "delete", net["id"])


def test_subnets_with_pools_dns_no_gateway_no_dhcp_and_ipv6_slaac(cloud: Cloud) -> None:
    net = cloud.run("network", "create", unique("subnets"))
    v4 = cloud.run("subnet", "create", "--network", net["id"], "--subnet-range", "10.61.0.0/24",
                   "--allocation-pool", "start=10.61.0.10,end=10.61.0.20", "--dns-nameserver", "192.0.2.53",
                   unique("v4"))
    assert v4["cidr"] == "10.61.0.0/24" and v4["gateway_ip"] == "10.61.0.1" and v4["enable_dhcp"] is True
    assert v4["allocation_pools"] == [{"start": "10.61.0.10", "end": "10.61.0.20"}]
    assert v4["dns_nameservers"] == ["192.0.2.53"]
    bare = cloud.run("subnet", "create", "--network", net["id"], "--subnet-range", "10.62.0.0/24",
                     "--gateway", "none", "--no-dhcp", unique("bare"))
    assert bare["gateway_ip"] is None and bare["enable_dhcp"] is False
    v6 = cloud.run("subnet", "create", "--network", net["id"], "--ip-version", "6", "--subnet-range",
                   "2001:db8:61::/64", "--ipv6-address-mode", "slaac", "--ipv6-ra-mode", "slaac", unique("v6"))
    assert v6["ip_version"] == 6 and v6["ipv6_address_mode"] == "slaac"
    subnets = {s["ID"] for s in cloud.run("subnet", "list", "--network", net["id"])}
    assert subnets == {v4["id"], bare["id"], v6["id"]}
    port = cloud.run("port", "create", "--network", net["id"], "--mac-address", "fa:16:3e:61:00:01",
                     unique("port"))
    addresses = {ip["ip_address"] for ip in _fixed_ips(port)}
    # One address from the IPv4 pool and the EUI-64 address of the MAC on the SLAAC subnet.
    assert "2001:db8:61:0:f816:3eff:fe61:1" in addresses
    assert any(a.startswith("10.61.0.") and 10 <= int(a.rsplit(".", 1)[1]) <= 20 for a in addresses)
    cloud.run_raw("port", "delete", port["id"])
    cloud.run_raw("subnet", "delete", bare["id"])
    cloud.run_raw("network", "delete", net["id"])


def test_port_with_a_requested_address(cloud: Cloud) -> None:
    net = cloud.run("network", "create", unique("ports"))
    subnet = cloud.run("subnet", "create", "--network", net["id"], "--subnet-range", "10.63.0.0/24", unique("s"))
    port = cloud.run("port", "create", "--network", net["id"], "--fixed-ip",
                     f"subnet={subnet['id']},ip-address=10.63.0.15", unique("port"))
    assert _fixed_ips(port) == [{"subnet_id": subnet["id"], "ip_address": "10.63.0.15"}]
    assert port["status"] == "DOWN" and port["mac_address"].startswith("fa:16:3e:")
    taken = cloud.run_raw("port", "create", "--network", net["id"], "--fixed-ip",
                          f"subnet={subnet['id']},ip-address=10.63.0.15", unique("port"), check=False)
    assert taken.returncode != 0 and "10.63.0.15" in taken.stderr
    listed = cloud.run("port", "list", "--fixed-ip", "ip-address=10.63.0.15")
    assert [p["ID"] for p in listed] == [port["id"]]
    cloud.run_raw("port", "delete", port["id"])
    cloud.run_raw("network", "delete", net["id"])


def _external_network(cloud: Cloud, cidr: str) -> tuple[dict[str, Any], dict[str, Any]]:
    ext = cloud.run("network", "create", "--external", unique("public"))
    subnet = cloud.run("subnet", "create", "--network", ext["id"], "--subnet-range", cidr, "--no-dhcp",
                       unique("public-v4"))
    return ext, subnet


def test_router_gateway_interfaces_and_floating_ips(cloud: Cloud) -> None:
    ext, _ = _external_network(cloud, "203.0.113.0/24")
    net = cloud.run("network", "create", unique("inside"))
    subnet = cloud.run("subnet", "create", "--network", net["id"], "--subnet-range", "10.64.0.0/24", unique("in"))
    other = cloud.run("subnet", "create", "--network", net["id"], "--subnet-range", "10.65.0.0/24", unique("in2"))
    router = cloud.run("router", "create", unique("router"))
    cloud.run_raw("router", "set", "--external-gateway", ext["id"], router["id"])
    gateway = cloud.run("router", "show", router["id"])["external_gateway_info"]
    assert gateway["network_id"] == ext["id"] and gateway["enable_snat"] is True
    assert gateway["external_fixed_ips"][0]["ip_address"].startswith("203.0.113.")
    cloud.run_raw("router", "add", "subnet", router["id"], subnet["id"])
    interface_port = cloud.run("port", "create", "--network", net["id"], "--fixed-ip",
                               f"subnet={other['id']},ip-address=10.65.0.1", unique("rport"))
    cloud.run_raw("router", "add", "port", router["id"], interface_port["id"])
    owned = cloud.run("port", "list", "--router", router["id"])
    assert {p["ID"] for p in owned} >= {interface_port["id"]} and len(owned) >= 2
    server_port = cloud.run("port", "create", "--network", net["id"], "--fixed-ip",
                            f"subnet={subnet['id']}", unique("vm"))
    fip = cloud.run("floating", "ip", "create", ext["id"])
    assert fip["floating_ip_address"].startswith("203.0.113.") and fip["port_id"] is None
    cloud.run_raw("floating", "ip", "set", "--port", server_port["id"], fip["id"])
    shown = cloud.run("floating", "ip", "show", fip["id"])
    assert shown["port_id"] == server_port["id"] and shown["router_id"] == router["id"]
    assert shown["fixed_ip_address"] == _fixed_ips(server_port)[0]["ip_address"]
    cloud.run_raw("floating", "ip", "unset", "--port", fip["id"])
    assert cloud.run("floating", "ip", "show", fip["id"])["port_id"] is None
    cloud.run_raw("floating", "ip", "delete", fip["id"])
    assert cloud.run_raw("floating", "ip", "show", fip["id"], check=False).returncode != 0
    cloud.run_raw("port", "delete", server_port["id"])
    cloud.run_raw("router", "remove", "subnet", router["id"], subnet["id"])
    cloud.run_raw("router", "remove", "port", router["id"], interface_port["id"])
    assert cloud.run("port", "list", "--router", router["id"], "--device-owner",
                     "network:router_interface") == []
    cloud.run_raw("router", "unset", "--external-gateway", router["id"])
    cloud.run_raw("router", "delete", router["id"])
    cloud.run_raw("network", "delete", net["id"])
    cloud.run_raw("network", "delete", ext["id"])


def test_security_groups_and_rules(cloud: Cloud) -> None:
    group = cloud.run("security", "group", "create", "--description", "web", unique("sg"))
    assert {(r["direction"], r["ethertype"]) for r in group["rules"]} == {("egress", "IPv4"), ("egress", "IPv6")}
    ssh = cloud.run("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22", group["id"])
    assert (ssh["protocol"], ssh["port_range_min"], ssh["port_range_max"], ssh["direction"]) == ("tcp", 22, 22,
                                                                                                 "ingress")
    icmp = cloud.run("security", "group", "rule", "create", "--protocol", "icmp", group["id"])
    assert icmp["protocol"] == "icmp"
    peers = cloud.run("security", "group", "rule", "create", "--remote-group", group["id"], group["id"])
    assert peers["remote_group_id"] == group["id"]
    duplicate = cloud.run_raw("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22",
                              group["id"], check=False)
    assert duplicate.returncode != 0 and "already exists" in duplicate.stderr
    listed = {r["ID"] for r in cloud.run("security", "group", "rule", "list", group["id"])}
    assert {ssh["id"], icmp["id"], peers["id"]} <= listed and len(listed) == 5
    cloud.run_raw("security", "group", "rule", "delete", ssh["id"])
    assert ssh["id"] not in {r["ID"] for r in cloud.run("security", "group", "rule", "list", group["id"])}
    cloud.run_raw("security", "group", "delete", group["id"])


def test_network_quota_show_set_and_exceeding_it(cloud: Cloud) -> None:
    project = cloud.run("project", "create", unique("quota"))
    user = unique("quser")
    cloud.run_raw("user", "create", "--password", "Quota-pw-1", "--project", project["id"], user)
    cloud.run_raw("role", "add", "--user", user, "--project", project["id"], "member")
    shown = {row["Resource"]: row["Limit"] for row in cloud.run("quota", "show", "--network", project["id"])}
    assert shown["networks"] == 100 and shown["ports"] == 500
    cloud.run_raw("quota", "set", "--networks", "1", project["id"])
    limits = {row["Resource"]: row["Limit"] for row in cloud.run("quota", "show", "--network", project["id"])}
    assert limits["networks"] == 1
    cloud.run_as(user, "Quota-pw-1", project["name"], "network", "create", unique("first"))
    over = cloud.run_as(user, "Quota-pw-1", project["name"], "network", "create", unique("second"), check=False)
    assert over.returncode != 0 and "Quota exceeded for resources: ['network']" in over.stderr
