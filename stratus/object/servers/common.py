"""What the three storage servers share: request parsing, responses, metadata and listings."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate
from typing import Any, TypeVar
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape, quoteattr

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from stratus.object.utils import BadTimestamp, normalize_timestamp, split_path

log = logging.getLogger("stratus.object.server")

# The storage servers' file and database work, on threads of their own: asyncio's default pool is
# shared by every service of the process. Eight: measured in `stratus up` under a 16-client 4 KiB PUT
# load when small PUTs still wrote here, 8 threads gave 221-254 PUTs/s and 32 gave 209-211 (more
# threads wait on each other for the GIL). Small PUTs now write from the event loop (object.py).
DISK_THREADS = 8
_disk_pool = ThreadPoolExecutor(DISK_THREADS, thread_name_prefix="object-disk")
T = TypeVar("T")


def in_disk_thread(func: Callable[..., T], *args: Any, **kwargs: Any) -> Awaitable[T]:
    """`func(*args, **kwargs)` on the storage servers' disk threads."""
    return asyncio.get_running_loop().run_in_executor(_disk_pool, functools.partial(func, *args, **kwargs))


# Replication requests: Swift's REPLICATE verb, or a POST with this header (httptools, which serves
# the nodes in production, accepts only the standard methods).
REPLICATE_HEADERS = {"x-backend-replicate": "true"}


class HTTPError(Exception):
    def __init__(self, status: int, message: str = "", headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class ClientGone(Exception):
    """The client left before the whole body arrived: nothing may be committed."""


class Request:
    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope, self.receive = scope, receive
        self.method: str = scope["method"]
        # latin-1 maps bytes to characters one to one, and Starlette writes headers back as latin-1:
        # a metadata value (UTF-8 bytes from the client) is stored and returned byte for byte.
        self.headers: dict[str, str] = {k.decode("latin-1").lower(): v.decode("latin-1")
                                         for k, v in scope["headers"]}
        raw = scope.get("raw_path") or scope["path"].encode()
        self.raw_path = raw.split(b"?", 1)[0].decode("latin-1")
        self.query = dict(parse_qsl(scope.get("query_string", b"").decode("utf-8", "replace"),
                                    keep_blank_values=True))

    @property
    def is_replicate(self) -> bool:
        return self.method == "REPLICATE" or (self.method == "POST" and "x-backend-replicate" in self.headers)

    def split(self, minimum: int, maximum: int) -> list[str]:
        try:
            return split_path(self.raw_path, minimum, maximum)
        except ValueError as exc:
            raise HTTPError(400, "Invalid path") from exc

    def timestamp(self, name: str = "x-timestamp", required: bool = True) -> str:
        value = self.headers.get(name)
        if value is None and not required:
            return normalize_timestamp(time.time())
        return self.parse_timestamp(value, name)

    @staticmethod
    def parse_timestamp(value: str | None, name: str) -> str:
        """A timestamp header's normal form; 400 when it is missing or not a timestamp."""
        if value is None:
            raise HTTPError(400, f"Missing {name}")
        try:
            return normalize_timestamp(value)
        except BadTimestamp as exc:
            raise HTTPError(400, f"Invalid {name}") from exc

    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        if value is None:
            if "chunked" not in self.headers.get("transfer-encoding", "").lower():
                raise HTTPError(411, "Length Required")
            return None
        if not value.isdigit():
            raise HTTPError(400, "Invalid Content-Length")
        return int(value)

    async def chunks(self, length: int | None) -> AsyncIterator[bytes]:
        """The body; ClientGone when it ends before Content-Length (or the final chunk)."""
        received = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            body = message.get("body", b"")
            if body:
                received += len(body)
                if length is not None and received > length:
                    raise HTTPError(400, "Body longer than Content-Length")
                yield body
            if not message.get("more_body", False):
                break
        if length is not None and received != length:
            raise ClientGone()

    async def body(self, limit: int = 16 * 1024 * 1024) -> bytes:
        parts, size = [], 0
        async for chunk in self.chunks(None if "content-length" not in self.headers else self.content_length()):
            size += len(chunk)
            if size > limit:
                raise HTTPError(413, "Request body too large")
            parts.append(chunk)
        return b"".join(parts)


def header_text(value: str) -> str:
    """A header value as text (UTF-8 when its bytes are UTF-8), for what goes into a listing."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def iso_date(timestamp: str | float) -> str:
    micros = int(round(float(timestamp) * 1_000_000))
    seconds, fraction = divmod(micros, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:06d}"


def plain(status: int, body: str = "", headers: dict[str, str] | None = None) -> Response:
    return Response(body.encode(), status_code=status, headers=headers or {}, media_type="text/plain")


def http_date(timestamp: str | float) -> str:
    # Last-Modified has whole seconds: round up so it is never before the write.
    value = float(timestamp)
    whole = int(value) + (1 if value % 1 else 0)
    return formatdate(whole, usegmt=True)




Handler = Callable[[Request], Awaitable[Response]]


async def serve(handler: Handler, scope: Scope, receive: Receive, send: Send) -> None:
    """Run `handler`, turning HTTPError into a plain answer and anything else into a logged 500."""
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        return
    request = Request(scope, receive)
    try:
        response = await handler(request)
    except HTTPError as exc:
        response = plain(exc.status, exc.message, exc.headers)
    except ClientGone:
        return  # nobody to answer
    except Exception:
        log.exception("%s %s failed", scope["method"], scope.get("path"))
        response = plain(500, "Internal Server Error")
    await response(scope, receive, send)


# -- metadata -------------------------------------------------------------------------------------
def meta_from_headers(headers: dict[str, str], kind: str, timestamp: str) -> dict[str, list[str]]:
    """X-<Kind>-Meta-* and X-<Kind>-Sysmeta-* headers (and ACL/versioning headers) with their timestamp."""
    out = {}
    prefixes = (f"x-{kind}-meta-", f"x-{kind}-sysmeta-")
    extra = {"x-container-read", "x-container-write", "x-container-sync-to", "x-container-sync-key",
             "x-versions-location", "x-history-location", "x-versions-enabled"} if kind == "container" else set()
    for name, value in headers.items():
        if name.startswith(prefixes) or name in extra:
            out[name] = [value, timestamp]
    return out


def meta_to_headers(metadata: dict[str, list[str]]) -> dict[str, str]:
    return {name: value for name, (value, _stamp) in metadata.items() if value}


# -- listings -------------------------------------------------------------------------------------
def listing_params(request: Request) -> dict[str, Any]:
    query = request.query
    try:
        limit = int(query.get("limit", "10000") or 10000)
    except ValueError as exc:
        raise HTTPError(412, "Bad limit") from exc
    if not 0 <= limit <= 10000:
        raise HTTPError(412, "Maximum limit is 10000")
    delimiter = query.get("delimiter", "")
    if len(delimiter) > 1:
        raise HTTPError(412, "Bad delimiter")
    for name in ("prefix", "marker", "end_marker", "delimiter"):
        if "\x00" in query.get(name, ""):
            raise HTTPError(412, f"Bad {name}")
    return {"limit": limit, "marker": query.get("marker", ""), "end_marker": query.get("end_marker", ""),
            "prefix": query.get("prefix", ""), "delimiter": delimiter,
            "reverse": query.get("reverse", "").lower() in ("1", "true", "yes", "on", "t", "y")}


def listing_format(request: Request) -> str:
    fmt = request.query.get("format", "").lower()
    if fmt in ("json", "xml", "plain"):
        return fmt
    accept = request.headers.get("accept", "")
    if "application/json" in accept:
        return "json"
    if "application/xml" in accept or "text/xml" in accept:
        return "xml"
    return "plain"


def listing_response(kind: str, name: str, items: list[dict[str, Any]], fmt: str,
                     headers: dict[str, str]) -> Response:
    """`items` already in the API's shape (name/hash/bytes/... or subdir)."""
    if fmt == "json":
        return Response(json.dumps(items).encode(), 200, headers, media_type="application/json; charset=utf-8")
    if fmt == "xml":
        entry = "object" if kind == "container" else "container"
        parts = ['<?xml version="1.0" encoding="UTF-8"?>', f"<{kind} name={quoteattr(name)}>"]
        for item in items:
            if "subdir" in item:
                parts.append(f"<subdir name={quoteattr(item['subdir'])}><name>{escape(item['subdir'])}</name></subdir>")
                continue
            fields = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in item.items())
            parts.append(f"<{entry}>{fields}</{entry}>")
        parts.append(f"</{kind}>")
        return Response("".join(parts).encode(), 200, headers, media_type="application/xml; charset=utf-8")
    if not items:
        return Response(b"", 204, headers, media_type="text/plain; charset=utf-8")
    body = "".join((item.get("subdir") or item["name"]) + "\n" for item in items)
    return Response(body.encode(), 200, headers, media_type="text/plain; charset=utf-8")
