"""What the API does with volume records: who sees which, and the checks of each operation."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.volume import models

# Statuses from which an operation may start (Cinder's own lists, where it has them).
DELETABLE = {"available", "error", "error_restoring", "error_extending", "error_managing"}
SNAPSHOTTABLE = {"available", "in-use"}


def visible_volume(session: Session, ctx: RequestContext, volume_id: str, *, lock: bool = False) -> models.Volume:
    """The volume, if the caller's project owns it or the caller is an admin; 404 otherwise."""
    query = sa.select(models.Volume).where(models.Volume.id == volume_id)
    if not ctx.is_admin:
        query = query.where(models.Volume.project_id == (ctx.project_id or ""))
    if lock:
        query = query.with_for_update()
    row = session.scalar(query)
    if row is None:
        raise errors.NotFound(f"Volume {volume_id} could not be found.")
    return row


def visible_snapshot(session: Session, ctx: RequestContext, snapshot_id: str) -> models.Snapshot:
    query = sa.select(models.Snapshot).where(models.Snapshot.id == snapshot_id)
    if not ctx.is_admin:
        query = query.where(models.Snapshot.project_id == (ctx.project_id or ""))
    row = session.scalar(query)
    if row is None:
        raise errors.NotFound(f"Snapshot {snapshot_id} could not be found.")
    return row


def usable_type(session: Session, ctx: RequestContext, name_or_id: str) -> models.VolumeType:
    """A volume type the caller may use, by name or id (a private one needs access)."""
    row = session.scalar(sa.select(models.VolumeType).where(
        sa.or_(models.VolumeType.id == name_or_id, models.VolumeType.name == name_or_id)))
    if row is not None and not row.is_public and not ctx.is_admin:
        access = session.get(models.VolumeTypeAccess, (row.id, ctx.project_id or ""))
        row = row if access is not None else None
    if row is None:
        raise errors.NotFound(f"Volume type with name or id {name_or_id} could not be found.")
    return row


def default_type(session: Session, name: str) -> models.VolumeType | None:
    return session.scalar(sa.select(models.VolumeType).where(models.VolumeType.name == name))


def attachments_of(session: Session, volume_ids: Sequence[str]) -> dict[str, list[models.Attachment]]:
    """Each volume's attachments, in one query."""
    found: dict[str, list[models.Attachment]] = {volume_id: [] for volume_id in volume_ids}
    if volume_ids:
        for row in session.scalars(sa.select(models.Attachment).where(
                models.Attachment.volume_id.in_(list(volume_ids))).order_by(models.Attachment.created_at)):
            found[row.volume_id].append(row)
    return found


def types_of(session: Session, type_ids: set[str | None]) -> dict[str, models.VolumeType]:
    ids = [type_id for type_id in type_ids if type_id]
    if not ids:
        return {}
    return {row.id: row for row in session.scalars(sa.select(models.VolumeType).where(
        models.VolumeType.id.in_(ids)))}


def has_snapshots(session: Session, volume_id: str) -> bool:
    return session.scalar(sa.select(sa.func.count()).select_from(models.Snapshot).where(
        models.Snapshot.volume_id == volume_id)) != 0


def check_metadata(metadata: dict[str, object]) -> dict[str, str]:
    """Cinder's metadata: string keys of 1..255 characters, string values of at most 255."""
    for key, value in metadata.items():
        if not key or len(key) > 255:
            raise errors.BadRequest("Metadata keys must be 1 to 255 characters long.")
        if not isinstance(value, str) or len(value) > 255:
            raise errors.BadRequest(f"Metadata value of {key!r} must be a string of at most 255 characters.")
    return {key: str(value) for key, value in metadata.items()}
