"""Desired-state documents for the Linux data plane tests, built the way the agent hands them over."""

from __future__ import annotations

import ipaddress
import uuid

from stratus.network.rpc import (
    DhcpHost,
    FloatingIPDoc,
    HostState,
    NetworkDoc,
    PortDoc,
    RouterDoc,
    RuleDoc,
    SecurityGroupDoc,
    Segment,
    SubnetDoc,
    dhcp_hostname,
)


def new_id() -> str:
    return str(uuid.uuid4())


def mac() -> str:
    raw = uuid.uuid4().bytes
    return "fa:16:3e:" + ":".join(f"{b:02x}" for b in raw[:3])


def segment(kind: str = "vxlan", physnet: str | None = None, seg_id: int | None = 101) -> Segment:
    return Segment(network_type=kind, physical_network=physnet, segmentation_id=seg_id)


def subnet(cidr: str, gateway: str | None, dhcp: bool = True) -> SubnetDoc:
    return SubnetDoc(id=new_id(), ip_version=4, cidr=cidr, gateway_ip=gateway, enable_dhcp=dhcp,
                     ipv6_address_mode=None, ipv6_ra_mode=None, dns_nameservers=["192.0.2.53"], host_routes=[],
                     allocation_pools=[])


def network(sub: SubnetDoc, seg: Segment, dhcp_ip: str | None = None, mtu: int = 1450) -> NetworkDoc:
    doc = NetworkDoc(id=new_id(), admin_state_up=True, mtu=mtu, segment=seg, subnets=[sub], dhcp=None,
                     dhcp_hosts=[])
    if dhcp_ip is not None:
        doc["dhcp"] = {"port_id": new_id(), "mac_address": mac(),
                       "addresses": [{"subnet_id": sub["id"], "ip_address": dhcp_ip}]}
    return doc


def port(net: NetworkDoc, ip: str, groups: list[str], host: str = "testhost", security: bool = True) -> PortDoc:
    return PortDoc(id=new_id(), network_id=net["id"], host=host, mac_address=mac(), admin_state_up=True,
                   device_owner="compute:nova", device_id=new_id(),
                   fixed_ips=[{"subnet_id": net["subnets"][0]["id"], "ip_address": ip}],
                   port_security_enabled=security, security_group_ids=groups, allowed_address_pairs=[],
                   segment=net["segment"], mtu=net["mtu"])


def with_hosts(net: NetworkDoc, ports: list[PortDoc]) -> NetworkDoc:
    hosts = [DhcpHost(port_id=p["id"], subnet_id=ip["subnet_id"], mac_address=p["mac_address"],
                      ip_address=ip["ip_address"], hostname=dhcp_hostname(ip["ip_address"]))
             for p in ports for ip in p["fixed_ips"]]
    return NetworkDoc(**{**net, "dhcp_hosts": hosts})  # type: ignore[typeddict-item]


def rule(direction: str, protocol: str | None = None, prefix: str | None = None,
         remote_group: str | None = None, low: int | None = None, high: int | None = None) -> RuleDoc:
    return RuleDoc(id=new_id(), direction=direction, ethertype="IPv4", protocol=protocol, port_range_min=low,
                   port_range_max=high, remote_ip_prefix=prefix, remote_group_id=remote_group)


def group(group_id: str, rules: list[RuleDoc], members: list[PortDoc]) -> SecurityGroupDoc:
    by_port = {p["id"]: [ip["ip_address"] for ip in p["fixed_ips"]] for p in members}
    return SecurityGroupDoc(id=group_id, stateful=True, rules=rules,
                            members={"IPv4": sorted({a for v in by_port.values() for a in v}), "IPv6": []},
                            member_ports=by_port)


def router(interface_net: NetworkDoc, gateway_net: NetworkDoc, gateway_ip: str,
           floating: list[tuple[str, PortDoc]] = ()) -> RouterDoc:  # type: ignore[assignment]
    inside, outside = interface_net["subnets"][0], gateway_net["subnets"][0]
    assert inside["gateway_ip"] is not None
    fips = [FloatingIPDoc(id=new_id(), floating_ip_address=address, fixed_ip_address=p["fixed_ips"][0]["ip_address"],
                          port_id=p["id"]) for address, p in floating]
    return RouterDoc(
        id=new_id(), admin_state_up=True, enable_snat=True, routes=[], floating_ips=fips,
        gateway={"network_id": gateway_net["id"], "port_id": new_id(), "mac_address": mac(),
                 "segment": gateway_net["segment"], "mtu": gateway_net["mtu"],
                 "addresses": [{"subnet_id": outside["id"], "ip_address": gateway_ip, "cidr": outside["cidr"],
                                "gateway_ip": outside["gateway_ip"]}]},
        interfaces=[{"port_id": new_id(), "subnet_id": inside["id"], "network_id": interface_net["id"],
                     "mac_address": mac(), "ip_address": inside["gateway_ip"], "cidr": inside["cidr"],
                     "segment": interface_net["segment"], "mtu": interface_net["mtu"]}])


def state(networks: list[NetworkDoc], ports: list[PortDoc], routers: list[RouterDoc],
          groups: list[SecurityGroupDoc]) -> HostState:
    return HostState(stamp=1, host="testhost", roles=["l2", "dhcp", "l3"], networks=networks, ports=ports,
                     routers=routers, security_groups=groups)


def prefix_of(cidr: str) -> int:
    return ipaddress.ip_network(cidr).prefixlen
