"""A small HTTP/1.1 client for the storage nodes, on asyncio streams.

Why not httpx: an object PUT must know a node is ready before the body flows (so a dead or full
device is swapped for a handoff without losing bytes), which is what `Expect: 100-continue` gives and
httpx does not; and the proxy must be able to drop a node's upload mid-body so that the node never
commits a partial object. Connections are kept alive per node and reused.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol
from urllib.parse import quote, urlencode

CHUNK = 256 * 1024
# Reads of a node's body: up to the reader's whole buffer (CHUNK * 4) at a time, so a large object
# passes through the proxy in a quarter of the loop iterations and sends it would take at CHUNK.
READ_SIZE = CHUNK * 4
# A node connection's send buffer above this makes the upload wait for the node (backpressure).
DRAIN_ABOVE = 1024 * 1024
# Headers the request line and framing decide, never copied from the caller's headers.
FRAMING_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "expect", "connection"})
_IDLE_SECONDS = 2.0  # below uvicorn's 5 s keep-alive: never reuse a connection the node is closing


class NodeResponse(Protocol):
    """A storage node's answer, from over HTTP (BackendResponse) or from this process (local.py)."""

    status: int
    headers: dict[str, str]

    @property
    def timestamp(self) -> float: ...

    @property
    def node_key(self) -> tuple[str, int]: ...

    def close(self) -> None: ...

    async def read(self) -> bytes: ...

    def iter_body(self, size: int = ...) -> AsyncIterator[bytes]: ...


class BackendError(Exception):
    """The node could not be reached, or broke the protocol, or timed out."""


def names_path(*names: str | None) -> str:
    """`account[/container[/object]]`, percent-encoded (once per request, not once per node)."""
    return "/".join(quote(n.encode("utf-8"), safe="") for n in names if n is not None)


def node_path(node: dict[str, Any], part: int, *names: str | None, quoted: str | None = None) -> str:
    """`/device/partition/account[/container[/object]]`, percent-encoded."""
    return f"/{quote(str(node['device']), safe='')}/{part}/{quoted if quoted is not None else names_path(*names)}"


class Connection:
    def __init__(self, key: tuple[str, int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.key, self.reader, self.writer = key, reader, writer
        self.idle_since = time.monotonic()
        self.reused = False

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()


class Pool:
    def __init__(self, connect_timeout: float = 1.0, node_timeout: float = 10.0, max_idle: int = 64) -> None:
        self.connect_timeout, self.node_timeout, self.max_idle = connect_timeout, node_timeout, max_idle
        self._idle: dict[tuple[str, int], list[Connection]] = {}

    async def connect(self, ip: str, port: int, *, fresh: bool = False) -> Connection:
        key = (ip, int(port))
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle and not fresh:
            conn = idle.pop()
            if now - conn.idle_since < _IDLE_SECONDS and not conn.writer.is_closing() \
                    and not conn.reader.at_eof():
                conn.reused = True
                return conn
            conn.close()
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(ip, int(port), limit=CHUNK * 4)
        except (TimeoutError, OSError) as exc:
            raise BackendError(f"cannot connect to {ip}:{port}: {exc!r}") from exc
        return Connection(key, reader, writer)

    def release(self, conn: Connection) -> None:
        idle = self._idle.setdefault(conn.key, [])
        if len(idle) >= self.max_idle or conn.writer.is_closing():
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    def close_all(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    async def request(self, node: dict[str, Any], method: str, path: str, headers: dict[str, str],
                      body: bytes = b"", query: dict[str, str] | None = None) -> BackendResponse:
        """One request with a body held in memory; retried once on a stale kept-alive connection."""
        target = path + ("?" + urlencode(query) if query else "")
        for attempt in (0, 1):
            conn = await self.connect(node["ip"], node["port"], fresh=attempt == 1)
            try:
                # Head and (small) body in one write: one system call per request.
                conn.writer.write(_head(method, target, headers, len(body), host=f"{node['ip']}:{node['port']}")
                                  + body)
                async with asyncio.timeout(self.node_timeout):
                    await conn.writer.drain()
                return await read_response(self, conn, method, self.node_timeout)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, BackendError) as exc:
                conn.close()
                if not (conn.reused and attempt == 0):
                    raise BackendError(f"{method} {node['ip']}:{node['port']}{path}: {exc!r}") from exc
        raise AssertionError("unreachable")


def _head(method: str, target: str, headers: dict[str, str], length: int | None, *, host: str,
          expect: bool = False) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers.items():
        if name in FRAMING_HEADERS:
            continue
        lines.append(f"{name}: {header_value(value)}")
    lines.append("Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}")
    if expect:
        lines.append("Expect: 100-continue")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


def header_value(value: str) -> str:
    # Metadata values are UTF-8 on the wire (Swift's habit); latin-1 round-trips those bytes.
    return value.encode("utf-8").decode("latin-1").replace("\r", " ").replace("\n", " ")


def backend_timestamp(headers: dict[str, str]) -> float:
    """The timestamp of what a node answered about (0 when it has none)."""
    try:
        return float(headers.get("x-backend-timestamp") or headers.get("x-timestamp") or 0)
    except ValueError:
        return 0.0


def decode_header(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


async def _read_head(conn: Connection, timeout: float) -> tuple[int, dict[str, str]]:
    try:
        async with asyncio.timeout(timeout):
            raw = await conn.reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError as exc:
        raise BackendError("response headers too large") from exc
    lines = raw.split(b"\r\n")
    try:
        status = int(lines[0].split(b" ", 2)[1])
    except (IndexError, ValueError) as exc:
        raise BackendError(f"bad status line {lines[0]!r}") from exc
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = decode_header(value.strip())
    return status, headers


async def read_response(pool: Pool, conn: Connection, method: str, timeout: float) -> BackendResponse:
    status, headers = await _read_head(conn, timeout)
    while status == 100:  # an unasked-for interim answer
        status, headers = await _read_head(conn, timeout)
    return BackendResponse(pool, conn, status, headers, method, timeout)


class BackendResponse:
    def __init__(self, pool: Pool, conn: Connection, status: int, headers: dict[str, str], method: str,
                 timeout: float) -> None:
        self.pool, self.conn, self.status, self.headers, self.timeout = pool, conn, status, headers, timeout
        self._done = False
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            self.remaining: int | None = 0
        elif self.chunked:
            self.remaining = None
        elif length is not None and length.isdigit():
            self.remaining = int(length)
        else:
            self.remaining = -1  # until the node closes the connection
        if self.remaining == 0:
            self._finish(reusable=True)

    @property
    def timestamp(self) -> float:
        return backend_timestamp(self.headers)

    @property
    def node_key(self) -> tuple[str, int]:
        return self.conn.key

    def _finish(self, reusable: bool) -> None:
        if self._done:
            return
        self._done = True
        keep = reusable and "close" not in self.headers.get("connection", "").lower()
        if keep:
            self.pool.release(self.conn)
        else:
            self.conn.close()

    def close(self) -> None:
        """Abandon the body (the connection is dropped unless the body was fully read)."""
        self._finish(reusable=False)

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.iter_body()])

    async def iter_body(self, size: int = READ_SIZE) -> AsyncIterator[bytes]:
        reader = self.conn.reader
        try:
            if self.chunked:
                while True:
                    async with asyncio.timeout(self.timeout):
                        line = await reader.readline()
                    chunk_size = int(line.split(b";")[0].strip() or b"0", 16)
                    if chunk_size == 0:
                        async with asyncio.timeout(self.timeout):
                            while (await reader.readline()) not in (b"\r\n", b""):
                                pass
                        break
                    left = chunk_size
                    while left:
                        async with asyncio.timeout(self.timeout):
                            data = await reader.read(min(left, size))
                        if not data:
                            raise BackendError("connection closed inside a chunk")
                        left -= len(data)
                        yield data
                    async with asyncio.timeout(self.timeout):
                        await reader.readexactly(2)
                self._finish(reusable=True)
            elif self.remaining == -1:
                while True:
                    async with asyncio.timeout(self.timeout):
                        data = await reader.read(size)
                    if not data:
                        break
                    yield data
                self._finish(reusable=False)
            else:
                while self.remaining:
                    async with asyncio.timeout(self.timeout):
                        data = await reader.read(min(self.remaining or 0, size))
                    if not data:
                        raise BackendError("connection closed before the body was complete")
                    self.remaining = (self.remaining or 0) - len(data)
                    yield data
                self._finish(reusable=True)
        except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError) as exc:
            self.close()
            raise BackendError(f"reading a node's body failed: {exc!r}") from exc
        finally:
            if not self._done:
                self.close()


class Upload:
    """One node's side of a streamed PUT: headers with Expect: 100-continue, then the body."""

    def __init__(self, pool: Pool, node: dict[str, Any], path: str, headers: dict[str, str],
                 length: int | None) -> None:
        self.pool, self.node, self.path, self.headers, self.length = pool, node, path, headers, length
        self.conn: Connection | None = None
        self.failed = False
        # A node that answered before the body (507: its device is full or unmounted).
        self.final_status: int | None = None
        self.final_headers: dict[str, str] = {}

    async def start(self) -> bool:
        """Ready for the body (100 Continue)? A node that answers otherwise keeps that answer."""
        for attempt in (0, 1):
            try:
                self.conn = await self.pool.connect(self.node["ip"], self.node["port"], fresh=attempt == 1)
                self.conn.writer.write(_head("PUT", self.path, self.headers, self.length,
                                             host=f"{self.node['ip']}:{self.node['port']}", expect=True))
                async with asyncio.timeout(self.pool.node_timeout):
                    await self.conn.writer.drain()
                status, headers = await _read_head(self.conn, self.pool.node_timeout)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, BackendError):
                if self.conn is not None:
                    self.conn.close()
                if self.conn is not None and self.conn.reused and attempt == 0:
                    continue
                self.failed = True
                return False
            if status == 100:
                return True
            # The node answered without reading the body it was promised: the connection cannot be
            # reused (the node would take the next request for that body).
            self.conn.close()
            self.final_status, self.final_headers = status, headers
            self.failed = True
            return False
        return False

    def write(self, chunk: bytes) -> bool:
        """Queue `chunk` for the node; True when its send buffer is full enough to wait for it."""
        if self.failed or self.conn is None:
            return False
        writer = self.conn.writer
        if writer.is_closing():
            self.abort()
            return False
        if self.length is None:
            writer.write(b"%x\r\n" % len(chunk))
            writer.write(chunk)
            writer.write(b"\r\n")
        else:
            writer.write(chunk)
        return writer.transport.get_write_buffer_size() > DRAIN_ABOVE

    async def drain(self) -> None:
        if self.failed or self.conn is None:
            return
        try:
            await self.conn.writer.drain()
        except OSError:
            self.abort()

    async def finish(self) -> BackendResponse | None:
        if self.failed or self.conn is None:
            return None
        try:
            if self.length is None:
                self.conn.writer.write(b"0\r\n\r\n")
            async with asyncio.timeout(self.pool.node_timeout):
                await self.conn.writer.drain()
            response = await read_response(self.pool, self.conn, "PUT", self.pool.node_timeout)
            await response.read()
            return response
        except (TimeoutError, OSError, asyncio.IncompleteReadError, BackendError):
            self.abort()
            return None

    def abort(self) -> None:
        """Drop the connection mid-body: the node sees a short body and commits nothing."""
        self.failed = True
        if self.conn is not None:
            self.conn.close()
