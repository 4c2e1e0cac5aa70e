"""/v2.0/routers: routers, their external gateway, interfaces and extra routes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from pydantic import Field
from sqlalchemy.orm import Session

from stratus.core.context import RequestContext
from stratus.network import ipam, models, routers
from stratus.network.api import listing
from stratus.network.api.deps import Body, caller, enforce, project_for_create, service
from stratus.network.errors import InvalidInput
from stratus.network.service import NetworkService

router = APIRouter(prefix="/v2.0", tags=["routers"])
Caller = Annotated[RequestContext, Depends(caller)]
T = TypeVar("T")

# Choosing the gateway's addresses or turning SNAT off is the operator's (Neutron's default policy).
ADMIN_ONLY = "admin_required"


class FixedIP(Body):
    subnet_id: str | None = None
    ip_address: str | None = None


class GatewayInfo(Body):
    network_id: str | None = None
    enable_snat: bool | None = None
    external_fixed_ips: list[FixedIP] | None = None
    qos_policy_id: str | None = None


class Route(Body):
    destination: str
    nexthop: str


class RouterFields(Body):
    name: str | None = Field(None, max_length=255)
    description: str | None = Field(None, max_length=255)
    admin_state_up: bool | None = None
    external_gateway_info: GatewayInfo | None = None
    distributed: bool | None = None
    ha: bool | None = None
    availability_zone_hints: list[str] | None = None
    flavor_id: str | None = None


class RouterCreate(RouterFields):
    project_id: str | None = None
    tenant_id: str | None = None


class RouterUpdate(RouterFields):
    routes: list[Route] | None = None


class RouterCreateBody(Body):
    router: RouterCreate


class RouterUpdateBody(Body):
    router: RouterUpdate


class InterfaceBody(Body):
    subnet_id: str | None = None
    port_id: str | None = None


class RoutesFields(Body):
    routes: list[Route]


class RoutesBody(Body):
    router: RoutesFields


def _collection() -> listing.Collection:
    m = models.Router
    return listing.Collection(
        "routers", m,
        columns={"id": m.id, "name": m.name, "description": m.description, "project_id": m.project_id,
                 "admin_state_up": m.admin_state_up, "status": m.status, "created_at": m.created_at,
                 "updated_at": m.updated_at, "revision_number": m.revision_number},
        view=routers.router_view, options=routers.LOAD_OPTIONS)


def _refuse_unsupported(fields: RouterFields) -> None:
    """Distributed and HA routers, flavors and zones other than the one there is are not offered."""
    if fields.distributed:
        raise InvalidInput("distributed routers are not supported")
    if fields.ha:
        raise InvalidInput("highly available routers are not supported")
    if fields.flavor_id is not None:
        raise InvalidInput("router flavors are not supported")
    for zone in fields.availability_zone_hints or []:
        if zone != "nova":
            raise InvalidInput(f"AvailabilityZone {zone} could not be found")


def _gateway_request(request: Request, ctx: RequestContext, fields: RouterFields,
                     current: models.Router | None) -> routers.GatewayRequest | None:
    """What `external_gateway_info` asks for (None: not given), after the policy checks on it."""
    if "external_gateway_info" not in fields.model_fields_set:
        return None
    info = fields.external_gateway_info
    if info is None or info.network_id is None and not info.model_fields_set & {"enable_snat", "external_fixed_ips"}:
        return routers.GatewayRequest(None)  # {} or null: no gateway
    if info.network_id is None:
        raise InvalidInput("network_id is required in external_gateway_info")
    if info.qos_policy_id is not None:
        raise InvalidInput("QoS policies are not supported")
    gateway = current.gw_port if current is not None else None
    same_network = gateway is not None and gateway.network_id == info.network_id
    snat_now = current.enable_snat if current is not None and same_network else True
    if info.enable_snat is not None and info.enable_snat != snat_now:
        enforce(request, ctx, ADMIN_ONLY)
    fixed_ips = None
    if info.external_fixed_ips is not None:
        fixed_ips = [entry.model_dump(exclude_none=True) for entry in info.external_fixed_ips]
        if any(not entry for entry in fixed_ips):
            raise InvalidInput("each of external_fixed_ips needs a subnet_id or an ip_address")
        enforce(request, ctx, ADMIN_ONLY)
    return routers.GatewayRequest(info.network_id, info.enable_snat, fixed_ips)


@router.get("/routers")
def list_routers(request: Request, ctx: Caller) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        return listing.list_items(request, session, _collection(), routers.router_scope(ctx))


@router.get("/routers/{router_id}")
def show_router(request: Request, router_id: str, ctx: Caller) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        return {"router": routers.router_view(routers.get_router(session, ctx, router_id))}


@router.post("/routers", status_code=201)
def create_router(request: Request, body: RouterCreateBody, ctx: Caller) -> dict[str, Any]:
    svc, fields = service(request), body.router
    project_id = project_for_create(ctx, fields.project_id, fields.tenant_id)
    _refuse_unsupported(fields)
    gateway = _gateway_request(request, ctx, fields, None)

    def work(session: Session) -> dict[str, Any]:
        row = routers.create_router(
            session, svc, ctx, project_id=project_id, name=fields.name or "", description=fields.description or "",
            admin_state_up=True if fields.admin_state_up is None else fields.admin_state_up, gateway=gateway)
        return {"router": routers.router_view(row)}

    return ipam.retrying(svc.db, work)


def _on_router(request: Request, ctx: RequestContext, router_id: str,
               change: Callable[[Session, NetworkService, models.Router], T]) -> T:
    """Run `change` on the caller's router, locked, in a transaction retried when chosen as a deadlock victim."""
    svc = service(request)

    def work(session: Session) -> T:
        row = routers.get_router(session, ctx, router_id, for_update=True)
        enforce(request, ctx, "admin_or_owner", {"project_id": row.project_id})
        return change(session, svc, row)

    return ipam.retrying(svc.db, work)


@router.put("/routers/{router_id}")
def update_router(request: Request, router_id: str, body: RouterUpdateBody, ctx: Caller) -> dict[str, Any]:
    fields = body.router
    _refuse_unsupported(fields)
    routes = None
    if "routes" in fields.model_fields_set:
        routes = [route.model_dump() for route in fields.routes or []]

    def change(session: Session, svc: NetworkService, row: models.Router) -> dict[str, Any]:
        gateway = _gateway_request(request, ctx, fields, row)
        row = routers.update_router(session, svc, ctx, row, changes=fields.model_dump(exclude_unset=True),
                                    gateway=gateway, routes=routes)
        return {"router": routers.router_view(row)}

    return _on_router(request, ctx, router_id, change)


@router.delete("/routers/{router_id}", status_code=204)
def delete_router(request: Request, router_id: str, ctx: Caller) -> Response:
    _on_router(request, ctx, router_id, lambda session, svc, row: routers.delete_router(session, svc, row))
    return Response(status_code=204)


@router.put("/routers/{router_id}/add_router_interface")
def add_router_interface(request: Request, router_id: str, body: InterfaceBody, ctx: Caller) -> dict[str, Any]:
    return _on_router(request, ctx, router_id, lambda session, svc, row: routers.add_interface(
        session, svc, ctx, row, subnet_id=body.subnet_id, port_id=body.port_id))


@router.put("/routers/{router_id}/remove_router_interface")
def remove_router_interface(request: Request, router_id: str, body: InterfaceBody, ctx: Caller) -> dict[str, Any]:
    return _on_router(request, ctx, router_id, lambda session, svc, row: routers.remove_interface(
        session, svc, ctx, row, subnet_id=body.subnet_id, port_id=body.port_id))


@router.put("/routers/{router_id}/add_extraroutes")
def add_extraroutes(request: Request, router_id: str, body: RoutesBody, ctx: Caller) -> dict[str, Any]:
    wanted = [route.model_dump() for route in body.router.routes]

    def change(session: Session, svc: NetworkService, row: models.Router) -> dict[str, Any]:
        routers.add_routes(session, row, wanted)
        svc.agents.changed(session, routers=[row.id])
        return {"router": routers.router_view(routers.reload(session, row))}

    return _on_router(request, ctx, router_id, change)


@router.put("/routers/{router_id}/remove_extraroutes")
def remove_extraroutes(request: Request, router_id: str, body: RoutesBody, ctx: Caller) -> dict[str, Any]:
    unwanted = [route.model_dump() for route in body.router.routes]

    def change(session: Session, svc: NetworkService, row: models.Router) -> dict[str, Any]:
        routers.remove_routes(session, row, unwanted)
        svc.agents.changed(session, routers=[row.id])
        return {"router": routers.router_view(routers.reload(session, row))}

    return _on_router(request, ctx, router_id, change)
