"""Routers: a namespace `qrouter-<router>` with a veth into each attached network's bridge (the
interface's gateway address inside), a gateway veth into the external network's bridge, routes,
forwarding, and NAT in one nftables table of the namespace:

- a floating IP is an extra address on the gateway port; traffic to it is DNATed to the fixed
  address, and traffic from the fixed address leaving by the gateway is SNATed to it;
- with `enable_snat`, everything else leaving by the gateway is SNATed to the gateway address.

The table is replaced whole in one `nft -f` transaction, so a change never leaves a gap.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict

from stratus.network.dataplane.linux import links, names, namespaces
from stratus.network.dataplane.linux.commands import nft, quote
from stratus.network.dataplane.linux.settings import LinuxSettings
from stratus.network.rpc import RouterDoc

METADATA_ADDRESS = "169.254.169.254"


def inside_interfaces(doc: RouterDoc) -> dict[str, list[str]]:
    """Interface device -> its addresses ("ip/prefix")."""
    out: dict[str, list[str]] = defaultdict(list)
    for interface in doc["interfaces"]:
        prefix = ipaddress.ip_network(interface["cidr"]).prefixlen
        out[names.ROUTER_INSIDE + names.short(interface["port_id"])].append(f"{interface['ip_address']}/{prefix}")
    return out


def gateway_device(doc: RouterDoc) -> str | None:
    gateway = doc["gateway"]
    return names.GATEWAY_INSIDE + names.short(gateway["port_id"]) if gateway else None


def apply(settings: LinuxSettings, doc: RouterDoc) -> tuple[set[str], set[str]]:
    """Build the router; the ports and floating IPs wired."""
    netns = names.router_namespace(doc["id"])
    namespaces.ensure(netns, forwarding=True)
    wired_ports: set[str] = set()
    wanted_devices = {"lo"}
    seen: set[str] = set()
    for interface in doc["interfaces"]:
        if interface["port_id"] in seen:
            continue
        seen.add(interface["port_id"])
        bridge = links.ensure_network(settings, interface["network_id"], interface["segment"], interface["mtu"])
        inside = names.ROUTER_INSIDE + names.short(interface["port_id"])
        links.ensure_veth(names.ROUTER_OUTSIDE + names.short(interface["port_id"]), inside, netns,
                          interface["mac_address"], interface["mtu"], bridge)
        wanted_devices.add(inside)
        wired_ports.add(interface["port_id"])
    for device, addresses in inside_interfaces(doc).items():
        namespaces.set_addresses(device, addresses, netns)
    wired_fips: set[str] = set()
    routes: dict[str, tuple[str, str | None]] = {}
    gateway = doc["gateway"]
    gw_device = gateway_device(doc)
    if gateway is not None and gw_device is not None:
        bridge = links.ensure_network(settings, gateway["network_id"], gateway["segment"], gateway["mtu"])
        links.ensure_veth(names.GATEWAY_OUTSIDE + names.short(gateway["port_id"]), gw_device, netns,
                          gateway["mac_address"], gateway["mtu"], bridge)
        wanted_devices.add(gw_device)
        addresses = [f"{a['ip_address']}/{ipaddress.ip_network(a['cidr']).prefixlen}"
                     for a in gateway["addresses"] if ":" not in a["ip_address"]]
        floating = [f for f in doc["floating_ips"] if ":" not in f["floating_ip_address"]]
        namespaces.set_addresses(gw_device, addresses + [f"{f['floating_ip_address']}/32" for f in floating], netns)
        for address in gateway["addresses"]:
            if address["gateway_ip"] and ":" not in address["gateway_ip"]:
                routes["0.0.0.0/0"] = (address["gateway_ip"], gw_device)
                break
        wired_ports.add(gateway["port_id"])
        wired_fips = {f["id"] for f in floating}
    for route in doc["routes"]:
        if ":" not in route["destination"]:
            routes[route["destination"]] = (route["nexthop"], None)
    _remove_stale_devices(netns, wanted_devices)
    namespaces.set_addresses("lo", [f"{METADATA_ADDRESS}/32"], netns)
    namespaces.set_static_routes(routes, netns)
    nft(_nat_script(doc, gw_device), netns)
    return wired_ports, wired_fips


def _remove_stale_devices(netns: str, wanted: set[str]) -> None:
    for link in links.all_links(netns):
        name = link["ifname"]
        if name not in wanted and name.startswith((names.ROUTER_INSIDE, names.GATEWAY_INSIDE)):
            links.delete(name, netns)  # its peer on the bridge goes with it


def _nat_script(doc: RouterDoc, gw_device: str | None) -> str:
    table = f"ip {names.ROUTER_TABLE}"
    pre, post = [], []
    if doc["gateway"] is not None and gw_device is not None:
        out = quote(gw_device)
        for fip in doc["floating_ips"]:
            if ":" in fip["floating_ip_address"]:
                continue
            pre.append(f"ip daddr {fip['floating_ip_address']} dnat to {fip['fixed_ip_address']}")
            post.append(f"oifname {out} ip saddr {fip['fixed_ip_address']} snat to {fip['floating_ip_address']}")
        if doc["enable_snat"]:
            gw = [a["ip_address"] for a in doc["gateway"]["addresses"] if ":" not in a["ip_address"]]
            if gw:
                # Not for traffic that is routed between the router's own subnets, only leaving by the gateway.
                post.append(f"oifname {out} snat to {gw[0]}")
    lines = [f"table {table}", f"delete table {table}", f"table {table} {{",
             "  chain prerouting { type nat hook prerouting priority dstnat; policy accept;"]
    lines += [f"    {rule}" for rule in pre]
    lines += ["  }", "  chain output { type nat hook output priority -100; policy accept;"]
    lines += [f"    {rule}" for rule in pre]
    lines += ["  }", "  chain postrouting { type nat hook postrouting priority srcnat; policy accept;"]
    lines += [f"    {rule}" for rule in post]
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def remove(router_id: str) -> None:
    """Deleting the namespace takes its veths (and so their peers on the bridges) and its table."""
    namespaces.delete(names.router_namespace(router_id))
