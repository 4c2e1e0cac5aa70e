"""Version discovery at `/` and the v2.0 resource index."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

router = APIRouter(tags=["versions"])

# Collections the v2.0 root lists (name, collection).
RESOURCES = [("network", "networks"), ("subnet", "subnets"), ("port", "ports"), ("router", "routers"),
             ("floatingip", "floatingips"), ("security_group", "security-groups"),
             ("security_group_rule", "security-group-rules"), ("quota", "quotas"), ("agent", "agents")]


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.get("/")
def versions(request: Request) -> dict[str, Any]:
    return {"versions": [{"id": "v2.0", "status": "CURRENT",
                          "links": [{"rel": "self", "href": f"{_base(request)}/v2.0/"}]}]}


@router.get("/v2.0")
@router.get("/v2.0/")
def resources(request: Request) -> dict[str, Any]:
    return {"resources": [{"name": name, "collection": collection,
                           "links": [{"rel": "self", "href": f"{_base(request)}/v2.0/{collection}"}]}
                          for name, collection in RESOURCES]}
