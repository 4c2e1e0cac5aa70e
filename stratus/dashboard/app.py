"""The dashboard application: routes from each page module, static files, error pages, headers."""

from __future__ import annotations

import logging
import secrets
import time
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stratus.core.config import Config
from stratus.dashboard import (
    admin,
    auth,
    containers,
    floatingips,
    images,
    instances,
    keypairs,
    networks,
    overview,
    security,
    topology,
    volumes,
    web,
)
from stratus.dashboard.sessions import SessionStore

log = logging.getLogger("stratus.dashboard")

# Pages load only this site's own scripts, styles and images, and may not be framed.
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; object-src 'none'; "
                                 b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name == b"cache-control" for name, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ServerTiming:
    """`Server-Timing: app;dur=MS`: how long the dashboard took to answer (API calls included), so a
    browser's developer tools and the tests see the server's share of a page's time."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_with_timing(message: Message) -> None:
            if message["type"] == "http.response.start":
                took = (time.perf_counter() - started) * 1000
                message["headers"] = [*message.get("headers", []), (b"server-timing", f"app;dur={took:.1f}".encode())]
            await send(message)

        await self.app(scope, receive, send_with_timing)


async def _home(request: Request) -> Response:
    return web.redirect("/project/")


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = {404: "There is no page at this address.", 405: "This page does not take that kind of request."}
    return web.error_page(request, web.current_session(request), status, message.get(status, "Request failed."))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("dashboard: %s %s failed", request.method, request.url.path)
    return web.error_page(request, None, 500, "Something went wrong on our side; the error has been logged.")


def create_dashboard_app(identity_url: str, *, secret_key: str = "", secure_cookies: bool = False,
                         api_timeout: float = 30.0, idle_timeout: float = 3600.0,
                         http: httpx.AsyncClient | None = None) -> Starlette:
    routes: list[Route | Mount] = [Route("/", _home, methods=["GET"])]
    for module in (auth, overview, instances, images, keypairs, networks, topology, security,
                   floatingips, containers, volumes, admin):
        routes += module.routes
    routes.append(Mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static"))
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error, Exception: _unexpected})
    app.state.sessions = SessionStore(secret_key or secrets.token_urlsafe(32), idle_timeout=idle_timeout)
    app.state.http = http or httpx.AsyncClient(timeout=api_timeout, limits=httpx.Limits(max_connections=50))
    app.state.identity_url = identity_url.rstrip("/")
    app.state.secure_cookies = secure_cookies
    app.add_middleware(SecurityHeaders)
    app.add_middleware(ServerTiming)
    return app


def from_config(cfg: Config) -> Starlette:
    d = cfg.dashboard
    identity_url = d.identity_url or cfg.auth.identity_url or f"http://127.0.0.1:{cfg.identity.port}"
    return create_dashboard_app(identity_url, secret_key=d.secret_key, secure_cookies=d.secure_cookies,
                                api_timeout=d.api_timeout, idle_timeout=d.session_idle_timeout)
