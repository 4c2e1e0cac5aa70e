"""Service-to-service requests to an API this very process serves, handed to its ASGI app directly.

Under `stratus up` every API runs on one event loop, and compute reaches network and image (and
volume) through their HTTP APIs. Over loopback each such request is formatted and parsed twice
(httpx/h11 on the client, uvicorn on the server) and crosses a socket; handed to the app, it is
the same request, through the same middleware, auth and policies, without the transport. A boot
makes three such requests; the transport was about a tenth of the work of a boot.

`start` runs an app for one request and streams its answer back through a short queue; the object
proxy calls its in-process storage servers with it (object/proxy/local.py). `LocalTransport` is an
httpx transport for blocking clients (worker threads): requests to a port of `LOCAL_APPS` on a
loopback address go through `start` on the serving loop; any other request goes over the network.
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
_QUEUED_CHUNKS = 4
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
        started = asyncio.run_coroutine_threadsafe(_answer(app, _scope(request), request.read()), loop)
        try:
            status, headers, stream, first, task = started.result(timeout)
        except concurrent.futures.TimeoutError:
            started.cancel()
            raise httpx.ReadTimeout(f"no answer from the in-process app within {timeout:g} s",
                                    request=request) from None
        except NoAnswer:  # as uvicorn answers for an app that failed before its response
            return httpx.Response(500, text="Internal Server Error", request=request)
        return httpx.Response(status, headers=headers, stream=_Body(loop, timeout, stream, first, task),
                              request=request)

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


class Stream:
    """A response body between the app's task and its caller: a short queue (None ends it), whether
    the app sent its last chunk, and the event telling the app that its caller left."""

    def __init__(self) -> None:
        self.chunks: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=_QUEUED_CHUNKS)
        self.complete = False
        self.leave = asyncio.Event()


class NoAnswer(Exception):
    """The app ended (or failed) without starting a response."""


async def start(app: Any, scope: dict[str, Any], body: bytes
                ) -> tuple[asyncio.Task[None], int, list[tuple[bytes, bytes]], Stream]:
    """Run `app` for one request whose whole body is `body`, as an HTTP server would hand it over;
    returns once the response's status and raw headers are there, with the app's task and the
    stream its body comes through (the app waits while the caller is slow). NoAnswer if none comes."""
    stream = Stream()
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await stream.leave.wait()
        return {"type": "http.disconnect"}

    head: asyncio.Future[tuple[int, list[tuple[bytes, bytes]]]] = asyncio.get_running_loop().create_future()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            head.set_result((message["status"], list(message.get("headers", []))))
        elif message["type"] == "http.response.body":
            if message.get("body"):
                await stream.chunks.put(message["body"])
            if not message.get("more_body", False):
                stream.complete = True
                await stream.chunks.put(None)

    async def run() -> None:
        try:
            await app(scope, receive, send)
        except Exception:
            log.exception("in-process %s %s failed", scope["method"], scope["path"])
        finally:
            if not head.done():
                head.set_exception(NoAnswer())
        if not stream.complete:
            await stream.chunks.put(None)  # the body ends here, cut short

    task = asyncio.create_task(run())
    status, headers = await head
    return task, status, headers, stream


async def _answer(app: Any, scope: dict[str, Any], body: bytes
                  ) -> tuple[int, list[tuple[bytes, bytes]], Stream, list[bytes | None], asyncio.Task[None]]:
    """`start`, plus the body chunks already sent (a None among them: the whole body, so the
    blocking caller need not come back to the loop for it)."""
    task, status, headers, stream = await start(app, scope, body)
    first = [await stream.chunks.get()]
    while first[-1] is not None and not stream.chunks.empty():
        first.append(stream.chunks.get_nowait())
    return status, headers, stream, first, task


class _Body(httpx.SyncByteStream):
    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float, stream: Stream, first: list[bytes | None],
                 task: asyncio.Task[None]) -> None:
        self._loop, self._timeout, self._stream, self._first = loop, timeout, stream, first
        self._task = task  # held here: the loop keeps only a weak reference to it
        # Ended already when the first chunks hold the whole body: nothing is left to drain.
        self._ended = first[-1] is None
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._first:
            if chunk is None:
                self._check_complete()
                return
            yield chunk
        while True:
            waiting = asyncio.run_coroutine_threadsafe(self._stream.chunks.get(), self._loop)
            try:
                chunk = waiting.result(self._timeout)
            except concurrent.futures.TimeoutError:
                waiting.cancel()
                raise httpx.ReadTimeout(f"the in-process app sent nothing for {self._timeout:g} s") from None
            if chunk is None:
                self._ended = True
                self._check_complete()
                return
            yield chunk

    def _check_complete(self) -> None:
        # An app that failed mid-body: the caller must not take the part for the whole, so it
        # gets what a server dropping the connection there gives.
        if not self._stream.complete:
            raise httpx.RemoteProtocolError("the in-process app ended its response before the body was complete")

    def close(self) -> None:
        with self._lock:
            if not self._ended:
                self._ended = True
                asyncio.run_coroutine_threadsafe(self._drain(), self._loop)

    async def _drain(self) -> None:
        """The caller left early: take what the app still sends, so it can finish."""
        while await self._stream.chunks.get() is not None:
            pass
