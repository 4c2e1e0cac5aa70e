"""Where a new volume goes: the storage hosts that are up, enabled, in the volume's zone, of the
backend its type asks for and with room for it (thin provisioning: what is provisioned may reach
`max_over_subscription_ratio` times the capacity), weighed by the room they have left."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from stratus.core.config import VolumeConfig
from stratus.core.db import utcnow
from stratus.volume import models
from stratus.volume.rpc import AGENT_BINARY


class NoValidBackend(Exception):
    """No storage host can take the volume; the message says why."""


@dataclass
class HostState:
    host: str
    availability_zone: str
    backend: str | None
    total_gb: float
    free_gb: float
    provisioned_gb: int

    def virtual_free(self, ratio: float) -> float:
        return self.total_gb * ratio - self.provisioned_gb


def host_states(session: Session, settings: VolumeConfig) -> list[HostState]:
    """Every storage host that is up and enabled, with what is provisioned on it (two queries)."""
    since = utcnow() - dt.timedelta(seconds=settings.service_down_time)
    services = session.scalars(sa.select(models.Service).where(
        models.Service.binary == AGENT_BINARY, models.Service.disabled.is_(False),
        models.Service.last_seen_up >= since)).all()
    provisioned: dict[str, int] = {}
    for model in (models.Volume, models.Snapshot):
        rows = session.execute(sa.select(model.host, sa.func.coalesce(sa.func.sum(model.size), 0))
                               .where(model.host.is_not(None)).group_by(model.host))
        for host, size in rows:
            if host is None:
                continue
            provisioned[host] = provisioned.get(host, 0) + int(size)
    return [HostState(s.host, s.availability_zone, s.backend, s.total_gb, s.free_gb, provisioned.get(s.host, 0))
            for s in services]


def select_host(session: Session, settings: VolumeConfig, *, size: int, availability_zone: str | None,
                extra_specs: dict[str, str], only_host: str | None = None) -> str:
    """The best host for a volume of `size` GiB; NoValidBackend when none fits."""
    hosts = host_states(session, settings)
    if not hosts:
        raise NoValidBackend("No valid backend was found. No storage host is up.")
    reasons = []
    if only_host is not None:  # a volume from a snapshot or a clone stays with its source
        hosts = [h for h in hosts if h.host == only_host]
        if not hosts:
            raise NoValidBackend(f"No valid backend was found. The source's host {only_host} is down.")
    if availability_zone:
        hosts = [h for h in hosts if h.availability_zone == availability_zone]
        if not hosts:
            reasons.append(f"no host in availability zone {availability_zone}")
    wanted_backend = extra_specs.get("volume_backend_name")
    if wanted_backend and hosts:
        hosts = [h for h in hosts if h.backend == wanted_backend]
        if not hosts:
            reasons.append(f"no host of backend {wanted_backend}")
    ratio = settings.max_over_subscription_ratio
    if hosts:
        hosts = [h for h in hosts if h.virtual_free(ratio) >= size and (ratio > 1 or h.free_gb >= size)]
        if not hosts:
            reasons.append(f"no host with {size} GiB free")
    if not hosts:
        raise NoValidBackend("No valid backend was found. " + "; ".join(reasons) + ".")
    return max(hosts, key=lambda h: (h.virtual_free(ratio), h.host)).host
