"""/v2.1/os-hypervisors: the compute nodes, what they hold and what they use.

A hypervisor's id is its compute node's integer key below 2.53 and its uuid from 2.53; its state
and status are those of the nova-compute service of its host. From 2.33 the lists page with
limit/marker; from 2.53 `hypervisor_hostname_pattern` and `with_servers` replace the /search and
/servers routes.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import APIRouter, Request
from sqlalchemy.orm import Session

from stratus.compute import liveness, models
from stratus.compute.api.deps import Caller, Version, base_url, enforce, service
from stratus.compute.api.microversion import APIVersion
from stratus.compute.zones import COMPUTE_BINARY
from stratus.core import errors
from stratus.core.db import utcnow

router = APIRouter(prefix="/v2.1", tags=["hypervisors"])

MAX_LIMIT = 1000
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
_QUERY_253 = {"limit", "marker", "hypervisor_hostname_pattern", "with_servers"}


def _workloads(session: Session, hosts: list[str]) -> dict[str, int]:
    """Instances of each host with a task in progress (Nova's current_workload)."""
    if not hosts:
        return {}
    m = models.Instance
    rows = session.execute(sa.select(m.host, sa.func.count()).where(
        m.host.in_(hosts), m.deleted.is_(False), sa.or_(m.task_state.is_not(None), m.vm_state == "building"))
        .group_by(m.host))
    return {str(host): int(count) for host, count in rows}


def _services(session: Session, hosts: list[str]) -> dict[str, models.Service]:
    if not hosts:
        return {}
    return {row.host: row for row in session.scalars(sa.select(models.Service).where(
        models.Service.host.in_(hosts), models.Service.binary == COMPUTE_BINARY))}


def _servers(session: Session, hosts: list[str]) -> dict[str, list[dict[str, str]]]:
    found: dict[str, list[dict[str, str]]] = defaultdict(list)
    if hosts:
        for host, name, instance_id in session.execute(
                sa.select(models.Instance.host, models.Instance.name, models.Instance.id).where(
                    models.Instance.host.in_(hosts), models.Instance.deleted.is_(False))
                .order_by(models.Instance.created_at, models.Instance.id)):
            found[str(host)].append({"name": name, "uuid": instance_id})
    return found


def _view(node: models.ComputeNode, svc_row: models.Service | None, version: APIVersion, down_time: float,
          *, detail: bool, workload: int = 0) -> dict[str, Any]:
    at_253 = version.at_least("2.53")
    view: dict[str, Any] = {
        "id": node.uuid if at_253 else node.id, "hypervisor_hostname": node.hypervisor_hostname,
        "state": liveness.state(svc_row, down_time) if svc_row is not None else "down",
        "status": "disabled" if svc_row is not None and svc_row.disabled else "enabled"}
    if not detail:
        return view
    free_disk = node.local_gb - node.local_gb_used
    view.update({
        "host_ip": node.host_ip, "hypervisor_type": node.hypervisor_type,
        "hypervisor_version": node.hypervisor_version, "vcpus": node.vcpus, "vcpus_used": node.vcpus_used,
        "memory_mb": node.memory_mb, "memory_mb_used": node.memory_mb_used, "local_gb": node.local_gb,
        "local_gb_used": node.local_gb_used, "free_ram_mb": node.memory_mb - node.memory_mb_used,
        "free_disk_gb": free_disk, "current_workload": workload, "running_vms": node.running_vms,
        "disk_available_least": free_disk,
        "cpu_info": dict(node.cpu_info or {}) if version.at_least("2.28") else json.dumps(node.cpu_info or {}),
        "service": {"host": node.host,
                    "id": (svc_row.uuid if at_253 else svc_row.id) if svc_row is not None else None,
                    "disabled_reason": svc_row.disabled_reason if svc_row is not None else None}})
    return view


def _render(request: Request, session: Session, nodes: list[models.ComputeNode], version: APIVersion, *,
            detail: bool, with_servers: bool = False) -> list[dict[str, Any]]:
    """The views of `nodes`, their services, workloads and servers read in bulk."""
    hosts = [node.host for node in nodes]
    services = _services(session, hosts)
    workloads = _workloads(session, hosts) if detail else {}
    servers = _servers(session, hosts) if with_servers else {}
    down_time = service(request).settings.service_down_time
    out = []
    for node in nodes:
        view = _view(node, services.get(node.host), version, down_time, detail=detail,
                     workload=workloads.get(node.host, 0))
        if servers.get(node.host):
            view["servers"] = servers[node.host]
        out.append(view)
    return out


def _flag(value: str | None, name: str) -> bool:
    if value is None:
        return False
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise errors.BadRequest(f"Invalid input for query parameters {name}. Value: {value}. "
                            f"'{value}' is not a 'boolean'.")


def _limit(value: str | None) -> int:
    if value is None:
        return MAX_LIMIT
    try:
        limit = int(value)
    except ValueError:
        raise errors.BadRequest("limit param must be an integer") from None
    if limit < 0:
        raise errors.BadRequest("limit param must be positive")
    return min(limit, MAX_LIMIT)


def _matching(pattern: str) -> Any:
    return models.ComputeNode.hypervisor_hostname.contains(pattern, autoescape=True)


def _list(request: Request, ctx: Any, version: APIVersion, *, detail: bool) -> dict[str, Any]:
    enforce(request, ctx, "hypervisors")
    params = request.query_params
    at_253 = version.at_least("2.53")
    if at_253:
        unknown = set(params) - _QUERY_253
        if unknown:
            raise errors.BadRequest("Invalid input for query parameters: additional properties are not allowed "
                                    f"({', '.join(sorted(unknown))} was unexpected)")
    paging = version.at_least("2.33")
    pattern = params.get("hypervisor_hostname_pattern") if at_253 else None
    with_servers = _flag(params.get("with_servers"), "with_servers") if at_253 else False
    if pattern is not None and ("limit" in params or "marker" in params):
        raise errors.BadRequest("Paging over hypervisors with the hypervisor_hostname_pattern query parameter is "
                                "not supported.")
    m = models.ComputeNode
    query = sa.select(m).order_by(m.id)
    limit = _limit(params.get("limit")) if paging else None
    with service(request).db.transaction() as session:
        if pattern is not None:
            query = query.where(_matching(pattern))
        if paging and params.get("marker"):
            marker = params["marker"]
            column = m.uuid if at_253 else m.id
            start = None
            if at_253 or marker.isdigit():
                start = session.scalar(sa.select(m.id).where(column == (marker if at_253 else int(marker))))
            if start is None:
                raise errors.BadRequest(f"marker [{marker}] not found")
            query = query.where(m.id > start)
        if limit is not None:
            query = query.limit(limit)
        nodes = list(session.scalars(query))
        if pattern is not None and not nodes:
            raise errors.NotFound(f"No hypervisor matching '{pattern}' could be found.")
        out: dict[str, Any] = {"hypervisors": _render(request, session, nodes, version, detail=detail,
                                                      with_servers=with_servers)}
    if limit is not None and nodes and len(nodes) == limit:
        query_args = {"limit": str(limit), "marker": str(out["hypervisors"][-1]["id"])}
        if with_servers:
            query_args["with_servers"] = "true"
        path = "/os-hypervisors/detail" if detail else "/os-hypervisors"
        out["hypervisors_links"] = [{"rel": "next", "href": f"{base_url(request)}/v2.1{path}?{urlencode(query_args)}"}]
    return out


@router.get("/os-hypervisors")
def list_hypervisors(request: Request, ctx: Caller, version: Version) -> dict[str, Any]:
    return _list(request, ctx, version, detail=False)


@router.get("/os-hypervisors/detail")
def list_hypervisors_detail(request: Request, ctx: Caller, version: Version) -> dict[str, Any]:
    return _list(request, ctx, version, detail=True)


_STATISTICS = ("vcpus", "memory_mb", "local_gb", "vcpus_used", "memory_mb_used", "local_gb_used", "running_vms")


@router.get("/os-hypervisors/statistics")
def statistics(request: Request, ctx: Caller) -> dict[str, Any]:
    """Sums over every hypervisor (deprecated by Nova at 2.88, served here at every version)."""
    enforce(request, ctx, "hypervisors")
    m = models.ComputeNode
    with service(request).db.transaction() as session:
        row = session.execute(sa.select(sa.func.count(m.id), *(sa.func.coalesce(sa.func.sum(getattr(m, name)), 0)
                                                              for name in _STATISTICS))).one()
        count, totals = int(row[0]), dict(zip(_STATISTICS, (int(value) for value in row[1:]), strict=True))
        workload = session.scalar(sa.select(sa.func.count()).select_from(models.Instance).where(
            models.Instance.host.is_not(None), models.Instance.deleted.is_(False),
            sa.or_(models.Instance.task_state.is_not(None), models.Instance.vm_state == "building")))
    free_disk = totals["local_gb"] - totals["local_gb_used"]
    return {"hypervisor_statistics": {
        "count": count, **totals, "free_ram_mb": totals["memory_mb"] - totals["memory_mb_used"],
        "free_disk_gb": free_disk, "disk_available_least": free_disk, "current_workload": int(workload or 0)}}


def _find(session: Session, hypervisor_id: str, version: APIVersion) -> models.ComputeNode:
    if version.at_least("2.53"):
        try:
            wanted = str(uuid.UUID(hypervisor_id))
        except ValueError:
            raise errors.BadRequest(f"Invalid uuid {hypervisor_id}") from None
        node = session.scalar(sa.select(models.ComputeNode).where(models.ComputeNode.uuid == wanted))
    else:
        node = session.get(models.ComputeNode, int(hypervisor_id)) if hypervisor_id.isdigit() else None
    if node is None:
        raise errors.NotFound(f"Hypervisor with ID '{hypervisor_id}' could not be found.")
    return node


@router.get("/os-hypervisors/{hypervisor_id}")
def show_hypervisor(request: Request, hypervisor_id: str, ctx: Caller, version: Version) -> dict[str, Any]:
    enforce(request, ctx, "hypervisors")
    params = request.query_params
    with_servers = False
    if version.at_least("2.53"):
        unknown = set(params) - {"with_servers"}
        if unknown:
            raise errors.BadRequest("Invalid input for query parameters: additional properties are not allowed "
                                    f"({', '.join(sorted(unknown))} was unexpected)")
        with_servers = _flag(params.get("with_servers"), "with_servers")
    with service(request).db.transaction() as session:
        node = _find(session, hypervisor_id, version)
        return {"hypervisor": _render(request, session, [node], version, detail=True, with_servers=with_servers)[0]}


@router.get("/os-hypervisors/{hypervisor_id}/uptime")
def uptime(request: Request, hypervisor_id: str, ctx: Caller, version: Version) -> dict[str, Any]:
    """How long the host's compute service has been running, in the `uptime` command's words (the
    fake driver has no kernel of its own to ask), with no users and no load."""
    enforce(request, ctx, "hypervisors")
    with service(request).db.transaction() as session:
        node = _find(session, hypervisor_id, version)
        view = _render(request, session, [node], version, detail=False)[0]
        svc_row = _services(session, [node.host]).get(node.host)
    now = utcnow()
    since = svc_row.created_at if svc_row is not None else node.created_at
    seconds = max(int((now - since).total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, minutes = rest // 3600, rest % 3600 // 60
    up = f"{days} day{'s' if days != 1 else ''}, {hours:2d}:{minutes:02d}" if days else f"{hours:2d}:{minutes:02d}"
    view["uptime"] = f" {now:%H:%M:%S} up {up},  0 users,  load average: 0.00, 0.00, 0.00"
    return {"hypervisor": view}


def _search(request: Request, ctx: Any, version: APIVersion, pattern: str, *, servers: bool) -> dict[str, Any]:
    """The deprecated /search and /servers routes (gone at 2.53, where the query parameters replace them)."""
    enforce(request, ctx, "hypervisors")
    if version.at_least("2.53"):
        raise errors.NotFound("The resource could not be found.")
    with service(request).db.transaction() as session:
        nodes = list(session.scalars(sa.select(models.ComputeNode).where(_matching(pattern))
                                     .order_by(models.ComputeNode.id)))
        if not nodes:
            raise errors.NotFound(f"No hypervisor matching '{pattern}' could be found.")
        return {"hypervisors": _render(request, session, nodes, version, detail=False, with_servers=servers)}


@router.get("/os-hypervisors/{hypervisor_hostname_pattern}/search")
def search(request: Request, hypervisor_hostname_pattern: str, ctx: Caller, version: Version) -> dict[str, Any]:
    return _search(request, ctx, version, hypervisor_hostname_pattern, servers=False)


@router.get("/os-hypervisors/{hypervisor_hostname_pattern}/servers")
def servers(request: Request, hypervisor_hostname_pattern: str, ctx: Caller, version: Version) -> dict[str, Any]:
    return _search(request, ctx, version, hypervisor_hostname_pattern, servers=True)
