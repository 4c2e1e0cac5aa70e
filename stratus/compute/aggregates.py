"""Host aggregates: the rules Nova keeps about hosts, metadata and availability zones.

An aggregate's zone is its `availability_zone` metadata. A host is in at most one zone: it may
join several aggregates only when they name the same zone (or none). A zone may not be emptied
through metadata, nor named like the internal zone of the control services, nor contain ':'
(the `zone:host` form of a boot request). Changing the zone of an aggregate whose hosts carry
instances is refused: it would move running servers to another zone under their feet.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from stratus.compute import models
from stratus.compute.zones import AZ_KEY, COMPUTE_BINARY, INTERNAL_ZONE
from stratus.core import errors
from stratus.core.db import utcnow


def check_zone_name(zone: str) -> None:
    """The spelling rules of a zone name (empty, ':', surrounding blanks, the internal zone)."""
    if not zone or zone != zone.strip():
        raise errors.BadRequest("An availability zone name may not be empty nor begin or end with a blank.")
    if ":" in zone:
        raise errors.BadRequest(f"Invalid availability zone name {zone!r}: it may not contain ':'.")
    if zone == INTERNAL_ZONE:
        raise errors.BadRequest(f"The availability zone name {zone!r} is reserved for the internal services.")


def get(session: Session, aggregate_id: str, *, lock: bool = False) -> models.Aggregate:
    try:
        key = int(aggregate_id)
    except ValueError:
        raise errors.BadRequest(f"Invalid aggregate id {aggregate_id}: it must be an integer.") from None
    query = sa.select(models.Aggregate).where(models.Aggregate.id == key)
    row = session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise errors.NotFound(f"Aggregate {aggregate_id} could not be found.")
    return row


def hosts_and_metadata(session: Session, ids: list[int]) -> tuple[dict[int, list[str]], dict[int, dict[str, str]]]:
    """Each aggregate's hosts and metadata, two reads for any number of aggregates."""
    hosts: dict[int, list[str]] = defaultdict(list)
    metadata: dict[int, dict[str, str]] = defaultdict(dict)
    if ids:
        for agg_id, host in session.execute(sa.select(models.AggregateHost.aggregate_id, models.AggregateHost.host)
                                            .where(models.AggregateHost.aggregate_id.in_(ids))
                                            .order_by(models.AggregateHost.host)):
            hosts[agg_id].append(host)
        for agg_id, key, value in session.execute(
                sa.select(models.AggregateMetadata.aggregate_id, models.AggregateMetadata.key,
                          models.AggregateMetadata.value).where(models.AggregateMetadata.aggregate_id.in_(ids))):
            metadata[agg_id][key] = value
    return hosts, metadata


def _lock_hosts(session: Session, hosts: list[str]) -> None:
    """Serialize the zone checks of one host: its compute service row is the lock."""
    if hosts:
        session.execute(sa.select(models.Service.id).where(models.Service.host.in_(sorted(hosts)),
                                                           models.Service.binary == COMPUTE_BINARY)
                        .order_by(models.Service.host).with_for_update())


def conflicting_zones(session: Session, aggregate_id: int, hosts: list[str], zone: str) -> list[str]:
    """Zones other than `zone` that other aggregates put any of `hosts` in. A locking read: it sees
    the latest committed rows even where the transaction reads from an older snapshot (MariaDB's
    repeatable read), once the hosts' service rows are locked."""
    if not hosts:
        return []
    rows = session.scalars(sa.select(models.AggregateMetadata.value)
                           .join(models.AggregateHost,
                                 models.AggregateHost.aggregate_id == models.AggregateMetadata.aggregate_id)
                           .where(models.AggregateHost.host.in_(hosts), models.AggregateMetadata.key == AZ_KEY,
                                  models.AggregateMetadata.aggregate_id != aggregate_id,
                                  models.AggregateMetadata.value != zone).with_for_update())
    return sorted(set(rows))


def _hosts_with_instances(session: Session, hosts: list[str]) -> bool:
    if not hosts:
        return False
    return bool(session.scalar(sa.select(sa.func.count()).select_from(models.Instance).where(
        models.Instance.host.in_(hosts), models.Instance.deleted.is_(False))))


def apply_metadata(session: Session, row: models.Aggregate, changes: dict[str, Any], what: str) -> None:
    """Merge `changes` into the metadata (None deletes a key), keeping the zone rules; `what` names
    the refused action in the 400 message ("update", "update metadata of")."""
    hosts, metadata = hosts_and_metadata(session, [row.id])
    current = metadata.get(row.id, {})
    members = hosts.get(row.id, [])
    if AZ_KEY in changes:
        zone = changes[AZ_KEY]
        if not zone:
            raise errors.BadRequest(f"Cannot {what} aggregate {row.id}. Reason: Aggregate {row.name} does not support "
                                    "empty named availability zone.")
        check_zone_name(zone)
        _lock_hosts(session, members)
        conflicts = conflicting_zones(session, row.id, members, zone)
        if conflicts:
            raise errors.BadRequest(f"Cannot {what} aggregate {row.id}. Reason: One or more hosts already in "
                                    f"availability zone(s) {conflicts}.")
        if current.get(AZ_KEY) != zone and _hosts_with_instances(session, members):
            raise errors.BadRequest(f"Cannot {what} aggregate {row.id}. Reason: One or more hosts contain instances "
                                    "in this zone.")
    for key, value in changes.items():
        if value is None:
            if key in current:
                session.execute(sa.delete(models.AggregateMetadata).where(
                    models.AggregateMetadata.aggregate_id == row.id, models.AggregateMetadata.key == key))
        elif key in current:
            session.execute(sa.update(models.AggregateMetadata).where(
                models.AggregateMetadata.aggregate_id == row.id, models.AggregateMetadata.key == key)
                .values(value=value))
        else:
            session.add(models.AggregateMetadata(aggregate_id=row.id, key=key, value=value))
    row.updated_at = utcnow()
    session.flush()


def add_host(session: Session, row: models.Aggregate, host: str) -> None:
    service = session.scalar(sa.select(models.Service).where(models.Service.host == host,
                                                             models.Service.binary == COMPUTE_BINARY)
                             .with_for_update())
    if service is None:
        raise errors.NotFound(f"Compute host {host} could not be found.")
    if session.get(models.AggregateHost, (row.id, host)) is not None:
        raise errors.Conflict(f"Aggregate {row.id} already has host {host}.")
    zone = session.scalar(sa.select(models.AggregateMetadata.value).where(
        models.AggregateMetadata.aggregate_id == row.id, models.AggregateMetadata.key == AZ_KEY))
    if zone is not None:
        conflicts = conflicting_zones(session, row.id, [host], zone)
        if conflicts:
            raise errors.Conflict(f"Cannot add host to aggregate {row.id}. Reason: One or more hosts already in "
                                  f"availability zone(s) {conflicts}.")
    session.add(models.AggregateHost(aggregate_id=row.id, host=host))
    row.updated_at = utcnow()
    session.flush()


def remove_host(session: Session, row: models.Aggregate, host: str) -> None:
    known = session.scalar(sa.select(models.Service.id).where(models.Service.host == host,
                                                              models.Service.binary == COMPUTE_BINARY))
    if known is None:
        raise errors.NotFound(f"Compute host {host} could not be found.")
    member = session.get(models.AggregateHost, (row.id, host))
    if member is None:
        raise errors.NotFound(f"Cannot remove host {host} in aggregate {row.id}: the aggregate has no such host.")
    session.delete(member)
    row.updated_at = utcnow()
    session.flush()
