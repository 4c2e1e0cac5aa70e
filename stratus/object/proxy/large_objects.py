"""Large objects made of segments.

Static (SLO): `PUT ?multipart-manifest=put` with a JSON list of segments (`path`, `etag`, `size_bytes`,
optional `range`), each checked against what is stored; the manifest is kept as the object's body
with sysmeta `Slo-Etag` (md5 of the segments' etags, as Swift computes it) and `Slo-Size`.
Dynamic (DLO): an object whose `X-Object-Manifest: container/prefix` names its segments by prefix.
GET streams the segments in order (Range applies to the concatenation); `multipart-manifest=get`
returns the manifest itself and `multipart-manifest=delete` removes an SLO with its segments.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from stratus.object.proxy.backend import NodeResponse
from stratus.object.proxy.controllers import obj as objects
from stratus.object.proxy.request import SwiftError, SwiftRequest, SwiftResponse, bytes_body

if TYPE_CHECKING:
    from stratus.object.proxy.server import Proxy

SLO_ETAG = "x-object-sysmeta-slo-etag"
SLO_SIZE = "x-object-sysmeta-slo-size"
DLO_MANIFEST = "x-object-sysmeta-dlo-manifest"
MAX_SEGMENTS = 1000
MAX_MANIFEST_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 10
DLO_MAX_SEGMENTS = 10000


@dataclass
class Segment:
    container: str
    obj: str
    etag: str
    size: int          # bytes this segment contributes (its range, if any)
    start: int = 0     # offset within the segment object
    range: str | None = None


def _split_path(path: str) -> tuple[str, str]:
    container, _, obj = unquote(path).lstrip("/").partition("/")
    if not container or not obj:
        raise SwiftError(400, f"Invalid segment path {path!r}: expected /container/object")
    return container, obj


def _parse_range(spec: str, size: int) -> tuple[int, int]:
    first, _, last = spec.partition("-")
    if not first and last.isdigit():
        length = min(int(last), size)
        return size - length, length
    if not first.isdigit() or (last and not last.isdigit()):
        raise SwiftError(400, f"Invalid segment range {spec!r}")
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise SwiftError(400, f"Unsatisfiable segment range {spec!r}")
    return start, end - start + 1


# -- SLO put --------------------------------------------------------------------------------------
async def put_manifest(proxy: Proxy, req: SwiftRequest) -> SwiftResponse:
    assert req.body is not None
    raw = b""
    async for chunk in req.body:
        raw += chunk
        if len(raw) > MAX_MANIFEST_BYTES:
            raise SwiftError(413, "Manifest File > 8388608 bytes")
    try:
        items = json.loads(raw)
    except ValueError as exc:
        raise SwiftError(400, "Manifest must be valid JSON.") from exc
    if not isinstance(items, list) or not items:
        raise SwiftError(400, "Manifest must be a non-empty list of segments")
    if len(items) > MAX_SEGMENTS:
        raise SwiftError(413, f"Too many segments: at most {MAX_SEGMENTS}")
    problems: list[str] = []
    semaphore = asyncio.Semaphore(8)

    async def check(item: Any) -> dict[str, Any] | None:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            problems.append(f"{item!r}: each segment needs a 'path'")
            return None
        container, obj = _split_path(item["path"])
        async with semaphore:
            head = await proxy.handle(req.derive(method="HEAD", container=container, obj=obj, headers={},
                                                 query={}))
        await head.close()
        if head.status // 100 != 2:
            problems.append(f"{item['path']}, {head.status}")
            return None
        etag = head.headers.get("etag", "").strip('"')
        size = int(head.headers.get("content-length", "0"))
        if item.get("etag") not in (None, "") and str(item["etag"]).strip('"') != etag:
            problems.append(f"{item['path']}, Etag Mismatch")
        if item.get("size_bytes") not in (None, "") and int(item["size_bytes"]) != size:
            problems.append(f"{item['path']}, Size Mismatch")
        stored: dict[str, Any] = {"name": f"/{container}/{obj}", "hash": etag, "bytes": size,
                                  "content_type": head.headers.get("content-type", ""),
                                  "sub_slo": "x-static-large-object" in head.headers}
        if item.get("range"):
            start, length = _parse_range(str(item["range"]), size)
            stored["range"] = f"{start}-{start + length - 1}"
        if size == 0:
            problems.append(f"{item['path']}, Too Small; each segment must be at least 1 byte.")
        return stored

    segments = await asyncio.gather(*(check(item) for item in items))
    if problems:
        text = "Errors:\n" + "\n".join(problems)
        raise SwiftError(400, text)
    digest = hashlib.md5(usedforsecurity=False)
    total = 0
    for seg in segments:
        assert seg is not None
        if "range" in seg:
            first, last = (int(x) for x in seg["range"].split("-"))
            total += last - first + 1
            digest.update(f"{seg['hash']}:{seg['range']};".encode())
        else:
            total += seg["bytes"]
            digest.update(seg["hash"].encode())
    slo_etag = digest.hexdigest()
    given = req.headers.get("etag", "").strip('"')
    if given and given != slo_etag:
        raise SwiftError(422, "Unprocessable Entity: the ETag does not match the manifest's")
    body = json.dumps(segments).encode()
    headers = {k: v for k, v in req.headers.items() if k != "etag"}
    headers["content-length"] = str(len(body))
    headers.setdefault("content-type", "application/octet-stream")
    response = await objects.put(proxy, req.derive(headers=headers), bytes_body(body), len(body),
                                 extra={SLO_ETAG: slo_etag, SLO_SIZE: str(total)})
    response.headers["etag"] = f'"{slo_etag}"'
    return response


# -- reading ----------------------------------------------------------------------------------------
def _manifest_segments(manifest: list[dict[str, Any]]) -> list[Segment]:
    out = []
    for item in manifest:
        container, obj = _split_path(item["name"])
        start, size = 0, int(item["bytes"])
        if item.get("range"):
            first, last = (int(x) for x in item["range"].split("-"))
            start, size = first, last - first + 1
        out.append(Segment(container, obj, item["hash"], size, start, item.get("range")))
    return out


async def _dlo_segments(proxy: Proxy, req: SwiftRequest, manifest: str) -> list[Segment]:
    container, _, prefix = unquote(manifest).partition("/")
    segments: list[Segment] = []
    marker = ""
    while len(segments) < DLO_MAX_SEGMENTS:
        listing = await proxy.handle(req.derive(method="GET", container=container, obj=None, headers={},
                                                query={"format": "json", "prefix": prefix, "marker": marker}))
        if listing.status == 204 or listing.status == 404:
            await listing.close()
            break
        if listing.status // 100 != 2:
            await listing.close()
            raise SwiftError(listing.status)
        items = json.loads(await listing.read())
        if not items:
            break
        segments += [Segment(container, item["name"], item["hash"], int(item["bytes"])) for item in items]
        marker = items[-1]["name"]
    return segments


def _combined_etag(segments: list[Segment]) -> str:
    return hashlib.md5("".join(s.etag for s in segments).encode(), usedforsecurity=False).hexdigest()


async def _stream(proxy: Proxy, req: SwiftRequest, segments: list[Segment], start: int, end: int,
                  depth: int) -> AsyncIterator[bytes]:
    """Bytes start..end (inclusive) of the concatenation, one segment at a time."""
    if depth > MAX_DEPTH:
        raise SwiftError(409, "Too many levels of nested large objects")
    position = 0
    for seg in segments:
        seg_first, seg_last = position, position + seg.size - 1
        position += seg.size
        if seg_last < start or seg_first > end or seg.size == 0:
            continue
        offset = max(start, seg_first) - seg_first + seg.start
        last = min(end, seg_last) - seg_first + seg.start
        sub = req.derive(method="GET", container=seg.container, obj=seg.obj, query={},
                         headers={"range": f"bytes={offset}-{last}", "x-slo-depth": str(depth + 1)})
        response = await proxy.handle(sub)
        try:
            if response.status // 100 != 2:
                raise SwiftError(409, f"Segment {seg.container}/{seg.obj} could not be read")
            etag = response.headers.get("etag", "").strip('"')
            if seg.etag and etag and etag != seg.etag and response.status == 200:
                raise SwiftError(409, f"Segment {seg.container}/{seg.obj} changed since the manifest was made")
            body = response.body
            if isinstance(body, bytes):
                yield body
            else:
                async for chunk in body:
                    yield chunk
        finally:
            await response.close()


async def respond(proxy: Proxy, req: SwiftRequest, backend: NodeResponse) -> SwiftResponse | None:
    """The answer for a large object, or None when `backend` is an ordinary object."""
    stored = backend.headers
    if SLO_ETAG not in stored and DLO_MANIFEST not in stored:
        return None
    manifest_get = req.query.get("multipart-manifest") == "get"
    headers = objects.response_headers(stored)
    if SLO_ETAG in stored:
        if manifest_get:
            data = await backend.read()
            if req.query.get("format") == "raw":
                data = json.dumps([{"path": item["name"], "etag": item["hash"], "size_bytes": item["bytes"],
                                    **({"range": item["range"]} if "range" in item else {})}
                                   for item in json.loads(data)]).encode()
            headers.update({"content-type": "application/json; charset=utf-8", "content-length": str(len(data)),
                            "x-static-large-object": "True"})
            return SwiftResponse(200, headers, data if req.method == "GET" else b"")
        headers.update({"etag": f'"{stored[SLO_ETAG]}"', "x-static-large-object": "True"})
        size = int(stored.get(SLO_SIZE, "0"))
        if req.method == "HEAD":
            backend.close()
            return objects.conditional(req, headers) or SwiftResponse(200, {**headers, "content-length": str(size)})
        answer = objects.conditional(req, headers)
        if answer is not None:
            backend.close()
            return answer
        segments = _manifest_segments(json.loads(await backend.read()))
    else:
        backend.close()
        if manifest_get:
            headers["content-length"] = "0"
            return SwiftResponse(200, headers, b"")
        segments = await _dlo_segments(proxy, req, stored[DLO_MANIFEST])
        size = sum(s.size for s in segments)
        headers["etag"] = f'"{_combined_etag(segments)}"'
        answer = objects.conditional(req, headers)
        if answer is not None:
            return answer
        if req.method == "HEAD":
            return SwiftResponse(200, {**headers, "content-length": str(size)})
    depth = int(req.headers.get("x-slo-depth", "0") or 0)

    async def part(start: int, end: int) -> AsyncIterator[bytes]:
        return _stream(proxy, req, segments, start, end, depth)

    whole = _stream(proxy, req, segments, 0, size - 1, depth) if size else bytes_body(b"")
    return await objects.respond(req, headers, size, whole, part)


# -- SLO delete -------------------------------------------------------------------------------------
async def delete_manifest(proxy: Proxy, req: SwiftRequest) -> SwiftResponse:
    backend = await objects.read(proxy, req, "GET")
    if SLO_ETAG not in backend.headers:
        backend.close()
        return await objects.delete(proxy, req)
    segments = _manifest_segments(json.loads(await backend.read()))
    deleted = not_found = 0
    errors: list[list[str]] = []
    for seg in segments:
        result = await proxy.handle(req.derive(method="DELETE", container=seg.container, obj=seg.obj,
                                               query={}, headers={}))
        await result.close()
        if result.status // 100 == 2:
            deleted += 1
        elif result.status == 404:
            not_found += 1
        else:
            errors.append([quote(f"/{seg.container}/{seg.obj}"), str(result.status)])
    await objects.delete(proxy, req)
    deleted += 1
    return bulk_result(req, deleted, not_found, errors)


def bulk_result(req: SwiftRequest, deleted: int, not_found: int, errors: list[list[str]]) -> SwiftResponse:
    status = "400 Bad Request" if errors else "200 OK"
    doc = {"Number Deleted": deleted, "Number Not Found": not_found, "Response Body": "",
           "Response Status": status, "Errors": errors}
    if "application/json" in req.headers.get("accept", ""):
        data = json.dumps(doc).encode()
        content_type = "application/json"
    else:
        lines = [f"Number Deleted: {deleted}", f"Number Not Found: {not_found}", "Response Body: ",
                 f"Response Status: {status}", "Errors:"] + [f"{name}, {code}" for name, code in errors]
        data = ("\n".join(lines) + "\n").encode()
        content_type = "text/plain"
    return SwiftResponse(200, {"content-type": content_type, "content-length": str(len(data))}, data)
