"""Routers: the external gateway, interfaces on subnets, and extra routes.

A router owns ports told apart by `device_owner`: one `network:router_gateway` port on an external
network (project "" as Neutron makes it, so it counts against no project's quota) and one
`network:router_interface` port per attached subnet (the subnet's project, holding the subnet's
gateway address or the address of the port that was attached). Floating IPs reach a fixed address
through the router whose interface is on that address's subnet and whose gateway is on the floating
IP's network; the floating IP logic is in `floatingips.py`.

Every change here is registered with `svc.agents.changed(...)` in the same transaction, so the agents
hear of it once it commits.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload, subqueryload

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.network import models, quotas
from stratus.network.api.deps import owned_by_caller, standard_view, touch
from stratus.network.errors import (
    InvalidInput,
    PortNotFound,
    RouterInterfaceNotFound,
    RouterInUse,
    RouterNotFound,
)
from stratus.network.visibility import visible_network, visible_subnet

if TYPE_CHECKING:
    from stratus.network.service import NetworkService

ROUTER_INTERFACE = "network:router_interface"
ROUTER_GATEWAY = "network:router_gateway"
FLOATINGIP = "network:floatingip"
ROUTER_OWNERS = (ROUTER_INTERFACE, ROUTER_GATEWAY)
# Neutron's default `max_routes`.
MAX_ROUTES = 30

# What a router view needs loaded: its gateway port and that port's addresses (for lists: one statement
# per relationship whatever the rows).
LOAD_OPTIONS = (subqueryload(models.Router.gw_port).subqueryload(models.Port.fixed_ips),)
# The same for one router (a FOR UPDATE query cannot be wrapped into a subquery load).
_ONE_OPTIONS = (selectinload(models.Router.gw_port).selectinload(models.Port.fixed_ips),)


# --- faults (the body's `type` is the class name, as Neutron's) ---------------------------------


def bad_router_request(message: str) -> errors.BadRequest:
    return errors.BadRequest(f"Bad router request: {message}.")


class RouterInterfaceNotFoundForSubnet(errors.NotFound):
    def __init__(self, router_id: str, subnet_id: str) -> None:
        super().__init__(f"Router {router_id} has no interface on subnet {subnet_id}")


class RouterInterfaceInUseByFloatingIP(errors.Conflict):
    def __init__(self, router_id: str, subnet_id: str) -> None:
        super().__init__(f"Router interface for subnet {subnet_id} on router {router_id} cannot be deleted, "
                         "as it is required by one or more floating IPs.")


class RouterInterfaceInUseByRoute(errors.Conflict):
    def __init__(self, router_id: str, subnet_id: str) -> None:
        super().__init__(f"Router interface for subnet {subnet_id} on router {router_id} cannot be deleted, "
                         "as it is required by one or more routes.")


class RouterExternalGatewayInUseByFloatingIp(errors.Conflict):
    def __init__(self, router_id: str, network_id: str) -> None:
        super().__init__(f"Gateway cannot be updated for router {router_id}, since a gateway to external network "
                         f"{network_id} is required by one or more floating IPs.")


class RouterExternalGatewayInUseByRoute(errors.Conflict):
    def __init__(self, router_id: str) -> None:
        super().__init__(f"Gateway cannot be updated for router {router_id}, since one or more routes have their "
                         "nexthop on its subnets.")


class PortInUse(errors.Conflict):
    def __init__(self, port_id: str, network_id: str, device_id: str) -> None:
        super().__init__(f"Unable to complete operation on port {port_id} for network {network_id}. "
                         f"Port already has an attached device {device_id}.")


class SubnetMismatchForPort(errors.BadRequest):
    def __init__(self, port_id: str, subnet_id: str) -> None:
        super().__init__(f"Subnet on port {port_id} does not match the requested subnet {subnet_id}")


class InvalidRoutes(errors.BadRequest):
    def __init__(self, routes: Any, reason: str) -> None:
        super().__init__(f"Invalid format for routes: {routes}, {reason}")


class RoutesExhausted(errors.BadRequest):
    def __init__(self, router_id: str, limit: int) -> None:
        super().__init__(f"Unable to complete operation for {router_id}. "
                         f"The number of routes exceeds the maximum {limit}.")


class ServicePortInUse(errors.Conflict):
    def __init__(self, port_id: str, reason: str) -> None:
        super().__init__(f"Port {port_id} cannot be deleted directly via the port API: {reason}.")


# --- views and lookups ---------------------------------------------------------------------------


def router_view(router: models.Router) -> dict[str, Any]:
    """The API view; needs LOAD_OPTIONS (the gateway port and its addresses) loaded."""
    view = standard_view(router)
    gateway = router.gw_port
    view.update({
        "admin_state_up": router.admin_state_up, "status": router.status,
        "external_gateway_info": None if gateway is None else {
            "network_id": gateway.network_id, "enable_snat": router.enable_snat,
            "external_fixed_ips": [{"subnet_id": ip.subnet_id, "ip_address": ip.ip_address}
                                   for ip in gateway.fixed_ips]},
        "routes": [dict(route) for route in router.routes or []],
        "distributed": False, "ha": False, "availability_zone_hints": [], "availability_zones": ["nova"],
        "flavor_id": None,
    })
    return view


def router_scope(ctx: RequestContext) -> sa.ColumnElement[bool] | None:
    """Routers are never shared: a project sees its own (an admin all)."""
    return owned_by_caller(models.Router, ctx)


def get_router(session: Session, ctx: RequestContext, router_id: str, *, for_update: bool = False) -> models.Router:
    """A router the caller may see, with its gateway port loaded (404 otherwise)."""
    stmt = sa.select(models.Router).where(models.Router.id == router_id).options(*_ONE_OPTIONS)
    scope = router_scope(ctx)
    if scope is not None:
        stmt = stmt.where(scope)
    if for_update:
        stmt = stmt.with_for_update(of=models.Router)
    router = session.scalars(stmt).first()
    if router is None:
        raise RouterNotFound(router_id)
    return router


def reload(session: Session, router: models.Router) -> models.Router:
    """The router with LOAD_OPTIONS loaded afresh after a change to its gateway port."""
    session.flush()
    session.expire(router)
    fresh = session.scalars(sa.select(models.Router).where(models.Router.id == router.id)
                            .options(*_ONE_OPTIONS).execution_options(populate_existing=True)).one()
    return fresh


def allocations(session: Session, port_ids: Iterable[str]) -> list[models.IPAllocation]:
    """The addresses of some ports, in address order, read from the table (no relationship needed)."""
    ids = list(port_ids)
    if not ids:
        return []
    return list(session.scalars(sa.select(models.IPAllocation).where(models.IPAllocation.port_id.in_(ids))
                                .order_by(models.IPAllocation.port_id, models.IPAllocation.ip_address)))


def router_ports(session: Session, router_id: str, owners: Sequence[str] = ROUTER_OWNERS) -> list[models.Port]:
    return list(session.scalars(
        sa.select(models.Port).where(models.Port.device_id == router_id, models.Port.device_owner.in_(owners))
        .options(selectinload(models.Port.fixed_ips)).order_by(models.Port.created_at, models.Port.id)))


def _subnets(session: Session, ids: Iterable[str]) -> dict[str, models.Subnet]:
    wanted = set(ids)
    if not wanted:
        return {}
    return {s.id: s for s in session.scalars(sa.select(models.Subnet).where(models.Subnet.id.in_(wanted)))}


def _ports_module() -> Any:
    # Imported late: ports.py (another module's author) may import this module to disassociate floating IPs.
    from stratus.network import ports

    return ports


def _notify(svc: NetworkService, session: Session, *, routers: Iterable[str] = (), ports: Iterable[str] = (),
            deleted_routers: Iterable[str] = ()) -> None:
    svc.agents.changed(session, routers=[r for r in routers if r], ports=list(ports),
                       deleted_routers=list(deleted_routers))


# --- create, update, delete ----------------------------------------------------------------------


@dataclass
class GatewayRequest:
    """What `external_gateway_info` asked for; `network_id` None clears the gateway."""

    network_id: str | None
    enable_snat: bool | None = None
    external_fixed_ips: list[dict[str, str]] | None = None


def create_router(session: Session, svc: NetworkService, ctx: RequestContext, *, project_id: str, name: str,
                  description: str, admin_state_up: bool, gateway: GatewayRequest | None) -> models.Router:
    quotas.check(session, svc.settings, project_id, "router")
    router = models.Router(id=models.new_id(), project_id=project_id, name=name, description=description,
                           admin_state_up=admin_state_up, routes=[])
    session.add(router)
    session.flush()
    if gateway is not None and gateway.network_id:
        set_gateway(session, svc, ctx, router, gateway)
    _notify(svc, session, routers=[router.id])
    return reload(session, router)


def set_gateway(session: Session, svc: NetworkService, ctx: RequestContext, router: models.Router,
                gateway: GatewayRequest) -> None:
    """Point the router's gateway where `gateway` says: keep, replace, or remove its gateway port.

    Whether the caller may choose addresses or SNAT is the API's (policy) decision, made before; the
    caller tells the agents about the router (the ports' own changes are recorded by ports.py).
    """
    current = session.get(models.Port, router.gw_port_id) if router.gw_port_id else None
    if gateway.network_id is None:
        if current is not None:
            _refuse_if_floating_ips_need_gateway(session, router, current.network_id)
            _drop_gateway_port(session, svc, router, current)
        router.enable_snat = True
        return
    network = visible_network(session, ctx, gateway.network_id)
    if not network.external:
        raise bad_router_request(f"Network {network.id} is not a valid external network")
    if gateway.enable_snat is not None:
        router.enable_snat = gateway.enable_snat
    elif current is None or current.network_id != network.id:
        router.enable_snat = True
    if current is not None and current.network_id == network.id:
        if gateway.external_fixed_ips is None or _addresses_satisfy(allocations(session, [current.id]),
                                                                    gateway.external_fixed_ips):
            return
    if current is not None:
        if current.network_id != network.id:
            _refuse_if_floating_ips_need_gateway(session, router, current.network_id)
        _drop_gateway_port(session, svc, router, current)
    ports = _ports_module()
    port = ports.create_port(session, svc, project_id="", network=network, fixed_ips=gateway.external_fixed_ips,
                             device_owner=ROUTER_GATEWAY, device_id=router.id, security_group_ids=[],
                             check_quota=False)
    session.flush()
    router.gw_port_id = port.id
    gateway_subnets = _subnets(session, (a.subnet_id for a in allocations(session, [port.id])))
    interface_subnets = router_subnets(session, router.id, (ROUTER_INTERFACE,))
    check_no_overlap(list(gateway_subnets.values()), interface_subnets)


def subnet_ip_version(subnet: models.Subnet) -> int:
    return subnet.ip_version or ipaddress.ip_network(subnet.cidr, strict=False).version


def _addresses_satisfy(have: Sequence[models.IPAllocation], wanted: list[dict[str, str]]) -> bool:
    """Whether the port's addresses already are what `external_fixed_ips` asks for."""
    if len(have) != len(wanted):
        return False
    unused = list(have)
    for spec in wanted:
        match = next((a for a in unused if spec.get("subnet_id") in (None, a.subnet_id)
                      and (spec.get("ip_address") is None or _same_ip(spec["ip_address"], a.ip_address))), None)
        if match is None:
            return False
        unused.remove(match)
    return True


def _same_ip(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


def _refuse_if_floating_ips_need_gateway(session: Session, router: models.Router, network_id: str) -> None:
    used = session.scalar(sa.select(sa.func.count()).select_from(models.FloatingIP).where(
        models.FloatingIP.router_id == router.id, models.FloatingIP.floating_network_id == network_id))
    if used:
        raise RouterExternalGatewayInUseByFloatingIp(router.id, network_id)


def _drop_gateway_port(session: Session, svc: NetworkService, router: models.Router, port: models.Port) -> None:
    router.gw_port_id = None
    session.flush()
    _ports_module().delete_port(session, svc, port)
    session.flush()


def update_router(session: Session, svc: NetworkService, ctx: RequestContext, router: models.Router, *,
                  changes: dict[str, Any], gateway: GatewayRequest | None,
                  routes: list[dict[str, str]] | None) -> models.Router:
    for name in ("name", "description", "admin_state_up"):
        if name in changes and changes[name] is not None:
            setattr(router, name, changes[name])
    if gateway is not None:
        set_gateway(session, svc, ctx, router, gateway)
        session.flush()
        if routes is None and router.routes:
            try:
                validate_routes(session, router, [dict(r) for r in router.routes])
            except InvalidRoutes:
                raise RouterExternalGatewayInUseByRoute(router.id) from None
    if routes is not None:
        router.routes = validate_routes(session, router, routes)
    touch(router)
    _notify(svc, session, routers=[router.id])
    return reload(session, router)


def delete_router(session: Session, svc: NetworkService, router: models.Router) -> None:
    if router_ports(session, router.id, (ROUTER_INTERFACE,)):
        raise RouterInUse(router.id)
    # No interface, so no floating IP can use the router any more; forget stale references anyway.
    session.execute(sa.update(models.FloatingIP).where(models.FloatingIP.router_id == router.id)
                    .values(router_id=None, fixed_port_id=None, fixed_ip_address=None, status="DOWN"))
    gateway = session.get(models.Port, router.gw_port_id) if router.gw_port_id else None
    if gateway is not None:
        _drop_gateway_port(session, svc, router, gateway)
    session.delete(router)
    session.flush()
    svc.agents.changed(session, deleted_routers=[router.id])


# --- routes --------------------------------------------------------------------------------------


def validate_routes(session: Session, router: models.Router, routes: list[dict[str, str]]) -> list[dict[str, str]]:
    """Normalized routes, each with a nexthop on a subnet the router is attached to (400 otherwise)."""
    if len(routes) > MAX_ROUTES:
        raise RoutesExhausted(router.id, MAX_ROUTES)
    result: list[dict[str, str]] = []
    for route in routes:
        normalized = normalize_route(route)
        if normalized in result:
            raise InvalidInput(f"Duplicate hostroute '{route}'")
        result.append(normalized)
    if not result:
        return result
    ports = router_ports(session, router.id)
    own = {ipaddress.ip_address(a.ip_address) for p in ports for a in p.fixed_ips}
    cidrs = [ipaddress.ip_network(s.cidr, strict=False)
             for s in _subnets(session, (a.subnet_id for p in ports for a in p.fixed_ips)).values()]
    for route in result:
        nexthop = ipaddress.ip_address(route["nexthop"])
        if not any(nexthop.version == c.version and nexthop in c for c in cidrs):
            raise InvalidRoutes([route], "the nexthop is not connected with router")
        if nexthop in own:
            raise InvalidRoutes([route], "the nexthop is used by router")
    return result


def normalize_route(route: dict[str, str]) -> dict[str, str]:
    destination, nexthop = route.get("destination"), route.get("nexthop")
    if not isinstance(destination, str) or not isinstance(nexthop, str):
        raise InvalidInput(f"Invalid data format for hostroute: '{route}'")
    try:
        network = ipaddress.ip_network(destination, strict=True)
    except ValueError:
        raise InvalidInput(f"'{destination}' is not a valid IP subnet") from None
    try:
        address = ipaddress.ip_address(nexthop)
    except ValueError:
        raise InvalidInput(f"'{nexthop}' is not a valid IP address") from None
    if network.version != address.version:
        raise InvalidRoutes([route], "the nexthop and the destination are of different IP versions")
    return {"destination": str(network), "nexthop": str(address)}


def add_routes(session: Session, router: models.Router, routes: list[dict[str, str]]) -> None:
    """extraroute-atomic: add routes not already present."""
    current = [dict(r) for r in router.routes or []]
    for route in routes:
        normalized = normalize_route(route)
        if normalized not in current:
            current.append(normalized)
    router.routes = validate_routes(session, router, current)
    touch(router)


def remove_routes(session: Session, router: models.Router, routes: list[dict[str, str]]) -> None:
    """extraroute-atomic: remove routes; ones not present are ignored."""
    gone = [normalize_route(route) for route in routes]
    router.routes = [dict(r) for r in router.routes or [] if dict(r) not in gone]
    touch(router)


# --- interfaces ----------------------------------------------------------------------------------


def router_subnets(session: Session, router_id: str, owners: Sequence[str] = ROUTER_OWNERS) -> list[models.Subnet]:
    """Subnets the router has an address on, through ports of the given owners."""
    stmt = (sa.select(models.Subnet).join(models.IPAllocation, models.IPAllocation.subnet_id == models.Subnet.id)
            .join(models.Port, models.Port.id == models.IPAllocation.port_id)
            .where(models.Port.device_id == router_id, models.Port.device_owner.in_(owners))
            .order_by(models.Subnet.created_at))
    return list(session.scalars(stmt).unique())


def check_no_overlap(new: Sequence[models.Subnet], attached: Sequence[models.Subnet]) -> None:
    """A router cannot route between subnets whose ranges overlap (400), nor hold two ports on one."""
    for subnet in new:
        for other in attached:
            if other.id == subnet.id:
                raise bad_router_request(f"Router already has a port on subnet {subnet.id}")
            mine, theirs = ipaddress.ip_network(subnet.cidr, strict=False), ipaddress.ip_network(other.cidr,
                                                                                                strict=False)
            if mine.version == theirs.version and mine.overlaps(theirs):
                raise bad_router_request(f"Cidr {subnet.cidr} of subnet {subnet.id} overlaps with cidr {other.cidr} "
                                         f"of subnet {other.id}")


def interface_info(router: models.Router, port: models.Port, subnet_ids: list[str]) -> dict[str, Any]:
    return {"id": router.id, "subnet_id": subnet_ids[0] if subnet_ids else None, "subnet_ids": subnet_ids,
            "port_id": port.id, "network_id": port.network_id, "tenant_id": port.project_id,
            "project_id": port.project_id, "tags": list(port.tags or [])}


def add_interface(session: Session, svc: NetworkService, ctx: RequestContext, router: models.Router, *,
                  subnet_id: str | None, port_id: str | None) -> dict[str, Any]:
    if subnet_id and port_id:
        raise bad_router_request("Cannot specify both subnet-id and port-id")
    if not subnet_id and not port_id:
        raise bad_router_request("Either subnet_id or port_id must be specified")
    if port_id:
        port, subnet_ids = _attach_port(session, ctx, router, port_id)
    else:
        port, subnet_ids = _attach_subnet(session, svc, ctx, router, subnet_id or "")
    touch(router)
    _notify(svc, session, routers=[router.id], ports=[port.id])
    return interface_info(router, port, subnet_ids)


def _attach_subnet(session: Session, svc: NetworkService, ctx: RequestContext, router: models.Router,
                   subnet_id: str) -> tuple[models.Port, list[str]]:
    subnet = visible_subnet(session, ctx, subnet_id)
    if not ctx.is_admin and subnet.project_id != ctx.project_id:
        raise bad_router_request(f"Cannot add interface to router {router.id} because the subnet is not owned by "
                                 "project making the request")
    if not subnet.gateway_ip:
        raise bad_router_request("Subnet for router interface must have a gateway IP")
    check_no_overlap([subnet], router_subnets(session, router.id))
    network = session.get(models.Network, subnet.network_id)
    assert network is not None
    port = _ports_module().create_port(
        session, svc, project_id=subnet.project_id, network=network,
        fixed_ips=[{"subnet_id": subnet.id, "ip_address": subnet.gateway_ip}], device_owner=ROUTER_INTERFACE,
        device_id=router.id, security_group_ids=[], check_quota=False)
    session.flush()
    return port, [subnet.id]


def _attach_port(session: Session, ctx: RequestContext, router: models.Router,
                 port_id: str) -> tuple[models.Port, list[str]]:
    port = _ports_module().get_port(session, ctx, port_id, for_update=True)
    if not ctx.is_admin and port.project_id != ctx.project_id:
        raise PortNotFound(port_id)
    if port.device_id or port.device_owner:
        raise PortInUse(port.id, port.network_id, port.device_id or port.device_owner)
    held = allocations(session, [port.id])
    if not held:
        raise bad_router_request("Router port must have at least one fixed IP")
    subnets = _subnets(session, (a.subnet_id for a in held))
    if len({s.id for s in subnets.values() if subnet_ip_version(s) == 4}) > 1:
        raise bad_router_request("Cannot have multiple IPv4 subnets on router port")
    ordered = [subnets[sid] for sid in dict.fromkeys(a.subnet_id for a in held)]
    check_no_overlap(ordered, router_subnets(session, router.id))
    port.device_id, port.device_owner = router.id, ROUTER_INTERFACE
    touch(port)
    session.flush()
    return port, [s.id for s in ordered]


def remove_interface(session: Session, svc: NetworkService, ctx: RequestContext, router: models.Router, *,
                     subnet_id: str | None, port_id: str | None) -> dict[str, Any]:
    if not subnet_id and not port_id:
        raise bad_router_request("Either subnet_id or port_id must be specified")
    interfaces = router_ports(session, router.id, (ROUTER_INTERFACE,))
    if port_id:
        port = next((p for p in interfaces if p.id == port_id), None)
        if port is None:
            raise RouterInterfaceNotFound(router.id, f"id {port_id}")
        if subnet_id and subnet_id not in {a.subnet_id for a in port.fixed_ips}:
            raise SubnetMismatchForPort(port.id, subnet_id)
    else:
        visible_subnet(session, ctx, subnet_id or "")
        port = next((p for p in interfaces if any(a.subnet_id == subnet_id for a in p.fixed_ips)), None)
        if port is None:
            raise RouterInterfaceNotFoundForSubnet(router.id, subnet_id or "")
    subnet_ids = list(dict.fromkeys(a.subnet_id for a in port.fixed_ips))
    _refuse_if_interface_needed(session, router, port, subnet_ids)
    info = interface_info(router, port, subnet_ids)
    deleted = {port.id: (port.network_id, port.binding_host_id)}
    _ports_module().delete_port(session, svc, port)
    session.flush()
    touch(router)
    svc.agents.changed(session, routers=[router.id], deleted_ports=deleted)
    return info


def _refuse_if_interface_needed(session: Session, router: models.Router, port: models.Port,
                                subnet_ids: list[str]) -> None:
    # A floating IP whose fixed address lies on one of these subnets reaches it through this port.
    fip = models.FloatingIP
    alloc = models.IPAllocation
    needed = session.scalars(
        sa.select(alloc.subnet_id).join(fip, sa.and_(fip.fixed_port_id == alloc.port_id,
                                                     fip.fixed_ip_address == alloc.ip_address))
        .where(fip.router_id == router.id, alloc.subnet_id.in_(subnet_ids))).first()
    if needed is not None:
        raise RouterInterfaceInUseByFloatingIP(router.id, needed)
    # A route whose nexthop only this port's subnets reach.
    if not router.routes:
        return
    remaining = [p for p in router_ports(session, router.id) if p.id != port.id]
    subnets = _subnets(session, [*subnet_ids, *(a.subnet_id for p in remaining for a in p.fixed_ips)])
    kept = [ipaddress.ip_network(subnets[a.subnet_id].cidr, strict=False)
            for p in remaining for a in p.fixed_ips if a.subnet_id in subnets]
    for subnet_id in subnet_ids:
        cidr = ipaddress.ip_network(subnets[subnet_id].cidr, strict=False)
        for route in router.routes:
            nexthop = ipaddress.ip_address(route["nexthop"])
            if nexthop.version == cidr.version and nexthop in cidr and not any(
                    nexthop.version == k.version and nexthop in k for k in kept):
                raise RouterInterfaceInUseByRoute(router.id, subnet_id)


# --- what the ports module needs -----------------------------------------------------------------


def disassociate_floating_ips(session: Session, svc: NetworkService, port_id: str) -> None:
    """Before a port goes: floating IPs associated with it are left unassociated (as Neutron does)."""
    fip = models.FloatingIP
    rows = list(session.scalars(sa.select(fip).where(fip.fixed_port_id == port_id)))
    for row in rows:
        router_id = row.router_id
        row.fixed_port_id = row.fixed_ip_address = row.router_id = None
        row.status = "DOWN"
        touch(row)
        _notify(svc, session, routers=[router_id] if router_id else [])
    if rows:
        session.flush()


def refuse_l3_port_deletion(session: Session, port: models.Port) -> None:
    """DELETE /ports on a router's or a floating IP's port is refused (409) while its owner exists."""
    if port.device_owner in ROUTER_OWNERS and port.device_id and \
            session.get(models.Router, port.device_id) is not None:
        raise ServicePortInUse(port.id, f"has device owner {port.device_owner}")
    if port.device_owner == FLOATINGIP and port.device_id and \
            session.get(models.FloatingIP, port.device_id) is not None:
        raise ServicePortInUse(port.id, f"has device owner {port.device_owner}")
