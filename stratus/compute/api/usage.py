"""/v2.1/os-simple-tenant-usage: what each project's servers used over a period (the metering that
billing reads).

A server counts from `launched_at` until `terminated_at` (or `deleted_at` for one deleted without a
termination stamp), clipped to the period; a server never launched counts nothing. Usage is the
server's flavor (the copy it holds now) times those hours, as Nova computes it (stops, pauses and
earlier flavors are not told apart). From 2.40 the lists page over servers with limit/marker.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import APIRouter, Request

from stratus.compute import models
from stratus.compute.api.deps import Caller, Version, base_url, enforce, iso_micro, service
from stratus.compute.api.microversion import APIVersion
from stratus.core import errors
from stratus.core.db import utcnow

router = APIRouter(prefix="/v2.1", tags=["usage"])

MAX_LIMIT = 1000
_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S")
_HOUR = dt.timedelta(hours=1)


def parse_time(value: str | None, now: dt.datetime) -> dt.datetime:
    """A period bound: Nova's formats, or ISO 8601 with an offset (made naive UTC); absent is now."""
    if not value:
        return now
    for fmt in _FORMATS:
        try:
            return dt.datetime.strptime(value, fmt)
        except ValueError:
            continue
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise errors.BadRequest(f"Invalid datetime string: {value}. Datetime is in invalid format") from None
    return parsed.astimezone(dt.UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def hours_for(launched: dt.datetime | None, stopped: dt.datetime | None, start: dt.datetime,
              stop: dt.datetime) -> float:
    """Hours of [launched, stopped) (open-ended while running) inside [start, stop)."""
    if launched is None or launched >= stop or (stopped is not None and stopped <= start):
        return 0.0
    begin = max(launched, start)
    end = stop if stopped is None else min(stopped, stop)
    return max(end - begin, dt.timedelta(0)) / _HOUR


@dataclass
class ServerUsage:
    instance_id: str
    name: str
    tenant_id: str
    flavor: str
    vcpus: int
    memory_mb: int
    local_gb: int
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    state: str
    hours: float

    def view(self, now: dt.datetime) -> dict[str, Any]:
        if self.started_at is None:
            uptime = 0
        else:
            uptime = int(((self.ended_at if self.state == "terminated" and self.ended_at else now)
                          - self.started_at).total_seconds())
        return {"instance_id": self.instance_id, "name": self.name, "hours": self.hours, "flavor": self.flavor,
                "vcpus": self.vcpus, "memory_mb": self.memory_mb, "local_gb": self.local_gb,
                "started_at": iso_micro(self.started_at), "ended_at": iso_micro(self.ended_at),
                "state": self.state, "tenant_id": self.tenant_id, "uptime": uptime}


@dataclass
class TenantUsage:
    tenant_id: str
    start: dt.datetime
    stop: dt.datetime
    total_hours: float = 0.0
    total_vcpus_usage: float = 0.0
    total_memory_mb_usage: float = 0.0
    total_local_gb_usage: float = 0.0
    servers: list[ServerUsage] = field(default_factory=list)

    def add(self, usage: ServerUsage) -> None:
        self.total_hours += usage.hours
        self.total_vcpus_usage += usage.vcpus * usage.hours
        self.total_memory_mb_usage += usage.memory_mb * usage.hours
        self.total_local_gb_usage += usage.local_gb * usage.hours
        self.servers.append(usage)

    def view(self, now: dt.datetime, detailed: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tenant_id": self.tenant_id, "start": iso_micro(self.start), "stop": iso_micro(self.stop),
            "total_hours": self.total_hours, "total_vcpus_usage": self.total_vcpus_usage,
            "total_memory_mb_usage": self.total_memory_mb_usage, "total_local_gb_usage": self.total_local_gb_usage}
        if detailed:
            out["server_usages"] = [usage.view(now) for usage in self.servers]
        return out


def server_usage(row: models.Instance, start: dt.datetime, stop: dt.datetime) -> ServerUsage:
    flavor = row.flavor or {}
    # It stopped counting at its termination, else at its deletion, else not yet.
    stopped = row.terminated_at or (row.deleted_at if row.deleted else None)
    return ServerUsage(
        instance_id=row.id, name=row.name, tenant_id=row.project_id, flavor=str(flavor.get("name", "")),
        vcpus=int(flavor.get("vcpus", row.vcpus)), memory_mb=int(flavor.get("ram", row.memory_mb)),
        local_gb=int(flavor.get("disk", row.root_gb)) + int(flavor.get("ephemeral", row.ephemeral_gb)),
        started_at=row.launched_at, ended_at=stopped,
        state="terminated" if row.deleted or row.vm_state == "deleted" else row.vm_state,
        hours=hours_for(row.launched_at, stopped, start, stop))


def summarize(rows: list[models.Instance], start: dt.datetime, stop: dt.datetime) -> list[TenantUsage]:
    """One usage per project, in the order the projects first appear in `rows`."""
    tenants: dict[str, TenantUsage] = {}
    for row in rows:
        usage = tenants.get(row.project_id)
        if usage is None:
            usage = tenants[row.project_id] = TenantUsage(row.project_id, start, stop)
        usage.add(server_usage(row, start, stop))
    return list(tenants.values())


def _period(request: Request, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    params = request.query_params
    start, stop = parse_time(params.get("start"), now), parse_time(params.get("end"), now)
    if start > stop:
        raise errors.BadRequest("Invalid start time. The start time cannot occur after the end time.")
    return start, stop


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


def _instances(request: Request, version: APIVersion, start: dt.datetime, stop: dt.datetime,
               project_id: str | None) -> tuple[list[models.Instance], int | None]:
    """The servers that ran in the period (deleted ones too), by project then id; and the page size
    when the version pages."""
    m = models.Instance
    stopped = sa.func.coalesce(m.terminated_at, sa.case((m.deleted.is_(True), m.deleted_at), else_=None))
    query = (sa.select(m).where(m.launched_at.is_not(None), m.launched_at < stop,
                                sa.or_(stopped.is_(None), stopped > start))
             .order_by(m.project_id, m.id))
    if project_id is not None:
        query = query.where(m.project_id == project_id)
    limit = None
    params = request.query_params
    with service(request).db.transaction() as session:
        if version.at_least("2.40"):
            limit = _limit(params.get("limit"))
            marker = params.get("marker")
            if marker:
                after = session.execute(sa.select(m.project_id, m.id).where(m.id == marker)).first()
                if after is None:
                    raise errors.BadRequest(f"marker [{marker}] not found")
                query = query.where(sa.or_(m.project_id > after[0], sa.and_(m.project_id == after[0], m.id > after[1])))
            query = query.limit(limit)
        rows = list(session.scalars(query))
    return rows, limit


def _next_link(request: Request, path: str, rows: list[models.Instance], limit: int | None) -> list[dict[str, str]]:
    if limit is None or not rows or len(rows) < limit:
        return []
    args = dict(request.query_params)
    args["marker"] = rows[-1].id
    return [{"rel": "next", "href": f"{base_url(request)}/v2.1{path}?{urlencode(args)}"}]


@router.get("/os-simple-tenant-usage")
def list_usage(request: Request, ctx: Caller, version: Version) -> dict[str, Any]:
    enforce(request, ctx, "usage:list")
    now = utcnow()
    start, stop = _period(request, now)
    detailed = request.query_params.get("detailed") == "1"
    rows, limit = _instances(request, version, start, stop, None)
    out: dict[str, Any] = {"tenant_usages": [usage.view(now, detailed) for usage in summarize(rows, start, stop)]}
    links = _next_link(request, "/os-simple-tenant-usage", rows, limit)
    if links:
        out["tenant_usages_links"] = links
    return out


@router.get("/os-simple-tenant-usage/{tenant_id}")
def show_usage(request: Request, tenant_id: str, ctx: Caller, version: Version) -> dict[str, Any]:
    enforce(request, ctx, "usage:show", {"project_id": tenant_id})
    now = utcnow()
    start, stop = _period(request, now)
    rows, limit = _instances(request, version, start, stop, tenant_id)
    found = summarize(rows, start, stop)
    out: dict[str, Any] = {"tenant_usage": found[0].view(now, True) if found else {}}
    links = _next_link(request, f"/os-simple-tenant-usage/{tenant_id}", rows, limit)
    if links:
        out["tenant_usage_links"] = links
    return out
