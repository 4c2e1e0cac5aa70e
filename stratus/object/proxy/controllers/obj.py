"""`/v1/{account}/{container}/{object}`: streamed PUT (quorum, handoffs, md5 check), GET/HEAD with
fallback, Range and conditions, POST metadata, DELETE, server-side copy (COPY and X-Copy-From),
X-Delete-At/After, and the quota checks a write must pass."""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING
from urllib.parse import unquote

from stratus.object.proxy import ranges
from stratus.object.proxy.backend import BackendError, NodeResponse
from stratus.object.proxy.controllers.base import client_headers
from stratus.object.proxy.request import (
    MAX_FILE_SIZE,
    MAX_NAME_LENGTH,
    Body,
    SwiftError,
    SwiftRequest,
    SwiftResponse,
    check_metadata,
    now_timestamp,
    timestamp_value,
)

if TYPE_CHECKING:
    from stratus.object.proxy.server import Proxy

log = logging.getLogger("stratus.object.proxy")

# Object headers the proxy keeps as sysmeta (the nodes store sysmeta; these are the proxy's business).
STORED_AS_SYSMETA = {"content-disposition": "x-object-sysmeta-content-disposition",
                     "content-encoding": "x-object-sysmeta-content-encoding",
                     "x-object-manifest": "x-object-sysmeta-dlo-manifest",
                     "content-language": "x-object-sysmeta-content-language",
                     "cache-control": "x-object-sysmeta-cache-control"}
DELETE_AT_SYSMETA = "x-object-sysmeta-delete-at"
VERSION_ID = "x-object-sysmeta-version-id"


def names(req: SwiftRequest) -> tuple[str, str, str]:
    assert req.container is not None and req.obj is not None
    return req.account, req.container, req.obj


def delete_at(headers: dict[str, str]) -> int | None:
    """X-Delete-At from X-Delete-At or X-Delete-After; 400 when in the past or not a number."""
    if "x-delete-after" in headers:
        value = headers["x-delete-after"]
        if not value.isdigit():
            raise SwiftError(400, "Non-integer X-Delete-After")
        return int(time.time()) + int(value)
    if "x-delete-at" in headers:
        value = headers["x-delete-at"]
        if not value.isdigit():
            raise SwiftError(400, "Non-integer X-Delete-At")
        if int(value) <= time.time():
            raise SwiftError(400, "X-Delete-At in past")
        return int(value)
    return None


def write_headers(req: SwiftRequest, content_type_from: str | None = None) -> dict[str, str]:
    """The headers a PUT or POST sends to the nodes."""
    headers = req.headers
    check_metadata(headers, "object")
    out = {k: v for k, v in headers.items() if k.startswith(("x-object-meta-", "x-object-sysmeta-"))}
    content_type = headers.get("content-type")
    if not content_type or headers.get("x-detect-content-type", "").lower() == "true":
        content_type = content_type_from or mimetypes.guess_type(req.obj or "")[0] or "application/octet-stream"
    out["content-type"] = content_type
    for public, sysmeta in STORED_AS_SYSMETA.items():
        if public in headers:
            out[sysmeta] = headers[public]
    when = delete_at(headers)
    if when is not None:
        out["x-delete-at"] = out[DELETE_AT_SYSMETA] = str(when)
    return out


def response_headers(backend: dict[str, str]) -> dict[str, str]:
    """A stored object's headers as the client sees them."""
    headers = client_headers(backend)
    for public, sysmeta in STORED_AS_SYSMETA.items():
        if backend.get(sysmeta):
            headers[public] = backend[sysmeta]
    if backend.get(DELETE_AT_SYSMETA) and "x-delete-at" not in headers:
        headers["x-delete-at"] = backend[DELETE_AT_SYSMETA]
    if backend.get(VERSION_ID):
        headers["x-object-version-id"] = backend[VERSION_ID]
    if "last-modified" not in headers and backend.get("x-timestamp"):
        headers["last-modified"] = ranges.http_date(timestamp_value(backend["x-timestamp"]))
    headers["accept-ranges"] = "bytes"
    return headers


def expired(headers: dict[str, str]) -> bool:
    value = headers.get("x-delete-at") or headers.get(DELETE_AT_SYSMETA)
    return bool(value and value.isdigit() and int(value) <= time.time())


async def verified(body: Body, *, md5: str | None = None, sha256: str | None = None,
                   limit: int | None = None, length: int | None = None) -> AsyncIterator[bytes]:
    """`body`, checked as it streams: the last chunk is held back until the digests match, so a
    mismatch aborts the nodes' uploads before they can commit (422, or 400 for a bad SHA-256)."""
    # The MD5 is computed only to check a given ETag (the nodes compute their own for the answer).
    md5_hash = hashlib.md5(usedforsecurity=False) if md5 else None
    sha_hash = hashlib.sha256() if sha256 else None
    held: bytes | None = None
    size = 0
    async for chunk in body:
        if not chunk:
            continue
        size += len(chunk)
        if limit is not None and size > limit:
            raise SwiftError(413, "Upload exceeds the quota or the maximum object size")
        if md5_hash is not None:
            md5_hash.update(chunk)
        if sha_hash is not None:
            sha_hash.update(chunk)
        if held is not None:
            yield held
        held = chunk
    if length is not None and size != length:
        raise SwiftError(499, "The client sent fewer bytes than Content-Length")
    if md5_hash is not None and md5 and md5_hash.hexdigest() != md5.strip('"').lower():
        raise SwiftError(422, "Unprocessable Entity: the ETag does not match the body's MD5")
    if sha_hash is not None and sha256 and sha_hash.hexdigest() != sha256.lower():
        raise SwiftError(400, "XAmzContentSHA256Mismatch")
    if held is not None:
        yield held


def upload_length(req: SwiftRequest) -> int | None:
    """Content-Length, or None for a chunked upload; 411 without either, 413 past the size limit."""
    value = req.headers.get("content-length")
    chunked = "chunked" in req.headers.get("transfer-encoding", "").lower()
    if value is None:
        if not chunked:
            raise SwiftError(411, "Length Required")
        return None
    if not value.isdigit():
        raise SwiftError(400, "Invalid Content-Length")
    if int(value) > MAX_FILE_SIZE:
        raise SwiftError(413, "Your request is too large.")
    return None if chunked else int(value)


async def check_quotas(proxy: Proxy, req: SwiftRequest, length: int | None) -> int | None:
    """Refuse a write past the container's or the account's quota; returns the bytes still allowed."""
    assert req.container is not None
    cinfo = (await proxy.cluster.container_info(req.account, req.container))["headers"]
    ainfo = (await proxy.cluster.account_info(req.account))["headers"]
    allowed: int | None = None
    for quota, used in (("x-container-meta-quota-bytes", cinfo.get("x-container-bytes-used")),
                        ("x-account-meta-quota-bytes", ainfo.get("x-account-bytes-used"))):
        source = cinfo if quota.startswith("x-container") else ainfo
        if source.get(quota, "").isdigit():
            left = int(source[quota]) - int(used or 0)
            if length is not None and length > left:
                raise SwiftError(413, "Upload exceeds quota.")
            allowed = left if allowed is None else min(allowed, left)
    for quota, used in (("x-container-meta-quota-count", cinfo.get("x-container-object-count")),
                        ("x-account-meta-quota-count", ainfo.get("x-account-object-count"))):
        source = cinfo if quota.startswith("x-container") else ainfo
        if source.get(quota, "").isdigit() and int(used or 0) + 1 > int(source[quota]):
            raise SwiftError(413, "Upload exceeds quota.")
    return allowed


QUOTA_HEADERS = ("x-container-meta-quota-bytes", "x-container-meta-quota-count", "x-account-meta-quota-bytes",
                 "x-account-meta-quota-count")


async def quotas_set(proxy: Proxy, account: str, container: str) -> bool:
    """Whether the container or its account has a quota (from the cached info the PUT just used)."""
    cinfo = (await proxy.cluster.container_info(account, container))["headers"]
    ainfo = (await proxy.cluster.account_info(account))["headers"]
    return any(name in cinfo or name in ainfo for name in QUOTA_HEADERS)


async def put(proxy: Proxy, req: SwiftRequest, body: Body, length: int | None,
              extra: dict[str, str] | None = None, sha256: str | None = None) -> SwiftResponse:
    """Store `body` as the object (the container must exist)."""
    account, container, obj = names(req)
    if len(obj.encode()) > MAX_NAME_LENGTH:
        raise SwiftError(400, f"Object name length of {len(obj.encode())} longer than {MAX_NAME_LENGTH}")
    info = await proxy.cluster.container_info(account, container)
    if info["status"] == 404:
        raise SwiftError(404, "Container not found")
    if info["status"] // 100 != 2:
        raise SwiftError(503, "Container servers did not answer")
    allowed = await check_quotas(proxy, req, length)
    headers = {**write_headers(req), **(extra or {})}
    etag = req.headers.get("etag")
    if etag:
        headers["etag"] = etag.strip('"').lower()
    timestamp = headers.setdefault("x-timestamp", now_timestamp())
    stream = verified(body, md5=etag, sha256=sha256, limit=allowed, length=length)
    status, backend = await proxy.cluster.put_object((account, container, obj), headers, stream, length)
    if await quotas_set(proxy, account, container):
        # The next write's quota check must see this one's bytes; without quotas the cached usage
        # may lag by the cache's few seconds, as Swift's does (a refetch per PUT cost two HEADs).
        proxy.cluster.forget(account, container)
    if status == 422:
        raise SwiftError(422, "Unprocessable Entity")
    if status // 100 != 2:
        raise SwiftError(503 if status >= 500 else status)
    out = {"content-length": "0", "etag": backend.get("etag", "").strip('"'),
           "last-modified": ranges.http_date(timestamp_value(timestamp)), "x-timestamp": timestamp}
    if VERSION_ID in headers:
        out["x-object-version-id"] = headers[VERSION_ID]
    return SwiftResponse(201, out)


async def read(proxy: Proxy, req: SwiftRequest, method: str) -> NodeResponse:
    """The stored object's backend answer (2xx) or a SwiftError; expired objects are gone."""
    newest = req.headers.get("x-newest", "").lower() == "true"
    backend = await proxy.cluster.read("object", method, names(req), newest=newest)
    if backend is None:
        raise SwiftError(503, "No object server answered")
    if backend.status // 100 != 2:
        backend.close()
        raise SwiftError(backend.status if backend.status < 500 else 503)
    if expired(backend.headers):
        backend.close()
        raise SwiftError(404, "Not Found")
    return backend


async def range_of(proxy: Proxy, req: SwiftRequest, start: int, end: int) -> AsyncIterator[bytes]:
    """Bytes start..end (inclusive) of the object, from a node that honours Range or by skipping."""
    backend = await proxy.cluster.read("object", "GET", names(req), headers={"range": f"bytes={start}-{end}"})
    if backend is None or backend.status // 100 != 2:
        if backend is not None:
            backend.close()
        raise SwiftError(503, "The object could not be read")
    if backend.status == 206:
        return backend.iter_body()
    return ranges.slice_stream(backend.iter_body(), start, end - start + 1)


def conditional(req: SwiftRequest, headers: dict[str, str]) -> SwiftResponse | None:
    status = ranges.check_conditions(req.headers, headers.get("etag", ""), headers.get("x-timestamp"), req.method)
    if status is None:
        return None
    keep = {k: v for k, v in headers.items() if k in ("etag", "last-modified", "x-timestamp")}
    return SwiftResponse(status, {**keep, "content-length": "0"})


async def respond(req: SwiftRequest, headers: dict[str, str], size: int, whole: Body,
                  part: ranges.Fetch) -> SwiftResponse:
    """The GET answer for a body of `size` bytes: whole (200), one range (206) or several (multipart)."""
    spans = ranges.parse_ranges(req.headers.get("range"), size) if req.method == "GET" else None
    if spans is None:
        headers["content-length"] = str(size)
        return SwiftResponse(200, headers, whole if req.method == "GET" else b"")
    closer = getattr(whole, "aclose", None)
    if closer is not None:
        await closer()
    if len(spans) == 1:
        start, end = spans[0]
        headers.update({"content-length": str(end - start + 1), "content-range": f"bytes {start}-{end}/{size}"})
        return SwiftResponse(206, headers, await part(start, end))
    boundary = ranges.new_boundary()
    content_type = headers.get("content-type", "application/octet-stream")
    headers["content-type"] = f"multipart/byteranges;boundary={boundary}"
    headers["content-length"] = str(ranges.multipart_length(spans, size, content_type, boundary))
    return SwiftResponse(206, headers, ranges.multipart_body(spans, size, content_type, part, boundary))


async def get_plain(proxy: Proxy, req: SwiftRequest, backend: NodeResponse) -> SwiftResponse:
    headers = response_headers(backend.headers)
    answer = conditional(req, headers)
    if answer is not None:
        backend.close()
        return answer
    size = int(backend.headers.get("content-length", "0") or 0)

    async def part(start: int, end: int) -> AsyncIterator[bytes]:
        return await range_of(proxy, req, start, end)

    if req.method == "HEAD":
        backend.close()
        headers["content-length"] = str(size)
        return SwiftResponse(200, headers)
    response = await respond(req, headers, size, resuming_body(proxy, req, backend), part)
    if response.status == 206:
        backend.close()
    else:
        response.on_close = backend.close
    return response


async def resuming_body(proxy: Proxy, req: SwiftRequest, backend: NodeResponse) -> AsyncIterator[bytes]:
    """The object's bytes; when a node fails mid-body, the rest comes from another replica
    (a Range request for what is missing, accepted only with the same ETag)."""
    etag = backend.headers.get("etag", "")
    sent, current, failed = 0, backend, []
    for _ in range(3):
        try:
            async for chunk in current.iter_body():
                sent += len(chunk)
                yield chunk
            return
        except BackendError as exc:
            log.info("object GET: resuming %s after %d bytes: %s", req.path, sent, exc)
            failed.append(current.node_key)
        following = await proxy.cluster.read("object", "GET", names(req), headers={"range": f"bytes={sent}-"},
                                             exclude=failed)
        if following is None or following.status not in (200, 206) or following.headers.get("etag") != etag:
            if following is not None:
                following.close()
            break
        current = following if following.status == 206 else _Skipping(following, sent)  # type: ignore[assignment]
    raise SwiftError(503, "The object could not be read to its end")


class _Skipping:
    """A node's whole-object answer with the first `skip` bytes left out (for nodes ignoring Range)."""

    def __init__(self, backend: NodeResponse, skip: int) -> None:
        self.backend, self.skip, self.node_key = backend, skip, backend.node_key

    async def iter_body(self) -> AsyncIterator[bytes]:
        async for chunk in ranges.slice_stream(self.backend.iter_body(), self.skip, 1 << 62):
            yield chunk


async def post(proxy: Proxy, req: SwiftRequest) -> SwiftResponse:
    headers = write_headers(req)
    if "content-type" not in req.headers:
        headers.pop("content-type")
    response = await proxy.cluster.write("object", "POST", names(req), headers)
    if response.status // 100 != 2:
        raise SwiftError(response.status if response.status < 500 else 503)
    return SwiftResponse(202, {"content-length": "0"})


async def delete(proxy: Proxy, req: SwiftRequest) -> SwiftResponse:
    response = await proxy.cluster.write("object", "DELETE", names(req), {})
    proxy.cluster.forget(req.account, req.container)
    if response.status == 404:
        raise SwiftError(404, "Not Found")
    if response.status // 100 != 2:
        raise SwiftError(503)
    return SwiftResponse(204, {"content-length": "0"})


def copy_source(req: SwiftRequest) -> tuple[str, str, str]:
    """(account, container, object) named by X-Copy-From (and X-Copy-From-Account)."""
    value = unquote(req.headers.get("x-copy-from", "")).lstrip("/")
    container, _, obj = value.partition("/")
    if not container or not obj:
        raise SwiftError(412, "X-Copy-From header must be of the form <container name>/<object name>")
    return req.headers.get("x-copy-from-account") or req.account, container, obj


def copy_to_put(req: SwiftRequest) -> SwiftRequest:
    """COPY with Destination becomes a PUT of the destination with X-Copy-From."""
    destination = unquote(req.headers.get("destination", "")).lstrip("/")
    container, _, obj = destination.partition("/")
    if not container or not obj:
        raise SwiftError(412, "Destination header must be of the form <container name>/<object name>")
    headers = {**req.headers, "x-copy-from": f"{req.container}/{req.obj}", "content-length": "0"}
    if "destination-account" in req.headers:
        headers["x-copy-from-account"] = req.account
    return req.derive(method="PUT", account=req.headers.get("destination-account") or req.account,
                      container=container, obj=obj, headers=headers)


async def copy(proxy: Proxy, req: SwiftRequest) -> SwiftResponse:
    """PUT with X-Copy-From: the source (as its reader sees it, large objects concatenated) streamed in."""
    account, container, obj = copy_source(req)
    source_req = req.derive(method="GET", account=account, container=container, obj=obj,
                            headers={k: v for k, v in req.headers.items()
                                     if k.startswith("if-") or k == "x-newest"},
                            query={k: v for k, v in req.query.items() if k == "multipart-manifest"})
    source = await proxy.handle(source_req)
    if source.status // 100 != 2:
        await source.close()
        raise SwiftError(source.status if source.status in (304, 404, 412) else 503)
    fresh = req.headers.get("x-fresh-metadata", "").lower() == "true"
    headers = {} if fresh else {k: v for k, v in source.headers.items()
                                if k.startswith("x-object-meta-") or k in STORED_AS_SYSMETA or k == "content-type"}
    headers.update({k: v for k, v in req.headers.items() if k not in ("x-copy-from", "x-copy-from-account", "etag")})
    length = int(source.headers.get("content-length", "0"))
    headers["content-length"] = str(length)
    if "x-static-large-object" in source.headers and req.query.get("multipart-manifest") == "get":
        raise SwiftError(400, "Copying a manifest is not supported; copy the object itself")
    target = req.derive(headers=headers)
    body = source.body if not isinstance(source.body, bytes) else _once(source.body)
    try:
        response = await put(proxy, target, body, length)
    finally:
        await source.close()
    response.headers["x-copied-from"] = f"{container}/{obj}"
    if account != req.account:
        response.headers["x-copied-from-account"] = account
    if "last-modified" in source.headers:
        response.headers["x-copied-from-last-modified"] = source.headers["last-modified"]
    return response


async def _once(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data
