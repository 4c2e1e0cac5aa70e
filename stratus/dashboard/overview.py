"""The project overview: quota usage as bar charts and the usage summary for a period."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from stratus.dashboard import web
from stratus.dashboard.cloud import ApiError, Cloud, TokenRejected


def _period(request: Request) -> tuple[dt.date, dt.date]:
    """The period asked for (start and end dates, end inclusive); by default this month so far."""
    today = dt.datetime.now(dt.UTC).date()
    try:
        start = dt.date.fromisoformat(request.query_params.get("start") or today.replace(day=1).isoformat())
        end = dt.date.fromisoformat(request.query_params.get("end") or today.isoformat())
    except ValueError:
        raise ApiError(400, "Dates must be written YYYY-MM-DD.") from None
    if end < start:
        raise ApiError(400, "The period must end on or after its start.")
    return start, end


async def _volume_limits(cloud: Cloud) -> dict[str, Any]:
    if not cloud.has("volumev3"):
        return {}
    try:
        return (await cloud.get("volumev3", "/limits")).get("limits", {}).get("absolute", {})
    except TokenRejected:
        raise
    except ApiError:
        return {}  # a volume service that is down costs the overview one chart, not the page


async def index(request: Request, cloud: Cloud) -> Response:
    start, end = _period(request)
    project = cloud.session.project.get("id", "")
    limits, network, volume, usage = await asyncio.gather(
        cloud.get("compute", "/limits"), cloud.get("network", f"/v2.0/quotas/{project}/details"),
        _volume_limits(cloud),
        cloud.get("compute", f"/os-simple-tenant-usage/{project}", start=f"{start.isoformat()}T00:00:00",
                  end=f"{(end + dt.timedelta(days=1)).isoformat()}T00:00:00"))
    absolute = limits.get("limits", {}).get("absolute", {})
    net = network.get("quota", {})
    charts = [
        ("Instances", absolute.get("totalInstancesUsed", 0), absolute.get("maxTotalInstances", -1), ""),
        ("vCPUs", absolute.get("totalCoresUsed", 0), absolute.get("maxTotalCores", -1), ""),
        ("RAM", absolute.get("totalRAMUsed", 0), absolute.get("maxTotalRAMSize", -1), " MB"),
        ("Floating IPs", net.get("floatingip", {}).get("used", 0), net.get("floatingip", {}).get("limit", -1), ""),
        ("Security groups", net.get("security_group", {}).get("used", 0),
         net.get("security_group", {}).get("limit", -1), ""),
        ("Networks", net.get("network", {}).get("used", 0), net.get("network", {}).get("limit", -1), ""),
    ]
    if volume:
        charts.insert(3, ("Volumes", volume.get("totalVolumesUsed", 0), volume.get("maxTotalVolumes", -1), ""))
    summary = usage.get("tenant_usage") or {}
    return web.render(request, "overview.html", cloud.session, title="Overview", charts=charts,
                      start=start.isoformat(), end=end.isoformat(), summary=summary,
                      server_usages=summary.get("server_usages", []))


routes = [web.page("/project/", index), web.page("/project", index)]
