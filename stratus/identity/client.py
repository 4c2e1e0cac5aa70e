"""The identity client other services use: a service token of their own, and token validation
with a short-lived cache (revocations announced on the bus empty it at once)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

import httpx

from stratus.core import errors

_EXPIRY_MARGIN = dt.timedelta(seconds=60)
REVOCATION_EVENT = "identity.token.revoked"


@dataclass(frozen=True)
class ServiceCredentials:
    username: str
    password: str
    project_name: str
    user_domain_id: str = "default"
    project_domain_id: str = "default"

    def auth_body(self) -> dict[str, Any]:
        return {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": self.username, "domain": {"id": self.user_domain_id}, "password": self.password}}},
            "scope": {"project": {"name": self.project_name, "domain": {"id": self.project_domain_id}}}}}


def _parse_time(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")


class IdentityClient:
    def __init__(self, url: str, credentials: ServiceCredentials, *, cache_ttl: float = 30.0,
                 http: httpx.AsyncClient | None = None) -> None:
        self.url = url.rstrip("/")
        self.credentials = credentials
        self.cache_ttl = cache_ttl
        self.http = http or httpx.AsyncClient(timeout=10)
        self._service_token: tuple[str, dt.datetime] | None = None
        self._token_lock = asyncio.Lock()
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    async def service_token(self) -> str:
        """Our own token, renewed a minute before it expires."""
        async with self._token_lock:
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            if self._service_token is None or self._service_token[1] - _EXPIRY_MARGIN <= now:
                response = await self.http.post(f"{self.url}/v3/auth/tokens?nocatalog",
                                                json=self.credentials.auth_body())
                if response.status_code != 201:
                    raise errors.ServiceUnavailable(f"identity refused the service credentials "
                                                    f"(HTTP {response.status_code})")
                expires = _parse_time(response.json()["token"]["expires_at"])
                self._service_token = (response.headers["X-Subject-Token"], expires)
            return self._service_token[0]

    async def validate(self, token: str) -> dict[str, Any] | None:
        """The token's body (`{"token": ...}` content) if valid, else None."""
        now = time.monotonic()
        cached = self._cache.get(token)
        if cached is not None and now - cached[0] < self.cache_ttl:
            body = cached[1]
            if _parse_time(body["expires_at"]) > dt.datetime.now(dt.UTC).replace(tzinfo=None):
                return body
        response = await self.http.get(f"{self.url}/v3/auth/tokens?nocatalog", headers={
            "X-Auth-Token": await self.service_token(), "X-Subject-Token": token})
        if response.status_code == 401:  # our own token went bad (revoked, keys rotated away)
            self._service_token = None
            response = await self.http.get(f"{self.url}/v3/auth/tokens?nocatalog", headers={
                "X-Auth-Token": await self.service_token(), "X-Subject-Token": token})
        if response.status_code == 404:
            self._cache.pop(token, None)
            return None
        if response.status_code != 200:
            raise errors.ServiceUnavailable(f"identity could not validate a token (HTTP {response.status_code})")
        fresh: dict[str, Any] = response.json()["token"]
        if len(self._cache) > 10000:
            self._cache.clear()
        self._cache[token] = (now, fresh)
        return fresh

    def forget(self, _event: Any = None) -> None:
        """Drop every cached validation (called when identity announces a revocation)."""
        self._cache.clear()

    async def aclose(self) -> None:
        await self.http.aclose()
