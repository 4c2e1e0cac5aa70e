"""`/v2/images`: create, list, show, update (JSON patch), delete, deactivate/reactivate, tags."""

from __future__ import annotations

import json
import logging
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.image import images as logic
from stratus.image.api.deps import base_url, caller, enforce, service
from stratus.image.api.imports import METHODS as IMPORT_METHODS
from stratus.image.images import image_view
from stratus.image.models import Image, ImageMember
from stratus.image.visibility import visible_image

log = logging.getLogger("stratus.image")
router = APIRouter(tags=["images"])


def _target(image: Image) -> dict[str, Any]:
    return {"owner": image.owner, "visibility": image.visibility, "image_id": image.id}


def _owned_image(request: Request, ctx: RequestContext, session: Session, image_id: str, rule: str) -> Image:
    """The image if the caller may change it: 404 when invisible, 403 when visible but not allowed."""
    image = visible_image(session, ctx, image_id)
    enforce(request, ctx, rule, _target(image))
    return image


def _check_visibility(request: Request, ctx: RequestContext, visibility: str, owner: str | None) -> None:
    if visibility == "public":
        enforce(request, ctx, "image:publicize_image", {"owner": owner})
    elif visibility == "community":
        enforce(request, ctx, "image:communitize_image", {"owner": owner})


def _new_image(request: Request, ctx: RequestContext, payload: dict[str, Any]) -> Image:
    """An unsaved image from a create body, every attribute validated."""
    fields = dict(payload)
    image_id = logic.check_image_id(fields.pop("id")) if "id" in fields else None
    tags = logic.check_tags(fields.pop("tags", []))
    core = {name: logic.check_core(name, fields.pop(name)) for name in logic.CORE if name in fields}
    properties = logic.check_properties(fields)
    owner = core.pop("owner", ctx.project_id)
    if owner != ctx.project_id and not ctx.is_admin:
        raise errors.Forbidden(f"You are not permitted to create images owned by '{owner}'.")
    visibility = core.setdefault("visibility", "shared")
    _check_visibility(request, ctx, visibility, owner)
    if image_id:
        core["id"] = image_id
    return Image(**core, owner=owner, tags=tags, properties=properties, status="queued")


def _check_quota(request: Request, session: Session, owner: str | None) -> None:
    limit = service(request).settings.quota_images
    if limit and owner is not None:
        count = session.scalar(sa.select(sa.func.count()).select_from(Image).where(Image.owner == owner)) or 0
        if count >= limit:
            raise errors.PayloadTooLarge(f"Maximum number of images exceeded: the quota is {limit} images.")


@router.post("/v2/images", status_code=201)
def create_image(request: Request, response: Response, payload: dict[str, Any],
                 ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "image:add_image")
    image = _new_image(request, ctx, payload)
    with service(request).db.transaction() as session:
        if image.id and session.get(Image, image.id) is not None:
            raise errors.Conflict(f"Image with identifier {image.id} already exists!")
        _check_quota(request, session, image.owner)
        session.add(image)
        session.flush()
        view = image_view(request, image)
    response.headers["Location"] = f"{base_url(request)}/v2/images/{image.id}"
    # Clients learn here which interoperable import methods they may use next.
    response.headers["OpenStack-image-import-methods"] = ",".join(IMPORT_METHODS)
    return view


@router.get("/v2/images")
def index(request: Request, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        page, next_marker = logic.list_images(session, ctx, request.query_params.multi_items())
        views = [image_view(request, image) for image in page]
    return {"images": views, **logic.collection_links("/v2/images", request.query_params.multi_items(),
                                                      next_marker, "/v2/schemas/images")}


@router.get("/v2/images/{image_id}")
def show_image(request: Request, image_id: str, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        return image_view(request, visible_image(session, ctx, image_id))


async def patch_document(request: Request) -> list[tuple[str, str, Any]]:
    """The operations of a JSON-patch body, in either of the two media types Glance accepts."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in (logic.PATCH_V21, logic.PATCH_V20):
        raise errors.UnsupportedMediaType(f"Unsupported Content-Type: use {logic.PATCH_V21}.")
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise errors.BadRequest("Malformed JSON in request body.") from None
    return logic.parse_operations(body, media_type)


def _apply_changes(request: Request, ctx: RequestContext, image: Image, changes: dict[str, Any]) -> None:
    """Check what a patch may change, then assign it."""
    if "owner" in changes and not ctx.is_admin:
        raise errors.Forbidden("Only an administrator may change an image's owner.")
    for name in ("disk_format", "container_format"):
        if name in changes and image.status != "queued":
            raise errors.Forbidden(f"Attribute {name} can be only replaced for a queued image.")
    if "visibility" in changes:
        _check_visibility(request, ctx, changes["visibility"], changes.get("owner", image.owner))
    for name, value in changes.items():
        setattr(image, name, value)


@router.patch("/v2/images/{image_id}")
def update_image(request: Request, image_id: str, operations: list[tuple[str, str, Any]] = Depends(patch_document),
                 ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        image = _owned_image(request, ctx, session, image_id, "image:modify_image")
        changes = logic.apply_patch(image, operations)
        _apply_changes(request, ctx, image, changes)
        session.flush()
        return image_view(request, image)


@router.delete("/v2/images/{image_id}", status_code=204)
def delete_image(request: Request, image_id: str, ctx: RequestContext = Depends(caller)) -> Response:
    svc = service(request)
    with svc.db.transaction() as session:
        image = _owned_image(request, ctx, session, image_id, "image:delete_image")
        if image.protected:
            raise errors.Forbidden(f"Image {image_id} is protected and cannot be deleted.")
        location = image.location
        session.execute(sa.delete(ImageMember).where(ImageMember.image_id == image_id))
        session.delete(image)
    # The row is gone first: a crash here leaves at worst an unreferenced file, never a visible image
    # without its data.
    for store, key in ((svc.store, location), (svc.staging, image_id)):
        if key:
            try:
                store.delete(key)
            except (OSError, errors.StratusError):
                log.warning("could not delete the data of image %s", image_id, exc_info=True)
    return Response(status_code=204)


def _switch(request: Request, ctx: RequestContext, image_id: str, action: str, status: str) -> Response:
    """Deactivate or reactivate: only between the two states, by the owner or an admin."""
    with service(request).db.transaction() as session:
        image = _owned_image(request, ctx, session, image_id, f"image:{action}")
        if image.status not in ("active", "deactivated"):
            raise errors.Forbidden(f"Not allowed to {action} image in status '{image.status}'")
        image.status = status
    return Response(status_code=204)


@router.post("/v2/images/{image_id}/actions/deactivate", status_code=204)
def deactivate(request: Request, image_id: str, ctx: RequestContext = Depends(caller)) -> Response:
    return _switch(request, ctx, image_id, "deactivate", "deactivated")


@router.post("/v2/images/{image_id}/actions/reactivate", status_code=204)
def reactivate(request: Request, image_id: str, ctx: RequestContext = Depends(caller)) -> Response:
    return _switch(request, ctx, image_id, "reactivate", "active")


@router.put("/v2/images/{image_id}/tags/{tag}", status_code=204)
def add_tag(request: Request, image_id: str, tag: str, ctx: RequestContext = Depends(caller)) -> Response:
    with service(request).db.transaction() as session:
        image = _owned_image(request, ctx, session, image_id, "image:modify_image")
        image.tags = logic.check_tags([*image.tags, tag])
    return Response(status_code=204)


@router.delete("/v2/images/{image_id}/tags/{tag}", status_code=204)
def delete_tag(request: Request, image_id: str, tag: str, ctx: RequestContext = Depends(caller)) -> Response:
    with service(request).db.transaction() as session:
        image = _owned_image(request, ctx, session, image_id, "image:modify_image")
        if tag not in image.tags:
            raise errors.NotFound(f"Tag {tag} not found on image {image_id}.")
        image.tags = [t for t in image.tags if t != tag]
    return Response(status_code=204)
