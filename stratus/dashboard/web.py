"""What every page module builds on: rendering, forms with their CSRF check, and the three kinds of
route (a page, a form action, a streamed upload) with login, admin and error handling done once."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import escape
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from stratus.dashboard.cloud import ApiError, Cloud, TokenRejected
from stratus.dashboard.sessions import COOKIE_NAME, Session, SessionStore

TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                        autoescape=select_autoescape(default=True), trim_blocks=True, lstrip_blocks=True)
MAX_FORM_BYTES = 256 * 1024
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

Handler = Callable[[Request, Cloud], Awaitable[Response]]


class Form:
    """An urlencoded form body: `get` for one value, `getlist` for a multi-select."""

    def __init__(self, values: dict[str, list[str]]) -> None:
        self.values = values

    def get(self, name: str, default: str = "") -> str:
        items = self.values.get(name)
        return items[0].strip() if items else default

    def getlist(self, name: str) -> list[str]:
        return [v for v in self.values.get(name, []) if v]

    def require(self, name: str, label: str) -> str:
        value = self.get(name)
        if not value:
            raise ApiError(400, f"{label} is required.")
        return value


class CsrfRejected(Exception):
    pass


class AdminOnly(Exception):
    pass


def store(request: Request) -> SessionStore:
    return request.app.state.sessions  # type: ignore[no-any-return]


def http(request: Request) -> httpx.AsyncClient:
    return request.app.state.http  # type: ignore[no-any-return]


def current_session(request: Request) -> Session | None:
    return store(request).load(request.cookies.get(COOKIE_NAME))


def set_cookie(request: Request, response: Response, session: Session) -> None:
    response.set_cookie(COOKIE_NAME, store(request).cookie_value(session), httponly=True, samesite="strict",
                        secure=request.app.state.secure_cookies, path="/")


def render(request: Request, template: str, session: Session | None, status: int = 200,
           **context: Any) -> HTMLResponse:
    cloud_services = {entry.get("type") for entry in session.catalog} if session else set()
    html = TEMPLATES.get_template(template).render(
        request=request, session=session, csrf_token=session.csrf_token if session else "",
        flashes=session.take_flashes() if session else [], catalog_types=cloud_services, path=request.url.path,
        **context)
    return HTMLResponse(html, status_code=status)


def error_page(request: Request, session: Session | None, status: int, message: str) -> HTMLResponse:
    titles = {400: "Bad request", 403: "Forbidden", 404: "Not found", 409: "Conflict", 413: "Too large"}
    title = titles.get(status, "Request failed" if status < 500 else "Service problem")
    return render(request, "error.html", session, status=status, title=title, message=message)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def back(request: Request, fallback: str) -> str:
    """Where a form action returns: the page it came from (same site only), else `fallback`."""
    referer = request.headers.get("referer", "")
    parts = urlsplit(referer)
    if referer and parts.netloc == request.url.netloc and parts.path.startswith("/"):
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return fallback


def to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return redirect(f"/auth/login?next={quote(target, safe='')}")


async def read_form(request: Request, session: Session) -> Form:
    """The form body, after checking its CSRF token against the session's."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise CsrfRejected()
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise ApiError(413, "The form is too large.")
    values = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    sent = (values.get(CSRF_FIELD) or [""])[0]
    if not sent or not hmac.compare_digest(sent, session.csrf_token):
        raise CsrfRejected()
    return Form(values)


def check_csrf_header(request: Request, session: Session) -> None:
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent or not hmac.compare_digest(sent, session.csrf_token):
        raise CsrfRejected()


async def _logged_in(request: Request, admin: bool) -> Session:
    session = current_session(request)
    if session is None or not session.logged_in:
        raise TokenRejected()
    if admin and not session.is_admin:
        raise AdminOnly()
    return session


def page(path: str, handler: Handler, *, admin: bool = False) -> Route:
    """A GET page: login required (else to the login form); faults shown as an error page."""

    async def endpoint(request: Request) -> Response:
        session: Session | None = None
        try:
            session = await _logged_in(request, admin)
            request.state.session = session
            return await handler(request, Cloud(http(request), session))
        except TokenRejected:
            if session is not None:
                store(request).end(session)
            return to_login(request)
        except AdminOnly:
            return error_page(request, session, 403, "This page is for administrators only.")
        except ApiError as exc:
            status = exc.status if 400 <= exc.status < 500 else 502
            return error_page(request, session, status, exc.message)

    return Route(path, endpoint, methods=["GET"])


def fragment(path: str, handler: Handler) -> Route:
    """A small HTML piece that page scripts poll: 401 instead of a redirect when logged out."""

    async def endpoint(request: Request) -> Response:
        session = current_session(request)
        if session is None or not session.logged_in:
            return Response("session ended", status_code=401)
        try:
            return await handler(request, Cloud(http(request), session))
        except TokenRejected:
            store(request).end(session)
            return Response("session ended", status_code=401)
        except ApiError as exc:
            return HTMLResponse(f"<p class='error'>{escape(exc.message)}</p>",
                                status_code=502 if exc.status >= 500 else exc.status)

    return Route(path, endpoint, methods=["GET"])


def action(path: str, handler: Callable[[Request, Cloud, Form], Awaitable[Response | str]], *,
           fallback: str = "/", admin: bool = False) -> Route:
    """A POST form: CSRF checked first (403 otherwise); the handler returns a response or a success
    message (then back to the page the form was on); an API fault becomes a message on that page."""

    async def endpoint(request: Request) -> Response:
        session: Session | None = None
        try:
            session = await _logged_in(request, admin)
            request.state.session = session
            form = await read_form(request, session)
            result = await handler(request, Cloud(http(request), session), form)
            if isinstance(result, Response):
                return result
            session.flash("success", result)
            return redirect(back(request, fallback))
        except CsrfRejected:
            return error_page(request, session, 403, "The form was missing its security token, or it was "
                                                     "stale. Reload the page and try again.")
        except TokenRejected:
            if session is not None:
                store(request).end(session)
            return redirect("/auth/login")
        except AdminOnly:
            return error_page(request, session, 403, "This action is for administrators only.")
        except ApiError as exc:
            assert session is not None
            session.flash("error", exc.message)
            return redirect(back(request, fallback))

    return Route(path, endpoint, methods=["POST"])


def upload(path: str, handler: Handler) -> Route:
    """A PUT whose raw body streams on to an API (image data, objects); the page's script sends the
    CSRF token in a header and reads a JSON answer."""

    async def endpoint(request: Request) -> Response:
        session = current_session(request)
        if session is None or not session.logged_in:
            return JSONResponse({"error": "Your session has ended; log in again."}, status_code=401)
        try:
            check_csrf_header(request, session)
            return await handler(request, Cloud(http(request), session))
        except CsrfRejected:
            return JSONResponse({"error": "missing or wrong CSRF token"}, status_code=403)
        except TokenRejected:
            store(request).end(session)
            return JSONResponse({"error": "Your session has ended; log in again."}, status_code=401)
        except ApiError as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status if exc.status < 500 else 502)

    return Route(path, endpoint, methods=["PUT"])
