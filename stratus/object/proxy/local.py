"""Storage servers in the proxy's own process (`stratus up`): requests to them without HTTP.

A small object PUT costs the proxy three node requests, a GET one; over loopback each is formatted,
sent, parsed by uvicorn and answered through a socket, all on the same event loop as the proxy.
Calling the server's ASGI application directly keeps every rule of the storage server (it is the
same code) and drops the transport. Requests that stream a body *to* the node (large PUTs, with
100-continue) still go through the `Pool`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote, urlencode

from stratus.core.inprocess import NoAnswer, Stream, start
from stratus.object.proxy.backend import (
    FRAMING_HEADERS,
    BackendError,
    backend_timestamp,
    decode_header,
    header_value,
)

LOCAL_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE"})


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
    """A node's answer as it comes, with the part of BackendResponse's interface the proxy uses.

    The server runs as its own task and its body passes through a short queue, so a large object
    streams (the server waits while the proxy's client is slow) instead of piling up in memory."""

    def __init__(self, node: dict[str, Any], task: asyncio.Task[None], status: int, headers: dict[str, str],
                 stream: Stream) -> None:
        self.status, self.headers = status, headers
        self.node_key = (str(node["ip"]), int(node["port"]))
        self._task, self._stream = task, stream
        self._ended = False

    @property
    def timestamp(self) -> float:
        return backend_timestamp(self.headers)

    def close(self) -> None:
        """Abandon the body: the server sees the client leave."""
        self._ended = True
        self._stream.leave.set()
        if not self._task.done():
            self._task.cancel()

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.iter_body()])

    async def iter_body(self, size: int = 0) -> AsyncIterator[bytes]:
        try:
            while not self._ended:
                chunk = await self._stream.chunks.get()
                if chunk is None:
                    self._ended = True
                    if not self._stream.complete:
                        raise BackendError(f"{self.node_key}: the answer ended before its body was complete")
                    break
                if chunk:
                    yield chunk
        finally:
            if not self._ended:
                self.close()


async def call(app: Any, node: dict[str, Any], method: str, path: str, headers: dict[str, str], body: bytes = b"",
               query: dict[str, str] | None = None) -> LocalResponse:
    """`method path` on `app` as the HTTP server would hand it over; returns once the answer's
    status and headers are there."""
    raw_headers = [(b"host", f"{node['ip']}:{node['port']}".encode()),
                   (b"content-length", str(len(body)).encode())]
    raw_headers += [(name.lower().encode("latin-1"), header_value(value).encode("latin-1", "replace"))
                    for name, value in headers.items()
                    if name.lower() not in FRAMING_HEADERS]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": unquote(path), "raw_path": path.encode("latin-1"),
             "query_string": urlencode(query).encode() if query else b"", "root_path": "",
             "headers": raw_headers, "client": ("127.0.0.1", 0), "server": (node["ip"], int(node["port"]))}
    try:
        task, status, raw_answer, stream = await start(app, scope, body)
    except NoAnswer:  # as a node that dropped the connection
        raise BackendError(f"{method} {path}: the in-process node did not answer") from None
    answer = {name.decode("latin-1").lower(): decode_header(value) for name, value in raw_answer}
    return LocalResponse(node, task, status, answer, stream)
