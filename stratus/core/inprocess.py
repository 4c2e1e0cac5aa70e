"""Service-to-service requests to an API this very process serves, handed to its ASGI app directly.

Under `stratus up` every API runs on one event loop, and compute reaches network and image (and
volume) through their HTTP APIs. Over loopback each such request is formatted and parsed twice
(httpx/h11 on the client, uvicorn on the server) and crosses a socket; handed to the app, it is
the same request, through the same middleware, auth and policies, without the transport. A boot
makes three such requests; the transport was about a tenth of the work of a boot.

`LocalTransport` is an httpx transport for blocking clients (worker threads): requests to a port
of `LOCAL_APPS` on a loopback address run as a task on the serving loop, their response streamed
back through a short queue; any other request goes over the network.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import httpx

log = logging.getLogger("stratus.inprocess")

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
# Queued response chunks per request: the app waits (not the loop) while the caller is slow.
_QUEUED_CHUNKS = 8
_DEFAULT_TIMEOUT = 60.0


class LocalApps:
    """The ASGI apps this process serves, by port, and the loop they run on (set while serving)."""

    def __init__(self) -> None:
        self._apps: dict[int, Any] = {}
        self.loop: asyncio.AbstractEventLoop | None = None

    def serve(self, loop: asyncio.AbstractEventLoop, apps: dict[int, Any]) -> None:
        self._apps, self.loop = dict(apps), loop

    def clear(self) -> None:
        self._apps, self.loop = {}, None

    def route(self, url: httpx.URL) -> tuple[Any, asyncio.AbstractEventLoop] | None:
        """The app and loop for `url`, when this process serves it and the caller is not that loop
        (a blocking wait there would stop the very loop that must answer)."""
        loop = self.loop
        if loop is None or url.host not in LOOPBACK or url.scheme != "http":
            return None
        app = self._apps.get(url.port or 80)
        if app is None or not loop.is_running() or _running_loop() is loop:
            return None
        return app, loop


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


LOCAL_APPS = LocalApps()


class LocalTransport(httpx.BaseTransport):
    """See the module's docstring. Requests whose body is a stream (uploads) go over the network."""

    def __init__(self, fallback: httpx.BaseTransport, apps: LocalApps = LOCAL_APPS) -> None:
        self.fallback, self.apps = fallback, apps

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        routed = self.apps.route(request.url)
        if routed is None or not isinstance(request.stream, httpx.ByteStream):
            return self.fallback.handle_request(request)
        app, loop = routed
        timeout = (request.extensions.get("timeout") or {}).get("read") or _DEFAULT_TIMEOUT
        exchange = _Exchange(loop, timeout)
        started = asyncio.run_coroutine_threadsafe(exchange.start(app, _scope(request), request.read()), loop)
        try:
            status, headers, first = started.result(timeout)
        except concurrent.futures.TimeoutError:
            started.cancel()
            raise httpx.ReadTimeout(f"no answer from the in-process app within {timeout:g} s",
                                    request=request) from None
        return httpx.Response(status, headers=headers, stream=_Body(exchange, first), request=request)

    def close(self) -> None:
        self.fallback.close()


def _scope(request: httpx.Request) -> dict[str, Any]:
    url = request.url
    raw_path = url.raw_path.split(b"?", 1)[0]
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "method": request.method, "scheme": "http", "path": unquote(raw_path.decode("ascii")),
            "raw_path": raw_path, "query_string": url.query, "root_path": "",
            "headers": [(name.lower(), value) for name, value in request.headers.raw],
            "client": ("127.0.0.1", 0), "server": (url.host, url.port or 80)}


class _Exchange:
    """One request's run on the loop: the app as a task, its response head, its body chunks."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop, self.timeout = loop, timeout
        self.chunks: asyncio.Queue[bytes | None] | None = None
        self.task: asyncio.Task[None] | None = None  # held here: the loop keeps only a weak reference

    async def start(self, app: Any, scope: dict[str, Any], body: bytes) -> tuple[int, list[Any], list[bytes | None]]:
        """Run the app until its response starts; the head and the body chunks already sent
        (a None among them: the whole body, so the caller need not come back)."""
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue(_QUEUED_CHUNKS)
        finished = asyncio.Event()
        head: asyncio.Future[tuple[int, list[Any]]] = self.loop.create_future()
        self.chunks = chunks
        request: list[dict[str, Any]] = [{"type": "http.request", "body": body, "more_body": False}]
        ended = False

        async def receive() -> dict[str, Any]:
            if request:
                return request.pop()
            await finished.wait()  # the body was read: the client is there until the app is done
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal ended
            if message["type"] == "http.response.start":
                head.set_result((message["status"], list(message.get("headers", []))))
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    await chunks.put(bytes(message["body"]))
                if not message.get("more_body", False):
                    ended = True
                    await chunks.put(None)

        async def run() -> None:
            try:
                await app(scope, receive, send)
            except Exception:  # as uvicorn does: a 500 if nothing was sent yet, else a cut-off body
                log.exception("in-process %s %s failed", scope["method"], scope["path"])
            finally:
                finished.set()
                if not head.done():
                    head.set_result((500, [(b"content-type", b"text/plain; charset=utf-8")]))
                    await chunks.put(b"Internal Server Error")
                if not ended:
                    await chunks.put(None)

        self.task = self.loop.create_task(run())
        status, headers = await head
        first = [await chunks.get()]
        while first[-1] is not None and not chunks.empty():
            first.append(chunks.get_nowait())
        return status, headers, first

    async def next_chunk(self) -> bytes | None:
        assert self.chunks is not None
        return await self.chunks.get()

    async def drain(self) -> None:
        """The caller left early: take what the app still sends, so it can finish."""
        assert self.chunks is not None
        while await self.chunks.get() is not None:
            pass


class _Body(httpx.SyncByteStream):
    def __init__(self, exchange: _Exchange, first: list[bytes | None]) -> None:
        # Ended already when the first chunks hold the whole body: nothing is left to drain.
        self._exchange, self._first, self._ended = exchange, first, first[-1] is None
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._first:
            if chunk is None:
                return
            yield chunk
        exchange = self._exchange
        while True:
            waiting = asyncio.run_coroutine_threadsafe(exchange.next_chunk(), exchange.loop)
            try:
                chunk = waiting.result(exchange.timeout)
            except concurrent.futures.TimeoutError:
                waiting.cancel()
                raise httpx.ReadTimeout(f"the in-process app sent nothing for {exchange.timeout:g} s") from None
            if chunk is None:
                self._ended = True
                return
            yield chunk

    def close(self) -> None:
        with self._lock:
            if not self._ended:
                self._ended = True
                asyncio.run_coroutine_threadsafe(self._exchange.drain(), self._exchange.loop)
