"""`/v1/{account}`: usage and metadata (HEAD/POST), the container listing (GET); accounts are created
on first use (the owner's first container PUT or POST), as Swift's account autocreate does."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from stratus.object.proxy import listing
from stratus.object.proxy.controllers.base import client_headers, removals
from stratus.object.proxy.request import (
    ACCOUNT_LISTING_LIMIT,
    SwiftError,
    SwiftRequest,
    SwiftResponse,
    check_metadata,
    now_timestamp,
)

if TYPE_CHECKING:
    from stratus.object.proxy.server import Proxy

# Where versioned containers keep their older versions (see versioning.py).
VERSIONS_PREFIX = ".versions-"
QUOTA_HEADERS = ("x-account-meta-quota-bytes", "x-account-meta-quota-count")


async def ensure_account(proxy: Proxy, account: str) -> None:
    """Create the account on its nodes if it does not exist yet."""
    info = await proxy.cluster.account_info(account)
    if info["status"] // 100 == 2:
        return
    if info["status"] != 404:
        raise SwiftError(503, "The account servers did not answer")
    response = await proxy.cluster.write("account", "PUT", (account, None, None), {"x-timestamp": now_timestamp()})
    proxy.cluster.forget(account)
    if response.status // 100 != 2:
        raise SwiftError(503, "The account could not be created")


def _empty_account_headers() -> dict[str, str]:
    return {"x-account-container-count": "0", "x-account-object-count": "0", "x-account-bytes-used": "0",
            "x-timestamp": now_timestamp()}


async def handle(proxy: Proxy, req: SwiftRequest) -> SwiftResponse:
    if req.method in ("GET", "HEAD"):
        return await _read(proxy, req)
    if req.method == "POST":
        return await _post(proxy, req)
    if req.method in ("PUT", "DELETE"):
        if not req.caller.reseller_admin and not req.internal:
            raise SwiftError(403, "Only a reseller admin may create or delete accounts")
        headers = removals(req.headers, "account")
        response = await proxy.cluster.write("account", req.method, (req.account, None, None),
                                             {k: v for k, v in headers.items() if k.startswith("x-account-")})
        proxy.cluster.forget(req.account)
        return SwiftResponse(response.status, {"content-length": "0"})
    raise SwiftError(405, "Method Not Allowed", {"allow": "GET, HEAD, POST, PUT, DELETE"})


async def _post(proxy: Proxy, req: SwiftRequest) -> SwiftResponse:
    headers = removals(req.headers, "account")
    check_metadata(headers, "account")
    if any(h in headers for h in QUOTA_HEADERS) and not req.caller.reseller_admin and not req.internal:
        raise SwiftError(403, "Only a reseller admin may set account quotas")
    for name in QUOTA_HEADERS:
        if headers.get(name) and not headers[name].isdigit():
            raise SwiftError(400, f"{name} must be a non-negative integer")
    await ensure_account(proxy, req.account)
    update = {k: v for k, v in headers.items() if k.startswith("x-account-meta-")}
    response = await proxy.cluster.write("account", "POST", (req.account, None, None), update)
    proxy.cluster.forget(req.account)
    return SwiftResponse(204 if response.status // 100 == 2 else response.status, {"content-length": "0"})


async def _read(proxy: Proxy, req: SwiftRequest) -> SwiftResponse:
    fmt = listing.listing_format(req.query, req.headers)
    if req.method == "HEAD":
        backend = await proxy.cluster.read("account", "HEAD", (req.account, None, None),
                                           newest=req.headers.get("x-newest", "").lower() == "true")
        if backend is None:
            raise SwiftError(503, "No account server answered")
        backend.close()
        if backend.status == 404:
            headers = _empty_account_headers()
        elif backend.status // 100 != 2:
            raise SwiftError(backend.status)
        else:
            headers = client_headers(backend.headers)
        headers.update({"content-length": "0", "content-type": _content_type(fmt)})
        return SwiftResponse(204, headers)
    query = listing.backend_query(req.query, ACCOUNT_LISTING_LIMIT)
    backend = await proxy.cluster.read("account", "GET", (req.account, None, None), query=query)
    if backend is None:
        raise SwiftError(503, "No account server answered")
    if backend.status == 404:
        backend.close()
        headers = _empty_account_headers()
        items: list[dict[str, Any]] = []
    elif backend.status // 100 != 2:
        backend.close()
        raise SwiftError(backend.status)
    else:
        raw = await backend.read()
        headers = client_headers(backend.headers)
        # The reserved containers that keep object versions are the proxy's, not the user's.
        items = [i for i in (json.loads(raw) if raw.strip() else [])
                 if not i.get("name", "").startswith(VERSIONS_PREFIX)]
    body, content_type = listing.render("account", req.account, items, fmt)
    headers.update({"content-type": content_type, "content-length": str(len(body))})
    if not items and fmt == "plain":
        headers["content-length"] = "0"
        return SwiftResponse(204, headers)
    return SwiftResponse(200, headers, body)


def _content_type(fmt: str) -> str:
    return {"json": "application/json; charset=utf-8", "xml": "application/xml; charset=utf-8"}.get(
        fmt, "text/plain; charset=utf-8")
