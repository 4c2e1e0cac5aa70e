"""Which images a caller may see. Invisible images answer 404, never 403: their ids leak nothing."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.image.models import Image, ImageMember


def _member_of(ctx: RequestContext, statuses: tuple[str, ...]) -> ColumnElement[bool]:
    return Image.id.in_(sa.select(ImageMember.image_id).where(
        ImageMember.member_id == ctx.project_id, ImageMember.status.in_(statuses)))


def can_see(ctx: RequestContext) -> ColumnElement[bool]:
    """Images the caller may show or download: its own, public and community ones, and shared ones
    it is a member of (whatever the member status)."""
    if ctx.is_admin:
        return sa.true()
    return sa.or_(Image.owner == ctx.project_id, Image.visibility.in_(("public", "community")),
                  sa.and_(Image.visibility == "shared", _member_of(ctx, ("pending", "accepted", "rejected"))))


def default_listing(ctx: RequestContext) -> ColumnElement[bool]:
    """What an unfiltered list shows: own, public, and shared images the caller accepted."""
    if ctx.is_admin:
        return Image.visibility != "community"
    return sa.or_(Image.owner == ctx.project_id, Image.visibility == "public",
                  sa.and_(Image.visibility == "shared", _member_of(ctx, ("accepted",))))


def visible_image(session: Session, ctx: RequestContext, image_id: str) -> Image:
    image = session.scalar(sa.select(Image).where(Image.id == image_id, can_see(ctx)))
    if image is None:
        raise errors.NotFound(f"No image found with ID {image_id}")
    return image


def is_owner(ctx: RequestContext, image: Image) -> bool:
    return ctx.is_admin or (ctx.project_id is not None and image.owner == ctx.project_id)
