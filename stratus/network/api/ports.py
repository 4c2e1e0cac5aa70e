"""/v2.0/ports

A project sees its own ports (an admin all). A port goes on a network the caller owns, or on a
shared one; choosing its MAC, its address or a network:* device owner on a network the caller
doesn't own is for the operator and the other services (`create_port:privileged`). The binding
attributes are the operator's and the services' to see and set.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request, Response
from pydantic import Field
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.network import ipam, models, ports, routers
from stratus.network.api import listing
from stratus.network.api.deps import Body, allowed, caller, enforce, project_for_create, service, touch
from stratus.network.errors import InvalidInput, MacAddressInUse
from stratus.network.visibility import visible_network

router = APIRouter(prefix="/v2.0", tags=["ports"])
Caller = Annotated[RequestContext, Depends(caller)]

_BINDING_FIELDS = ("binding_host_id", "binding_profile")
_FIXED_IP_KEYS = ("ip_address", "subnet_id", "ip_address_substr")


class FixedIP(Body):
    subnet_id: str | None = None
    ip_address: str | None = None


class AddressPair(Body):
    ip_address: str
    mac_address: str | None = None


class PortFields(Body):
    name: str | None = Field(None, max_length=255)
    description: str | None = Field(None, max_length=255)
    admin_state_up: bool | None = None
    mac_address: str | None = None
    fixed_ips: list[FixedIP] | None = None
    device_id: str | None = Field(None, max_length=255)
    device_owner: str | None = Field(None, max_length=255)
    security_groups: list[str] | None = None
    allowed_address_pairs: list[AddressPair] | None = None
    port_security_enabled: bool | None = None
    binding_host_id: str | None = Field(None, alias="binding:host_id", max_length=255)
    binding_profile: dict[str, Any] | None = Field(None, alias="binding:profile")
    binding_vnic_type: str | None = Field(None, alias="binding:vnic_type")
    # Accepted so that a read-only attribute is refused with Neutron's words.
    network_id: str | None = None


class PortCreate(PortFields):
    network_id: str
    project_id: str | None = None
    tenant_id: str | None = None


class PortCreateBody(Body):
    port: PortCreate


class PortUpdateBody(Body):
    port: PortFields


def _sees_binding(request: Request, ctx: RequestContext) -> bool:
    return allowed(request, ctx, "get_port:binding")


def _fixed_ips_filter(values: list[str]) -> sa.ColumnElement[bool]:
    """`fixed_ips=ip_address=X`, `fixed_ips=subnet_id=Y`, `fixed_ips=ip_address_substr=Z`: the ports holding
    an address that matches them all (several values of one key: any of them)."""
    wanted: dict[str, list[str]] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or key not in _FIXED_IP_KEYS:
            raise errors.BadRequest(f"Invalid fixed_ips filter '{value}': expected one of "
                                    f"{', '.join(k + '=...' for k in _FIXED_IP_KEYS)}")
        if key == "ip_address":
            try:
                text = str(ipaddress.ip_address(text))
            except ValueError:
                raise InvalidInput(f"'{text}' is not a valid IP address") from None
        wanted.setdefault(key, []).append(text)
    alloc = models.IPAllocation
    conditions: list[sa.ColumnElement[bool]] = []
    if "ip_address" in wanted:
        conditions.append(alloc.ip_address.in_(wanted["ip_address"]))
    if "subnet_id" in wanted:
        conditions.append(alloc.subnet_id.in_(wanted["subnet_id"]))
    if "ip_address_substr" in wanted:
        conditions.append(sa.or_(*(alloc.ip_address.contains(text, autoescape=True)
                                   for text in wanted["ip_address_substr"])))
    return models.Port.id.in_(sa.select(alloc.port_id).where(*conditions))


def _security_groups_filter(values: list[str]) -> sa.ColumnElement[bool]:
    psg = models.PortSecurityGroup
    return models.Port.id.in_(sa.select(psg.port_id).where(psg.security_group_id.in_(values)))


def _collection(binding: bool) -> listing.Collection:
    m = models.Port
    columns: dict[str, Any] = {
        "id": m.id, "name": m.name, "description": m.description, "project_id": m.project_id,
        "network_id": m.network_id, "mac_address": m.mac_address, "admin_state_up": m.admin_state_up,
        "status": m.status, "device_id": m.device_id, "device_owner": m.device_owner,
        "port_security_enabled": m.port_security_enabled, "created_at": m.created_at, "updated_at": m.updated_at,
        "revision_number": m.revision_number}
    if binding:
        columns.update({"binding:host_id": m.binding_host_id, "binding:vif_type": m.binding_vif_type,
                        "binding:vnic_type": m.binding_vnic_type})
    return listing.Collection("ports", m, columns=columns, view=lambda row: ports.port_view(row, binding=binding),
                              options=ports.LOAD_OPTIONS,
                              special_filters={"fixed_ips": _fixed_ips_filter,
                                               "security_groups": _security_groups_filter})


def _fixed_ips(entries: list[FixedIP] | None) -> list[dict[str, str]] | None:
    if entries is None:
        return None
    return [entry.model_dump(exclude_none=True) for entry in entries]


def _privileged(request: Request, ctx: RequestContext, network: models.Network) -> None:
    enforce(request, ctx, "create_port:privileged", {"network_project_id": network.project_id})


@router.get("/ports")
def list_ports(request: Request, ctx: Caller) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        return listing.list_items(request, session, _collection(_sees_binding(request, ctx)), ports.port_scope(ctx))


@router.get("/ports/{port_id}")
def show_port(request: Request, port_id: str, ctx: Caller) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        port = ports.get_port(session, ctx, port_id)
        return {"port": ports.port_view(port, binding=_sees_binding(request, ctx))}


@router.post("/ports", status_code=201)
def create_port(request: Request, body: PortCreateBody, ctx: Caller) -> dict[str, Any]:
    svc, fields = service(request), body.port
    given = fields.model_fields_set
    project_id = project_for_create(ctx, fields.project_id, fields.tenant_id)
    if any(name in given for name in _BINDING_FIELDS):
        enforce(request, ctx, "create_port:binding")
    wants_address = any(entry.ip_address is not None for entry in fields.fixed_ips or [])
    device_owner = fields.device_owner or ""

    def work(session: Session) -> dict[str, Any]:
        network = visible_network(session, ctx, fields.network_id)
        own = ctx.project_id is not None and network.project_id == ctx.project_id
        if not (own or ctx.is_admin or network.shared):
            # Seen (as an external network) but not usable by this project.
            _privileged(request, ctx, network)
        if fields.mac_address or wants_address or ports.is_network_device(device_owner):
            _privileged(request, ctx, network)
        port = ports.create_port(
            session, svc, project_id=project_id, network=network, fixed_ips=_fixed_ips(fields.fixed_ips),
            device_owner=device_owner, device_id=fields.device_id or "", name=fields.name or "",
            description=fields.description or "", mac_address=fields.mac_address,
            security_group_ids=fields.security_groups, port_security_enabled=fields.port_security_enabled,
            admin_state_up=True if fields.admin_state_up is None else fields.admin_state_up,
            allowed_address_pairs=None if fields.allowed_address_pairs is None else
            [pair.model_dump(exclude_none=True) for pair in fields.allowed_address_pairs],
            binding_host_id=fields.binding_host_id, binding_profile=fields.binding_profile,
            binding_vnic_type=fields.binding_vnic_type)
        return ports.port_view(port, binding=_sees_binding(request, ctx))

    return {"port": ipam.retrying(svc.db, work)}


@router.put("/ports/{port_id}")
def update_port(request: Request, port_id: str, body: PortUpdateBody, ctx: Caller) -> dict[str, Any]:
    svc, fields = service(request), body.port
    given = fields.model_fields_set
    if "network_id" in given:
        raise errors.BadRequest("Cannot update read-only attribute network_id")
    if any(name in given for name in _BINDING_FIELDS):
        enforce(request, ctx, "update_port:binding")
    if "mac_address" in given and not ctx.is_admin:
        enforce(request, ctx, "update_port:binding")

    def work(session: Session) -> dict[str, Any]:
        ipam.open_write_transaction(session)
        port = ports.get_port(session, ctx, port_id, for_update=True)
        enforce(request, ctx, "admin_or_owner", {"project_id": port.project_id})
        network = session.get(models.Network, port.network_id)
        assert network is not None
        old_groups = {g.security_group_id for g in port.security_groups}
        old_ips = {(a.subnet_id, a.ip_address) for a in port.fixed_ips}
        old_host = port.binding_host_id or ""
        if "device_owner" in given and ports.is_network_device(fields.device_owner or "") and \
                fields.device_owner != port.device_owner:
            _privileged(request, ctx, network)
        if any(entry.ip_address is not None for entry in fields.fixed_ips or []):
            _privileged(request, ctx, network)
        for name in ("name", "description", "admin_state_up", "device_id", "device_owner"):
            if name in given and getattr(fields, name) is not None:
                setattr(port, name, getattr(fields, name))
        if fields.mac_address is not None:
            _change_mac(session, port, network, fields.mac_address)
        if fields.fixed_ips is not None:
            ports.replace_fixed_ips(session, port, network, _fixed_ips(fields.fixed_ips) or [])
        if fields.port_security_enabled is not None:
            port.port_security_enabled = fields.port_security_enabled
        groups = old_groups
        if fields.security_groups is not None:
            wanted = ports.check_security_groups(session, port.project_id, fields.security_groups)
            groups = set(wanted)
            ports.set_security_groups(session, port, wanted)
        if fields.allowed_address_pairs is not None:
            port.allowed_address_pairs = ports.validate_address_pairs(
                [pair.model_dump(exclude_none=True) for pair in fields.allowed_address_pairs], port.mac_address)
        ports.apply_binding(port, fields.binding_host_id, fields.binding_profile, fields.binding_vnic_type)
        touch(port)
        ports.reload(session, port)
        new_ips = {(a.subnet_id, a.ip_address) for a in port.fixed_ips}
        if not port.port_security_enabled:
            if groups:
                raise (ports.PortSecurityAndIPRequiredForSecurityGroups()
                       if fields.security_groups else ports.PortSecurityPortHasSecurityGroup())
            if port.allowed_address_pairs:
                raise ports.AddressPairAndPortSecurityRequired()
        if groups and not new_ips:
            raise ports.PortSecurityPortHasSecurityGroup()
        members_changed = old_ips != new_ips or old_groups != groups
        host = port.binding_host_id or ""
        svc.agents.changed(session, ports=[port.id],
                           deleted_ports={port.id: (port.network_id, old_host)} if old_host and old_host != host
                           else None,
                           security_groups=sorted(old_groups | groups) if members_changed else [])
        return ports.port_view(port, binding=_sees_binding(request, ctx))

    return {"port": ipam.retrying(svc.db, work)}


def _change_mac(session: Session, port: models.Port, network: models.Network, mac: str) -> None:
    """A new MAC (admin, unbound ports only); the port's EUI-64 addresses follow it."""
    new = ports.normalize_mac(mac)
    if new == port.mac_address:
        return
    if port.binding_host_id:
        raise ports.PortBound(port.id, port.binding_vif_type, port.mac_address, new)
    try:
        with session.begin_nested():
            port.mac_address = new
            session.flush()
    except IntegrityError:
        raise MacAddressInUse(new, port.network_id) from None
    subnets = {s.id: s for s in session.scalars(sa.select(models.Subnet).where(
        models.Subnet.network_id == network.id))}
    auto = [(a.subnet_id, a.ip_address) for a in port.fixed_ips
            if a.subnet_id in subnets and ipam.is_auto_address(subnets[a.subnet_id])]
    if auto:
        ipam.release(session, port.id, auto)
        ipam.allocate(session, network=network, port=port, fixed_ips=[{"subnet_id": s} for s, _ in auto])


@router.delete("/ports/{port_id}", status_code=204)
def delete_port(request: Request, port_id: str, ctx: Caller) -> Response:
    svc = service(request)

    def work(session: Session) -> None:
        port = ports.get_port(session, ctx, port_id, for_update=True)
        enforce(request, ctx, "admin_or_owner", {"project_id": port.project_id})
        routers.refuse_l3_port_deletion(session, port)
        ports.delete_port(session, svc, port)

    ipam.retrying(svc.db, work)
    return Response(status_code=204)
