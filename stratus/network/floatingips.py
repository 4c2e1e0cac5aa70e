"""Floating IPs: an address of an external network, held by a `network:floatingip` port, NATed to a
fixed address of a project's port through the router that links the two.

The holding port belongs to project "" (as Neutron makes it), so a floating IP counts against the
project's `floatingip` quota and not its `port` quota. A floating IP is associated with one fixed
IPv4 address; the router is the one with an interface on that address's subnet and its gateway on
the floating IP's network. The association is the routers' desired state: every change names the
routers involved to `svc.agents.changed`.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, selectinload, subqueryload

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.network import ipam, models, quotas
from stratus.network.api.deps import owned_by_caller, standard_view, touch
from stratus.network.errors import FloatingIPNotFound, IpAddressGenerationFailure, PortNotFound
from stratus.network.routers import FLOATINGIP, ROUTER_INTERFACE, allocations, subnet_ip_version
from stratus.network.visibility import visible_network

if TYPE_CHECKING:
    from stratus.network.service import NetworkService

# What a floating IP view needs loaded: the associated port (for `port_details`).
LOAD_OPTIONS = (subqueryload(models.FloatingIP.fixed_port),)
# The same for one floating IP (a FOR UPDATE query cannot be wrapped into a subquery load).
_ONE_OPTIONS = (selectinload(models.FloatingIP.fixed_port),)


def bad_floatingip_request(message: str) -> errors.BadRequest:
    return errors.BadRequest(f"Bad floatingip request: {message}.")


class ExternalGatewayForFloatingIPNotFound(errors.NotFound):
    def __init__(self, network_id: str, subnet_id: str, port_id: str) -> None:
        super().__init__(f"External network {network_id} is not reachable from subnet {subnet_id}. "
                         f"Therefore, cannot associate Port {port_id} with a Floating IP.")


class FloatingIPPortAlreadyAssociated(errors.Conflict):
    def __init__(self, fip: models.FloatingIP, port_id: str, fixed_ip: str, network_id: str) -> None:
        super().__init__(f"Cannot associate floating IP {fip.floating_ip_address} ({fip.id}) with port {port_id} "
                         f"using fixed IP {fixed_ip}, as that fixed IP already has a floating IP on external "
                         f"network {network_id}.")


def floating_ip_view(fip: models.FloatingIP) -> dict[str, Any]:
    """The API view; needs LOAD_OPTIONS loaded."""
    view = standard_view(fip)
    port = fip.fixed_port
    view.update({
        "floating_network_id": fip.floating_network_id, "floating_ip_address": fip.floating_ip_address,
        "port_id": fip.fixed_port_id, "fixed_ip_address": fip.fixed_ip_address, "router_id": fip.router_id,
        "status": fip.status, "qos_policy_id": None, "dns_name": "", "dns_domain": "",
        "port_details": None if port is None else {
            "name": port.name, "network_id": port.network_id, "mac_address": port.mac_address,
            "admin_state_up": port.admin_state_up, "status": port.status, "device_id": port.device_id,
            "device_owner": port.device_owner},
    })
    return view


def floating_ip_scope(ctx: RequestContext) -> sa.ColumnElement[bool] | None:
    return owned_by_caller(models.FloatingIP, ctx)


def get_floating_ip(session: Session, ctx: RequestContext, fip_id: str, *,
                    for_update: bool = False) -> models.FloatingIP:
    stmt = sa.select(models.FloatingIP).where(models.FloatingIP.id == fip_id).options(*_ONE_OPTIONS)
    scope = floating_ip_scope(ctx)
    if scope is not None:
        stmt = stmt.where(scope)
    if for_update:
        stmt = stmt.with_for_update(of=models.FloatingIP)
    fip = session.scalars(stmt).first()
    if fip is None:
        raise FloatingIPNotFound(fip_id)
    return fip


def reload(session: Session, fip: models.FloatingIP) -> models.FloatingIP:
    session.flush()
    return session.scalars(sa.select(models.FloatingIP).where(models.FloatingIP.id == fip.id)
                           .options(*_ONE_OPTIONS).execution_options(populate_existing=True)).one()


def _ports_module() -> Any:
    from stratus.network import ports

    return ports


def create_floating_ip(session: Session, svc: NetworkService, ctx: RequestContext, *, project_id: str,
                       floating_network_id: str, floating_ip_address: str | None = None,
                       subnet_id: str | None = None, port_id: str | None = None,
                       fixed_ip_address: str | None = None, description: str = "") -> models.FloatingIP:
    network = visible_network(session, ctx, floating_network_id)
    if not network.external:
        raise bad_floatingip_request(f"Network {network.id} is not a valid external network")
    subnets = list(session.scalars(sa.select(models.Subnet).where(models.Subnet.network_id == network.id)
                                   .order_by(models.Subnet.created_at, models.Subnet.id)))
    candidates = [s for s in subnets if subnet_ip_version(s) == 4]
    if not candidates:
        raise bad_floatingip_request(f"Network {network.id} does not contain any IPv4 subnet")
    if subnet_id is not None:
        chosen = next((s for s in subnets if s.id == subnet_id), None)
        if chosen is None or subnet_ip_version(chosen) != 4:
            raise bad_floatingip_request(f"Subnet {subnet_id} is not an IPv4 subnet of network {network.id}")
        candidates = [chosen]
    if floating_ip_address is not None:
        try:
            address = ipaddress.ip_address(floating_ip_address)
        except ValueError:
            raise errors.BadRequest(f"Invalid input for floating_ip_address. Reason: '{floating_ip_address}' "
                                    "is not a valid IP address.") from None
        if address.version != 4:
            raise bad_floatingip_request(f"{floating_ip_address} is not an IPv4 address")
    if fixed_ip_address is not None and port_id is None:
        raise bad_floatingip_request("fixed_ip_address cannot be specified without a port_id")
    quotas.check(session, svc.settings, project_id, "floatingip")
    fip_id = models.new_id()
    port = _holding_port(session, svc, network, fip_id, candidates, floating_ip_address)
    held = [a for a in allocations(session, [port.id]) if ipaddress.ip_address(a.ip_address).version == 4]
    fip = models.FloatingIP(id=fip_id, project_id=project_id, description=description,
                            floating_network_id=network.id, floating_ip_address=held[0].ip_address,
                            floating_port_id=port.id, status="DOWN", tags=[])
    session.add(fip)
    session.flush()
    if port_id is not None:
        associate(session, svc, ctx, fip, port_id, fixed_ip_address)
    return reload(session, fip)


def _holding_port(session: Session, svc: NetworkService, network: models.Network, fip_id: str,
                  candidates: list[models.Subnet], address: str | None) -> models.Port:
    """The network:floatingip port: the requested address, or one from the first IPv4 subnet with room."""
    ports = _ports_module()

    def make(fixed_ips: list[dict[str, str]]) -> models.Port:
        port = ports.create_port(session, svc, project_id="", network=network, fixed_ips=fixed_ips,
                                 device_owner=FLOATINGIP, device_id=fip_id, security_group_ids=[],
                                 check_quota=False)
        session.flush()
        return port  # type: ignore[no-any-return]

    if address is not None:
        spec = {"ip_address": address}
        if len(candidates) == 1:
            spec["subnet_id"] = candidates[0].id
        return make([spec])
    ipam.open_write_transaction(session)  # so that the savepoints below are not the outermost (SQLite)
    for subnet in candidates[:-1]:
        try:
            with session.begin_nested():
                return make([{"subnet_id": subnet.id}])
        except IpAddressGenerationFailure:
            continue
    return make([{"subnet_id": candidates[-1].id}])


def find_router(session: Session, subnet_id: str, external_network_id: str) -> str | None:
    """The router with an interface on `subnet_id` and its gateway on `external_network_id`."""
    gateway, interface = aliased(models.Port), aliased(models.Port)
    stmt = (sa.select(models.Router.id)
            .join(gateway, gateway.id == models.Router.gw_port_id)
            .join(interface, interface.device_id == models.Router.id)
            .join(models.IPAllocation, models.IPAllocation.port_id == interface.id)
            .where(gateway.network_id == external_network_id, interface.device_owner == ROUTER_INTERFACE,
                   models.IPAllocation.subnet_id == subnet_id)
            .order_by(models.Router.created_at, models.Router.id).limit(1))
    return session.scalar(stmt)


def associate(session: Session, svc: NetworkService, ctx: RequestContext, fip: models.FloatingIP, port_id: str,
              fixed_ip_address: str | None) -> None:
    """Point the floating IP at a fixed IPv4 address of `port_id` (its first reachable one if not given)."""
    port = _ports_module().get_port(session, ctx, port_id)
    if port.project_id != fip.project_id and not ctx.is_admin:
        raise PortNotFound(port_id)
    if port.device_owner.startswith("network:"):
        raise bad_floatingip_request(f"Port {port.id} has owner {port.device_owner} and therefore cannot be "
                                     "associated with a floating IP")
    held = allocations(session, [port.id])
    if fixed_ip_address is not None:
        try:
            wanted = ipaddress.ip_address(fixed_ip_address)
        except ValueError:
            raise errors.BadRequest(f"Invalid input for fixed_ip_address. Reason: '{fixed_ip_address}' is not a "
                                    "valid IP address.") from None
        chosen = [a for a in held if ipaddress.ip_address(a.ip_address) == wanted]
        if not chosen:
            raise bad_floatingip_request(f"Port {port.id} does not have fixed ip {fixed_ip_address}")
        if wanted.version != 4:
            raise bad_floatingip_request(f"Cannot associate floating IP with the IPv6 address {fixed_ip_address}")
    else:
        chosen = [a for a in held if ipaddress.ip_address(a.ip_address).version == 4]
        if not chosen:
            raise bad_floatingip_request(f"Cannot add floating IP to port {port.id} that has no fixed IPv4 "
                                         "addresses")
    routed = [(a, find_router(session, a.subnet_id, fip.floating_network_id)) for a in chosen]
    allocation, router_id = next(((a, r) for a, r in routed if r is not None), routed[0])
    if router_id is None:
        raise ExternalGatewayForFloatingIPNotFound(fip.floating_network_id, allocation.subnet_id, port.id)
    other = session.scalars(sa.select(models.FloatingIP).where(
        models.FloatingIP.fixed_port_id == port.id, models.FloatingIP.fixed_ip_address == allocation.ip_address,
        models.FloatingIP.id != fip.id)).first()
    if other is not None:
        raise FloatingIPPortAlreadyAssociated(fip, port.id, allocation.ip_address, other.floating_network_id)
    previous = fip.router_id
    if (fip.fixed_port_id, fip.fixed_ip_address, fip.router_id) == (port.id, allocation.ip_address, router_id):
        return
    ipam.open_write_transaction(session)
    try:
        # The changes are made inside the savepoint: begin_nested() flushes what is pending before it.
        with session.begin_nested():
            fip.fixed_port_id, fip.fixed_ip_address, fip.router_id = port.id, allocation.ip_address, router_id
            fip.status = "DOWN"
            touch(fip)
            session.flush()
    except IntegrityError:
        # Another request associated the same fixed IP at the same moment.
        raise FloatingIPPortAlreadyAssociated(fip, port.id, allocation.ip_address, fip.floating_network_id) from None
    svc.agents.changed(session, routers=[r for r in (previous, router_id) if r])


def disassociate(session: Session, svc: NetworkService, fip: models.FloatingIP) -> None:
    previous = fip.router_id
    if fip.fixed_port_id is None and previous is None:
        return
    fip.fixed_port_id = fip.fixed_ip_address = fip.router_id = None
    fip.status = "DOWN"
    touch(fip)
    session.flush()
    if previous:
        svc.agents.changed(session, routers=[previous])


def delete_floating_ip(session: Session, svc: NetworkService, fip: models.FloatingIP) -> None:
    """Release the address: the floating IP and its holding port go."""
    previous = fip.router_id
    port = session.get(models.Port, fip.floating_port_id)
    session.delete(fip)
    session.flush()
    if port is not None:
        _ports_module().delete_port(session, svc, port)
        session.flush()
    if previous:
        svc.agents.changed(session, routers=[previous])
