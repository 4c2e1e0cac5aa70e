"""The app factory: fault bodies, request ids, body limits, malformed JSON, pagination."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from stratus.core import errors
from stratus.core.http import ProjectPrefixMiddleware, create_app, paginate


class Thing(BaseModel):
    name: str


def _client(style: str) -> TestClient:
    app = create_app("t", style, max_body_bytes=100)  # type: ignore[arg-type]

    @app.get("/missing")
    def missing() -> None:
        raise errors.NotFound("no such thing")

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    @app.post("/things")
    def create(thing: Thing) -> dict:
        return {"name": thing.name}

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(("style", "expected"), [
    ("compute", {"itemNotFound": {"code": 404, "message": "no such thing"}}),
    ("identity", {"error": {"code": 404, "message": "no such thing", "title": "Not Found"}}),
    ("network", {"NeutronError": {"type": "NotFound", "message": "no such thing", "detail": ""}}),
])
def test_fault_bodies_per_api(style: str, expected: dict) -> None:
    response = _client(style).get("/missing")
    assert response.status_code == 404
    assert response.json() == expected
    assert response.headers["x-openstack-request-id"].startswith("req-")


def test_unexpected_errors_are_500_faults_without_internals() -> None:
    response = _client("compute").get("/boom")
    assert response.status_code == 500
    assert "secret" not in response.text and response.json()["computeFault"]["code"] == 500


def test_bad_bodies_are_400_and_large_ones_413() -> None:
    client = _client("compute")
    assert client.post("/things", content=b"{oops", headers={"Content-Type": "application/json"}).status_code == 400
    assert client.post("/things", json={"name": 5}).json()["badRequest"]["code"] == 400
    assert client.post("/things", json={"name": "x" * 200}).status_code == 413

    def chunks():  # no Content-Length: counted while it streams in
        yield b'{"name": "'
        yield b"y" * 200
        yield b'"}'
    assert client.post("/things", content=chunks(), headers={"Content-Type": "application/json"}).status_code == 413
    assert client.get("/nowhere").json()["itemNotFound"]["code"] == 404
    assert client.delete("/things").status_code == 405


def test_paginate_limit_and_marker() -> None:
    items = [{"id": str(i)} for i in range(5)]
    assert paginate(items, limit=2, marker=None) == ([{"id": "0"}, {"id": "1"}], True)
    assert paginate(items, limit=2, marker="3") == ([{"id": "4"}], False)
    assert paginate(items, limit=None, marker="1")[0] == items[2:]
    with pytest.raises(errors.BadRequest):
        paginate(items, limit=1, marker="nope")
    with pytest.raises(errors.BadRequest):
        paginate(items, limit=-1, marker=None)


@pytest.mark.parametrize(("path", "bare_project", "seen"), [
    ("/v2/0123456789abcdef0123456789abcdef/servers", False, "/v2.1/servers"),
    ("/v2.1/0123456789abcdef0123456789abcdef/servers/x", False, "/v2.1/servers/x"),
    ("/v2.1/0123456789abcdef0123456789abcdef", False, "/v2.1/0123456789abcdef0123456789abcdef"),
    ("/v2.1/0123456789abcdef0123456789abcdef", True, "/v2.1/"),
    ("/v2.1/servers", False, "/v2.1/servers"),
])
def test_project_prefix_middleware_drops_the_project_from_the_path(path: str, bare_project: bool, seen: str) -> None:
    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.url.path)

    app = Starlette(routes=[Route("/{rest:path}", echo)])
    app.add_middleware(ProjectPrefixMiddleware, versions=r"/v2(?:\.1)?", root="/v2.1", bare_project=bare_project)
    assert TestClient(app).get(path).text == seen
