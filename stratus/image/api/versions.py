"""Version discovery at `/` and `/versions`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from stratus.image.api.deps import base_url

router = APIRouter(tags=["versions"])
# The Image API v2 minor versions we answer for; 2.16 is the newest (CURRENT), the others SUPPORTED.
_MINORS = ["2.16", "2.15", "2.14", "2.13", "2.12", "2.11", "2.10", "2.9", "2.8", "2.7", "2.6", "2.5", "2.4",
           "2.3", "2.2", "2.1", "2.0"]


def _documents(request: Request) -> list[dict[str, Any]]:
    href = f"{base_url(request)}/v2/"
    return [{"id": f"v{minor}", "status": "CURRENT" if i == 0 else "SUPPORTED",
             "links": [{"rel": "self", "href": href}]} for i, minor in enumerate(_MINORS)]


@router.get("/")
@router.get("/versions")
async def versions(request: Request) -> JSONResponse:
    return JSONResponse({"versions": _documents(request)}, status_code=300 if request.url.path == "/" else 200)
