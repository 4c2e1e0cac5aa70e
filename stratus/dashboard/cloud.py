"""The dashboard's way to the public APIs: the session's token, endpoints from its catalog.

Every API fault becomes an `ApiError` carrying the API's own message, which pages show as it is.
A 401 means the token went bad (revoked, expired): `TokenRejected` ends the session.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx

from stratus.dashboard.sessions import Session

# The compute microversion the pages speak: the flavor embedded in servers (2.47), networks "none"
# (2.37), hypervisor and service ids as uuids (2.53).
COMPUTE_VERSION = "2.53"
SERVICE_NAMES = {"compute": "compute", "image": "image", "network": "networking", "identity": "identity",
                 "object-store": "object storage", "volumev3": "block storage"}


_TAGS = re.compile(r"<[^>]*>")


class ApiError(Exception):
    """An API answered with a fault (or could not be reached)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class TokenRejected(ApiError):
    def __init__(self) -> None:
        super().__init__(401, "Your session has expired; please log in again.")


def fault_message(response: httpx.Response) -> str:
    """The human part of an OpenStack fault body, whichever API's style it is in."""
    try:
        body = response.json()
    except ValueError:
        # Object storage answers faults in a little HTML (<html><h1>Not Found</h1><p>...</p></html>).
        text = " ".join(_TAGS.sub(" ", response.text).split())
        return text[:300] if text else f"HTTP {response.status_code}"
    if isinstance(body, dict):
        for value in body.values():  # {"itemNotFound": {...}}, {"error": {...}}, {"NeutronError": {...}}
            if isinstance(value, dict) and value.get("message"):
                return str(value["message"])
        if body.get("message"):
            return str(body["message"])
    return f"HTTP {response.status_code}"


def parse_time(value: str) -> float:
    """Epoch seconds of an identity timestamp (`2026-01-01T00:00:00.000000Z`)."""
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC).timestamp()


class Identity:
    """Password and token authentication against the identity endpoint (before there is a catalog)."""

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http, self.url = http, url.rstrip("/")

    async def _issue(self, auth: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        try:
            response = await self.http.post(f"{self.url}/v3/auth/tokens", json={"auth": auth})
        except httpx.HTTPError as exc:
            raise ApiError(503, f"The identity service cannot be reached: {exc}") from exc
        if response.status_code == 401:
            raise ApiError(401, "Invalid credentials, or no access to that project.")
        if response.status_code != 201:
            raise ApiError(response.status_code, fault_message(response))
        return response.headers["X-Subject-Token"], response.json()["token"]

    async def password(self, domain: str, username: str, password: str,
                       project_id: str | None = None) -> tuple[str, dict[str, Any]]:
        auth: dict[str, Any] = {"identity": {"methods": ["password"], "password": {"user": {
            "name": username, "domain": {"name": domain}, "password": password}}}}
        if project_id:
            auth["scope"] = {"project": {"id": project_id}}
        return await self._issue(auth)

    async def rescope(self, token: str, project_id: str) -> tuple[str, dict[str, Any]]:
        return await self._issue({"identity": {"methods": ["token"], "token": {"id": token}},
                                  "scope": {"project": {"id": project_id}}})

    async def projects(self, token: str) -> list[dict[str, Any]]:
        response = await self.http.get(f"{self.url}/v3/auth/projects", headers={"X-Auth-Token": token})
        if response.status_code != 200:
            raise ApiError(response.status_code, fault_message(response))
        return sorted(response.json()["projects"], key=lambda p: p["name"])

    async def revoke(self, token: str) -> None:
        try:
            await self.http.delete(f"{self.url}/v3/auth/tokens",
                                   headers={"X-Auth-Token": token, "X-Subject-Token": token})
        except httpx.HTTPError:
            pass  # the session ends anyway; the token dies at its expiry


def adopt_token(session: Session, token: str, body: dict[str, Any], projects: list[dict[str, Any]]) -> None:
    """Make `session` the holder of a project-scoped token."""
    session.token = token
    session.token_expires = parse_time(body["expires_at"])
    session.user = body["user"]
    session.project = body.get("project") or {}
    session.roles = sorted(role["name"] for role in body.get("roles", []))
    session.catalog = body.get("catalog", [])
    session.projects = projects


class Cloud:
    """The APIs as the session's user sees them."""

    def __init__(self, http: httpx.AsyncClient, session: Session) -> None:
        self.http, self.session = http, session

    def has(self, service_type: str) -> bool:
        return self._endpoint(service_type) is not None

    def _endpoint(self, service_type: str) -> str | None:
        for entry in self.session.catalog:
            if entry.get("type") == service_type:
                for endpoint in entry.get("endpoints", []):
                    if endpoint.get("interface") == "public":
                        return str(endpoint["url"]).rstrip("/")
        return None

    def endpoint(self, service_type: str) -> str:
        url = self._endpoint(service_type)
        if url is None:
            raise ApiError(503, f"This cloud has no {SERVICE_NAMES.get(service_type, service_type)} service.")
        return url

    def _headers(self, service_type: str, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"X-Auth-Token": self.session.token}
        if service_type == "compute":
            headers["OpenStack-API-Version"] = f"compute {COMPUTE_VERSION}"
        headers.update(extra or {})
        return headers

    async def request(self, method: str, service_type: str, path: str, *, ok: tuple[int, ...] = (),
                      **kwargs: Any) -> httpx.Response:
        url = self.endpoint(service_type) + path
        headers = self._headers(service_type, kwargs.pop("headers", None))
        try:
            response = await self.http.request(method, url, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(503, f"The {SERVICE_NAMES.get(service_type, service_type)} service cannot be "
                                f"reached ({type(exc).__name__}).") from exc
        self._check(response, ok)
        return response

    def _check(self, response: httpx.Response, ok: tuple[int, ...]) -> None:
        if response.status_code in ok or response.status_code < 400:
            return
        if response.status_code == 401:
            raise TokenRejected()
        raise ApiError(response.status_code, fault_message(response))

    async def get(self, service_type: str, path: str, **params: Any) -> Any:
        response = await self.request("GET", service_type, path, params=params or None)
        return response.json() if response.content else {}

    async def post(self, service_type: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        response = await self.request("POST", service_type, path, json=body, **kwargs)
        return response.json() if response.content and "json" in response.headers.get("content-type", "") else {}

    async def put(self, service_type: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        response = await self.request("PUT", service_type, path, json=body, **kwargs)
        return response.json() if response.content and "json" in response.headers.get("content-type", "") else {}

    async def delete(self, service_type: str, path: str, **kwargs: Any) -> None:
        await self.request("DELETE", service_type, path, **kwargs)

    async def stream_out(self, service_type: str, path: str) -> tuple[httpx.Response, AsyncIterator[bytes]]:
        """A GET whose body is passed on as it arrives (object and image downloads)."""
        url = self.endpoint(service_type) + path
        request = self.http.build_request("GET", url, headers=self._headers(service_type, None),
                                          timeout=httpx.Timeout(30.0, read=None))
        try:
            response = await self.http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise ApiError(503, f"The {SERVICE_NAMES.get(service_type, service_type)} service cannot be "
                                f"reached ({type(exc).__name__}).") from exc
        if response.status_code >= 400:
            await response.aread()
            await response.aclose()
            self._check(response, ())

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_raw():
                    yield chunk
            finally:
                await response.aclose()

        return response, body()

    async def stream_in(self, service_type: str, path: str, body: AsyncIterator[bytes],
                        headers: dict[str, str]) -> httpx.Response:
        """A PUT whose body comes from the browser's request as it arrives (never held whole)."""
        return await self.request("PUT", service_type, path, content=body, headers=headers,
                                  timeout=httpx.Timeout(30.0, read=None, write=None))
