"""Availability zones: a host is in the zone its aggregates' `availability_zone` metadata names,
else in the configured default zone."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from stratus.compute import models

AZ_KEY = "availability_zone"


def host_zones(session: Session, hosts: list[str] | None = None) -> dict[str, str]:
    """{host: zone} for the hosts that some aggregate puts in a zone (others are in the default)."""
    query = (sa.select(models.AggregateHost.host, models.AggregateMetadata.value)
             .join(models.AggregateMetadata, models.AggregateMetadata.aggregate_id == models.AggregateHost.aggregate_id)
             .where(models.AggregateMetadata.key == AZ_KEY))
    if hosts is not None:
        query = query.where(models.AggregateHost.host.in_(hosts))
    return {host: zone for host, zone in session.execute(query)}


def zone_of(session: Session, host: str, default: str) -> str:
    return host_zones(session, [host]).get(host, default)


# The zone Nova reports for services that are not compute hosts (scheduler, conductor).
INTERNAL_ZONE = "internal"
COMPUTE_BINARY = "nova-compute"


def service_zones(session: Session, services: list[models.Service], default: str) -> dict[int, str]:
    """{service id: zone}: a compute service is in its host's zone, the others in `internal`."""
    hosts = sorted({s.host for s in services if s.binary == COMPUTE_BINARY})
    # Past a few hundred hosts one read of every zoned host beats a long IN list.
    found = (host_zones(session, hosts) if len(hosts) <= 500 else host_zones(session)) if hosts else {}
    return {s.id: (found.get(s.host, default) if s.binary == COMPUTE_BINARY else INTERNAL_ZONE) for s in services}
