"""/v2.0/subnets

A subnet is seen by whoever sees its network. Only the network's owner (or an admin) adds one; a
subnet with DHCP gives the network's DHCP port (device_owner `network:dhcp`) an address on it, so
the DHCP server of the data plane has one.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request, Response
from pydantic import Field
from sqlalchemy.orm import Session

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.network import ipam, models, ports, quotas
from stratus.network.api import listing
from stratus.network.api.deps import Body, caller, enforce, project_for_create, service, standard_view, touch
from stratus.network.api.networks import NETWORK_OWNED
from stratus.network.errors import (
    InvalidInput,
    IpAddressGenerationFailure,
    IpAddressInUse,
    SubnetInUse,
)
from stratus.network.service import NetworkService
from stratus.network.visibility import subnet_scope, visible_network, visible_subnet

router = APIRouter(prefix="/v2.0", tags=["subnets"])
Caller = Annotated[RequestContext, Depends(caller)]

# The DHCP port's device id: "dhcp" + an id that names no host (one DHCP port per network) + the network.
_DHCP_DEVICE = uuid.uuid5(uuid.NAMESPACE_DNS, "dhcp.stratus")
_READ_ONLY = ("cidr", "ip_version", "network_id", "ipv6_ra_mode", "ipv6_address_mode", "subnetpool_id",
              "project_id", "tenant_id", "segment_id", "prefixlen", "use_default_subnetpool")


class Pool(Body):
    start: str
    end: str


class HostRoute(Body):
    destination: str
    nexthop: str


class SubnetFields(Body):
    name: str | None = Field(None, max_length=255)
    description: str | None = Field(None, max_length=255)
    gateway_ip: str | None = None
    allocation_pools: list[Pool] | None = None
    dns_nameservers: list[str] | None = None
    host_routes: list[HostRoute] | None = None
    enable_dhcp: bool | None = None
    # Accepted so that the read-only ones are refused with Neutron's words instead of "extra input".
    cidr: str | None = None
    ip_version: int | None = None
    network_id: str | None = None
    ipv6_ra_mode: str | None = None
    ipv6_address_mode: str | None = None
    subnetpool_id: str | None = None
    prefixlen: int | None = None
    use_default_subnetpool: bool | None = None
    segment_id: str | None = None
    service_types: list[str] | None = None
    project_id: str | None = None
    tenant_id: str | None = None


class SubnetCreateBody(Body):
    subnet: SubnetFields


class SubnetUpdateBody(Body):
    subnet: SubnetFields


def subnet_view(row: models.Subnet) -> dict[str, Any]:
    view = standard_view(row)
    view.update({
        "network_id": row.network_id, "ip_version": row.ip_version, "cidr": row.cidr,
        "gateway_ip": row.gateway_ip, "allocation_pools": [dict(p) for p in row.allocation_pools or []],
        "dns_nameservers": list(row.dns_nameservers or []), "host_routes": [dict(r) for r in row.host_routes or []],
        "enable_dhcp": row.enable_dhcp, "ipv6_ra_mode": row.ipv6_ra_mode, "ipv6_address_mode": row.ipv6_address_mode,
        "subnetpool_id": None, "segment_id": None, "service_types": [], "dns_publish_fixed_ip": False,
    })
    return view


def _collection() -> listing.Collection:
    m = models.Subnet
    return listing.Collection(
        "subnets", m,
        columns={"id": m.id, "name": m.name, "description": m.description, "project_id": m.project_id,
                 "network_id": m.network_id, "ip_version": m.ip_version, "cidr": m.cidr, "gateway_ip": m.gateway_ip,
                 "enable_dhcp": m.enable_dhcp, "ipv6_ra_mode": m.ipv6_ra_mode,
                 "ipv6_address_mode": m.ipv6_address_mode, "created_at": m.created_at, "updated_at": m.updated_at,
                 "revision_number": m.revision_number},
        view=subnet_view)


def _may_change(request: Request, ctx: RequestContext, subnet: models.Subnet, network: models.Network) -> None:
    """The subnet's or the network's owner, or an admin (403 for others who see it through a shared network)."""
    if ctx.project_id and ctx.project_id == subnet.project_id:
        return
    enforce(request, ctx, "create_subnet:shared_network", {"network_project_id": network.project_id})


# -- the network's DHCP port --------------------------------------------------------------------------


def dhcp_device_id(network_id: str) -> str:
    return f"dhcp{_DHCP_DEVICE}-{network_id}"


def _dhcp_port(session: Session, network_id: str) -> models.Port | None:
    return session.scalars(sa.select(models.Port).options(*ports.LOAD_OPTIONS).where(
        models.Port.network_id == network_id, models.Port.device_owner == ports.DHCP_OWNER)
        .order_by(models.Port.created_at, models.Port.id)).first()


def sync_dhcp(session: Session, svc: NetworkService, network: models.Network, subnet: models.Subnet) -> None:
    """Give the network's DHCP port an address on `subnet` when it has DHCP, take it back when not.

    A subnet without a free address still gets created: its DHCP server just has nowhere to sit.
    """
    port = _dhcp_port(session, network.id)
    holds = port is not None and any(a.subnet_id == subnet.id for a in port.fixed_ips)
    if subnet.enable_dhcp and not holds:
        try:
            with session.begin_nested():
                if port is None:
                    ports.create_port(session, svc, project_id=network.project_id, network=network,
                                      fixed_ips=[{"subnet_id": subnet.id}], device_owner=ports.DHCP_OWNER,
                                      device_id=dhcp_device_id(network.id), security_group_ids=[],
                                      check_quota=False)
                else:
                    ipam.allocate(session, network=network, port=port, fixed_ips=[{"subnet_id": subnet.id}])
                    touch(port)
                    svc.agents.changed(session, ports=[port.id])
        except IpAddressGenerationFailure:
            return
    elif not subnet.enable_dhcp and port is not None and holds:
        ipam.release(session, port.id, [(a.subnet_id, a.ip_address) for a in port.fixed_ips
                                        if a.subnet_id == subnet.id])
        if all(a.subnet_id == subnet.id for a in port.fixed_ips):
            ports.delete_port(session, svc, port)
        else:
            touch(port)
            svc.agents.changed(session, ports=[port.id])


# -- routes -------------------------------------------------------------------------------------------


@router.get("/subnets")
def list_subnets(request: Request, ctx: Caller) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        return listing.list_items(request, session, _collection(), subnet_scope(ctx))


@router.get("/subnets/{subnet_id}")
def show_subnet(request: Request, subnet_id: str, ctx: Caller) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        return {"subnet": subnet_view(visible_subnet(session, ctx, subnet_id))}


@router.post("/subnets", status_code=201)
def create_subnet(request: Request, body: SubnetCreateBody, ctx: Caller) -> dict[str, Any]:
    svc, fields = service(request), body.subnet
    given = fields.model_fields_set
    if fields.network_id is None:
        raise InvalidInput("network_id is required to create a subnet")
    if fields.ip_version is None:
        raise InvalidInput("ip_version is required to create a subnet")
    if fields.subnetpool_id is not None or fields.prefixlen is not None or fields.use_default_subnetpool:
        raise errors.BadRequest("Subnet pools are not supported: give the subnet a cidr.")
    if fields.segment_id is not None or fields.service_types:
        raise errors.BadRequest("Routed network segments and subnet service types are not supported.")
    if fields.cidr is None:
        raise errors.BadRequest("Bad subnets request: a cidr must be specified in the absence of a subnet pool.")
    project_id = project_for_create(ctx, fields.project_id, fields.tenant_id)
    subnet_id = models.new_id()
    enable_dhcp = True if fields.enable_dhcp is None else fields.enable_dhcp
    plan = ipam.plan_subnet(
        subnet_id=subnet_id, ip_version=fields.ip_version, cidr=fields.cidr,
        gateway_ip=fields.gateway_ip if "gateway_ip" in given else ipam.UNSET,
        allocation_pools=None if fields.allocation_pools is None else [p.model_dump() for p in fields.allocation_pools],
        dns_nameservers=fields.dns_nameservers or [],
        host_routes=[r.model_dump() for r in fields.host_routes or []], enable_dhcp=enable_dhcp,
        ipv6_ra_mode=fields.ipv6_ra_mode, ipv6_address_mode=fields.ipv6_address_mode)
    network_id = fields.network_id

    def work(session: Session) -> dict[str, Any]:
        ipam.open_write_transaction(session)
        network = visible_network(session, ctx, network_id, for_update=True)
        if not ctx.is_admin and network.project_id != ctx.project_id:
            enforce(request, ctx, "create_subnet:shared_network", {"network_project_id": network.project_id})
        quotas.check(session, svc.settings, project_id, "subnet")
        existing = session.scalars(sa.select(models.Subnet).where(models.Subnet.network_id == network.id)).all()
        ipam.check_cidr_overlap(existing, plan.cidr, network.id)
        subnet = models.Subnet(
            id=subnet_id, project_id=project_id, network_id=network.id, name=fields.name or "",
            description=fields.description or "", ip_version=fields.ip_version, cidr=plan.cidr,
            gateway_ip=plan.gateway_ip, enable_dhcp=enable_dhcp, ipv6_ra_mode=fields.ipv6_ra_mode,
            ipv6_address_mode=fields.ipv6_address_mode, allocation_pools=plan.allocation_pools,
            dns_nameservers=plan.dns_nameservers, host_routes=plan.host_routes, tags=[], revision_number=0)
        session.add(subnet)
        session.flush()
        sync_dhcp(session, svc, network, subnet)
        svc.agents.changed(session, networks=[network.id])
        return subnet_view(subnet)

    return {"subnet": ipam.retrying(svc.db, work)}


@router.put("/subnets/{subnet_id}")
def update_subnet(request: Request, subnet_id: str, body: SubnetUpdateBody, ctx: Caller) -> dict[str, Any]:
    svc, fields = service(request), body.subnet
    given = fields.model_fields_set
    for name in _READ_ONLY:
        if name in given:
            raise errors.BadRequest(f"Cannot update read-only attribute {name}")
    if "service_types" in given and fields.service_types:
        raise errors.BadRequest("Subnet service types are not supported.")

    def work(session: Session) -> dict[str, Any]:
        ipam.open_write_transaction(session)
        subnet = visible_subnet(session, ctx, subnet_id)
        network = visible_network(session, ctx, subnet.network_id, for_update=True)
        _may_change(request, ctx, subnet, network)
        net = ipam.parse_cidr(subnet.cidr, subnet.ip_version)
        pools = (ipam.validate_pools(net, [p.model_dump() for p in fields.allocation_pools])
                 if fields.allocation_pools is not None else list(subnet.allocation_pools or []))
        gateway = fields.gateway_ip if "gateway_ip" in given else subnet.gateway_ip
        gateway = ipam.validate_gateway(net, gateway, pools)
        if gateway != subnet.gateway_ip:
            _check_gateway_change(session, subnet, gateway)
        enable_dhcp = subnet.enable_dhcp if fields.enable_dhcp is None else fields.enable_dhcp
        ipam.validate_ipv6_modes(net, subnet.ipv6_ra_mode, subnet.ipv6_address_mode, enable_dhcp)
        if fields.dns_nameservers is not None:
            subnet.dns_nameservers = ipam.validate_dns(subnet.id, subnet.ip_version, fields.dns_nameservers)
        if fields.host_routes is not None:
            subnet.host_routes = ipam.validate_host_routes(subnet.id, subnet.ip_version,
                                                           [r.model_dump() for r in fields.host_routes])
        subnet.allocation_pools, subnet.gateway_ip = pools, gateway
        for name in ("name", "description"):
            if name in given and getattr(fields, name) is not None:
                setattr(subnet, name, getattr(fields, name))
        dhcp_changed = enable_dhcp != subnet.enable_dhcp
        subnet.enable_dhcp = enable_dhcp
        touch(subnet)
        session.flush()
        if dhcp_changed:
            sync_dhcp(session, svc, network, subnet)
        svc.agents.changed(session, networks=[network.id])
        return subnet_view(subnet)

    return {"subnet": ipam.retrying(svc.db, work)}


def _check_gateway_change(session: Session, subnet: models.Subnet, gateway: str | None) -> None:
    """A router interface holding the current gateway keeps it; a port holding the new one keeps that."""
    held = session.execute(sa.select(models.IPAllocation.ip_address, models.Port.id, models.Port.device_owner)
                           .join(models.Port, models.Port.id == models.IPAllocation.port_id)
                           .where(models.IPAllocation.subnet_id == subnet.id,
                                  models.IPAllocation.ip_address.in_([a for a in (subnet.gateway_ip, gateway) if a])))
    for address, port_id, owner in held:
        if address == subnet.gateway_ip and owner in ipam.ROUTER_OWNERS:
            raise ipam.GatewayIpInUse(address, port_id)
        if address == gateway and owner not in ipam.ROUTER_OWNERS:
            raise IpAddressInUse(address, subnet.network_id)


@router.delete("/subnets/{subnet_id}", status_code=204)
def delete_subnet(request: Request, subnet_id: str, ctx: Caller) -> Response:
    svc = service(request)

    def work(session: Session) -> None:
        ipam.open_write_transaction(session)
        subnet = visible_subnet(session, ctx, subnet_id)
        network = visible_network(session, ctx, subnet.network_id, for_update=True)
        _may_change(request, ctx, subnet, network)
        held = session.execute(sa.select(models.IPAllocation.port_id, models.IPAllocation.ip_address,
                                         models.Port.device_owner)
                               .join(models.Port, models.Port.id == models.IPAllocation.port_id)
                               .where(models.IPAllocation.subnet_id == subnet.id)).all()
        auto = ipam.is_auto_address(subnet)
        for _port_id, _address, owner in held:
            # Network-owned ports give their address back; so do ports whose address SLAAC made up.
            if owner not in NETWORK_OWNED and not (auto and owner not in ipam.ROUTER_OWNERS):
                raise SubnetInUse(subnet.id)
        touched = sorted({port_id for port_id, _, _ in held})
        session.execute(sa.delete(models.IPAllocation).where(models.IPAllocation.subnet_id == subnet.id),
                        execution_options={"synchronize_session": False})
        dhcp = _dhcp_port(session, network.id)
        if dhcp is not None and not dhcp.fixed_ips:
            ports.delete_port(session, svc, dhcp)
            touched = [p for p in touched if p != dhcp.id]
        groups = session.scalars(sa.select(models.PortSecurityGroup.security_group_id).distinct()
                                 .where(models.PortSecurityGroup.port_id.in_(touched))).all() if touched else []
        session.execute(sa.delete(models.Subnet).where(models.Subnet.id == subnet.id))
        svc.agents.changed(session, networks=[network.id], ports=touched, security_groups=groups)

    ipam.retrying(svc.db, work)
    return Response(status_code=204)
