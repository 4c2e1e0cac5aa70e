"""Interoperable image import: discovery (`/v2/info/import`, `/v2/info/stores`), staging
(`PUT /v2/images/{id}/stage`) and the `glance-direct` import of the staged data."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, BackgroundTasks, Depends, Request, Response
from pydantic import BaseModel

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.image import upload
from stratus.image.api.data import stream_request
from stratus.image.api.deps import caller, service

router = APIRouter(tags=["image import"])
METHODS = ("glance-direct",)


class ImportMethod(BaseModel):
    name: str


class ImportBody(BaseModel):
    # Store selection (stores, all_stores, ...) is accepted and ignored: there is one store.
    method: ImportMethod


@router.get("/v2/info/import")
def import_info(_ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    return {"import-methods": {"description": "Import methods available.", "type": "array",
                               "value": list(METHODS)}}


@router.get("/v2/info/stores")
def store_info(request: Request, _ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    kind = service(request).settings.store
    return {"stores": [{"id": kind, "description": f"The {kind} store", "default": True}]}


@router.put("/v2/images/{image_id}/stage", status_code=204)
async def stage_image(request: Request, image_id: str, ctx: RequestContext = Depends(caller)) -> Response:
    await stream_request(request, ctx, image_id, staged=True)
    return Response(status_code=204)


@router.post("/v2/images/{image_id}/import", status_code=202)
def import_image(request: Request, image_id: str, body: ImportBody, tasks: BackgroundTasks,
                 ctx: RequestContext = Depends(caller)) -> Response:
    if body.method.name not in METHODS:
        raise errors.BadRequest(f"Import method {body.method.name} is not supported; "
                                f"available: {', '.join(METHODS)}.")
    svc = service(request)
    transfer = upload.begin_import(svc, ctx, image_id)
    # The answer goes out at once; the copy into the store runs after it (a sync task: in a worker thread).
    tasks.add_task(upload.run_import, svc, transfer)
    return Response(status_code=202)
