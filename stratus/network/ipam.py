"""IP address management: what a subnet's addresses are, and which port holds which.

The first half is pure address arithmetic (the `ipaddress` module): default gateway and pools,
validation of a subnet's attributes, EUI-64 addresses. The second half hands addresses to ports in
the database. The key (subnet_id, ip_address) of `IPAllocation` is what makes a double allocation
impossible: each candidate is inserted in a savepoint and, when another transaction won it, the
next candidate is tried. A free address is searched for a window of pool addresses at a time,
from where the last search found one, so a create stays fast when thousands of ports exist.
"""

from __future__ import annotations

import ipaddress
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from stratus.core import db as db_retry
from stratus.core import errors
from stratus.network import models
from stratus.network.errors import (
    InvalidInput,
    IpAddressGenerationFailure,
    IpAddressInUse,
    SubnetNotFound,
)

log = logging.getLogger("stratus.network.ipam")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

IPV6_MODES = ("slaac", "dhcpv6-stateful", "dhcpv6-stateless")
# Modes whose addresses the hosts make up themselves from the prefix and their MAC.
AUTO_ADDRESS_MODES = ("slaac", "dhcpv6-stateless")
# Ports that may hold a subnet's gateway, or its IPv6 subnet-router anycast address.
ROUTER_OWNERS = ("network:router_interface", "network:router_interface_distributed",
                 "network:ha_router_replicated_interface", "network:router_gateway")
MAX_DNS_NAMESERVERS = 5
MAX_HOST_ROUTES = 20
# The first allocation picks at random among this many free addresses, so concurrent creates
# rarely try the same one.
_SPREAD = 8
# Candidates tried for one address before giving up (each failure means another port just took it).
_MAX_TRIES = 256
# Pool addresses checked against the allocations in one query.
_WINDOW = 64
# subnet id -> the pool address where this process's next search for a free address starts. Only
# a hint: the key of IPAllocation decides who holds an address, whatever another process thinks.
_search_from: dict[str, int] = {}


# -- faults (the fault body's `type` is the class name, as Neutron's clients expect) ------------------------


class InvalidAllocationPool(errors.BadRequest):
    def __init__(self, pool: Any) -> None:
        super().__init__(f"The allocation pool {pool} is not valid.")


class OutOfBoundsAllocationPool(errors.BadRequest):
    def __init__(self, pool: str, cidr: str) -> None:
        super().__init__(f"The allocation pool {pool} spans beyond the subnet cidr {cidr}.")


class OverlappingAllocationPools(errors.Conflict):
    def __init__(self, pool_1: str, pool_2: str, cidr: str) -> None:
        super().__init__(f"Found overlapping allocation pools: {pool_1} and {pool_2} for subnet {cidr}.")


class GatewayConflictWithAllocationPools(errors.Conflict):
    def __init__(self, ip_address: str, pool: str) -> None:
        super().__init__(f"Gateway ip {ip_address} conflicts with allocation pool {pool}.")


class GatewayIpInUse(errors.Conflict):
    def __init__(self, ip_address: str, port_id: str) -> None:
        super().__init__(f"Current gateway ip {ip_address} already in use by port {port_id}. Unable to update.")


class DNSNameServersExhausted(errors.BadRequest):
    def __init__(self, subnet_id: str, quota: int) -> None:
        super().__init__(f"Unable to complete operation for {subnet_id}. "
                         f"The number of DNS nameservers exceeds the limit {quota}.")


class HostRoutesExhausted(errors.BadRequest):
    def __init__(self, subnet_id: str, quota: int) -> None:
        super().__init__(f"Unable to complete operation for {subnet_id}. "
                         f"The number of host routes exceeds the limit {quota}.")


class InvalidIpForSubnet(errors.BadRequest):
    def __init__(self, ip_address: str) -> None:
        super().__init__(f"IP address {ip_address} is not a valid IP for the specified subnet.")


class InvalidIpForNetwork(errors.BadRequest):
    def __init__(self, ip_address: str) -> None:
        super().__init__(f"IP address {ip_address} is not a valid IP for any of the subnets on the specified "
                         "network.")


# -- pure address logic --------------------------------------------------------------------------------------


def parse_ip(value: Any, what: str, version: int | None = None) -> IPAddress:
    """An address of the given version, or 400 with Neutron's wording."""
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError:
        raise InvalidInput(f"'{value}' is not a valid IP address for {what}.") from None
    if version is not None and address.version != version:
        raise InvalidInput(f"{what} '{value}' does not match the ip_version '{version}'")
    return address


def parse_cidr(cidr: Any, ip_version: int) -> IPNetwork:
    """The subnet's network; host bits set is refused for IPv4 as Neutron does (and normalized for IPv6)."""
    text = str(cidr)
    if "/" not in text:
        raise InvalidInput(f"'{cidr}' is not a valid IP subnet.")
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidInput(f"'{cidr}' is not a valid IP subnet.") from None
    if net.version == 4 and str(net) != text:
        raise InvalidInput(f"'{cidr}' isn't a recommended CIDR, it should be '{net}'")
    if net.version != ip_version:
        raise InvalidInput(f"Cidr {cidr} does not match the ip_version {ip_version}")
    if net.prefixlen == 0:
        raise InvalidInput(f"'{cidr}' is not a valid subnet for a network: a /0 covers every address.")
    return net


def _last_usable(net: IPNetwork) -> int:
    """IPv4 keeps its broadcast address; IPv6 has none."""
    last = int(net.broadcast_address)
    return last - 1 if net.version == 4 and net.num_addresses > 2 else last


def _first_usable(net: IPNetwork) -> int:
    """The network address (IPv4) or the subnet-router anycast address (IPv6) is not for hosts."""
    first = int(net.network_address)
    return first + 1 if net.num_addresses > 2 or net.version == 6 else first


def default_gateway(net: IPNetwork) -> str | None:
    """The first host address, as Neutron picks it when the request names none."""
    if net.num_addresses < 2:
        return None
    return str(ipaddress.ip_address(_first_usable(net)))


def _range(start: int, end: int, version: int) -> dict[str, str]:
    make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    return {"start": str(make(start)), "end": str(make(end))}


def default_pools(net: IPNetwork, gateway_ip: str | None) -> list[dict[str, str]]:
    """Every host address of the CIDR, less the gateway (which splits the range in two)."""
    first, last = _first_usable(net), _last_usable(net)
    if first > last:
        return []
    spans = [(first, last)]
    if gateway_ip is not None:
        gw = int(ipaddress.ip_address(gateway_ip))
        if first <= gw <= last:
            spans = [(a, b) for a, b in ((first, gw - 1), (gw + 1, last)) if a <= b]
    return [_range(a, b, net.version) for a, b in spans]


def pool_text(pool: dict[str, str]) -> str:
    return f"{pool['start']}-{pool['end']}"


def validate_pools(net: IPNetwork, pools: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """Each pool a start-end range inside the CIDR (not its network/broadcast), none overlapping another."""
    spans: list[tuple[int, int, dict[str, str]]] = []
    for pool in pools:
        if not isinstance(pool, dict) or set(pool) != {"start", "end"}:
            raise InvalidAllocationPool(pool)
        try:
            start, end = ipaddress.ip_address(str(pool["start"])), ipaddress.ip_address(str(pool["end"]))
        except ValueError:
            raise InvalidAllocationPool(pool) from None
        if start.version != net.version or end.version != net.version or int(start) > int(end):
            raise InvalidAllocationPool(pool)
        clean = {"start": str(start), "end": str(end)}
        if start not in net or end not in net or int(start) < _first_usable(net) or int(end) > _last_usable(net):
            raise OutOfBoundsAllocationPool(pool_text(clean), str(net))
        spans.append((int(start), int(end), clean))
    spans.sort(key=lambda span: span[0])
    for (_, end_a, pool_a), (start_b, _, pool_b) in zip(spans, spans[1:], strict=False):
        if start_b <= end_a:
            raise OverlappingAllocationPools(pool_text(pool_a), pool_text(pool_b), str(net))
    return [pool for _, _, pool in spans]


def validate_gateway(net: IPNetwork, gateway_ip: Any, pools: Sequence[dict[str, str]]) -> str | None:
    """The normalized gateway; it may lie outside the CIDR but is never its network/broadcast or in a pool."""
    if gateway_ip is None:
        return None
    gw = parse_ip(gateway_ip, "gateway_ip", net.version)
    if gw in net and net.version == 4 and gw in (net.network_address, net.broadcast_address):
        raise InvalidInput("Gateway is not valid on subnet")
    for pool in pools:
        if int(ipaddress.ip_address(pool["start"])) <= int(gw) <= int(ipaddress.ip_address(pool["end"])):
            raise GatewayConflictWithAllocationPools(str(gw), pool_text(pool))
    return str(gw)


def validate_dns(subnet_id: str, ip_version: int, servers: Sequence[Any]) -> list[str]:
    if len(servers) > MAX_DNS_NAMESERVERS:
        raise DNSNameServersExhausted(subnet_id, MAX_DNS_NAMESERVERS)
    result: list[str] = []
    for server in servers:
        address = str(parse_ip(server, "dns_nameservers", ip_version))
        if address in result:
            raise InvalidInput(f"Duplicate nameserver '{server}'")
        result.append(address)
    return result


def validate_host_routes(subnet_id: str, ip_version: int, routes: Sequence[Any]) -> list[dict[str, str]]:
    if len(routes) > MAX_HOST_ROUTES:
        raise HostRoutesExhausted(subnet_id, MAX_HOST_ROUTES)
    result: list[dict[str, str]] = []
    for route in routes:
        if not isinstance(route, dict) or set(route) != {"destination", "nexthop"}:
            raise InvalidInput(f"Invalid data format for hostroute: '{route}'")
        try:
            destination = ipaddress.ip_network(str(route["destination"]), strict=False)
        except ValueError:
            raise InvalidInput(f"'{route['destination']}' is not a valid IP subnet.") from None
        if destination.version != ip_version:
            raise InvalidInput(f"Host route destination {route['destination']} does not match the "
                               f"ip_version '{ip_version}'")
        nexthop = parse_ip(route["nexthop"], "host route nexthop", ip_version)
        clean = {"destination": str(destination), "nexthop": str(nexthop)}
        if clean in result:
            raise InvalidInput(f"Duplicate hostroute '{route}'")
        result.append(clean)
    return result


def validate_ipv6_modes(net: IPNetwork, ra_mode: str | None, address_mode: str | None, enable_dhcp: bool) -> None:
    """Neutron's rules for `ipv6_ra_mode` and `ipv6_address_mode`."""
    for name, mode in (("ipv6_ra_mode", ra_mode), ("ipv6_address_mode", address_mode)):
        if mode is None:
            continue
        if net.version == 4:
            raise InvalidInput(f"{name} is not valid when ip_version is 4")
        if mode not in IPV6_MODES:
            raise InvalidInput(f"'{mode}' is not in {list(IPV6_MODES)}")
    if ra_mode is None and address_mode is None:
        return
    if not enable_dhcp:
        raise InvalidInput("ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False.")
    if ra_mode is not None and address_mode is not None and ra_mode != address_mode:
        raise InvalidInput(f"ipv6_ra_mode set to '{ra_mode}' with ipv6_address_mode set to '{address_mode}' is "
                           "not valid. If both attributes are set, they must be the same value")
    if address_mode in AUTO_ADDRESS_MODES and net.prefixlen != 64:
        raise InvalidInput(f"Invalid CIDR {net} for IPv6 address mode. OpenStack uses the EUI-64 address "
                           "format, which requires the prefix to be /64")


def is_auto_address(subnet: models.Subnet) -> bool:
    """Addresses made from the port's MAC rather than picked (SLAAC, DHCPv6-stateless)."""
    return subnet.ip_version == 6 and subnet.ipv6_address_mode in AUTO_ADDRESS_MODES


def eui64(prefix: str | IPNetwork, mac: str) -> str:
    """The EUI-64 address of `mac` in a /64: the MAC split by ff:fe, its universal/local bit flipped."""
    net = prefix if isinstance(prefix, ipaddress.IPv6Network) else ipaddress.IPv6Network(str(prefix), strict=False)
    octets = [int(part, 16) for part in mac.replace("-", ":").split(":")]
    if len(octets) != 6:
        raise InvalidInput(f"'{mac}' is not a valid MAC address")
    interface_id = bytes([octets[0] ^ 0x02, *octets[1:3], 0xFF, 0xFE, *octets[3:6]])
    return str(ipaddress.IPv6Address(int(net.network_address) | int.from_bytes(interface_id, "big")))


def valid_for_port(net: IPNetwork, address: IPAddress, device_owner: str) -> bool:
    """An address a port may ask for: inside the CIDR, not its network (save IPv6 routers) or broadcast."""
    if address.version != net.version or address not in net:
        return False
    if net.version == 4:
        return net.num_addresses <= 2 or address not in (net.network_address, net.broadcast_address)
    return address != net.network_address or device_owner in ROUTER_OWNERS


def pool_addresses(subnet: models.Subnet, start: int, stop: int | None, limit: int) -> list[int]:
    """Up to `limit` addresses of the pools in order, from `start` up to (not including) `stop`;
    never the gateway, network or broadcast address."""
    net = ipaddress.ip_network(subnet.cidr)
    reserved = {int(net.network_address)}
    if net.version == 4 and net.num_addresses > 2:
        reserved.add(int(net.broadcast_address))
    if subnet.gateway_ip:
        reserved.add(int(ipaddress.ip_address(subnet.gateway_ip)))
    spans = sorted((int(ipaddress.ip_address(p["start"])), int(ipaddress.ip_address(p["end"])))
                   for p in subnet.allocation_pools or [])
    found: list[int] = []
    for first, last in spans:
        value, end = max(first, start), last if stop is None else min(last, stop - 1)
        while value <= end and len(found) < limit:
            if value not in reserved:
                found.append(value)
            value += 1
        if len(found) >= limit:
            break
    return found


@dataclass
class SubnetPlan:
    """A subnet's validated addressing attributes."""

    cidr: str
    gateway_ip: str | None
    allocation_pools: list[dict[str, str]]
    dns_nameservers: list[str]
    host_routes: list[dict[str, str]]


UNSET: Any = object()


def plan_subnet(*, subnet_id: str, ip_version: int, cidr: str, gateway_ip: Any = UNSET,
                allocation_pools: Sequence[dict[str, Any]] | None = None, dns_nameservers: Sequence[Any] = (),
                host_routes: Sequence[Any] = (), enable_dhcp: bool = True, ipv6_ra_mode: str | None = None,
                ipv6_address_mode: str | None = None) -> SubnetPlan:
    """Validate a new subnet and fill in its defaults. `gateway_ip` left out: the first host; None: no gateway."""
    if ip_version not in (4, 6):
        raise InvalidInput(f"Invalid input for ip_version. Reason: {ip_version} is not in [4, 6].")
    net = parse_cidr(cidr, ip_version)
    validate_ipv6_modes(net, ipv6_ra_mode, ipv6_address_mode, enable_dhcp)
    gateway = default_gateway(net) if gateway_ip is UNSET else gateway_ip
    if gateway is not None:
        gateway = str(parse_ip(gateway, "gateway_ip", ip_version))
    pools = (default_pools(net, gateway) if allocation_pools is None else validate_pools(net, allocation_pools))
    gateway = validate_gateway(net, gateway, pools)
    return SubnetPlan(str(net), gateway, pools, validate_dns(subnet_id, ip_version, dns_nameservers),
                      validate_host_routes(subnet_id, ip_version, host_routes))


def check_cidr_overlap(subnets: Iterable[models.Subnet], cidr: str, network_id: str) -> None:
    """Two subnets of one network may not overlap (across networks and projects they may)."""
    net = ipaddress.ip_network(cidr)
    for other in subnets:
        other_net = ipaddress.ip_network(other.cidr)
        if other_net.version == net.version and other_net.overlaps(net):
            raise InvalidInput(f"Requested subnet with cidr: {cidr} for network: {network_id} overlaps with "
                               "another subnet")


# -- allocation in the database --------------------------------------------------------------------------------


def open_write_transaction(session: Session) -> None:
    """Make sure the database transaction is really open before savepoints are used.

    Python's sqlite3 driver opens a transaction only before its first INSERT/UPDATE/DELETE, so a
    SAVEPOINT issued before that would be the outermost one, and releasing it would commit. Taking
    the write lock now also spares a deferred transaction from failing on its lock upgrade.
    """
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        db_retry.begin_immediate(connection)


def _try_insert(session: Session, subnet: models.Subnet, address: str, port_id: str) -> bool:
    try:
        with session.begin_nested():
            session.execute(sa.insert(models.IPAllocation).values(
                subnet_id=subnet.id, ip_address=address, port_id=port_id, network_id=subnet.network_id))
    except IntegrityError:
        return False
    return True


def _held_among(session: Session, subnet_id: str, addresses: list[str]) -> set[str]:
    return set(session.scalars(sa.select(models.IPAllocation.ip_address).where(
        models.IPAllocation.subnet_id == subnet_id, models.IPAllocation.ip_address.in_(addresses))))


def allocate_from_pools(session: Session, subnet: models.Subnet, port_id: str) -> str | None:
    """A free pool address of `subnet` now held by the port; None when the subnet has none left.

    The search starts where this process last found a free address and looks at a window of
    pool addresses at a time (one indexed query each), so its cost does not grow with the ports
    the subnet has. Addresses go out in order; a released one comes round again once the search
    reaches the pools' end and starts over from the beginning.
    """
    make = ipaddress.IPv4Address if subnet.ip_version == 4 else ipaddress.IPv6Address
    origin = _search_from.get(subnet.id, 0)
    tries = 0
    for start, stop in ((origin, None), (0, origin)):  # to the pools' end, then round to the origin
        while tries < _MAX_TRIES:
            window = pool_addresses(subnet, start, stop, _WINDOW)
            if not window:
                break
            texts = {value: str(make(value)) for value in window}
            held = _held_among(session, subnet.id, list(texts.values()))
            free = [value for value in window if texts[value] not in held]
            while free and tries < _MAX_TRIES:
                tries += 1
                choice = random.choice(free[:_SPREAD])
                if _try_insert(session, subnet, texts[choice], port_id):
                    _search_from[subnet.id] = free[0]
                    return texts[choice]
                free.remove(choice)  # another transaction holds it now
            start = window[-1] + 1
        if origin == 0:
            break
    return None


def allocate_address(session: Session, subnet: models.Subnet, port_id: str, address: str) -> str:
    """Hold a chosen address of `subnet` for the port (409 IpAddressInUse when another port has it)."""
    if not _try_insert(session, subnet, address, port_id):
        raise IpAddressInUse(address, subnet.network_id)
    return address


def _subnet_for(subnets: Sequence[models.Subnet], session: Session, network_id: str,
                subnet_id: str) -> models.Subnet:
    for subnet in subnets:
        if subnet.id == subnet_id:
            return subnet
    if session.get(models.Subnet, subnet_id) is None:
        raise SubnetNotFound(subnet_id)
    raise InvalidInput(f"Failed to create port on network {network_id}, because fixed_ips included invalid "
                       f"subnet {subnet_id}")


@dataclass
class Wanted:
    """One wanted address: a subnet, an address, or both."""

    subnet: models.Subnet
    ip_address: str | None = None


def resolve(session: Session, network_id: str, subnets: Sequence[models.Subnet],
            fixed_ips: Sequence[dict[str, Any]], device_owner: str) -> list[Wanted]:
    """Check each requested fixed IP against the network's subnets (400/404 with Neutron's wording)."""
    wanted: list[Wanted] = []
    for entry in fixed_ips:
        if not isinstance(entry, dict) or not set(entry) <= {"subnet_id", "ip_address"}:
            raise InvalidInput(f"Invalid data format for fixed IP: '{entry}'")
        subnet_id, ip_text = entry.get("subnet_id"), entry.get("ip_address")
        if subnet_id is None and ip_text is None:
            raise InvalidInput(f"Invalid data format for fixed IP: '{entry}'")
        address = parse_ip(ip_text, "fixed_ips") if ip_text is not None else None
        if subnet_id is not None:
            subnet = _subnet_for(subnets, session, network_id, str(subnet_id))
            if address is not None and not valid_for_port(ipaddress.ip_network(subnet.cidr), address, device_owner):
                raise InvalidIpForSubnet(str(address))
        else:
            assert address is not None
            matches = [s for s in subnets if valid_for_port(ipaddress.ip_network(s.cidr), address, device_owner)]
            if not matches:
                raise InvalidIpForNetwork(str(address))
            subnet = matches[0]
        if address is not None and is_auto_address(subnet) and device_owner not in ROUTER_OWNERS:
            raise InvalidInput(f"IPv6 address {address} cannot be directly assigned to a port on subnet "
                               f"{subnet.id} as the subnet is configured for automatic addresses")
        if address is None and subnet.ip_version == 6 and is_auto_address(subnet):
            # One EUI-64 address per subnet: asking twice is asking once.
            if any(w.subnet.id == subnet.id and w.ip_address is None for w in wanted):
                continue
        wanted.append(Wanted(subnet, str(address) if address is not None else None))
    return wanted


def allocate(session: Session, *, network: models.Network, port: models.Port,
             fixed_ips: Sequence[dict[str, Any]] | None = None,
             subnets: Sequence[models.Subnet] | None = None) -> list[tuple[str, str]]:
    """Give the (flushed) port its addresses; [(subnet_id, ip_address), ...] in the order taken.

    `fixed_ips` None: one address from the first IPv4 subnet with room, one from the first
    DHCPv6-stateful (or mode-less) IPv6 subnet with room, and the EUI-64 address of every SLAAC
    and DHCPv6-stateless subnet. Otherwise exactly what is asked: `{subnet_id}` (picked or EUI-64),
    `{ip_address}` (its subnet found from the CIDRs) or both.
    """
    open_write_transaction(session)
    if subnets is None:
        subnets = session.scalars(sa.select(models.Subnet).where(models.Subnet.network_id == network.id)
                                  .order_by(models.Subnet.created_at, models.Subnet.id)).all()
    taken: list[tuple[str, str]] = []
    if fixed_ips is not None:
        for want in resolve(session, network.id, subnets, fixed_ips, port.device_owner):
            taken.append((want.subnet.id, _take(session, network.id, want, port)))
        return taken
    for version in (4, 6):
        pickable = [s for s in subnets if s.ip_version == version and not is_auto_address(s)]
        if not pickable:
            continue
        for subnet in pickable:
            address = allocate_from_pools(session, subnet, port.id)
            if address is not None:
                taken.append((subnet.id, address))
                break
        else:
            raise IpAddressGenerationFailure(network.id)
    if port.device_owner not in ROUTER_OWNERS:
        for subnet in subnets:
            if is_auto_address(subnet):
                taken.append((subnet.id, _take(session, network.id, Wanted(subnet), port)))
    return taken


def _take(session: Session, network_id: str, want: Wanted, port: models.Port) -> str:
    subnet = want.subnet
    if want.ip_address is not None:
        return allocate_address(session, subnet, port.id, want.ip_address)
    if is_auto_address(subnet):
        return allocate_address(session, subnet, port.id, eui64(subnet.cidr, port.mac_address))
    address = allocate_from_pools(session, subnet, port.id)
    if address is None:
        raise IpAddressGenerationFailure(network_id)
    return address


def release(session: Session, port_id: str, addresses: Iterable[tuple[str, str]] | None = None) -> None:
    """Give back the port's addresses: all of them, or the listed (subnet_id, ip_address) pairs."""
    stmt = sa.delete(models.IPAllocation).where(models.IPAllocation.port_id == port_id)
    if addresses is not None:
        pairs = list(addresses)
        if not pairs:
            return
        stmt = stmt.where(sa.tuple_(models.IPAllocation.subnet_id, models.IPAllocation.ip_address).in_(pairs))
    session.execute(stmt, execution_options={"synchronize_session": False})


# -- transactions that may be chosen as a deadlock victim ----------------------------------------------------

# MySQL/MariaDB: deadlock, lock wait timeout. PostgreSQL: serialization failure, deadlock.
# Shared with the other services: run a transaction again when the database aborted it.
is_retryable, retrying = db_retry.is_retryable, db_retry.retrying
