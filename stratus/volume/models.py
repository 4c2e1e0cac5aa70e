"""Block storage tables. Ids are dashed UUID4, as Cinder's.

A volume row exists (status `creating`) before any backend file does; the conductor alone moves it
through its states as the agent reports, so a crash leaves a row that says what is unknown.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from stratus.core.db import JSONText, Timestamp, utcnow

PROJECT = sa.String(64)
UUID = sa.String(36)


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    pass


class VolumeType(Base):
    __tablename__ = "volume_type"
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    description: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    is_public: Mapped[bool] = mapped_column(default=True)
    extra_specs: Mapped[dict[str, str]] = mapped_column(JSONText, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True, onupdate=utcnow)


class VolumeTypeAccess(Base):
    """Projects that may use a private volume type."""

    __tablename__ = "volume_type_access"
    volume_type_id: Mapped[str] = mapped_column(UUID, sa.ForeignKey("volume_type.id", ondelete="CASCADE"),
                                                primary_key=True)
    project_id: Mapped[str] = mapped_column(PROJECT, primary_key=True)


class Volume(Base):
    __tablename__ = "volume"
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(PROJECT, index=True)
    user_id: Mapped[str] = mapped_column(sa.String(64), default="")
    name: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    description: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    size: Mapped[int] = mapped_column()
    status: Mapped[str] = mapped_column(sa.String(32), default="creating", index=True)
    # The backend's view while a long operation runs ("error" names a failed extend, for instance).
    migration_status: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    attach_status: Mapped[str] = mapped_column(sa.String(32), default="detached")
    availability_zone: Mapped[str] = mapped_column(sa.String(255))
    volume_type_id: Mapped[str | None] = mapped_column(UUID, sa.ForeignKey("volume_type.id"), nullable=True)
    bootable: Mapped[bool] = mapped_column(default=False)
    multiattach: Mapped[bool] = mapped_column(default=False)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSONText, default=dict)
    admin_metadata: Mapped[dict[str, str]] = mapped_column(JSONText, default=dict)
    image_metadata: Mapped[dict[str, str]] = mapped_column(JSONText, default=dict)
    # Where it came from (at most one is set).
    image_id: Mapped[str | None] = mapped_column(UUID, nullable=True)
    snapshot_id: Mapped[str | None] = mapped_column(UUID, nullable=True)
    source_volid: Mapped[str | None] = mapped_column(UUID, nullable=True)
    # The storage host (its agent) that holds it; set by the scheduler before the agent creates it.
    host: Mapped[str | None] = mapped_column(sa.String(255), nullable=True, index=True)
    fault: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True, onupdate=utcnow)
    launched_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)


class Snapshot(Base):
    __tablename__ = "volume_snapshot"
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(PROJECT, index=True)
    user_id: Mapped[str] = mapped_column(sa.String(64), default="")
    volume_id: Mapped[str] = mapped_column(UUID, sa.ForeignKey("volume.id"), index=True)
    name: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    description: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    size: Mapped[int] = mapped_column()
    status: Mapped[str] = mapped_column(sa.String(32), default="creating")
    progress: Mapped[str] = mapped_column(sa.String(8), default="0%")
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSONText, default=dict)
    host: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True, onupdate=utcnow)


class Attachment(Base):
    """One attachment of a volume to an instance (the v3 attachments API and the legacy actions)."""

    __tablename__ = "volume_attachment"
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_id)
    volume_id: Mapped[str] = mapped_column(UUID, sa.ForeignKey("volume.id"), index=True)
    project_id: Mapped[str] = mapped_column(PROJECT, index=True)
    instance_uuid: Mapped[str | None] = mapped_column(UUID, nullable=True)
    attached_host: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    mountpoint: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    attach_mode: Mapped[str] = mapped_column(sa.String(8), default="rw")
    # reserved, attaching, attached, detaching (Cinder's attach_status of an attachment).
    attach_status: Mapped[str] = mapped_column(sa.String(32), default="reserved")
    connector: Mapped[dict[str, Any] | None] = mapped_column(JSONText, nullable=True)
    connection_info: Mapped[dict[str, Any] | None] = mapped_column(JSONText, nullable=True)
    attach_time: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)


class Quota(Base):
    """A project's own limit for one resource (the configured default applies elsewhere)."""

    __tablename__ = "volume_quota"
    project_id: Mapped[str] = mapped_column(PROJECT, primary_key=True)
    resource: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    limit: Mapped[int] = mapped_column("hard_limit")


class Service(Base):
    """A volume role's heartbeat; a storage host's row also carries its backend's capacity."""

    __tablename__ = "volume_service"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(sa.String(255))
    binary: Mapped[str] = mapped_column(sa.String(64))
    availability_zone: Mapped[str] = mapped_column(sa.String(255), default="nova")
    disabled: Mapped[bool] = mapped_column(default=False)
    disabled_reason: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    backend: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    total_gb: Mapped[float] = mapped_column(default=0.0)
    free_gb: Mapped[float] = mapped_column(default=0.0)
    last_seen_up: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True, onupdate=utcnow)
    __table_args__ = (sa.UniqueConstraint("host", "binary"),)


class ProjectLock(Base):
    """One row per project, locked by every quota check so that concurrent creates take turns."""

    __tablename__ = "volume_project_lock"
    project_id: Mapped[str] = mapped_column(PROJECT, primary_key=True)
