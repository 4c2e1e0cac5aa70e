"""The contract between the networking service and its node agents: topics, messages, documents.

Agents never touch the database. They learn what to build from *desired-state documents*: JSON
dictionaries that say what a network, port, router or security group must look like now (never
what to do), so applying one twice, or applying an older one again after a newer, is harmless.

Topics
------
- `network-agent` (fanout: every agent gets every message). The service sends, after each committed
  transaction (`publish`), one message per changed thing, all stamped alike:

  | method                  | arguments                                              |
  | ----------------------- | ------------------------------------------------------ |
  | `network_update`        | `network`: NetworkDoc, `stamp`                         |
  | `network_delete`        | `network_id`, `stamp`                                  |
  | `port_update`           | `port`: PortDoc, `stamp`                               |
  | `port_delete`           | `port_id`, `network_id`, `host` (None if unknown), `stamp` |
  | `router_update`         | `router`: RouterDoc, `stamp`                           |
  | `router_delete`         | `router_id`, `stamp`                                   |
  | `security_group_update` | `security_group`: SecurityGroupDoc without the member lists, `stamp` |
  | `security_group_delete` | `security_group_id`, `stamp`                           |

  Each agent keeps what concerns its host and roles and ignores the rest (stratus/network/agent.py).
  What a change implies (which documents are re-sent) is decided in stratus/network/desired.py.

- `network-conductor` (calls: one conductor answers). The agents' only way to the database
  (stratus/network/conductor.py): `report_state`, `get_host_state` (the full state at start-up and
  after an outage), `get_documents` (documents an agent misses), `update_port_statuses`,
  `update_port_status`, `update_floatingip_statuses`.

Stamps
------
`stamp` is the database clock, in microseconds since the epoch, read before the documents were
read: a document reflects at least every change committed before its stamp. Messages of one
transaction share a stamp. The bus hands messages to a pool of workers, so they may be handled out
of order; an agent keeps the newest stamp it applied per resource and drops anything older, and
drops whatever is older than the state it last resynchronised from.

Derived lists
-------------
A network's `dhcp_hosts` and a group's `member_ports`/`members` follow from its ports. A port's
change is sent as `port_update`/`port_delete` only, never by re-sending its network's or groups'
documents: every agent receives every port message and updates the lists of the networks and
groups it holds (with `dhcp_entries` and `member_addresses` below, the same functions the service
uses to build the full documents). Full lists come with `network_update`, with `get_host_state`
and with `get_documents`; `security_group_update` leaves them out (a port creation names its
groups, and re-sending every member for each new port would cost O(ports)).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from stratus.core.bus import Bus
    from stratus.core.db import Database
    from stratus.network.desired import Batch
    from stratus.network.notify import Changes

AGENT_TOPIC = "network-agent"
CONDUCTOR_TOPIC = "network-conductor"

# Port statuses an agent may report (Neutron's).
PORT_STATUSES = ("ACTIVE", "DOWN", "BUILD", "ERROR")
FLOATINGIP_STATUSES = ("ACTIVE", "DOWN", "ERROR")

# Roles an agent can play on its host; `stratus up` plays them all.
ROLES = ("l2", "dhcp", "l3")
# The agent_type each role reports as (the names the `openstack network agent` commands know).
AGENT_TYPES = {"l2": "Linux bridge agent", "dhcp": "DHCP agent", "l3": "L3 agent"}

# device_owner values that make a port part of something else.
DHCP_OWNER = "network:dhcp"
ROUTER_INTERFACE_OWNER = "network:router_interface"
ROUTER_GATEWAY_OWNER = "network:router_gateway"
FLOATINGIP_OWNER = "network:floatingip"
ROUTER_OWNERS = (ROUTER_INTERFACE_OWNER, ROUTER_GATEWAY_OWNER)


# --- documents --------------------------------------------------------------------------------------


class Segment(TypedDict):
    """Where a network's frames travel. `network_type` is "flat", "vlan", "vxlan" or "local";
    `physical_network` names the bridge mapping for flat and VLAN (None for VXLAN and local);
    `segmentation_id` is the VLAN id or VNI (None for flat and local)."""

    network_type: str
    physical_network: str | None
    segmentation_id: int | None


class SubnetDoc(TypedDict):
    """A subnet as DHCP and routing need it. `gateway_ip` may be None (no gateway); the IPv6 modes
    are None, "slaac", "dhcpv6-stateful" or "dhcpv6-stateless"; `host_routes` are
    [{destination, nexthop}]; `allocation_pools` are [{start, end}]."""

    id: str
    ip_version: int
    cidr: str
    gateway_ip: str | None
    enable_dhcp: bool
    ipv6_address_mode: str | None
    ipv6_ra_mode: str | None
    dns_nameservers: list[str]
    host_routes: list[dict[str, str]]
    allocation_pools: list[dict[str, str]]


class FixedIP(TypedDict):
    subnet_id: str
    ip_address: str


class DhcpPort(TypedDict):
    """The network's DHCP server port (device_owner network:dhcp): where dnsmasq listens."""

    port_id: str
    mac_address: str
    addresses: list[FixedIP]


class DhcpHost(TypedDict):
    """One reservation: the port with `mac_address` gets `ip_address` on `subnet_id`."""

    port_id: str
    subnet_id: str
    mac_address: str
    ip_address: str
    hostname: str


class NetworkDoc(TypedDict):
    """A network: its segment and MTU, its subnets (ordered by creation), its DHCP server port
    (`dhcp`: None when no DHCP-enabled subnet or no DHCP port exists) and `dhcp_hosts`: an entry
    per address of every port of the network on a DHCP-enabled subnet (a set: the service sorts
    it by address, the agent hands it over in no particular order)."""

    id: str
    admin_state_up: bool
    mtu: int
    segment: Segment
    subnets: list[SubnetDoc]
    dhcp: DhcpPort | None
    dhcp_hosts: list[DhcpHost]


class AddressPair(TypedDict):
    """An extra address (or CIDR) the port may send from, with its MAC."""

    ip_address: str
    mac_address: str


class PortDoc(TypedDict):
    """A port. `host` is its binding host ("" when unbound): the l2 agent of that host wires it
    (a tap device on the network's bridge, with anti-spoofing for `mac_address`, `fixed_ips` and
    `allowed_address_pairs` and the filter of `security_group_ids` when `port_security_enabled`).
    `segment` and `mtu` are the network's, so a port can be wired from its document alone."""

    id: str
    network_id: str
    host: str
    mac_address: str
    admin_state_up: bool
    device_owner: str
    device_id: str
    fixed_ips: list[FixedIP]
    port_security_enabled: bool
    security_group_ids: list[str]
    allowed_address_pairs: list[AddressPair]
    segment: Segment
    mtu: int


class GatewayAddress(TypedDict):
    """An address of the router's gateway port, with its subnet's CIDR and gateway (the default
    route's next hop when not None)."""

    subnet_id: str
    ip_address: str
    cidr: str
    gateway_ip: str | None


class RouterGateway(TypedDict):
    network_id: str
    port_id: str
    mac_address: str
    segment: Segment
    mtu: int
    addresses: list[GatewayAddress]


class RouterInterface(TypedDict):
    """One address of a router interface port (a port with two addresses gives two entries)."""

    port_id: str
    subnet_id: str
    network_id: str
    mac_address: str
    ip_address: str
    cidr: str
    segment: Segment
    mtu: int


class Route(TypedDict):
    destination: str
    nexthop: str


class FloatingIPDoc(TypedDict):
    """A floating IP associated through this router: DNAT `floating_ip_address` to
    `fixed_ip_address` (of port `port_id`) and SNAT the way back."""

    id: str
    floating_ip_address: str
    fixed_ip_address: str
    port_id: str


class RouterDoc(TypedDict):
    """A router: its external gateway (None without one; SNAT behind it when `enable_snat`),
    its interfaces (sorted by port, then address), its extra routes and its associated floating
    IPs (sorted by id)."""

    id: str
    admin_state_up: bool
    enable_snat: bool
    gateway: RouterGateway | None
    interfaces: list[RouterInterface]
    routes: list[Route]
    floating_ips: list[FloatingIPDoc]


class RuleDoc(TypedDict):
    """A rule. `direction` "ingress"/"egress"; `ethertype` "IPv4"/"IPv6"; `protocol` None (any),
    a name ("tcp", "udp", "icmp", "ipv6-icmp", ...) or a number as a string; for TCP/UDP/SCTP the
    port range, for ICMP `port_range_min`/`max` are the type and code; the peer is
    `remote_ip_prefix`, or the members of `remote_group_id`, or anyone when both are None."""

    id: str
    direction: str
    ethertype: str
    protocol: str | None
    port_range_min: int | None
    port_range_max: int | None
    remote_ip_prefix: str | None
    remote_group_id: str | None


class SecurityGroupDoc(TypedDict, total=False):
    """A security group. `members` are the addresses of the ports in the group (fixed IPs and
    allowed address pairs, by ethertype): the peers that rules of any group naming this one as
    `remote_group_id` admit. `member_ports` gives the same addresses by port, so agents can keep
    the lists current from port messages. Both are absent from `security_group_update` messages
    (see the module's docstring) and always present in what the data plane receives. They are
    sets: the service sorts them, the agent hands them over in no particular order."""

    id: str
    stateful: bool
    rules: list[RuleDoc]
    members: dict[str, list[str]]
    member_ports: dict[str, list[str]]


class HostState(TypedDict):
    """Everything an agent on `host` with `roles` needs (`get_host_state`): with "l2" the ports
    bound to the host, their networks and their security groups (with the groups their rules name
    as remote groups); with "dhcp" every network with a DHCP-enabled subnet; with "l3" every router.
    The data plane's `sync` receives the same shape, narrowed to what the agent keeps."""

    stamp: int
    host: str
    roles: list[str]
    networks: list[NetworkDoc]
    ports: list[PortDoc]
    routers: list[RouterDoc]
    security_groups: list[SecurityGroupDoc]


class AgentReport(TypedDict, total=False):
    """What `report_state` receives about one role of an agent (one `network_agent` row each)."""

    host: str
    agent_type: str
    binary: str
    topic: str
    configurations: dict[str, Any]
    availability_zone: str | None


# --- derived lists: the one definition the service and the agents share ------------------------------


def dhcp_hostname(ip_address: str) -> str:
    """The host name DHCP hands out with an address (the port's `dns_assignment` shows the same)."""
    return "host-" + ip_address.replace(".", "-").replace(":", "-")


def dhcp_entries(port_id: str, mac_address: str, fixed_ips: Iterable[FixedIP],
                 dhcp_subnets: set[str] | frozenset[str]) -> list[DhcpHost]:
    """The `dhcp_hosts` entries a port gives: one per address on a DHCP-enabled subnet."""
    return [DhcpHost(port_id=port_id, subnet_id=ip["subnet_id"], mac_address=mac_address,
                     ip_address=ip["ip_address"], hostname=dhcp_hostname(ip["ip_address"]))
            for ip in fixed_ips if ip["subnet_id"] in dhcp_subnets]


def sorted_hosts(entries: Iterable[DhcpHost]) -> list[DhcpHost]:
    return sorted(entries, key=lambda h: (h["ip_address"], h["port_id"], h["subnet_id"]))


def member_addresses(fixed_ips: Iterable[str], address_pairs: Iterable[Mapping[str, Any]]) -> list[str]:
    """The addresses a port adds to each of its groups: its fixed IPs and the addresses (or
    CIDRs) of its allowed address pairs, sorted, without repeats."""
    return sorted(set(fixed_ips) | {str(pair["ip_address"]) for pair in address_pairs if pair.get("ip_address")})


def port_member_addresses(port: PortDoc) -> list[str]:
    return member_addresses((ip["ip_address"] for ip in port["fixed_ips"]), port["allowed_address_pairs"])


@functools.lru_cache(maxsize=65536)
def ethertype(address: str) -> str | None:
    """"IPv4" or "IPv6" for an address or CIDR; None for anything else."""
    try:
        return "IPv4" if ipaddress.ip_network(address, strict=False).version == 4 else "IPv6"
    except ValueError:
        return None


def members_by_ethertype(addresses: Iterable[str]) -> dict[str, list[str]]:
    """{"IPv4": [...], "IPv6": [...]}, each sorted without repeats."""
    out: dict[str, set[str]] = {"IPv4": set(), "IPv6": set()}
    for address in addresses:
        kind = ethertype(address)
        if kind is not None:
            out[kind].add(address)
    return {kind: sorted(found) for kind, found in out.items()}


def dhcp_subnet_ids(network: NetworkDoc) -> frozenset[str]:
    return frozenset(s["id"] for s in network["subnets"] if s["enable_dhcp"])


# --- sending ------------------------------------------------------------------------------------------


def publish(db: Database, bus: Bus, changes: Changes) -> None:
    """Read the fresh documents of what `changes` touched (one read transaction, a constant number
    of statements) and fan them out to the agents. Called once the change is committed."""
    from stratus.network import desired

    with db.transaction() as session:
        batch = desired.plan(session, changes)
    send(bus, batch)


def send(bus: Bus, batch: Batch) -> None:
    """Fan a `desired.Batch` out: updates first (groups, networks, ports, routers: what a port
    needs before the port), then deletes (ports and routers before the networks and groups
    they used). The order is a courtesy; agents rely on stamps, not on it."""
    stamp = batch.stamp
    for group in batch.security_groups.values():
        bus.fanout(AGENT_TOPIC, "security_group_update", security_group=group, stamp=stamp)
    for network in batch.networks.values():
        bus.fanout(AGENT_TOPIC, "network_update", network=network, stamp=stamp)
    for port in batch.ports.values():
        bus.fanout(AGENT_TOPIC, "port_update", port=port, stamp=stamp)
    for router in batch.routers.values():
        bus.fanout(AGENT_TOPIC, "router_update", router=router, stamp=stamp)
    for port_id, (network_id, host) in batch.deleted_ports.items():
        bus.fanout(AGENT_TOPIC, "port_delete", port_id=port_id, network_id=network_id, host=host, stamp=stamp)
    for router_id in batch.deleted_routers:
        bus.fanout(AGENT_TOPIC, "router_delete", router_id=router_id, stamp=stamp)
    for network_id in batch.deleted_networks:
        bus.fanout(AGENT_TOPIC, "network_delete", network_id=network_id, stamp=stamp)
    for group_id in batch.deleted_security_groups:
        bus.fanout(AGENT_TOPIC, "security_group_delete", security_group_id=group_id, stamp=stamp)
