"""Bulk delete: `POST /v1/{account}?bulk-delete` with one URL-encoded `/container[/object]` per line.

Objects go first, then containers (so a container emptied by the same request can go too); each
deletion is authorized like a single DELETE.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from stratus.object.proxy.large_objects import bulk_result
from stratus.object.proxy.request import SwiftError, SwiftRequest, SwiftResponse

if TYPE_CHECKING:
    from stratus.object.proxy.server import Proxy

MAX_DELETES = 10000
MAX_BODY = 10000 * 2048


async def delete(proxy: Proxy, req: SwiftRequest) -> SwiftResponse:
    assert req.body is not None
    raw = b""
    async for chunk in req.body:
        raw += chunk
        if len(raw) > MAX_BODY:
            raise SwiftError(413, "Too many deletes in one request")
    paths = [unquote(line.strip()) for line in raw.decode("utf-8", "replace").splitlines() if line.strip()]
    if len(paths) > MAX_DELETES:
        raise SwiftError(413, f"Maximum Bulk Deletes: {MAX_DELETES} per request")
    targets: list[tuple[str, str | None]] = []
    for path in paths:
        container, _, name = path.lstrip("/").partition("/")
        if container:
            targets.append((container, name or None))
    targets.sort(key=lambda t: t[1] is None)  # objects before containers
    deleted = not_found = 0
    errors: list[list[str]] = []
    for container, obj in targets:
        sub = req.derive(method="DELETE", container=container, obj=obj, query={}, headers={})
        response = await proxy.handle(sub)
        await response.close()
        if response.status // 100 == 2:
            deleted += 1
        elif response.status == 404:
            not_found += 1
        else:
            errors.append([quote("/" + container + ("/" + obj if obj else "")), f"{response.status}"])
    return bulk_result(req, deleted, not_found, errors)
