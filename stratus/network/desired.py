"""Desired-state documents built from the database (the shapes are defined in rpc.py).

Every builder takes a set of ids (or a SELECT of ids) and issues a constant number of statements,
whatever the number of rows: no relationship is loaded row by row.

What a change implies (`plan`), i.e. which documents a committed transaction re-sends:
- a changed network: its `network_update` (with its subnets, DHCP port and full `dhcp_hosts`; a
  subnet change is a change of its network) and the `router_update` of every router with an
  interface or its gateway on it (they carry the subnets' CIDRs, gateways and the MTU);
- a changed port: its `port_update`; for the DHCP port (device_owner network:dhcp) also its
  network's document, for a router's interface or gateway port also that router's document. The
  port's network's `dhcp_hosts` and its groups' members are NOT re-sent: agents derive them from
  the port message (see rpc.py);
- a changed router: its `router_update` (interfaces, gateway, routes, floating IPs);
- a changed security group: its `security_group_update`, rules only (callers name the groups a port
  joins or leaves; the member lists travel with the port messages);
- deletions: `*_delete`, and a named thing that no longer exists is sent as deleted; a port named
  as deleted that still exists (the ports API names a port that left its host so) is sent as
  updated: the agent of its old host sees it bound elsewhere.
Callers name what they changed with `svc.agents.changed(...)` (stratus/network/notify.py): the
routers whose interfaces, gateway or floating IPs changed, the network whose DHCP port was deleted,
and the groups whose rules changed (also rules removed by a cascade).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from stratus.network import models
from stratus.network.notify import Changes
from stratus.network.rpc import (
    DHCP_OWNER,
    ROUTER_GATEWAY_OWNER,
    ROUTER_INTERFACE_OWNER,
    DhcpHost,
    DhcpPort,
    FixedIP,
    FloatingIPDoc,
    GatewayAddress,
    HostState,
    NetworkDoc,
    PortDoc,
    RouterDoc,
    RouterGateway,
    RouterInterface,
    RuleDoc,
    SecurityGroupDoc,
    Segment,
    SubnetDoc,
    dhcp_entries,
    member_addresses,
    members_by_ethertype,
    sorted_hosts,
)

# Ids given as values, or as a SELECT of one column of ids (so big sets stay in the database).
Ids = Collection[str] | sa.Select[Any]

N, S, P, A = models.Network, models.Subnet, models.Port, models.IPAllocation
PSG, G, RULE = models.PortSecurityGroup, models.SecurityGroup, models.SecurityGroupRule
R, F = models.Router, models.FloatingIP


@dataclass
class Batch:
    """The documents one committed transaction sends, all stamped `stamp`."""

    stamp: int
    networks: dict[str, NetworkDoc] = field(default_factory=dict)
    ports: dict[str, PortDoc] = field(default_factory=dict)
    routers: dict[str, RouterDoc] = field(default_factory=dict)
    security_groups: dict[str, SecurityGroupDoc] = field(default_factory=dict)
    deleted_networks: set[str] = field(default_factory=set)
    # port id -> (network id, host), None where not known
    deleted_ports: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    deleted_routers: set[str] = field(default_factory=set)
    deleted_security_groups: set[str] = field(default_factory=set)


def clock(session: Session) -> int:
    """The database's clock in microseconds: one clock for every process that stamps documents.
    (SQLite is reached by one host only, whose clock serves.)"""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        value = session.scalar(sa.text("SELECT EXTRACT(EPOCH FROM clock_timestamp())"))
    elif dialect in ("mysql", "mariadb"):
        value = session.scalar(sa.text("SELECT UNIX_TIMESTAMP(NOW(6))"))
    else:
        return time.time_ns() // 1000
    return int(Decimal(str(value)) * 1_000_000)


def _in(column: Any, ids: Ids) -> sa.ColumnElement[bool]:
    if isinstance(ids, sa.Select):
        return column.in_(ids)
    return column.in_(sorted(set(ids)))


def _segment(row: Any) -> Segment:
    return Segment(network_type=row.network_type, physical_network=row.physical_network,
                   segmentation_id=row.segmentation_id)


def _subnet(row: models.Subnet) -> SubnetDoc:
    return SubnetDoc(id=row.id, ip_version=row.ip_version, cidr=row.cidr, gateway_ip=row.gateway_ip,
                     enable_dhcp=row.enable_dhcp, ipv6_address_mode=row.ipv6_address_mode,
                     ipv6_ra_mode=row.ipv6_ra_mode, dns_nameservers=list(row.dns_nameservers or []),
                     host_routes=[dict(r) for r in row.host_routes or []],
                     allocation_pools=[dict(p) for p in row.allocation_pools or []])


# --- documents -----------------------------------------------------------------------------------------


def networks(session: Session, ids: Ids) -> dict[str, NetworkDoc]:
    """Network documents, with subnets, DHCP port and every DHCP reservation (4 statements)."""
    rows = session.execute(sa.select(N.id, N.admin_state_up, N.mtu, N.network_type, N.physical_network,
                                     N.segmentation_id).where(_in(N.id, ids))).all()
    if not rows:
        return {}
    subnets: dict[str, list[SubnetDoc]] = defaultdict(list)
    for subnet in session.scalars(sa.select(S).where(_in(S.network_id, ids)).order_by(S.created_at, S.id)):
        subnets[subnet.network_id].append(_subnet(subnet))
    dhcp_ports: dict[str, tuple[str, str]] = {}
    for port_id, network_id, mac in session.execute(
            sa.select(P.id, P.network_id, P.mac_address).where(_in(P.network_id, ids), P.device_owner == DHCP_OWNER)
            .order_by(P.created_at, P.id)):
        dhcp_ports.setdefault(network_id, (port_id, mac))
    # Every address of every port of these networks, with the port's MAC.
    addresses: dict[str, dict[str, tuple[str, list[FixedIP]]]] = defaultdict(dict)
    for network_id, port_id, subnet_id, ip, mac in session.execute(
            sa.select(A.network_id, A.port_id, A.subnet_id, A.ip_address, P.mac_address)
            .join(P, P.id == A.port_id).where(_in(A.network_id, ids)).order_by(A.ip_address)):
        addresses[network_id].setdefault(port_id, (mac, []))[1].append(FixedIP(subnet_id=subnet_id, ip_address=ip))
    docs: dict[str, NetworkDoc] = {}
    for row in rows:
        dhcp_subnets = frozenset(s["id"] for s in subnets[row.id] if s["enable_dhcp"])
        hosts: list[DhcpHost] = []
        for port_id, (mac, fixed_ips) in addresses[row.id].items():
            hosts.extend(dhcp_entries(port_id, mac, fixed_ips, dhcp_subnets))
        dhcp: DhcpPort | None = None
        if dhcp_subnets and row.id in dhcp_ports:
            port_id, mac = dhcp_ports[row.id]
            dhcp = DhcpPort(port_id=port_id, mac_address=mac,
                            addresses=list(addresses[row.id].get(port_id, (mac, []))[1]))
        docs[row.id] = NetworkDoc(id=row.id, admin_state_up=row.admin_state_up, mtu=row.mtu, segment=_segment(row),
                                  subnets=subnets[row.id], dhcp=dhcp, dhcp_hosts=sorted_hosts(hosts))
    return docs


def ports(session: Session, ids: Ids) -> dict[str, PortDoc]:
    """Port documents (4 statements)."""
    rows = session.execute(sa.select(P.id, P.network_id, P.binding_host_id, P.mac_address, P.admin_state_up,
                                     P.device_owner, P.device_id, P.port_security_enabled,
                                     P.allowed_address_pairs).where(_in(P.id, ids))).all()
    if not rows:
        return {}
    fixed_ips: dict[str, list[FixedIP]] = defaultdict(list)
    for port_id, subnet_id, ip in session.execute(
            sa.select(A.port_id, A.subnet_id, A.ip_address).where(_in(A.port_id, ids)).order_by(A.ip_address)):
        fixed_ips[port_id].append(FixedIP(subnet_id=subnet_id, ip_address=ip))
    groups: dict[str, list[str]] = defaultdict(list)
    for port_id, group_id in session.execute(
            sa.select(PSG.port_id, PSG.security_group_id).where(_in(PSG.port_id, ids))
            .order_by(PSG.security_group_id)):
        groups[port_id].append(group_id)
    nets = {row.id: row for row in session.execute(
        sa.select(N.id, N.mtu, N.network_type, N.physical_network, N.segmentation_id)
        .where(N.id.in_(sorted({r.network_id for r in rows}))))}
    docs: dict[str, PortDoc] = {}
    for row in rows:
        net = nets.get(row.network_id)
        if net is None:  # its network went in the same instant: the port is going too
            continue
        docs[row.id] = PortDoc(
            id=row.id, network_id=row.network_id, host=row.binding_host_id or "", mac_address=row.mac_address,
            admin_state_up=row.admin_state_up, device_owner=row.device_owner or "", device_id=row.device_id or "",
            fixed_ips=fixed_ips[row.id], port_security_enabled=row.port_security_enabled,
            security_group_ids=groups[row.id],
            allowed_address_pairs=[{"ip_address": p["ip_address"], "mac_address": p.get("mac_address") or
                                    row.mac_address} for p in row.allowed_address_pairs or []],
            segment=_segment(net), mtu=net.mtu)
    return docs


def routers(session: Session, ids: Ids) -> dict[str, RouterDoc]:
    """Router documents with gateway, interfaces and floating IPs (5 statements)."""
    rows = session.execute(sa.select(R.id, R.admin_state_up, R.enable_snat, R.routes, R.gw_port_id)
                           .where(_in(R.id, ids))).all()
    if not rows:
        return {}
    chosen = sa.select(R.id).where(_in(R.id, ids))
    owned = sa.or_(sa.and_(P.device_owner == ROUTER_INTERFACE_OWNER, P.device_id.in_(chosen)),
                   P.id.in_(sa.select(R.gw_port_id).where(_in(R.id, ids), R.gw_port_id.is_not(None))))
    port_rows = {row.id: row for row in session.execute(
        sa.select(P.id, P.network_id, P.mac_address, P.device_owner, P.device_id).where(owned))}
    addresses: dict[str, list[Any]] = defaultdict(list)
    for address in session.execute(
            sa.select(A.port_id, A.subnet_id, A.ip_address, S.cidr, S.gateway_ip)
            .join(S, S.id == A.subnet_id).where(A.port_id.in_(sa.select(P.id).where(owned)))
            .order_by(A.ip_address)):
        addresses[address.port_id].append(address)
    nets = {row.id: row for row in session.execute(
        sa.select(N.id, N.mtu, N.network_type, N.physical_network, N.segmentation_id)
        .where(N.id.in_(sa.select(P.network_id).where(owned))))}
    fips: dict[str, list[FloatingIPDoc]] = defaultdict(list)
    for fip in session.execute(
            sa.select(F.id, F.router_id, F.floating_ip_address, F.fixed_ip_address, F.fixed_port_id)
            .where(_in(F.router_id, ids), F.fixed_port_id.is_not(None), F.fixed_ip_address.is_not(None))
            .order_by(F.id)):
        fips[fip.router_id or ""].append(FloatingIPDoc(
            id=fip.id, floating_ip_address=fip.floating_ip_address, fixed_ip_address=fip.fixed_ip_address or "",
            port_id=fip.fixed_port_id or ""))
    interfaces: dict[str, list[RouterInterface]] = defaultdict(list)
    for port in sorted(port_rows.values(), key=lambda p: p.id):
        net = nets.get(port.network_id)
        if port.device_owner != ROUTER_INTERFACE_OWNER or net is None:
            continue
        for address in addresses[port.id]:
            interfaces[port.device_id].append(RouterInterface(
                port_id=port.id, subnet_id=address.subnet_id, network_id=port.network_id,
                mac_address=port.mac_address, ip_address=address.ip_address, cidr=address.cidr,
                segment=_segment(net), mtu=net.mtu))
    docs: dict[str, RouterDoc] = {}
    for row in rows:
        gateway: RouterGateway | None = None
        gw_port = port_rows.get(row.gw_port_id) if row.gw_port_id else None
        gw_net = nets.get(gw_port.network_id) if gw_port is not None else None
        if gw_port is not None and gw_net is not None:
            gateway = RouterGateway(
                network_id=gw_port.network_id, port_id=gw_port.id, mac_address=gw_port.mac_address,
                segment=_segment(gw_net), mtu=gw_net.mtu,
                addresses=[GatewayAddress(subnet_id=a.subnet_id, ip_address=a.ip_address, cidr=a.cidr,
                                          gateway_ip=a.gateway_ip) for a in addresses[gw_port.id]])
        docs[row.id] = RouterDoc(
            id=row.id, admin_state_up=row.admin_state_up, enable_snat=row.enable_snat, gateway=gateway,
            interfaces=interfaces[row.id],
            routes=[{"destination": r["destination"], "nexthop": r["nexthop"]} for r in row.routes or []],
            floating_ips=fips[row.id])
    return docs


def security_groups(session: Session, ids: Ids, *, members: bool = True) -> dict[str, SecurityGroupDoc]:
    """Security group documents with rules (2 statements) and, unless `members` is false, the
    addresses of their member ports (2 more)."""
    rows = session.execute(sa.select(G.id, G.stateful).where(_in(G.id, ids))).all()
    if not rows:
        return {}
    rules: dict[str, list[RuleDoc]] = defaultdict(list)
    for rule in session.execute(
            sa.select(RULE.id, RULE.security_group_id, RULE.direction, RULE.ethertype, RULE.protocol,
                      RULE.port_range_min, RULE.port_range_max, RULE.remote_ip_prefix, RULE.remote_group_id)
            .where(_in(RULE.security_group_id, ids)).order_by(RULE.created_at, RULE.id)):
        rules[rule.security_group_id].append(RuleDoc(
            id=rule.id, direction=rule.direction, ethertype=rule.ethertype, protocol=rule.protocol,
            port_range_min=rule.port_range_min, port_range_max=rule.port_range_max,
            remote_ip_prefix=rule.remote_ip_prefix, remote_group_id=rule.remote_group_id))
    docs = {row.id: SecurityGroupDoc(id=row.id, stateful=row.stateful, rules=rules[row.id]) for row in rows}
    if not members:
        return docs
    ips: dict[str, list[str]] = defaultdict(list)
    for port_id, ip in session.execute(
            sa.select(A.port_id, A.ip_address).where(A.port_id.in_(
                sa.select(PSG.port_id).where(_in(PSG.security_group_id, ids))))):
        ips[port_id].append(ip)
    member_ports: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for group_id, port_id, pairs in session.execute(
            sa.select(PSG.security_group_id, PSG.port_id, P.allowed_address_pairs)
            .join(P, P.id == PSG.port_id).where(_in(PSG.security_group_id, ids))):
        member_ports[group_id][port_id] = member_addresses(ips[port_id], pairs or [])
    for group_id, doc in docs.items():
        by_port = dict(sorted(member_ports[group_id].items()))
        doc["member_ports"] = by_port
        doc["members"] = members_by_ethertype(a for addresses in by_port.values() for a in addresses)
    return docs


def with_remote_groups(session: Session, ids: Ids) -> dict[str, SecurityGroupDoc]:
    """The groups `ids` and the groups their rules name as remote groups (whose members they need)."""
    found = security_groups(session, ids)
    remote = {r["remote_group_id"] for doc in found.values() for r in doc["rules"] if r["remote_group_id"]}
    if remote - found.keys():
        found.update(security_groups(session, remote - found.keys()))
    return found


# --- what to send -----------------------------------------------------------------------------------


def plan(session: Session, changes: Changes) -> Batch:
    """The documents that `changes` (one committed transaction) makes stale; see the module's docstring."""
    batch = Batch(stamp=clock(session))
    batch.deleted_networks = set(changes.deleted_networks)
    batch.deleted_routers = set(changes.deleted_routers)
    batch.deleted_security_groups = set(changes.deleted_security_groups)
    port_ids = set(changes.ports)
    if port_ids:
        batch.ports = ports(session, port_ids)
    # A port named as deleted that still exists left its host (the ports API says so on a host
    # change): it is sent as updated, and the agent of its old host sees it bound elsewhere.
    batch.deleted_ports = {pid: (net, host) for pid, (net, host) in changes.deleted_ports.items()
                           if pid not in batch.ports}
    for missing in port_ids - batch.ports.keys():
        batch.deleted_ports.setdefault(missing, (None, None))

    named_networks = changes.networks - batch.deleted_networks
    network_ids = named_networks | {p["network_id"] for p in batch.ports.values() if p["device_owner"] == DHCP_OWNER}
    network_ids -= batch.deleted_networks
    if network_ids:
        batch.networks = networks(session, network_ids)
        batch.deleted_networks |= named_networks - batch.networks.keys()

    named_routers = changes.routers - batch.deleted_routers
    router_ids = named_routers | {p["device_id"] for p in batch.ports.values()
                                  if p["device_owner"] == ROUTER_INTERFACE_OWNER and p["device_id"]}
    implied = []
    if port_ids:
        implied.append(R.gw_port_id.in_(sorted(port_ids)))
    if named_networks:
        on_networks = P.network_id.in_(sorted(named_networks))
        implied.append(R.id.in_(sa.select(P.device_id).where(on_networks, P.device_owner == ROUTER_INTERFACE_OWNER)))
        implied.append(R.gw_port_id.in_(sa.select(P.id).where(on_networks, P.device_owner == ROUTER_GATEWAY_OWNER)))
    if implied:
        router_ids |= set(session.scalars(sa.select(R.id).where(sa.or_(*implied))))
    router_ids -= batch.deleted_routers
    if router_ids:
        batch.routers = routers(session, router_ids)
        batch.deleted_routers |= named_routers - batch.routers.keys()

    group_ids = changes.security_groups - batch.deleted_security_groups
    if group_ids:
        batch.security_groups = security_groups(session, group_ids, members=False)
        batch.deleted_security_groups |= group_ids - batch.security_groups.keys()
    return batch


def host_state(session: Session, host: str, roles: Iterable[str]) -> HostState:
    """The full desired state of an agent on `host` playing `roles` (see rpc.HostState)."""
    roles = sorted(set(roles))
    stamp = clock(session)
    bound = sa.select(P.id).where(P.binding_host_id == host) if host else None
    port_docs = ports(session, bound) if "l2" in roles and bound is not None else {}
    wanted_networks = []
    if port_docs:
        wanted_networks.append(N.id.in_(sorted({p["network_id"] for p in port_docs.values()})))
    if "dhcp" in roles:
        wanted_networks.append(N.id.in_(sa.select(S.network_id).where(S.enable_dhcp.is_(True))))
    network_docs = networks(session, sa.select(N.id).where(sa.or_(*wanted_networks))) if wanted_networks else {}
    group_ids = sorted({g for p in port_docs.values() for g in p["security_group_ids"]})
    group_docs = with_remote_groups(session, group_ids) if group_ids else {}
    router_docs = routers(session, sa.select(R.id)) if "l3" in roles else {}
    return HostState(stamp=stamp, host=host, roles=roles, networks=list(network_docs.values()),
                     ports=list(port_docs.values()), routers=list(router_docs.values()),
                     security_groups=list(group_docs.values()))
