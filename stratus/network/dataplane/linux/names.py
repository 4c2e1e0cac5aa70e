"""The names of every kernel object the Linux data plane makes.

Each kind has its own prefix, so that `sync` can list what exists, keep what is desired and delete
the rest without touching anything another program made. Interface names are at most 15
characters: a prefix plus the first 11 characters of the owner's id (as Neutron does; ids are
UUIDs, so 11 hex digits do not collide in practice).
"""

from __future__ import annotations

import zlib

ID_CHARS = 11

BRIDGE = "brq"          # a network's bridge
VXLAN = "vxs-"          # a VXLAN network's tunnel device on its bridge
VLAN = "vls-"           # a VLAN network's 802.1q sub-interface on its bridge
TAP = "tap"             # an instance port (the contract with the qemu driver)
DHCP_INSIDE = "ns-"     # the DHCP port inside qdhcp-<network>
DHCP_OUTSIDE = "dhs-"   # its peer on the bridge
ROUTER_INSIDE = "qr-"   # a router interface inside qrouter-<router>
ROUTER_OUTSIDE = "rqs-"  # its peer on the bridge
GATEWAY_INSIDE = "qg-"  # a router's gateway port inside qrouter-<router>
GATEWAY_OUTSIDE = "rgs-"  # its peer on the external bridge

DHCP_NS = "qdhcp-"
ROUTER_NS = "qrouter-"

# Host nftables tables (security groups, conntrack zones, anti-spoofing) and the router's own.
FILTER_TABLE = "stratus_fw"      # family inet
PORT_MARK_TABLE = "stratus_ports"  # family bridge
ROUTER_TABLE = "stratus_router"  # family ip, inside each router namespace

# Peers on a bridge: every host-side end of a veth we made.
OUTSIDE_PREFIXES = (DHCP_OUTSIDE, ROUTER_OUTSIDE, GATEWAY_OUTSIDE)
OWN_LINK_PREFIXES = (BRIDGE, VXLAN, VLAN, *OUTSIDE_PREFIXES)


def short(item_id: str) -> str:
    return item_id[:ID_CHARS]


def bridge(network_id: str) -> str:
    return BRIDGE + short(network_id)


def vxlan(network_id: str) -> str:
    return VXLAN + short(network_id)


def vlan(network_id: str) -> str:
    return VLAN + short(network_id)


def tap(port_id: str) -> str:
    return TAP + short(port_id)


def dhcp_namespace(network_id: str) -> str:
    return DHCP_NS + network_id


def router_namespace(router_id: str) -> str:
    return ROUTER_NS + router_id


def conntrack_zone(network_id: str) -> int:
    """The conntrack zone of a network's bridge: a stable number from its id, so that two tenants'
    overlapping addresses never share connection-tracking entries (1..65000; 0 is the host's)."""
    return zlib.crc32(network_id.encode()) % 65000 + 1
