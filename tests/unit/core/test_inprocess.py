"""In-process service requests (stratus/core/inprocess.py): an app served by a loop of this process
answers a blocking httpx client without a socket; anything else goes over the network."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from stratus.core.inprocess import LocalApps, LocalTransport
from tests.ports import free_port

CHUNK = b"x" * 65536


class Probe:
    """What the app saw, for the assertions."""

    def __init__(self) -> None:
        self.stream_done = threading.Event()


def make_app(probe: Probe) -> Starlette:
    async def echo(request: Request) -> Response:
        return JSONResponse({"method": request.method, "path": request.url.path, "query": dict(request.query_params),
                             "token": request.headers.get("x-auth-token"), "body": (await request.body()).decode(),
                             "host": request.headers.get("host")}, status_code=201 if request.method == "POST" else 200)

    async def missing(request: Request) -> Response:
        return JSONResponse({"itemNotFound": {"code": 404, "message": "no such thing"}}, status_code=404)

    async def broken(request: Request) -> Response:
        raise RuntimeError("the handler broke")

    async def stream(request: Request) -> Response:
        async def chunks() -> Any:
            try:
                for _ in range(int(request.query_params["n"])):
                    yield CHUNK
            finally:
                probe.stream_done.set()
        return StreamingResponse(chunks(), media_type="application/octet-stream")

    async def cut_short(request: Request) -> Response:
        async def chunks() -> Any:
            for _ in range(int(request.query_params["n"])):
                yield CHUNK
            raise RuntimeError("the body broke")
        return StreamingResponse(chunks(), media_type="application/octet-stream")

    return Starlette(routes=[Route("/echo/{rest:path}", echo, methods=["GET", "POST", "PUT", "DELETE"]),
                             Route("/missing", missing), Route("/broken", broken), Route("/stream", stream),
                             Route("/cut-short", cut_short)])


@pytest.fixture
def served() -> Iterator[tuple[LocalApps, int, Probe, asyncio.AbstractEventLoop]]:
    """The app registered on a free port nothing listens on, its loop running in a thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    probe, port, apps = Probe(), free_port(), LocalApps()
    apps.serve(loop, {port: make_app(probe)})
    try:
        yield apps, port, probe, loop
    finally:
        asyncio.run_coroutine_threadsafe(_cancel_tasks(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


async def _cancel_tasks() -> None:
    """What a test left running on the loop (a slow app) ends before the loop does."""
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def client(apps: LocalApps, fallback: httpx.BaseTransport | None = None) -> httpx.Client:
    return httpx.Client(timeout=10, transport=LocalTransport(fallback or httpx.HTTPTransport(), apps))


def test_requests_reach_the_app_without_a_socket(served: Any) -> None:
    apps, port, _, _ = served
    with client(apps) as http:  # nothing listens on the port: over the network this would not connect
        got = http.get(f"http://127.0.0.1:{port}/echo/a%20b/c", params={"q": "1 2", "r": "x"},
                       headers={"X-Auth-Token": "tok"})
        posted = http.post(f"http://localhost:{port}/echo/p", json={"k": "v"})
        missing = http.get(f"http://127.0.0.1:{port}/missing")
    assert got.status_code == 200
    assert got.json() == {"method": "GET", "path": "/echo/a b/c", "query": {"q": "1 2", "r": "x"}, "token": "tok",
                          "body": "", "host": f"127.0.0.1:{port}"}
    assert posted.status_code == 201 and posted.json()["body"] == '{"k":"v"}'
    assert missing.status_code == 404 and missing.json()["itemNotFound"]["message"] == "no such thing"


def test_an_app_that_raises_gives_a_500(served: Any) -> None:
    apps, port, _, _ = served
    with client(apps) as http:
        response = http.get(f"http://127.0.0.1:{port}/broken")
        assert response.status_code == 500
        assert http.get(f"http://127.0.0.1:{port}/echo/after").status_code == 200


def test_large_bodies_stream_and_a_caller_may_leave_early(served: Any) -> None:
    apps, port, probe, _ = served
    with client(apps) as http:
        with http.stream("GET", f"http://127.0.0.1:{port}/stream", params={"n": 64}) as response:
            assert sum(len(chunk) for chunk in response.iter_raw()) == 64 * len(CHUNK)
        assert probe.stream_done.wait(5)
        probe.stream_done.clear()
        with http.stream("GET", f"http://127.0.0.1:{port}/stream", params={"n": 1000}) as response:
            assert next(response.iter_raw()) == CHUNK
        # The app, many chunks short of its end, still finishes once the caller left.
        assert probe.stream_done.wait(5)


@pytest.mark.parametrize("chunks", [1, 64])  # within the first chunks taken, and streamed after them
def test_a_body_the_app_cuts_short_is_an_error_not_a_short_body(served: Any, chunks: int) -> None:
    apps, port, _, _ = served
    with client(apps) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            http.get(f"http://127.0.0.1:{port}/cut-short", params={"n": chunks})
        assert http.get(f"http://127.0.0.1:{port}/echo/after").status_code == 200


def test_other_requests_go_over_the_network(served: Any) -> None:
    apps, port, _, loop = served
    seen: list[str] = []

    def network(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(299)

    with client(apps, httpx.MockTransport(network)) as http:
        other = free_port()
        assert http.get(f"http://127.0.0.1:{other}/echo/x").status_code == 299  # not served here
        assert http.get(f"http://192.0.2.1:{port}/echo/x").status_code == 299  # not a loopback address
        uploaded = http.put(f"http://127.0.0.1:{port}/echo/x", content=iter([b"a", b"b"]))  # a streamed body
        assert uploaded.status_code == 299
    assert len(seen) == 3

    async def from_the_loop() -> Any:
        return apps.route(httpx.URL(f"http://127.0.0.1:{port}/echo/x"))

    # A blocking wait on the serving loop from that loop itself could never end.
    assert asyncio.run_coroutine_threadsafe(from_the_loop(), loop).result(5) is None
    apps.clear()
    assert apps.route(httpx.URL(f"http://127.0.0.1:{port}/echo/x")) is None


def test_a_slow_app_times_out_like_a_slow_server(served: Any) -> None:
    apps, port, _, loop = served

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(3)

    slow_port = free_port()
    apps.serve(loop, {port: make_app(Probe()), slow_port: slow})
    started = time.monotonic()
    with httpx.Client(timeout=0.5, transport=LocalTransport(httpx.HTTPTransport(), apps)) as http:
        with pytest.raises(httpx.ReadTimeout):
            http.get(f"http://127.0.0.1:{slow_port}/")
    assert time.monotonic() - started < 2.5
