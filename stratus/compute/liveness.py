"""Whether a compute service is up: forced down by the operator, or silent for too long."""

from __future__ import annotations

import datetime as dt

from stratus.compute.models import Service
from stratus.core.db import utcnow


def is_up(service: Service, down_time: float, now: dt.datetime | None = None) -> bool:
    if service.forced_down or service.last_seen_up is None:
        return False
    return ((now or utcnow()) - service.last_seen_up).total_seconds() <= down_time


def state(service: Service, down_time: float, now: dt.datetime | None = None) -> str:
    """Nova's `state` field: "up" or "down"."""
    return "up" if is_up(service, down_time, now) else "down"
