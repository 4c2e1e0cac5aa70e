"""The proxy's in-process calls to storage servers: streamed bodies, a body cut short is an error
(as a dropped connection would be), a server that never answers is a BackendError, and leaving early
stops the server's task."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stratus.object.proxy import local
from stratus.object.proxy.backend import BackendError
from tests.loops import run_in_own_thread

NODE = {"ip": "127.0.0.1", "port": 6200, "device": "d1"}


def test_request_reaches_the_app_as_http_would_and_the_body_streams() -> None:
    seen: dict[str, Any] = {}

    async def app(scope: dict, receive: Any, send: Any) -> None:
        seen.update(method=scope["method"], raw_path=scope["raw_path"], query=scope["query_string"],
                    headers=dict(scope["headers"]), body=(await receive())["body"])
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"x-backend-timestamp", b"1700000000.00000"), (b"etag", b"abc")]})
        for index in range(10):  # more chunks than the queue holds: the app waits for the reader
            await send({"type": "http.response.body", "body": b"%d" % index, "more_body": index < 9})

    async def go() -> tuple[local.LocalResponse, bytes]:
        response = await local.call(app, NODE, "PUT", "/d1/3/a/c/o%20x", {"X-Object-Meta-K": "v"}, b"data",
                                    {"multipart-manifest": "get"})
        return response, await response.read()

    response, body = run_in_own_thread(go())
    assert (response.status, response.headers["etag"], response.timestamp) == (200, "abc", 1700000000.0)
    assert body == b"0123456789"
    assert seen["method"] == "PUT" and seen["raw_path"] == b"/d1/3/a/c/o%20x" and seen["body"] == b"data"
    assert seen["query"] == b"multipart-manifest=get"
    assert seen["headers"][b"x-object-meta-k"] == b"v" and seen["headers"][b"content-length"] == b"4"
    assert response.node_key == ("127.0.0.1", 6200)


def test_a_body_cut_short_raises_backend_error() -> None:
    async def app(scope: dict, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]})
        await send({"type": "http.response.body", "body": b"12345", "more_body": True})
        raise OSError("disk went away")

    async def go() -> list[bytes]:
        response = await local.call(app, NODE, "GET", "/d1/3/a/c/o", {})
        got = []
        with pytest.raises(BackendError, match="before its body was complete"):
            async for chunk in response.iter_body():
                got.append(chunk)
        return got

    assert run_in_own_thread(go()) == [b"12345"]


def test_no_answer_at_all_is_a_backend_error() -> None:
    async def app(scope: dict, receive: Any, send: Any) -> None:
        raise RuntimeError("broken")

    async def go() -> None:
        await local.call(app, NODE, "HEAD", "/d1/3/a/c/o", {})

    with pytest.raises(BackendError, match="did not answer"):
        run_in_own_thread(go())


def test_closing_early_tells_the_app_and_ends_its_task() -> None:
    events: list[str] = []

    async def app(scope: dict, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            for _ in range(1000):
                await send({"type": "http.response.body", "body": b"x" * 1024, "more_body": True})
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    async def go() -> None:
        response = await local.call(app, NODE, "GET", "/d1/3/a/c/o", {})
        async for _chunk in response.iter_body():
            break  # the proxy's client went away
        await asyncio.sleep(0.01)

    run_in_own_thread(go())
    assert events == ["cancelled"]


def test_only_registered_addresses_are_local() -> None:
    nodes = local.LocalNodes()
    assert nodes.app_for(NODE, "GET") is None
    nodes.add("127.0.0.1", 6200, object())
    assert nodes.app_for(NODE, "GET") is not None
    assert nodes.app_for({**NODE, "port": 6201}, "GET") is None
