"""Attachment bookkeeping shared by the v3 attachments API and the legacy volume actions.

A volume goes available -> reserved (an attachment without a connector) or attaching -> in-use
(attachment complete / os-attach) -> detaching (os-begin_detaching) -> available (the last
attachment deleted / os-detach). Only a multiattach volume takes a second attachment.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from stratus.core import errors
from stratus.core.db import utcnow
from stratus.volume import models


def _others(session: Session, volume_id: str, besides: str | None = None) -> list[models.Attachment]:
    query = sa.select(models.Attachment).where(models.Attachment.volume_id == volume_id)
    if besides is not None:
        query = query.where(models.Attachment.id != besides)
    return list(session.scalars(query))


def reserve(session: Session, volume: models.Volume, instance_uuid: str | None,
            status: str = "reserved") -> models.Attachment:
    """A new attachment; the volume must be free (or multiattach and in use)."""
    current = _others(session, volume.id)
    if volume.status == "available" and not current:
        pass
    elif volume.multiattach and volume.status in ("in-use", "reserved", "available"):
        pass
    else:
        raise errors.BadRequest(f"Invalid volume: Volume {volume.id} status must be available to reserve, "
                                f"but the current status is: {volume.status}.")
    row = models.Attachment(volume_id=volume.id, project_id=volume.project_id, instance_uuid=instance_uuid,
                            attach_status=status)
    session.add(row)
    if volume.status == "available":
        volume.status = status
    volume.attach_status = "attaching" if volume.attach_status == "detached" else volume.attach_status
    session.flush()
    return row


def mark_attached(session: Session, volume: models.Volume, attachment: models.Attachment, *,
                  mountpoint: str | None = None, host: str | None = None, mode: str | None = None) -> None:
    attachment.attach_status = "attached"
    attachment.attach_time = attachment.attach_time or utcnow()
    if mountpoint is not None:
        attachment.mountpoint = mountpoint
    if host is not None:
        attachment.attached_host = host
    if mode is not None:
        attachment.attach_mode = mode
    volume.status, volume.attach_status = "in-use", "attached"


def remove(session: Session, volume: models.Volume, attachment: models.Attachment) -> None:
    """Drop an attachment; the volume is free again when it was the last one."""
    session.delete(attachment)
    session.flush()
    rest = _others(session, volume.id)
    if not rest:
        volume.status, volume.attach_status = "available", "detached"
    elif any(a.attach_status == "attached" for a in rest):
        volume.status, volume.attach_status = "in-use", "attached"
    else:
        volume.status = "reserved"


def find(session: Session, volume_id: str, attachment_id: str | None = None,
         instance_uuid: str | None = None) -> models.Attachment:
    query = sa.select(models.Attachment).where(models.Attachment.volume_id == volume_id)
    if attachment_id:
        query = query.where(models.Attachment.id == attachment_id)
    elif instance_uuid:
        query = query.where(models.Attachment.instance_uuid == instance_uuid)
    rows = list(session.scalars(query.order_by(models.Attachment.created_at)))
    if not rows:
        raise errors.NotFound(f"Volume {volume_id} has no such attachment.")
    if len(rows) > 1 and not (attachment_id or instance_uuid):
        raise errors.BadRequest("The volume has several attachments: name the attachment_id.")
    return rows[0]


def connection_info(conductor_answer: dict[str, Any], attachment: models.Attachment) -> dict[str, Any]:
    info = dict(conductor_answer)
    info["data"] = {**info.get("data", {}), "access_mode": attachment.attach_mode}
    info["attachment_id"] = attachment.id
    return info
