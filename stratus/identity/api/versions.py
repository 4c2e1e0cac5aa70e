"""Version discovery at `/`, `/v3` and `/v2.0`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from stratus.identity.api.deps import base_url

router = APIRouter(tags=["versions"])

_V3 = ("v3.14", "stable", "2020-04-07T00:00:00Z", "v3", "application/vnd.openstack.identity-v3+json")
_V2 = ("v2.0", "deprecated", "2016-08-04T00:00:00Z", "v2.0", "application/vnd.openstack.identity-v2.0+json")


def _version(request: Request, spec: tuple[str, str, str, str, str]) -> dict[str, Any]:
    vid, status, updated, path, media = spec
    return {"id": vid, "status": status, "updated": updated,
            "links": [{"rel": "self", "href": f"{base_url(request)}/{path}/"}],
            "media-types": [{"base": "application/json", "type": media}]}


@router.get("/")
async def versions(request: Request) -> JSONResponse:
    body = {"versions": {"values": [_version(request, _V3), _version(request, _V2)]}}
    return JSONResponse(body, status_code=300)


@router.get("/v3")
@router.get("/v3/", include_in_schema=False)
async def version_v3(request: Request) -> dict[str, Any]:
    return {"version": _version(request, _V3)}


@router.get("/v2.0")
@router.get("/v2.0/", include_in_schema=False)
async def version_v2(request: Request) -> dict[str, Any]:
    return {"version": _version(request, _V2)}
