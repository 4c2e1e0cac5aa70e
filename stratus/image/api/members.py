"""`/v2/images/{id}/members`: sharing a `shared` image with other projects, who accept or reject it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Body, Depends, Request, Response
from sqlalchemy.orm import Session

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.image.api.deps import caller, enforce, service
from stratus.image.images import MEMBER_STATUSES, timestamp
from stratus.image.models import Image, ImageMember
from stratus.image.visibility import is_owner, visible_image

router = APIRouter(tags=["members"])
MAX_MEMBERS = 128


def member_view(member: ImageMember) -> dict[str, Any]:
    return {"created_at": timestamp(member.created_at), "image_id": member.image_id,
            "member_id": member.member_id, "schema": "/v2/schemas/member", "status": member.status,
            "updated_at": timestamp(member.updated_at)}


def _body_field(payload: Any, name: str) -> str:
    value = payload.get(name) if isinstance(payload, dict) else None
    if not isinstance(value, str) or not value or len(value) > 255:
        raise errors.BadRequest(f"The request body needs a '{name}' string.")
    return value


def _visible_member(session: Session, ctx: RequestContext, image: Image, member_id: str) -> ImageMember:
    """The membership if the caller may see it: the owner sees all of them, a member only its own."""
    member = session.get(ImageMember, (image.id, member_id))
    if member is None or not (is_owner(ctx, image) or member_id == ctx.project_id):
        raise errors.NotFound(f"{member_id} is not a member of image {image.id}.")
    return member


@router.post("/v2/images/{image_id}/members")
def add_member(request: Request, image_id: str, payload: Any = Body(None),
               ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    member_id = _body_field(payload, "member")
    with service(request).db.transaction() as session:
        image = visible_image(session, ctx, image_id)
        enforce(request, ctx, "image:add_member", {"owner": image.owner, "image_id": image.id})
        if image.visibility != "shared":
            raise errors.Forbidden(f"Only shared images have members; image {image_id} is {image.visibility}.")
        if session.get(ImageMember, (image_id, member_id)) is not None:
            raise errors.Conflict(f"{member_id} is already a member of image {image_id}.")
        count = session.scalar(sa.select(sa.func.count()).select_from(ImageMember)
                               .where(ImageMember.image_id == image_id)) or 0
        if count >= MAX_MEMBERS:
            raise errors.PayloadTooLarge(f"Maximum number of image members exceeded ({MAX_MEMBERS}).")
        member = ImageMember(image_id=image_id, member_id=member_id, status="pending")
        session.add(member)
        session.flush()
        return member_view(member)


@router.get("/v2/images/{image_id}/members")
def list_members(request: Request, image_id: str, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        image = visible_image(session, ctx, image_id)
        query = sa.select(ImageMember).where(ImageMember.image_id == image_id).order_by(ImageMember.created_at,
                                                                                        ImageMember.member_id)
        if not is_owner(ctx, image):
            query = query.where(ImageMember.member_id == ctx.project_id)
        members = [member_view(m) for m in session.scalars(query)]
    return {"members": members, "schema": "/v2/schemas/members"}


@router.get("/v2/images/{image_id}/members/{member_id}")
def show_member(request: Request, image_id: str, member_id: str,
                ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        image = visible_image(session, ctx, image_id)
        return member_view(_visible_member(session, ctx, image, member_id))


@router.put("/v2/images/{image_id}/members/{member_id}")
def update_member(request: Request, image_id: str, member_id: str, payload: Any = Body(None),
                  ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    status = _body_field(payload, "status")
    if status not in MEMBER_STATUSES:
        raise errors.BadRequest(f"Invalid status: {status}; use one of {', '.join(MEMBER_STATUSES)}.")
    with service(request).db.transaction() as session:
        image = visible_image(session, ctx, image_id)
        member = _visible_member(session, ctx, image, member_id)
        # Only the member itself decides whether it wants the image, not the owner.
        enforce(request, ctx, "image:modify_member", {"member_id": member_id, "owner": image.owner})
        member.status = status
        session.flush()
        return member_view(member)


@router.delete("/v2/images/{image_id}/members/{member_id}", status_code=204)
def delete_member(request: Request, image_id: str, member_id: str, ctx: RequestContext = Depends(caller)) -> Response:
    with service(request).db.transaction() as session:
        image = visible_image(session, ctx, image_id)
        member = _visible_member(session, ctx, image, member_id)
        enforce(request, ctx, "image:delete_member", {"owner": image.owner, "image_id": image.id})
        session.delete(member)
    return Response(status_code=204)
