"""/v2.0/floatingips: allocate an external address, associate it with a port's fixed IP, release it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import Field
from sqlalchemy.orm import Session

from stratus.core.context import RequestContext
from stratus.network import floatingips, ipam, models
from stratus.network.api import listing
from stratus.network.api.deps import Body, caller, enforce, project_for_create, service, touch
from stratus.network.errors import InvalidInput

router = APIRouter(prefix="/v2.0", tags=["floatingips"])
Caller = Annotated[RequestContext, Depends(caller)]

# Choosing the external address is the operator's (Neutron's default policy).
ADMIN_ONLY = "admin_required"


class FloatingIPFields(Body):
    port_id: str | None = None
    fixed_ip_address: str | None = None
    description: str | None = Field(None, max_length=255)
    qos_policy_id: str | None = None


class FloatingIPCreate(FloatingIPFields):
    floating_network_id: str
    floating_ip_address: str | None = None
    subnet_id: str | None = None
    project_id: str | None = None
    tenant_id: str | None = None
    dns_name: str | None = None
    dns_domain: str | None = None


class FloatingIPCreateBody(Body):
    floatingip: FloatingIPCreate


class FloatingIPUpdateBody(Body):
    floatingip: FloatingIPFields


def _collection() -> listing.Collection:
    m = models.FloatingIP
    return listing.Collection(
        "floatingips", m,
        columns={"id": m.id, "project_id": m.project_id, "description": m.description,
                 "floating_network_id": m.floating_network_id, "floating_ip_address": m.floating_ip_address,
                 "port_id": m.fixed_port_id, "fixed_ip_address": m.fixed_ip_address, "router_id": m.router_id,
                 "status": m.status, "created_at": m.created_at, "updated_at": m.updated_at,
                 "revision_number": m.revision_number},
        view=floatingips.floating_ip_view, options=floatingips.LOAD_OPTIONS)


@router.get("/floatingips")
def list_floating_ips(request: Request, ctx: Caller) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        return listing.list_items(request, session, _collection(), floatingips.floating_ip_scope(ctx))


@router.get("/floatingips/{floatingip_id}")
def show_floating_ip(request: Request, floatingip_id: str, ctx: Caller) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        return {"floatingip": floatingips.floating_ip_view(floatingips.get_floating_ip(session, ctx, floatingip_id))}


@router.post("/floatingips", status_code=201)
def create_floating_ip(request: Request, body: FloatingIPCreateBody, ctx: Caller) -> dict[str, Any]:
    svc, fields = service(request), body.floatingip
    project_id = project_for_create(ctx, fields.project_id, fields.tenant_id)
    if fields.floating_ip_address is not None:
        enforce(request, ctx, ADMIN_ONLY)
    if fields.qos_policy_id is not None:
        raise InvalidInput("QoS policies are not supported")
    if fields.dns_name or fields.dns_domain:
        raise InvalidInput("DNS integration is not supported")

    def work(session: Session) -> dict[str, Any]:
        fip = floatingips.create_floating_ip(
            session, svc, ctx, project_id=project_id, floating_network_id=fields.floating_network_id,
            floating_ip_address=fields.floating_ip_address, subnet_id=fields.subnet_id, port_id=fields.port_id,
            fixed_ip_address=fields.fixed_ip_address, description=fields.description or "")
        return {"floatingip": floatingips.floating_ip_view(fip)}

    return ipam.retrying(svc.db, work)


@router.put("/floatingips/{floatingip_id}")
def update_floating_ip(request: Request, floatingip_id: str, body: FloatingIPUpdateBody,
                       ctx: Caller) -> dict[str, Any]:
    svc, fields = service(request), body.floatingip
    given = fields.model_fields_set
    if fields.qos_policy_id is not None:
        raise InvalidInput("QoS policies are not supported")
    if "fixed_ip_address" in given and fields.fixed_ip_address is not None and "port_id" not in given:
        raise floatingips.bad_floatingip_request("fixed_ip_address cannot be specified without a port_id")

    def work(session: Session) -> dict[str, Any]:
        fip = floatingips.get_floating_ip(session, ctx, floatingip_id, for_update=True)
        enforce(request, ctx, "admin_or_owner", {"project_id": fip.project_id})
        if "port_id" in given:
            if fields.port_id is None:
                floatingips.disassociate(session, svc, fip)
            else:
                floatingips.associate(session, svc, ctx, fip, fields.port_id, fields.fixed_ip_address)
        if "description" in given and fields.description is not None and fields.description != fip.description:
            fip.description = fields.description
            touch(fip)
        return {"floatingip": floatingips.floating_ip_view(floatingips.reload(session, fip))}

    return ipam.retrying(svc.db, work)


@router.delete("/floatingips/{floatingip_id}", status_code=204)
def delete_floating_ip(request: Request, floatingip_id: str, ctx: Caller) -> Response:
    svc = service(request)

    def work(session: Session) -> None:
        fip = floatingips.get_floating_ip(session, ctx, floatingip_id, for_update=True)
        enforce(request, ctx, "admin_or_owner", {"project_id": fip.project_id})
        floatingips.delete_floating_ip(session, svc, fip)

    ipam.retrying(svc.db, work)
    return Response(status_code=204)
