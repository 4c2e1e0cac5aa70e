"""`/os-services` (the volume roles and their heartbeats) and `/os-availability-zone`."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request

from stratus.core.db import utcnow
from stratus.volume import models
from stratus.volume.api.deps import Caller, Version, enforce, iso, service
from stratus.volume.rpc import AGENT_BINARY

router = APIRouter(prefix="/v3", tags=["services"])


@router.get("/os-services")
def list_services(request: Request, ctx: Caller, version: Version) -> dict[str, Any]:
    enforce(request, ctx, "services")
    svc = service(request)
    params = request.query_params
    since = utcnow() - dt.timedelta(seconds=svc.settings.service_down_time)
    query = sa.select(models.Service).order_by(models.Service.id)
    if params.get("host"):
        query = query.where(models.Service.host == params["host"])
    if params.get("binary"):
        query = query.where(models.Service.binary == params["binary"])
    with svc.db.transaction() as session:
        rows = list(session.scalars(query))
    result = []
    for row in rows:
        up = row.last_seen_up is not None and row.last_seen_up >= since
        item: dict[str, Any] = {"binary": row.binary, "host": row.host, "zone": row.availability_zone,
                                "status": "disabled" if row.disabled else "enabled", "state": "up" if up else "down",
                                "updated_at": iso(row.last_seen_up), "disabled_reason": row.disabled_reason}
        if version.at_least("3.7"):
            item["cluster"] = None
        if version.at_least("3.49") and row.binary == AGENT_BINARY:
            item["backend_state"] = "up" if up else "down"
        result.append(item)
    return {"services": result}


@router.get("/os-availability-zone")
def availability_zones(request: Request, ctx: Caller) -> dict[str, Any]:
    svc = service(request)
    since = utcnow() - dt.timedelta(seconds=svc.settings.service_down_time)
    with svc.db.transaction() as session:
        rows = session.execute(sa.select(models.Service.availability_zone, models.Service.last_seen_up,
                                         models.Service.disabled).where(models.Service.binary == AGENT_BINARY)).all()
    zones: dict[str, bool] = {svc.settings.availability_zone: False}
    for zone, seen, disabled in rows:
        zones[zone] = zones.get(zone, False) or (seen is not None and seen >= since and not disabled)
    return {"availabilityZoneInfo": [{"zoneName": name, "zoneState": {"available": up}}
                                     for name, up in sorted(zones.items())]}
