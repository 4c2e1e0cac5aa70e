"""The base of the typed clients one service uses to reach another over HTTP (blocking, for the
API's worker threads and the conductor's): a service token of its own, renewed before it expires,
and each API's error bodies turned back into the core exceptions."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import httpx

from stratus.core import errors
from stratus.core.inprocess import LocalTransport

_EXPIRY_MARGIN = dt.timedelta(seconds=60)
_BY_STATUS: dict[int, type[errors.StratusError]] = {
    400: errors.BadRequest, 401: errors.Unauthorized, 403: errors.Forbidden, 404: errors.NotFound,
    409: errors.Conflict, 413: errors.PayloadTooLarge, 503: errors.ServiceUnavailable}


class ServiceAuth:
    """A project-scoped token for a service user, got from identity and kept until near expiry."""

    def __init__(self, identity_url: str, username: str, password: str, project: str = "service",
                 http: httpx.Client | None = None) -> None:
        self.url = identity_url.rstrip("/")
        self.body = {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": username, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
        self.http = http or httpx.Client(timeout=30)
        self._lock = threading.Lock()
        self._token: tuple[str, dt.datetime] | None = None

    def token(self) -> str:
        with self._lock:
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            if self._token is None or self._token[1] - _EXPIRY_MARGIN <= now:
                response = self.http.post(f"{self.url}/v3/auth/tokens?nocatalog", json=self.body)
                if response.status_code != 201:
                    raise errors.ServiceUnavailable(
                        f"identity refused the service credentials (HTTP {response.status_code})")
                expires = dt.datetime.strptime(response.json()["token"]["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
                self._token = (response.headers["X-Subject-Token"], expires)
            return self._token[0]

    def forget(self) -> None:
        with self._lock:
            self._token = None


def error_message(response: httpx.Response) -> str:
    """The message inside any OpenStack error body, or the status line."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or f"HTTP {response.status_code}"
    if isinstance(body, dict):
        if isinstance(body.get("message"), str):
            return str(body["message"])
        for value in body.values():
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return str(value["message"])
    return f"HTTP {response.status_code}"


class ServiceClient:
    """JSON requests to one API root with our service token (or a user's token, when given)."""

    def __init__(self, url: str, auth: ServiceAuth, http: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/")
        self.auth = auth
        # Idle connections are dropped well before the server's keep-alive ends (core/server.py).
        # An API this process serves is called in-process (core/inprocess.py).
        self.http = http or httpx.Client(timeout=60, transport=LocalTransport(
            httpx.HTTPTransport(limits=httpx.Limits(keepalive_expiry=30))))

    def request(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        headers["X-Auth-Token"] = token or self.auth.token()
        response = self.http.request(method, f"{self.url}{path}", headers=headers, **kwargs)
        if response.status_code == 401 and token is None:  # our token went bad: renew once
            self.auth.forget()
            headers["X-Auth-Token"] = self.auth.token()
            response = self.http.request(method, f"{self.url}{path}", headers=headers, **kwargs)
        if response.status_code >= 400:
            cls = _BY_STATUS.get(response.status_code, errors.StratusError)
            raise cls(error_message(response))
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        return response.json() if response.content else None
