"""Log in (Keystone v3 password auth, then a project-scoped token), switch project, log out."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from stratus.dashboard import web
from stratus.dashboard.cloud import ApiError, Cloud, Identity, adopt_token
from stratus.dashboard.web import Form


def _identity(request: Request) -> Identity:
    return Identity(web.http(request), request.app.state.identity_url)


def _safe_next(target: str) -> str:
    # Only a path on this site: never an open redirect to another host.
    # Browsers read "/\\host" as "//host", so a backslash after the slash is refused too.
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/project/"


async def login_form(request: Request) -> Response:
    session = web.current_session(request)
    if session is not None and session.logged_in:
        return web.redirect(_safe_next(request.query_params.get("next", "/project/")))
    if session is None:
        session = web.store(request).new()
    response = web.render(request, "login.html", session, next=_safe_next(request.query_params.get("next", "")),
                          domain="Default", username="")
    web.set_cookie(request, response, session)
    return response


async def login(request: Request) -> Response:
    session = web.current_session(request)
    if session is None:  # no form was shown to this browser (or it sat too long): show it again
        return web.redirect("/auth/login")
    try:
        form = await web.read_form(request, session)
    except web.CsrfRejected:
        return web.error_page(request, None, 403, "The login form was missing its security token. "
                                                  "Reload the page and try again.")
    domain, username = form.get("domain") or "Default", form.get("username")
    target = _safe_next(form.get("next"))
    identity = _identity(request)
    try:
        if not username or not form.get("password"):
            raise ApiError(400, "Enter a user name and a password.")
        unscoped, _ = await identity.password(domain, username, form.get("password"))
        projects = await identity.projects(unscoped)
        await identity.revoke(unscoped)
        if not projects:
            raise ApiError(403, "You have no role on any project, so there is nothing to manage.")
        token, body = await identity.password(domain, username, form.get("password"), projects[0]["id"])
    except ApiError as exc:
        session.flash("error", exc.message)
        return web.render(request, "login.html", session, status=exc.status if exc.status < 500 else 503,
                          next=target, domain=domain, username=username)
    fresh = web.store(request).rotate(session)
    adopt_token(fresh, token, body, projects)
    response = web.redirect(target)
    web.set_cookie(request, response, fresh)
    return response


async def logout(request: Request, cloud: Cloud, form: Form) -> Response:
    session = cloud.session
    await _identity(request).revoke(session.token)
    web.store(request).end(session)
    response = web.redirect("/auth/login")
    response.delete_cookie("stratus_session", path="/")
    return response


async def switch_project(request: Request, cloud: Cloud, form: Form) -> Response:
    session = cloud.session
    project_id = form.require("project_id", "Project")
    if project_id not in {p["id"] for p in session.projects}:
        raise ApiError(404, "No such project among yours.")
    identity = _identity(request)
    token, body = await identity.rescope(session.token, project_id)
    projects = await identity.projects(token)
    await identity.revoke(session.token)
    adopt_token(session, token, body, projects)
    session.flash("success", f"Now working in project {session.project.get('name', project_id)}.")
    return web.redirect("/project/")


routes = [
    Route("/auth/login", login_form, methods=["GET"]),
    Route("/auth/login", login, methods=["POST"]),
    web.action("/auth/logout", logout),
    web.action("/auth/switch", switch_project),
]
