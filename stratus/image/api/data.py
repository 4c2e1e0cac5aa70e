"""`/v2/images/{id}/file`: image data in (streamed to the store) and out (streamed, with a single Range)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.image import upload
from stratus.image.api.deps import caller, enforce, service
from stratus.image.models import Image
from stratus.image.visibility import visible_image

router = APIRouter(tags=["image data"])
_BYTE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class RangeNotSatisfiable(errors.StratusError):
    status, fault, title = 416, "rangeNotSatisfiable", "Requested Range Not Satisfiable"


def check_octet_stream(request: Request) -> None:
    content_type = request.headers.get("content-type", "application/octet-stream")
    if content_type.split(";")[0].strip().lower() != "application/octet-stream":
        raise errors.UnsupportedMediaType(f"Content-Type {content_type} is not supported: image data is "
                                          "sent as application/octet-stream.")


def declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.isdigit():
        raise errors.BadRequest("Content-Length must be a non-negative integer.")
    return int(value)


async def stream_request(request: Request, ctx: RequestContext, image_id: str, *, staged: bool) -> None:
    """Upload or stage the request body into the image (shared with the import API's stage call)."""
    check_octet_stream(request)
    svc = service(request)
    transfer = await run_in_threadpool(upload.begin, svc, ctx, image_id, staged=staged,
                                       declared_length=declared_length(request))
    try:
        await upload.receive(svc, transfer, request.stream())
    except ClientDisconnect as exc:
        # Nobody reads this answer; it keeps a client leaving mid-upload out of the error log.
        raise errors.BadRequest("The client closed the connection before all image data arrived.") from exc


@router.put("/v2/images/{image_id}/file", status_code=204)
async def upload_image(request: Request, image_id: str, ctx: RequestContext = Depends(caller)) -> Response:
    await stream_request(request, ctx, image_id, staged=False)
    return Response(status_code=204)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """A single `bytes=a-b`, `bytes=a-` or `bytes=-n` as (offset, length); None for the whole image.
    Another unit is ignored, as HTTP says; several ranges or one past the end are unsatisfiable."""
    if header is None or not header.strip().lower().startswith("bytes="):
        return None
    match = _BYTE_RANGE.fullmatch(header.strip().lower().replace(" ", ""))
    if match is None or match.group(1) == match.group(2) == "":
        raise RangeNotSatisfiable("Only a single byte range is supported.")
    first, last = match.groups()
    if first == "":  # a suffix: the last n bytes
        length = min(int(last), size)
        if length == 0:
            raise RangeNotSatisfiable(f"The range {header} is not satisfiable for {size} bytes.")
        return size - length, length
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if start >= size or end < start:
        raise RangeNotSatisfiable(f"The range {header} is not satisfiable for {size} bytes.")
    return start, end - start + 1


def _opened(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Start reading now, so a missing file is a 404 before any header goes out."""
    first = next(chunks, b"")
    return itertools.chain((first,), chunks)


def _downloadable(request: Request, ctx: RequestContext, image_id: str) -> Image:
    with service(request).db.transaction() as session:
        image = visible_image(session, ctx, image_id)
    enforce(request, ctx, "image:download_image", {"owner": image.owner})
    if image.status == "deactivated" and not ctx.is_admin:
        raise errors.Forbidden("The requested image has been deactivated. Image data download is forbidden.")
    return image


@router.get("/v2/images/{image_id}/file", response_model=None)
def download_image(request: Request, image_id: str,
                   ctx: RequestContext = Depends(caller)) -> Response | StreamingResponse:
    image = _downloadable(request, ctx, image_id)
    if image.location is None or image.size is None:
        return Response(status_code=204)  # no data uploaded yet
    headers = {"Content-Type": "application/octet-stream"}
    window = parse_range(request.headers.get("range"), image.size)
    if window is None:
        offset, length, status = 0, image.size, 200
        if image.checksum:
            headers["Content-MD5"] = image.checksum  # the md5 hex digest, as clients compare it
    else:
        offset, length = window
        status = 206
        headers["Content-Range"] = f"bytes {offset}-{offset + length - 1}/{image.size}"
    headers["Content-Length"] = str(length)
    chunks = _opened(service(request).store.read(image.location, offset, length))
    return StreamingResponse(chunks, status_code=status, headers=headers, media_type="application/octet-stream")
