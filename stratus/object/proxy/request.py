"""The proxy's own request and response: what the Swift front, the S3 front and the middleware-like
modules (large objects, versioning, tempurl...) pass to the controllers.

Headers are kept with lower-case names; bodies are async iterators of bytes so that nothing holds an
object whole in memory.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Body = AsyncIterator[bytes]

# Client headers that only the proxy may set on the backend: stripped from every incoming request.
_RESERVED_PREFIXES = ("x-backend-", "x-account-sysmeta-", "x-container-sysmeta-", "x-object-sysmeta-",
                      "x-object-transient-sysmeta-")

MAX_META_NAME = 128
MAX_META_VALUE = 256
MAX_META_COUNT = 90
MAX_META_OVERALL = 4096
MAX_NAME_LENGTH = 1024
MAX_CONTAINER_NAME = 256
MAX_FILE_SIZE = 5 * 1024**3 + 2
CONTAINER_LISTING_LIMIT = 10000
ACCOUNT_LISTING_LIMIT = 10000


def now_timestamp() -> str:
    """A Swift normalized timestamp: seconds since the epoch, ten digits and five decimals."""
    return f"{time.time():016.5f}"


def timestamp_value(value: str | None) -> float:
    try:
        return float(value) if value else 0.0
    except ValueError:
        return 0.0


class SwiftError(Exception):
    """Ends the request with `status`; the text body says why (as Swift's plain error pages do)."""

    def __init__(self, status: int, message: str = "", headers: dict[str, str] | None = None) -> None:
        super().__init__(message or str(status))
        self.status = status
        self.message = message
        self.headers = headers or {}


class ClientDisconnected(Exception):
    """The client went away before its request body was complete."""


@dataclass
class Caller:
    """Who is asking, once authenticated: the accounts they own and the names ACLs match."""

    user_id: str = ""
    user_name: str = ""
    project_id: str = ""
    project_name: str = ""
    roles: list[str] = field(default_factory=list)
    owned_accounts: set[str] = field(default_factory=set)
    reseller_admin: bool = False
    # Strings a container ACL entry may name to grant this caller access ("project:user", ...).
    acl_names: set[str] = field(default_factory=set)
    # "keystone", "tempauth", "tempurl", "anonymous" or "internal".
    method: str = "anonymous"

    def owns(self, account: str) -> bool:
        return self.reseller_admin or account in self.owned_accounts


@dataclass
class SwiftRequest:
    method: str
    account: str
    container: str | None = None
    obj: str | None = None
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: Body | None = None
    caller: Caller = field(default_factory=Caller)
    host: str = ""
    remote_addr: str = ""
    # Set for requests the proxy makes of itself (copies, segments): authorization already done.
    internal: bool = False

    @property
    def path(self) -> str:
        return "/v1/" + "/".join(p for p in (self.account, self.container, self.obj) if p is not None)

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    def derive(self, **changes: Any) -> SwiftRequest:
        """A copy with some fields changed (headers and query copied, not shared)."""
        values: dict[str, Any] = {
            "method": self.method, "account": self.account, "container": self.container, "obj": self.obj,
            "query": dict(self.query), "headers": dict(self.headers), "body": None, "caller": self.caller,
            "host": self.host, "remote_addr": self.remote_addr, "internal": self.internal}
        values.update(changes)
        return SwiftRequest(**values)


@dataclass
class SwiftResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | Body = b""
    # Called once the body was sent or abandoned (returns backend connections).
    on_close: Callable[[], Awaitable[None] | None] | None = None

    async def close(self) -> None:
        if self.on_close is not None:
            result = self.on_close()
            self.on_close = None
            if result is not None:
                await result

    async def read(self, limit: int = 64 * 1024 * 1024) -> bytes:
        """The whole body (for small documents: manifests, listings); at most `limit` bytes."""
        if isinstance(self.body, bytes):
            return self.body
        parts, size = [], 0
        try:
            async for chunk in self.body:
                size += len(chunk)
                if size > limit:
                    raise SwiftError(413, "Document too large")
                parts.append(chunk)
        finally:
            await self.close()
        return b"".join(parts)


def clean_client_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if not k.startswith(_RESERVED_PREFIXES)}


def user_meta(headers: dict[str, str], kind: str) -> dict[str, str]:
    prefix = f"x-{kind}-meta-"
    return {k: v for k, v in headers.items() if k.startswith(prefix)}


def check_metadata(headers: dict[str, str], kind: str) -> None:
    """Swift's limits on user metadata: name and value lengths, count and overall size."""
    prefix = f"x-{kind}-meta-"
    count = size = 0
    for name, value in headers.items():
        if not name.startswith(prefix):
            continue
        key = name[len(prefix):]
        if not key:
            raise SwiftError(400, "Metadata name cannot be empty")
        if len(key) > MAX_META_NAME:
            raise SwiftError(400, f"Metadata name too long; max {MAX_META_NAME}")
        if len(value) > MAX_META_VALUE:
            raise SwiftError(400, f"Metadata value longer than {MAX_META_VALUE}")
        count += 1
        size += len(key) + len(value)
    if count > MAX_META_COUNT:
        raise SwiftError(400, f"Too many metadata items; max {MAX_META_COUNT}")
    if size > MAX_META_OVERALL:
        raise SwiftError(400, f"Total metadata too large; max {MAX_META_OVERALL}")


def title_case(name: str) -> str:
    if name == "etag":
        return "ETag"
    return "-".join(part.capitalize() for part in name.split("-"))


async def bytes_body(data: bytes) -> Body:
    if data:
        yield data


def as_body(data: bytes | Body) -> Body:
    return bytes_body(data) if isinstance(data, bytes) else data


def error_response(status: int, message: str = "", headers: dict[str, str] | None = None) -> SwiftResponse:
    text = (message or _REASONS.get(status, "Error")).encode()
    out = {"content-type": "text/plain; charset=utf-8", "content-length": str(len(text))}
    out.update(headers or {})
    return SwiftResponse(status, out, text)


_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 409: "Conflict", 411: "Length Required", 412: "Precondition Failed",
            413: "Request Entity Too Large", 416: "Requested Range Not Satisfiable",
            422: "Unprocessable Entity", 499: "Client Disconnect", 500: "Internal Error",
            503: "Service Unavailable", 507: "Insufficient Storage"}
