"""The app factory every API uses: fault bodies, request ids, body limits, JSON error handling."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import DataError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stratus.core import errors
from stratus.core.auth import AuthMiddleware, TokenValidator
from stratus.core.faults import FaultStyle, fault_response

log = logging.getLogger("stratus.http")

REQUEST_ID_HEADER = "x-openstack-request-id"
_STATUS_ERRORS = {cls.status: cls for cls in (
    errors.BadRequest, errors.Unauthorized, errors.Forbidden, errors.NotFound, errors.MethodNotAllowed,
    errors.NotAcceptable, errors.Conflict, errors.Gone, errors.PayloadTooLarge, errors.UnsupportedMediaType,
    errors.ServiceUnavailable)}


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        if err.get("type") == "json_invalid":
            return "Malformed JSON in request body."
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "Invalid input for field/attribute: " + "; ".join(parts)


class RequestIdMiddleware:
    """Gives every request an id, returned in `x-openstack-request-id` and kept in the scope."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = "req-" + str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id
        header = (REQUEST_ID_HEADER.encode(), request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodyLimitMiddleware:
    """Refuses bodies over `limit` bytes with 413, by Content-Length or while they stream in."""

    def __init__(self, app: ASGIApp, limit: int, style: FaultStyle, exempt: re.Pattern[str] | None = None) -> None:
        self.app, self.limit, self.style, self.exempt = app, limit, style, exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.exempt is not None and self.exempt.fullmatch(scope["path"])):
            await self.app(scope, receive, send)
            return
        too_large = errors.PayloadTooLarge(f"Request body is larger than {self.limit} bytes.")
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.limit:
                    await fault_response(self.style, too_large)(scope, receive, send)
                    return
        seen, exceeded = 0, False

        async def counting_receive() -> Message:
            nonlocal seen, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # Tell the app the client left; we answer 413 ourselves below.
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not exceeded:
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded:
            await fault_response(self.style, too_large)(scope, receive, send)


_PROJECT_ID = r"([0-9a-fA-F]{32}|[0-9a-fA-F-]{36})"


class ProjectPrefixMiddleware:
    """`<version>/{project_id}/servers` -> `<root>/servers`: the URL form with the project in the path
    (what the catalog's old-style endpoints give clients) reaches the same routes as the one without.
    `versions` is the pattern of the version segments accepted; `bare_project` says where
    `<version>/{project_id}` itself goes: to `<root>/` or nowhere (left as it is)."""

    def __init__(self, app: ASGIApp, versions: str, root: str, bare_project: bool) -> None:
        self.app = app
        self.pattern = re.compile(rf"^{versions}/{_PROJECT_ID}(/.*)?$")
        self.root, self.bare_project = root, bare_project

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            match = self.pattern.match(scope["path"])
            rest = match.group(2) if match is not None else None
            if match is not None and (rest not in (None, "/") or self.bare_project):
                scope = dict(scope)
                scope["path"] = self.root + (rest or "/")
                scope["raw_path"] = scope["path"].encode()
        await self.app(scope, receive, send)


def create_app(title: str, style: FaultStyle, *, max_body_bytes: int = 1024 * 1024,
               streaming_paths: str | None = None, validator: TokenValidator | None = None,
               public_paths: tuple[str, ...] = ("/",)) -> FastAPI:
    """A FastAPI app whose every error, expected or not, is an OpenStack fault of `style`.

    `streaming_paths` (a regular expression) names the data paths exempt from the body limit;
    with a `validator`, every path but `public_paths` needs a valid X-Auth-Token.
    """
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url="/openapi.json")

    @app.exception_handler(errors.StratusError)
    async def _stratus_error(_request: Request, exc: errors.StratusError) -> Response:
        return fault_response(style, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> Response:
        return fault_response(style, errors.BadRequest(_validation_message(exc)))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        cls = _STATUS_ERRORS.get(exc.status_code, errors.StratusError)
        detail = exc.detail if isinstance(exc.detail, str) and exc.status_code != 404 else None
        err = cls(detail)
        err.status = exc.status_code
        return fault_response(style, err)

    @app.exception_handler(IntegrityError)
    async def _integrity(_request: Request, exc: IntegrityError) -> Response:
        # A concurrent request won the race for a unique name, or a reference vanished meanwhile.
        log.info("integrity error mapped to 409: %s", exc.orig)
        return fault_response(style, errors.Conflict("The request conflicts with the current state."))

    @app.exception_handler(DataError)
    async def _bad_data(_request: Request, exc: DataError) -> Response:
        # The database refused a value (a NUL byte in PostgreSQL text, an out-of-range number).
        log.info("data error mapped to 400: %s", exc.orig)
        return fault_response(style, errors.BadRequest("A value in the request cannot be stored."))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return fault_response(style, errors.StratusError("An unexpected error prevented the request."))

    # Added innermost first: request ids wrap everything, then the body limit, then auth.
    if validator is not None:
        app.add_middleware(AuthMiddleware, validator=validator, style=style, public_paths=public_paths)
    app.add_middleware(BodyLimitMiddleware, limit=max_body_bytes, style=style,
                       exempt=re.compile(streaming_paths) if streaming_paths else None)
    app.add_middleware(RequestIdMiddleware)
    return app


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def paginate(items: list[Any], *, limit: int | None, marker: str | None,
             key: Callable[[Any], str] = lambda item: item["id"]) -> tuple[list[Any], bool]:
    """Apply limit/marker to an ordered list; returns the page and whether more follow.

    An unknown marker is a 400, as the OpenStack APIs answer.
    """
    if limit is not None and limit < 0:
        raise errors.BadRequest("limit must be a non-negative integer")
    start = 0
    if marker is not None:
        for index, item in enumerate(items):
            if key(item) == marker:
                start = index + 1
                break
        else:
            raise errors.BadRequest(f"Marker {marker} could not be found.")
    page = items[start:] if limit is None else items[start:start + limit]
    return page, limit is not None and start + limit < len(items)
