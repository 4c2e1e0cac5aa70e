"""/v2.0/networks"""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request, Response
from pydantic import Field
from sqlalchemy.orm import Session, subqueryload

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.network import models, quotas, segments
from stratus.network.api import listing
from stratus.network.api.deps import Body, allowed, caller, enforce, project_for_create, service, standard_view, touch
from stratus.network.errors import InvalidInput, NetworkInUse
from stratus.network.visibility import network_scope, visible_network

router = APIRouter(prefix="/v2.0", tags=["networks"])
Caller = Annotated[RequestContext, Depends(caller)]

# Ports a network owns itself; they go with it instead of keeping it in use.
NETWORK_OWNED = ("network:dhcp",)


class NetworkFields(Body):
    name: str | None = Field(None, max_length=255)
    description: str | None = Field(None, max_length=255)
    admin_state_up: bool | None = None
    shared: bool | None = None
    router_external: bool | None = Field(None, alias="router:external")
    mtu: int | None = Field(None, ge=68)
    port_security_enabled: bool | None = None
    provider_network_type: str | None = Field(None, alias="provider:network_type")
    provider_physical_network: str | None = Field(None, alias="provider:physical_network")
    provider_segmentation_id: int | None = Field(None, alias="provider:segmentation_id")
    availability_zone_hints: list[str] | None = None
    dns_domain: str | None = None
    is_default: bool | None = None
    qos_policy_id: str | None = None


class NetworkCreate(NetworkFields):
    project_id: str | None = None
    tenant_id: str | None = None


class NetworkCreateBody(Body):
    network: NetworkCreate


class NetworkUpdateBody(Body):
    network: NetworkFields


def network_view(row: models.Network, *, provider: bool = True) -> dict[str, Any]:
    view = standard_view(row)
    view.update({
        "admin_state_up": row.admin_state_up, "status": row.status,
        "subnets": [subnet.id for subnet in row.subnets], "shared": row.shared, "router:external": row.external,
        "mtu": row.mtu, "port_security_enabled": row.port_security_enabled,
        "availability_zone_hints": [], "availability_zones": ["nova"], "ipv4_address_scope": None,
        "ipv6_address_scope": None, "is_default": False, "l2_adjacency": True, "qos_policy_id": None,
        "dns_domain": "",
    })
    if provider:
        view.update({"provider:network_type": row.network_type, "provider:physical_network": row.physical_network,
                     "provider:segmentation_id": row.segmentation_id})
    return view


def _collection(provider: bool) -> listing.Collection:
    m = models.Network
    return listing.Collection(
        "networks", m,
        columns={"id": m.id, "name": m.name, "description": m.description, "project_id": m.project_id,
                 "admin_state_up": m.admin_state_up, "status": m.status, "shared": m.shared,
                 "router:external": m.external, "mtu": m.mtu, "port_security_enabled": m.port_security_enabled,
                 "created_at": m.created_at, "updated_at": m.updated_at, "revision_number": m.revision_number,
                 **({"provider:network_type": m.network_type, "provider:physical_network": m.physical_network,
                     "provider:segmentation_id": m.segmentation_id} if provider else {})},
        view=lambda row: network_view(row, provider=provider),
        options=[subqueryload(m.subnets)])


def _load(session: Session, ctx: RequestContext, network_id: str) -> models.Network:
    network = visible_network(session, ctx, network_id)
    session.refresh(network, attribute_names=["subnets"])
    return network


def _sees_provider(request: Request, ctx: RequestContext) -> bool:
    return allowed(request, ctx, "create_network:provider")


@router.get("/networks")
def list_networks(request: Request, ctx: Caller) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        return listing.list_items(request, session, _collection(_sees_provider(request, ctx)), network_scope(ctx))


@router.get("/networks/{network_id}")
def show_network(request: Request, network_id: str, ctx: Caller) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        network = _load(session, ctx, network_id)
        return {"network": network_view(network, provider=_sees_provider(request, ctx))}


def _segment(request: Request, ctx: RequestContext, fields: NetworkFields) -> segments.Segment | None:
    given = (fields.provider_network_type, fields.provider_physical_network, fields.provider_segmentation_id)
    if all(value is None for value in given):
        return None
    enforce(request, ctx, "create_network:provider")
    if fields.provider_network_type is None:
        raise InvalidInput("provider:network_type required")
    return segments.validate_provider(service(request).settings, segments.Segment(*given))  # type: ignore[arg-type]


@router.post("/networks", status_code=201)
def create_network(request: Request, body: NetworkCreateBody, ctx: Caller) -> dict[str, Any]:
    svc, fields = service(request), body.network
    project_id = project_for_create(ctx, fields.project_id, fields.tenant_id)
    if fields.shared:
        enforce(request, ctx, "create_network:shared")
    if fields.router_external:
        enforce(request, ctx, "create_network:router:external")
    wanted = _segment(request, ctx, fields)
    with svc.db.transaction() as session:
        quotas.check(session, svc.settings, project_id, "network")
        network = models.Network(
            id=models.new_id(), project_id=project_id, name=fields.name or "", description=fields.description or "",
            admin_state_up=True if fields.admin_state_up is None else fields.admin_state_up,
            shared=bool(fields.shared), external=bool(fields.router_external),
            port_security_enabled=True if fields.port_security_enabled is None else fields.port_security_enabled)
        session.add(network)
        session.flush()
        segment = (segments.reserve(session, network.id, wanted, svc.settings) if wanted is not None
                   else segments.allocate_tenant(session, network.id, svc.settings))
        network.network_type = segment.network_type
        network.physical_network = segment.physical_network
        network.segmentation_id = segment.segmentation_id
        limit = segments.max_mtu(svc.settings, segment.network_type)
        if fields.mtu is not None and fields.mtu > limit:
            raise InvalidInput(f"Requested MTU is too big, maximum is {limit}")
        network.mtu = fields.mtu or limit
        session.flush()
        svc.agents.changed(session, networks=[network.id])
        session.refresh(network, attribute_names=["subnets"])
        return {"network": network_view(network, provider=_sees_provider(request, ctx))}


@router.put("/networks/{network_id}")
def update_network(request: Request, network_id: str, body: NetworkUpdateBody, ctx: Caller) -> dict[str, Any]:
    svc, fields = service(request), body.network
    given = fields.model_dump(exclude_unset=True)
    if {"provider_network_type", "provider_physical_network", "provider_segmentation_id"} & given.keys():
        raise InvalidInput("Plugin does not support updating provider attributes")
    with svc.db.transaction() as session:
        network = _load(session, ctx, network_id)
        enforce(request, ctx, "admin_or_owner", {"project_id": network.project_id})
        if "shared" in given and fields.shared != network.shared:
            enforce(request, ctx, "update_network:shared")
            if not fields.shared:
                _refuse_unsharing(session, network)
            network.shared = bool(fields.shared)
        if "router_external" in given and fields.router_external != network.external:
            enforce(request, ctx, "update_network:router:external")
            network.external = bool(fields.router_external)
        if fields.mtu is not None:
            limit = segments.max_mtu(svc.settings, network.network_type)
            if fields.mtu > limit:
                raise InvalidInput(f"Requested MTU is too big, maximum is {limit}")
            network.mtu = fields.mtu
        for name in ("name", "description", "admin_state_up", "port_security_enabled"):
            if name in given and given[name] is not None:
                setattr(network, name, given[name])
        touch(network)
        session.flush()
        svc.agents.changed(session, networks=[network.id])
        return {"network": network_view(network, provider=_sees_provider(request, ctx))}


def _refuse_unsharing(session: Session, network: models.Network) -> None:
    others = session.scalar(sa.select(sa.func.count()).select_from(models.Port).where(
        models.Port.network_id == network.id, models.Port.project_id != network.project_id,
        models.Port.device_owner.not_in(NETWORK_OWNED)))
    if others:
        raise errors.Conflict(f"Unable to reconfigure sharing settings for network {network.id}. "
                              "Multiple tenants are using it.")


@router.delete("/networks/{network_id}", status_code=204)
def delete_network(request: Request, network_id: str, ctx: Caller) -> Response:
    svc = service(request)
    with svc.db.transaction() as session:
        network = visible_network(session, ctx, network_id, for_update=True)
        enforce(request, ctx, "admin_or_owner", {"project_id": network.project_id})
        ports = session.scalars(sa.select(models.Port).where(models.Port.network_id == network.id)).all()
        if any(port.device_owner not in NETWORK_OWNED for port in ports):
            raise NetworkInUse(network.id)
        deleted_ports = {port.id: (network.id, port.binding_host_id) for port in ports}
        port_ids = list(deleted_ports)
        if port_ids:
            session.execute(sa.delete(models.IPAllocation).where(models.IPAllocation.port_id.in_(port_ids)))
            session.execute(sa.delete(models.PortSecurityGroup).where(models.PortSecurityGroup.port_id.in_(port_ids)))
            session.execute(sa.delete(models.Port).where(models.Port.id.in_(port_ids)))
        session.execute(sa.delete(models.Subnet).where(models.Subnet.network_id == network.id))
        session.execute(sa.delete(models.Segment).where(models.Segment.network_id == network.id))
        session.delete(network)
        svc.agents.changed(session, deleted_networks=[network.id], deleted_ports=deleted_ports)
    return Response(status_code=204)
