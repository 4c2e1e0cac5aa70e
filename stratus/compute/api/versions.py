"""Version discovery at `/` and `/v2.1`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from stratus.compute.api.deps import base_url
from stratus.compute.api.microversion import max_version, min_version

router = APIRouter(tags=["versions"])
_UPDATED = "2013-07-23T11:33:21Z"


def _v21(request: Request) -> dict[str, Any]:
    return {"id": "v2.1", "status": "CURRENT", "version": max_version(), "min_version": min_version(),
            "updated": _UPDATED, "links": [{"rel": "self", "href": f"{base_url(request)}/v2.1/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.compute+json;version=2.1"}]}


@router.get("/")
def versions(request: Request) -> JSONResponse:
    # Nova answers its root with 300 Multiple Choices... for GET / it is 200 with the list.
    return JSONResponse({"versions": [_v21(request)]})


@router.get("/v2.1")
@router.get("/v2.1/")
def version(request: Request) -> dict[str, Any]:
    return {"version": _v21(request)}
