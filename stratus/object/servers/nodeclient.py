"""A small asyncio HTTP/1.1 client for the short requests storage servers send each other
(container rows, account rows): no body, keep-alive connections per peer.

Why not httpx here: its async transport costs about a millisecond of CPU per request (it looks for
an async library on every call), several times what the container update itself costs, and every
object PUT makes one.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

_IDLE_SECONDS = 2.0  # below uvicorn's keep-alive timeout: a pooled connection is never one being closed
_MAX_HEADER_BYTES = 64 * 1024


class NodeRequestError(Exception):
    pass


class NodeClient:
    def __init__(self, timeout: float = 10.0, max_idle: int = 32) -> None:
        self.timeout = timeout
        self.max_idle = max_idle
        self._idle: dict[tuple[str, int], list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]]] = {}

    async def request(self, method: str, url: str, headers: dict[str, str]) -> int:
        """Send a body-less request; returns the status (NodeRequestError when there is none)."""
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or 80
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Length: 0"]
        for name, value in headers.items():
            if any(c in name + value for c in "\r\n"):
                raise NodeRequestError(f"bad header {name!r}")
            lines.append(f"{name}: {value}")
        # Header values are the latin-1 text of the bytes the servers received: latin-1 gives them back.
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        for attempt in (0, 1):
            reused, reader, writer = await self._connect(host, port, fresh=attempt > 0)
            try:
                return await asyncio.wait_for(self._exchange(host, port, reader, writer, data), self.timeout)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, TimeoutError) as exc:
                writer.close()
                if not reused or attempt:  # a pooled connection may have been closed by the peer: once more
                    raise NodeRequestError(f"{method} {url}: {exc!r}") from exc
        raise NodeRequestError("unreachable")

    async def _connect(self, host: str, port: int,
                       fresh: bool) -> tuple[bool, asyncio.StreamReader, asyncio.StreamWriter]:
        idle = self._idle.get((host, port), [])
        while idle and not fresh:
            reader, writer, since = idle.pop()
            if time.monotonic() - since < _IDLE_SECONDS and not writer.is_closing() and not reader.at_eof():
                return True, reader, writer
            writer.close()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), self.timeout)
        except (OSError, TimeoutError) as exc:
            raise NodeRequestError(f"cannot connect to {host}:{port}: {exc!r}") from exc
        return False, reader, writer

    async def _exchange(self, host: str, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        data: bytes) -> int:
        writer.write(data)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _MAX_HEADER_BYTES:
            raise ValueError("response head too large")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        length, close = 0, False
        for line in header_lines:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "connection" and value.strip().lower() == "close":
                close = True
            elif name == "transfer-encoding":
                close = True  # not expected from our servers; do not try to reuse such a connection
        if length:
            await reader.readexactly(length)
        if close:
            writer.close()
        else:
            idle = self._idle.setdefault((host, port), [])
            if len(idle) < self.max_idle:
                idle.append((reader, writer, time.monotonic()))
            else:
                writer.close()
        return status
