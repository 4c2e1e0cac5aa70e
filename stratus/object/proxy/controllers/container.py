"""`/v1/{account}/{container}`: create/delete, metadata, ACLs, versioning flag, quotas, and the
object listing.

The proxy keeps what only it interprets (ACLs, the versioning flag) in container sysmeta and shows it
back under the public header names, to the owner only.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from stratus.object.proxy import acl, listing
from stratus.object.proxy.controllers.account import VERSIONS_PREFIX, ensure_account
from stratus.object.proxy.controllers.base import client_headers, removals
from stratus.object.proxy.request import (
    CONTAINER_LISTING_LIMIT,
    MAX_CONTAINER_NAME,
    SwiftError,
    SwiftRequest,
    SwiftResponse,
    check_metadata,
)

if TYPE_CHECKING:
    from stratus.object.proxy.server import Proxy

VERSIONS_FLAG = "x-container-sysmeta-versions-enabled"
# Public header -> the sysmeta the nodes store it in.
_SYSMETA_HEADERS = {"x-container-read": acl.READ_ACL, "x-container-write": acl.WRITE_ACL,
                    "x-versions-enabled": VERSIONS_FLAG}
QUOTA_HEADERS = ("x-container-meta-quota-bytes", "x-container-meta-quota-count")


def versions_container(container: str) -> str:
    """Where a versioned container keeps its older versions (a reserved name)."""
    return VERSIONS_PREFIX + container


def _backend_headers(req: SwiftRequest) -> dict[str, str]:
    headers = removals(req.headers, "container")
    for public in ("x-container-read", "x-container-write"):
        if f"x-remove-{public[2:]}" in req.headers:
            headers[public] = ""
    check_metadata(headers, "container")
    out = {k: v for k, v in headers.items() if k.startswith("x-container-meta-")}
    for name in QUOTA_HEADERS:
        if out.get(name) and not out[name].isdigit():
            raise SwiftError(400, f"{name} must be a non-negative integer")
    for public, sysmeta in _SYSMETA_HEADERS.items():
        if public not in headers:
            continue
        value = headers[public]
        if public == "x-versions-enabled":
            if value.lower() not in ("true", "false", ""):
                raise SwiftError(400, "X-Versions-Enabled must be true or false")
            out[sysmeta] = value.lower()
        else:
            out[sysmeta] = acl.validate(public, value)
    if any(k in out for k in (acl.READ_ACL, acl.WRITE_ACL)) and not req.caller.owns(req.account) \
            and not req.internal:
        raise SwiftError(403, "Only the account owner may change ACLs")
    return out


def public_headers(backend: dict[str, str], owner: bool) -> dict[str, str]:
    headers = client_headers(backend)
    if owner:
        for public, sysmeta in _SYSMETA_HEADERS.items():
            if backend.get(sysmeta):
                headers[public] = "True" if public == "x-versions-enabled" and backend[sysmeta] == "true" \
                    else backend[sysmeta]
    return headers


async def handle(proxy: Proxy, req: SwiftRequest) -> SwiftResponse:
    assert req.container is not None
    if req.method in ("GET", "HEAD"):
        return await _read(proxy, req)
    if req.method == "PUT":
        return await _put(proxy, req)
    if req.method == "POST":
        info = await proxy.cluster.container_info(req.account, req.container)
        if info["status"] == 404:
            raise SwiftError(404, "Container not found")
        response = await proxy.cluster.write("container", "POST", (req.account, req.container, None),
                                             _backend_headers(req))
        proxy.cluster.forget(req.account, req.container)
        return SwiftResponse(204 if response.status // 100 == 2 else response.status, {"content-length": "0"})
    if req.method == "DELETE":
        response = await proxy.cluster.write("container", "DELETE", (req.account, req.container, None), {})
        proxy.cluster.forget(req.account, req.container)
        status = response.status
        if status == 409:
            raise SwiftError(409, "There was a conflict when trying to complete your request: "
                                  "the container is not empty.")
        return SwiftResponse(status if status != 200 else 204, {"content-length": "0"})
    raise SwiftError(405, "Method Not Allowed", {"allow": "GET, HEAD, PUT, POST, DELETE"})


async def _put(proxy: Proxy, req: SwiftRequest) -> SwiftResponse:
    assert req.container is not None
    name = req.container
    if len(name.encode()) > MAX_CONTAINER_NAME or "/" in name:
        raise SwiftError(400, f"Container name must be at most {MAX_CONTAINER_NAME} bytes without '/'")
    if name.startswith(VERSIONS_PREFIX) and not req.internal:
        raise SwiftError(400, f"Container names starting with {VERSIONS_PREFIX} are reserved")
    headers = _backend_headers(req)
    await ensure_account(proxy, req.account)
    response = await proxy.cluster.write("container", "PUT", (req.account, name, None), headers)
    proxy.cluster.forget(req.account, name)
    if response.status // 100 != 2:
        raise SwiftError(response.status if response.status < 500 else 503)
    return SwiftResponse(response.status if response.status in (201, 202) else 201, {"content-length": "0"})


async def _read(proxy: Proxy, req: SwiftRequest) -> SwiftResponse:
    assert req.container is not None
    fmt = listing.listing_format(req.query, req.headers)
    owner = req.caller.owns(req.account) or req.internal
    newest = req.headers.get("x-newest", "").lower() == "true"
    names = (req.account, req.container, None)
    if req.method == "HEAD":
        backend = await proxy.cluster.read("container", "HEAD", names, newest=newest)
        if backend is None:
            raise SwiftError(503, "No container server answered")
        backend.close()
        if backend.status // 100 != 2:
            raise SwiftError(backend.status)
        headers = public_headers(backend.headers, owner)
        headers.update({"content-length": "0", "content-type": _content_type(fmt)})
        return SwiftResponse(204, headers)
    query = listing.backend_query(req.query, CONTAINER_LISTING_LIMIT)
    backend = await proxy.cluster.read("container", "GET", names, query=query, newest=newest)
    if backend is None:
        raise SwiftError(503, "No container server answered")
    if backend.status // 100 != 2:
        backend.close()
        raise SwiftError(backend.status)
    raw = await backend.read()
    items = json.loads(raw) if raw.strip() else []
    if items and query.get("marker") and items[0].get("subdir") == query["marker"]:
        # The marker's own pseudo-directory is already behind the client (clients page with it).
        items = items[1:]
    headers = public_headers(backend.headers, owner)
    body, content_type = listing.render("container", req.container, items, fmt)
    headers.update({"content-type": content_type, "content-length": str(len(body))})
    if not items and fmt == "plain":
        headers["content-length"] = "0"
        return SwiftResponse(204, headers)
    return SwiftResponse(200, headers, body)


def _content_type(fmt: str) -> str:
    return {"json": "application/json; charset=utf-8", "xml": "application/xml; charset=utf-8"}.get(
        fmt, "text/plain; charset=utf-8")
