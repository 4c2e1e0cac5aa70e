"""The network topology picture: networks as horizontal bars, routers and instances as boxes above
them, a line for each port joining a box to a network. Drawn on the server as SVG (four API calls)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from stratus.dashboard import web
from stratus.dashboard.cloud import Cloud
from stratus.dashboard.instances import list_servers

LEFT, BOX_W, BOX_H, GAP, TOP, NET_GAP, NET_H = 190, 120, 40, 14, 20, 56, 14


@dataclass
class Box:
    kind: str  # "router" or "server"
    name: str
    status: str
    x: int
    links: list[tuple[int, str]] = field(default_factory=list)  # (network row y, address)


@dataclass
class Bar:
    name: str
    cidrs: str
    external: bool
    y: int


@dataclass
class Picture:
    width: int
    height: int
    bars: list[Bar]
    boxes: list[Box]
    box_h: int = BOX_H
    box_w: int = BOX_W
    top: int = TOP
    left: int = LEFT


def layout(networks: list[dict[str, Any]], subnets: list[dict[str, Any]], routers: list[dict[str, Any]],
           servers: list[dict[str, Any]], ports: list[dict[str, Any]]) -> Picture:
    """Where everything goes. Only networks something is on, or that the project owns, are drawn."""
    cidrs: dict[str, list[str]] = {}
    for subnet in subnets:
        cidrs.setdefault(subnet["network_id"], []).append(subnet["cidr"])
    device_ports: dict[str, list[dict[str, Any]]] = {}
    for port in ports:
        device_ports.setdefault(port.get("device_id") or "", []).append(port)
    devices = [("router", r["id"], r.get("name") or r["id"][:8], r.get("status", "")) for r in routers]
    devices += [("server", s["id"], s.get("name") or s["id"][:8], s.get("status", "")) for s in servers]
    used = {p["network_id"] for d in devices for p in device_ports.get(d[1], [])}
    used |= {(r.get("external_gateway_info") or {}).get("network_id") for r in routers} - {None}
    shown = [n for n in networks if n["id"] in used or not n.get("router:external")]
    shown.sort(key=lambda n: (not n.get("router:external"), n.get("name") or ""))
    base = TOP + BOX_H + 50
    rows = {n["id"]: base + i * NET_GAP for i, n in enumerate(shown)}
    bars = [Bar(n.get("name") or n["id"][:8], ", ".join(cidrs.get(n["id"], [])), bool(n.get("router:external")),
                rows[n["id"]]) for n in shown]
    boxes = []
    for i, (kind, device_id, name, status) in enumerate(devices):
        box = Box(kind, name, status, LEFT + i * (BOX_W + GAP))
        for port in device_ports.get(device_id, []):
            if port["network_id"] in rows:
                address = ", ".join(ip["ip_address"] for ip in port.get("fixed_ips", []))
                box.links.append((rows[port["network_id"]], address))
        boxes.append(box)
    width = max(LEFT + len(devices) * (BOX_W + GAP) + 20, 600)
    height = base + max(len(shown), 1) * NET_GAP + 10
    return Picture(width, height, bars, boxes)


async def index(request: Request, cloud: Cloud) -> Response:
    networks, subnets, routers, ports, servers = await asyncio.gather(
        cloud.get("network", "/v2.0/networks"), cloud.get("network", "/v2.0/subnets"),
        cloud.get("network", "/v2.0/routers"), cloud.get("network", "/v2.0/ports"), list_servers(cloud))
    picture = layout(networks.get("networks", []), subnets.get("subnets", []), routers.get("routers", []),
                     servers, ports.get("ports", []))
    return web.render(request, "topology.html", cloud.session, title="Network topology", picture=picture,
                      net_h=NET_H)


routes = [web.page("/project/topology", index)]
