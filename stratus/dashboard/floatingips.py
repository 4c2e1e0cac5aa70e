"""Floating IPs: allocate from an external network, associate with an instance's port, release."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from stratus.dashboard import web
from stratus.dashboard.cloud import Cloud
from stratus.dashboard.instances import list_servers
from stratus.dashboard.web import Form


async def index(request: Request, cloud: Cloud) -> Response:
    project = cloud.session.project.get("id", "")
    fips, networks, ports, servers = await asyncio.gather(
        cloud.get("network", "/v2.0/floatingips", project_id=project),
        cloud.get("network", "/v2.0/networks", **{"router:external": "true"}),
        cloud.get("network", "/v2.0/ports", project_id=project), list_servers(cloud))
    names = {s["id"]: s.get("name") or s["id"] for s in servers}
    # The ports an address can go to: those of the project's instances, named "instance: address".
    targets = [{"id": p["id"], "label": f"{names[p['device_id']]}: "
                + ", ".join(ip["ip_address"] for ip in p.get("fixed_ips", [])), "server_id": p["device_id"]}
               for p in ports.get("ports", []) if p.get("device_id") in names]
    port_labels = {t["id"]: t["label"] for t in targets}
    ext_names = {n["id"]: n.get("name") or n["id"] for n in networks.get("networks", [])}
    rows = [dict(f, pool=ext_names.get(f["floating_network_id"], f["floating_network_id"]),
                 mapped=port_labels.get(f.get("port_id") or "", f.get("fixed_ip_address") or ""))
            for f in fips.get("floatingips", [])]
    return web.render(request, "floating_ips.html", cloud.session, title="Floating IPs", floating_ips=rows,
                      pools=networks.get("networks", []), targets=targets,
                      chosen_server=request.query_params.get("server_id", ""))


async def allocate(request: Request, cloud: Cloud, form: Form) -> str:
    pool = form.require("pool", "Pool")
    body = await cloud.post("network", "/v2.0/floatingips", {"floatingip": {"floating_network_id": pool}})
    return f"Allocated {body['floatingip']['floating_ip_address']}."


async def associate(request: Request, cloud: Cloud, form: Form) -> str:
    port = form.require("port_id", "Instance")
    body = await cloud.put("network", f"/v2.0/floatingips/{request.path_params['fip_id']}",
                           {"floatingip": {"port_id": port}})
    return f"{body['floatingip']['floating_ip_address']} now reaches {body['floatingip']['fixed_ip_address']}."


async def disassociate(request: Request, cloud: Cloud, form: Form) -> str:
    await cloud.put("network", f"/v2.0/floatingips/{request.path_params['fip_id']}", {"floatingip": {"port_id": None}})
    return "Floating IP disassociated."


async def release(request: Request, cloud: Cloud, form: Form) -> str:
    await cloud.delete("network", f"/v2.0/floatingips/{request.path_params['fip_id']}")
    return "Floating IP released."


routes = [
    web.page("/project/floating_ips", index),
    web.action("/project/floating_ips/allocate", allocate, fallback="/project/floating_ips"),
    web.action("/project/floating_ips/{fip_id}/associate", associate, fallback="/project/floating_ips"),
    web.action("/project/floating_ips/{fip_id}/disassociate", disassociate, fallback="/project/floating_ips"),
    web.action("/project/floating_ips/{fip_id}/release", release, fallback="/project/floating_ips"),
]
