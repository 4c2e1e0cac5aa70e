"""Networks (created with a first subnet) and routers (gateway, interfaces)."""

from __future__ import annotations

import asyncio
import ipaddress

from starlette.requests import Request
from starlette.responses import Response

from stratus.dashboard import web
from stratus.dashboard.cloud import ApiError, Cloud
from stratus.dashboard.web import Form


async def index(request: Request, cloud: Cloud) -> Response:
    networks, subnets = await asyncio.gather(cloud.get("network", "/v2.0/networks"),
                                             cloud.get("network", "/v2.0/subnets"))
    by_id = {s["id"]: s for s in subnets.get("subnets", [])}
    rows = [dict(n, subnet_rows=[by_id[s] for s in n.get("subnets", []) if s in by_id])
            for n in sorted(networks.get("networks", []), key=lambda n: n.get("name") or "")]
    return web.render(request, "networks.html", cloud.session, title="Networks", networks=rows)


async def create(request: Request, cloud: Cloud, form: Form) -> str:
    name = form.require("name", "Network name")
    cidr = form.get("cidr")
    if cidr:
        try:
            version = ipaddress.ip_network(cidr, strict=False).version
        except ValueError:
            raise ApiError(400, f"{cidr!r} is not a network address (like 10.0.0.0/24).") from None
    network = (await cloud.post("network", "/v2.0/networks", {"network": {"name": name}}))["network"]
    if not cidr:
        return f"Network {name} created."
    subnet = {"network_id": network["id"], "cidr": cidr, "ip_version": version,
              "name": form.get("subnet_name") or f"{name}-subnet", "enable_dhcp": form.get("dhcp") == "on"}
    if form.get("gateway_ip"):
        subnet["gateway_ip"] = form.get("gateway_ip")
    try:
        await cloud.post("network", "/v2.0/subnets", {"subnet": subnet})
    except ApiError as exc:  # don't leave half of what was asked for
        await cloud.delete("network", f"/v2.0/networks/{network['id']}", ok=(404,))
        raise ApiError(exc.status, f"The subnet was refused, so network {name} was not kept: {exc.message}") from exc
    return f"Network {name} created with subnet {cidr}."


async def delete(request: Request, cloud: Cloud, form: Form) -> str:
    await cloud.delete("network", f"/v2.0/networks/{request.path_params['network_id']}")
    return "Network deleted."


async def routers(request: Request, cloud: Cloud) -> Response:
    routers_body, networks, subnets, ports = await asyncio.gather(
        cloud.get("network", "/v2.0/routers"), cloud.get("network", "/v2.0/networks"),
        cloud.get("network", "/v2.0/subnets"),
        cloud.get("network", "/v2.0/ports", device_owner="network:router_interface"))
    net_names = {n["id"]: n.get("name") or n["id"] for n in networks.get("networks", [])}
    interfaces: dict[str, list[str]] = {}
    for port in ports.get("ports", []):
        network = net_names.get(port["network_id"], port["network_id"])
        for ip in port.get("fixed_ips", []):
            interfaces.setdefault(port["device_id"], []).append(f"{ip['ip_address']} ({network})")
    rows = []
    for router in routers_body.get("routers", []):
        gateway = (router.get("external_gateway_info") or {}).get("network_id")
        rows.append(dict(router, gateway_name=net_names.get(gateway, "") if gateway else "",
                         interfaces=interfaces.get(router["id"], [])))
    project = cloud.session.project.get("id")
    own_subnets = [dict(s, network_name=net_names.get(s["network_id"], ""))
                   for s in subnets.get("subnets", []) if s.get("project_id") == project]
    return web.render(request, "routers.html", cloud.session, title="Routers", routers=rows,
                      external=[n for n in networks.get("networks", []) if n.get("router:external")],
                      subnets=own_subnets)


async def create_router(request: Request, cloud: Cloud, form: Form) -> str:
    name = form.require("name", "Router name")
    router: dict[str, object] = {"name": name}
    if form.get("external_network"):
        router["external_gateway_info"] = {"network_id": form.get("external_network")}
    await cloud.post("network", "/v2.0/routers", {"router": router})
    return f"Router {name} created."


async def add_interface(request: Request, cloud: Cloud, form: Form) -> str:
    subnet = form.require("subnet_id", "Subnet")
    await cloud.put("network", f"/v2.0/routers/{request.path_params['router_id']}/add_router_interface",
                    {"subnet_id": subnet})
    return "Interface added."


async def delete_router(request: Request, cloud: Cloud, form: Form) -> str:
    router_id = request.path_params["router_id"]
    ports = await cloud.get("network", "/v2.0/ports", device_id=router_id, device_owner="network:router_interface")
    for port in ports.get("ports", []):  # a router with interfaces cannot go: detach them first
        await cloud.put("network", f"/v2.0/routers/{router_id}/remove_router_interface", {"port_id": port["id"]})
    await cloud.delete("network", f"/v2.0/routers/{router_id}")
    return "Router deleted."


routes = [
    web.page("/project/networks", index),
    web.action("/project/networks/create", create, fallback="/project/networks"),
    web.action("/project/networks/{network_id}/delete", delete, fallback="/project/networks"),
    web.page("/project/routers", routers),
    web.action("/project/routers/create", create_router, fallback="/project/routers"),
    web.action("/project/routers/{router_id}/interface", add_interface, fallback="/project/routers"),
    web.action("/project/routers/{router_id}/delete", delete_router, fallback="/project/routers"),
]
