"""Security groups and their rules."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from stratus.dashboard import web
from stratus.dashboard.cloud import ApiError, Cloud
from stratus.dashboard.web import Form

PROTOCOLS = ("tcp", "udp", "icmp", "any")


async def index(request: Request, cloud: Cloud) -> Response:
    body = await cloud.get("network", "/v2.0/security-groups", project_id=cloud.session.project.get("id", ""))
    groups = sorted(body.get("security_groups", []), key=lambda g: g["name"])
    names = {g["id"]: g["name"] for g in groups}
    return web.render(request, "security_groups.html", cloud.session, title="Security groups", groups=groups,
                      names=names, protocols=PROTOCOLS)


async def create(request: Request, cloud: Cloud, form: Form) -> str:
    name = form.require("name", "Group name")
    await cloud.post("network", "/v2.0/security-groups",
                     {"security_group": {"name": name, "description": form.get("description")}})
    return f"Security group {name} created."


async def delete(request: Request, cloud: Cloud, form: Form) -> str:
    await cloud.delete("network", f"/v2.0/security-groups/{request.path_params['group_id']}")
    return "Security group deleted."


def _port(value: str, label: str) -> int | None:
    if not value:
        return None
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise ApiError(400, f"{label} must be a number from 0 to 65535.")
    return int(value)


async def add_rule(request: Request, cloud: Cloud, form: Form) -> str:
    rule: dict[str, Any] = {"security_group_id": request.path_params["group_id"],
                            "direction": "egress" if form.get("direction") == "egress" else "ingress",
                            "ethertype": "IPv6" if form.get("ethertype") == "IPv6" else "IPv4"}
    protocol = form.get("protocol", "any")
    if protocol not in PROTOCOLS:
        raise ApiError(400, f"Unknown protocol {protocol!r}.")
    if protocol != "any":
        rule["protocol"] = protocol
    low, high = _port(form.get("port_min"), "Port"), _port(form.get("port_max"), "Port")
    if low is not None:
        rule["port_range_min"], rule["port_range_max"] = low, high if high is not None else low
    if form.get("remote_ip_prefix"):
        rule["remote_ip_prefix"] = form.get("remote_ip_prefix")
    await cloud.post("network", "/v2.0/security-group-rules", {"security_group_rule": rule})
    return "Rule added."


async def delete_rule(request: Request, cloud: Cloud, form: Form) -> str:
    await cloud.delete("network", f"/v2.0/security-group-rules/{request.path_params['rule_id']}")
    return "Rule deleted."


routes = [
    web.page("/project/security_groups", index),
    web.action("/project/security_groups/create", create, fallback="/project/security_groups"),
    web.action("/project/security_groups/{group_id}/delete", delete, fallback="/project/security_groups"),
    web.action("/project/security_groups/{group_id}/rules", add_rule, fallback="/project/security_groups"),
    web.action("/project/security_group_rules/{rule_id}/delete", delete_rule, fallback="/project/security_groups"),
]
