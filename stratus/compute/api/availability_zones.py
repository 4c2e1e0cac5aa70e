"""/v2.1/os-availability-zone: the zones a server may be booted into, and (for the operator) the
services of every zone.

A zone exists while some service's host is in it: a compute host is in the zone its aggregates
name, else in the default zone; the scheduler and conductor are in `internal`, which only the
detail view shows. A zone whose services are all disabled is listed as not available.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request

from stratus.compute import liveness, models, zones
from stratus.compute.api.deps import Caller, enforce, iso_micro, service

router = APIRouter(prefix="/v2.1", tags=["availability zones"])


def _zones(request: Request, *, detail: bool) -> list[dict[str, Any]]:
    svc = service(request)
    with svc.db.transaction() as session:
        rows = list(session.scalars(sa.select(models.Service).order_by(models.Service.host, models.Service.binary)))
        found = zones.service_zones(session, rows, svc.settings.default_availability_zone)
    enabled: dict[str, list[models.Service]] = defaultdict(list)
    disabled: set[str] = set()
    for row in rows:
        zone = found[row.id]
        if row.disabled:
            disabled.add(zone)
        else:
            enabled[zone].append(row)
    out: list[dict[str, Any]] = []
    down_time = svc.settings.service_down_time
    for zone in sorted(enabled):
        if zone == zones.INTERNAL_ZONE and not detail:
            continue
        hosts: dict[str, dict[str, Any]] | None = None
        if detail:
            hosts = {}
            for row in enabled[zone]:
                hosts.setdefault(row.host, {})[row.binary] = {
                    "available": liveness.is_up(row, down_time), "active": True,
                    "updated_at": iso_micro(row.updated_at)}
        out.append({"zoneName": zone, "zoneState": {"available": True}, "hosts": hosts})
    for zone in sorted(disabled - set(enabled)):
        if zone == zones.INTERNAL_ZONE and not detail:
            continue
        out.append({"zoneName": zone, "zoneState": {"available": False}, "hosts": None})
    return out


@router.get("/os-availability-zone")
def list_zones(request: Request, ctx: Caller) -> dict[str, Any]:
    return {"availabilityZoneInfo": _zones(request, detail=False)}


@router.get("/os-availability-zone/detail")
def list_zones_detail(request: Request, ctx: Caller) -> dict[str, Any]:
    enforce(request, ctx, "availability_zones:detail")
    return {"availabilityZoneInfo": _zones(request, detail=True)}
