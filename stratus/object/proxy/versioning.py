"""Object versioning (`X-Versions-Enabled: true` on a container).

Every write to a versioned container is also kept in the reserved container `.versions-<name>`
as `<object>/<inverted version id>` (newest first in a listing); a DELETE keeps a delete marker there.
The version id is the write's timestamp, returned as X-Object-Version-Id.
`GET ?version_id=` reads an old version, `DELETE ?version_id=` removes one (the newest remaining
version becomes current again), and `GET <container>?versions` lists them all.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from stratus.object.proxy.controllers.container import VERSIONS_FLAG, versions_container
from stratus.object.proxy.request import SwiftError, SwiftRequest, SwiftResponse, bytes_body, now_timestamp

if TYPE_CHECKING:
    from stratus.object.proxy.server import Proxy

# Set on the proxy's own requests on the current object: they must not be versioned again.
SKIP = {"x-backend-skip-versioning": "1"}
DELETE_MARKER = "application/x-deleted;swift_versions_deleted=1"
_INVERTED = re.compile(r"\d{10}\.\d{5}")
_CEILING = 9999999999.99999


def _invert(version_id: str) -> str:
    return f"{_CEILING - float(version_id):016.5f}"


def _archive_name(obj: str, version_id: str) -> str:
    return f"{obj}/{_invert(version_id)}"


def _split_archive(name: str) -> tuple[str, str] | None:
    obj, _, inverted = name.rpartition("/")
    if not obj or not _INVERTED.fullmatch(inverted):
        return None
    return obj, f"{_CEILING - float(inverted):016.5f}"


def enabled(container_headers: dict[str, str]) -> bool:
    return container_headers.get(VERSIONS_FLAG) == "true"


async def ensure_archive(proxy: Proxy, req: SwiftRequest) -> None:
    """Create the versions container when versioning is switched on."""
    assert req.container is not None
    sub = req.derive(method="PUT", container=versions_container(req.container), obj=None, query={},
                     headers={}, internal=True)
    response = await proxy.handle(sub)
    await response.close()


async def put(proxy: Proxy, req: SwiftRequest, do_put: Any) -> SwiftResponse:
    """Store the new current version, then its archived copy."""
    assert req.container is not None and req.obj is not None
    version_id = now_timestamp()
    req.headers["x-object-sysmeta-version-id"] = version_id
    response: SwiftResponse = await do_put(req)
    if response.status // 100 != 2:
        return response
    copy = req.derive(method="PUT", container=versions_container(req.container),
                      obj=_archive_name(req.obj, version_id), query={}, internal=True,
                      headers={"x-copy-from": f"{req.container}/{req.obj}", "content-length": "0",
                               "x-object-sysmeta-version-id": version_id})
    archived = await proxy.handle(copy)
    await archived.close()
    response.headers["x-object-version-id"] = version_id
    return response


async def _versions_of(proxy: Proxy, req: SwiftRequest, obj: str) -> list[dict[str, Any]]:
    assert req.container is not None
    listing = await proxy.handle(req.derive(method="GET", container=versions_container(req.container), obj=None,
                                            query={"format": "json", "prefix": obj + "/"}, headers={},
                                            internal=True))
    if listing.status != 200:
        await listing.close()
        return []
    out = []
    for item in json.loads(await listing.read()):
        parsed = _split_archive(item["name"])
        if parsed is not None and parsed[0] == obj:
            out.append({**item, "version_id": parsed[1]})
    return out  # newest first


async def delete(proxy: Proxy, req: SwiftRequest) -> SwiftResponse:
    assert req.container is not None and req.obj is not None
    archive = versions_container(req.container)
    version_id = req.query.get("version_id")
    if version_id is None:
        version_id = now_timestamp()
        marker = req.derive(method="PUT", container=archive, obj=_archive_name(req.obj, version_id), query={},
                            internal=True, headers={"content-type": DELETE_MARKER, "content-length": "0",
                                                    "x-object-sysmeta-version-id": version_id})
        result = await proxy.handle(marker.derive(body=bytes_body(b"")))
        await result.close()
        current = await proxy.handle(req.derive(method="DELETE", query={}, internal=True, headers=SKIP))
        await current.close()
        return SwiftResponse(204, {"content-length": "0", "x-object-version-id": version_id})
    try:
        float(version_id)
    except ValueError:
        raise SwiftError(400, "Invalid version_id") from None
    before = await _versions_of(proxy, req, req.obj)
    if not any(v["version_id"] == version_id for v in before):
        raise SwiftError(404, "Not Found")
    was_latest = before[0]["version_id"] == version_id
    gone = await proxy.handle(req.derive(method="DELETE", container=archive,
                                         obj=_archive_name(req.obj, version_id), query={}, internal=True))
    await gone.close()
    if was_latest:
        remaining = before[1:]
        if not remaining or remaining[0]["content_type"] == DELETE_MARKER:
            current = await proxy.handle(req.derive(method="DELETE", query={}, internal=True, headers=SKIP))
            await current.close()
        else:
            newest = remaining[0]
            restore = req.derive(method="PUT", query={}, internal=True,
                                 headers={**SKIP, "x-copy-from": f"{archive}/{newest['name']}",
                                          "content-length": "0",
                                          "x-object-sysmeta-version-id": newest["version_id"]})
            restored = await proxy.handle(restore)
            await restored.close()
    return SwiftResponse(204, {"content-length": "0", "x-object-version-id": version_id})


async def get_version(proxy: Proxy, req: SwiftRequest) -> SwiftResponse:
    assert req.container is not None and req.obj is not None
    version_id = req.query["version_id"]
    try:
        float(version_id)
    except ValueError:
        raise SwiftError(400, "Invalid version_id") from None
    query = {k: v for k, v in req.query.items() if k != "version_id"}
    response = await proxy.handle(req.derive(container=versions_container(req.container), query=query,
                                             obj=_archive_name(req.obj, version_id), internal=True))
    if response.headers.get("content-type") == DELETE_MARKER:
        await response.close()
        raise SwiftError(404, "Not Found")
    return response


async def list_versions(proxy: Proxy, req: SwiftRequest) -> SwiftResponse:
    """`GET <container>?versions`: every version (and delete marker), newest first per object."""
    assert req.container is not None
    query = {"format": "json", "prefix": req.query.get("prefix", "")}
    listing = await proxy.handle(req.derive(container=versions_container(req.container), obj=None, query=query,
                                            headers={}, internal=True))
    items = json.loads(await listing.read()) if listing.status == 200 else []
    out, seen = [], set()
    for item in items:
        parsed = _split_archive(item["name"])
        if parsed is None:
            continue
        name, version_id = parsed
        out.append({**item, "name": name, "version_id": version_id, "is_latest": name not in seen})
        seen.add(name)
    limit = req.query.get("limit")
    if limit and limit.isdigit():
        out = out[:int(limit)]
    body = json.dumps(out).encode()
    return SwiftResponse(200, {"content-type": "application/json; charset=utf-8",
                               "content-length": str(len(body))}, body)
