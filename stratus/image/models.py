"""Image service tables. Image ids are dashed UUID4, as Glance's."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from stratus.core.db import JSONText, Timestamp, utcnow

ID = sa.String(64)


def new_image_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    pass


class Image(Base):
    __tablename__ = "image_image"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_image_id)
    name: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    status: Mapped[str] = mapped_column(sa.String(30), default="queued", index=True)
    visibility: Mapped[str] = mapped_column(sa.String(16), default="shared", index=True)
    owner: Mapped[str | None] = mapped_column(ID, index=True)
    disk_format: Mapped[str | None] = mapped_column(sa.String(16))
    container_format: Mapped[str | None] = mapped_column(sa.String(16))
    size: Mapped[int | None] = mapped_column(sa.BigInteger)
    virtual_size: Mapped[int | None] = mapped_column(sa.BigInteger)
    checksum: Mapped[str | None] = mapped_column(sa.String(32))
    os_hash_algo: Mapped[str | None] = mapped_column(sa.String(64))
    os_hash_value: Mapped[str | None] = mapped_column(sa.String(128))
    min_disk: Mapped[int] = mapped_column(default=0)
    min_ram: Mapped[int] = mapped_column(default=0)
    protected: Mapped[bool] = mapped_column(default=False)
    os_hidden: Mapped[bool] = mapped_column(default=False)
    # Where the store keeps the data (opaque to everything but the store).
    location: Mapped[str | None] = mapped_column(sa.Text)
    properties: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    tags: Mapped[list[str]] = mapped_column(JSONText, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)


class ImageMember(Base):
    __tablename__ = "image_member"
    image_id: Mapped[str] = mapped_column(sa.String(36), sa.ForeignKey("image_image.id", ondelete="CASCADE"),
                                          primary_key=True)
    member_id: Mapped[str] = mapped_column(ID, primary_key=True, index=True)
    status: Mapped[str] = mapped_column(sa.String(20), default="pending")
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)
