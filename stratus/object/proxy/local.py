"""Storage servers in the proxy's own process (`stratus up`): their answers to writes without HTTP.

A small object PUT costs the proxy three node requests; over loopback each is formatted, sent,
parsed by uvicorn and answered through a socket, all on the same event loop as the proxy. Calling
the server's ASGI application directly keeps every rule of the storage server (it is the same
code) and drops the transport. Only requests whose answer is small take this path: reads stream
their bodies through the `Pool` as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote, urlencode

from stratus.object.proxy.backend import backend_timestamp, decode_header, header_value

LOCAL_METHODS = frozenset({"PUT", "POST", "DELETE"})


class LocalNodes:
    """ASGI applications of storage servers in this process, by the address the rings give them."""

    def __init__(self) -> None:
        self._apps: dict[tuple[str, int], Any] = {}

    def add(self, ip: str, port: int, app: Any) -> None:
        self._apps[(ip, int(port))] = app

    def app_for(self, node: dict[str, Any], method: str) -> Any | None:
        if method not in LOCAL_METHODS or not self._apps:
            return None
        return self._apps.get((node["ip"], int(node["port"])))


class LocalResponse:
    """A node's whole answer, with the part of BackendResponse's interface the proxy uses."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self._body = status, headers, body

    @property
    def timestamp(self) -> float:
        return backend_timestamp(self.headers)

    def close(self) -> None:
        pass

    async def read(self) -> bytes:
        return self._body

    async def iter_body(self, size: int = 0) -> AsyncIterator[bytes]:
        if self._body:
            yield self._body


async def call(app: Any, node: dict[str, Any], method: str, path: str, headers: dict[str, str], body: bytes,
               query: dict[str, str] | None = None) -> LocalResponse:
    """`method path` on `app` as the HTTP server would hand it over."""
    raw_headers = [(b"host", f"{node['ip']}:{node['port']}".encode()),
                   (b"content-length", str(len(body)).encode())]
    raw_headers += [(name.lower().encode("latin-1"), header_value(value).encode("latin-1", "replace"))
                    for name, value in headers.items()
                    if name.lower() not in ("host", "content-length", "transfer-encoding", "expect", "connection")]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": unquote(path), "raw_path": path.encode("latin-1"),
             "query_string": urlencode(query).encode() if query else b"", "root_path": "",
             "headers": raw_headers, "client": ("127.0.0.1", 0), "server": (node["ip"], int(node["port"]))}
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    status = 500
    answer: dict[str, str] = {}
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            for name, value in message.get("headers", []):
                answer[name.decode("latin-1").lower()] = decode_header(value)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return LocalResponse(status, answer, b"".join(chunks))
