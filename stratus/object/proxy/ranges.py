"""Range requests (one range or several, as multipart/byteranges) and conditional requests."""

from __future__ import annotations

import email.utils
import math
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

from stratus.object.proxy.request import SwiftError, timestamp_value


def parse_ranges(header: str | None, size: int) -> list[tuple[int, int]] | None:
    """`bytes=...` as [(start, end_inclusive)]; None means the whole body (no or an ignorable header).

    Unsatisfiable ranges are dropped; when none is left, 416 (as RFC 9110 says).
    """
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or not spec:
        return None
    ranges = []
    for part in spec.split(","):
        first, dash, last = part.strip().partition("-")
        first, last = first.strip(), last.strip()
        if not dash or (first and not first.isdigit()) or (last and not last.isdigit()) or (not first and not last):
            return None  # a malformed header is ignored
        if not first:
            length = int(last)
            if length == 0:
                continue
            ranges.append((max(0, size - length), size - 1))
            continue
        start = int(first)
        end = size - 1 if not last else min(int(last), size - 1)
        if last and int(last) < start:
            return None
        if start < size:
            ranges.append((start, end))
    if not ranges:
        raise SwiftError(416, "Requested Range Not Satisfiable", {"content-range": f"bytes */{size}"})
    if len(ranges) > 100:
        raise SwiftError(416, "Too many ranges")
    return ranges


def http_date(timestamp: float) -> str:
    # Swift rounds Last-Modified up to the next second so that If-Modified-Since with it never matches.
    return email.utils.formatdate(math.ceil(timestamp), usegmt=True)


def _etags(value: str) -> list[str]:
    return [tag.strip().strip('"').removeprefix('W/"') for tag in value.split(",") if tag.strip()]


def _parse_date(value: str) -> float | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed.timestamp() if parsed is not None else None


def check_conditions(headers: dict[str, str], etag: str, timestamp: str | None, method: str) -> int | None:
    """304 or 412 when a condition fails; None to answer normally."""
    etag = etag.strip('"')
    modified = math.ceil(timestamp_value(timestamp))
    if_match = headers.get("if-match")
    if if_match is not None:
        tags = _etags(if_match)
        if "*" not in tags and etag not in tags:
            return 412
    if_none = headers.get("if-none-match")
    if if_none is not None:
        tags = _etags(if_none)
        if "*" in tags or etag in tags:
            return 304 if method in ("GET", "HEAD") else 412
    if if_none is None:
        since = headers.get("if-modified-since")
        if since and method in ("GET", "HEAD"):
            when = _parse_date(since)
            if when is not None and modified <= when:
                return 304
    unmodified = headers.get("if-unmodified-since")
    if unmodified and if_match is None:
        when = _parse_date(unmodified)
        if when is not None and modified > when:
            return 412
    return None


Fetch = Callable[[int, int], Awaitable[AsyncIterator[bytes]]]


async def multipart_body(ranges: list[tuple[int, int]], size: int, content_type: str, fetch: Fetch,
                         boundary: str) -> AsyncIterator[bytes]:
    """multipart/byteranges: each range fetched (start, end inclusive) and framed in turn."""
    for start, end in ranges:
        yield (f"--{boundary}\r\nContent-Type: {content_type}\r\n"
               f"Content-Range: bytes {start}-{end}/{size}\r\n\r\n").encode()
        async for chunk in await fetch(start, end):
            yield chunk
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def multipart_length(ranges: list[tuple[int, int]], size: int, content_type: str, boundary: str) -> int:
    total = 0
    for start, end in ranges:
        total += len((f"--{boundary}\r\nContent-Type: {content_type}\r\n"
                      f"Content-Range: bytes {start}-{end}/{size}\r\n\r\n").encode()) + (end - start + 1) + 2
    return total + len(f"--{boundary}--\r\n")


def new_boundary() -> str:
    return secrets.token_hex(16)


async def slice_stream(body: AsyncIterator[bytes], skip: int, length: int) -> AsyncIterator[bytes]:
    """Bytes [skip, skip+length) of `body` (for nodes that answered 200 to a Range request)."""
    position = 0
    async for chunk in body:
        end = position + len(chunk)
        if end > skip and length > 0:
            piece = chunk[max(0, skip - position):]
            piece = piece[:length]
            length -= len(piece)
            yield piece
        position = end
        if length <= 0:
            break
    closer = getattr(body, "aclose", None)
    if closer is not None:
        await closer()  # hands the node's connection back (or drops it) at once
