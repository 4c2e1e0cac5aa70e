"""Version discovery at `/` and `/v3`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from stratus.volume.api.deps import base_url
from stratus.volume.api.microversion import max_version, min_version

router = APIRouter(tags=["versions"])
_UPDATED = "2023-03-21T00:00:00Z"


def _v3(request: Request) -> dict[str, Any]:
    return {"id": "v3.0", "status": "CURRENT", "version": max_version(), "min_version": min_version(),
            "updated": _UPDATED, "links": [{"rel": "describedby", "type": "text/html",
                                            "href": "https://docs.openstack.org/"},
                                           {"rel": "self", "href": f"{base_url(request)}/v3/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.volume+json;version=3"}]}


@router.get("/")
def versions(request: Request) -> JSONResponse:
    return JSONResponse({"versions": [_v3(request)]}, status_code=300)


@router.get("/v3")
@router.get("/v3/")
def version(request: Request) -> dict[str, Any]:
    return {"versions": [_v3(request)]}
