"""API microversions, as compute and block storage use them: `OpenStack-API-Version: <service> X.Y`
in (or an API's older header of its own), the version served named in the response.

A request that names no version is served at the API's minimum; `latest` is its maximum.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stratus.core import errors
from stratus.core.faults import FaultStyle, fault_response

_FORMAT = re.compile(r"^([1-9]\d*)\.(0|[1-9]\d*)$")


@dataclass(frozen=True, order=True)
class APIVersion:
    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    def at_least(self, version: str) -> bool:
        major, minor = version.split(".")
        return (self.major, self.minor) >= (int(major), int(minor))


@dataclass(frozen=True)
class Microversions:
    """One API's versions: its service names in the header, its range, and its fault body."""

    names: tuple[str, ...]         # as in `OpenStack-API-Version: <name> X.Y`; the first is served
    minimum: tuple[int, int]
    maximum: tuple[int, int]       # the highest version whose changes the API implements
    fault_api: FaultStyle          # whose fault body a refused version gets
    legacy_header: str | None = None  # e.g. X-OpenStack-Nova-API-Version, read and served too

    def min_version(self) -> str:
        return str(APIVersion(*self.minimum))

    def max_version(self) -> str:
        return str(APIVersion(*self.maximum))

    def parse(self, headers: dict[bytes, bytes]) -> APIVersion:
        """The version a request asks for; 400 for a malformed one, 406 for one out of range."""
        wanted: str | None = None
        raw = headers.get(b"openstack-api-version")
        if raw is not None:
            for item in raw.decode("latin-1").split(","):
                service, _, value = item.strip().partition(" ")
                if service.lower() in self.names:
                    wanted = value.strip()
        legacy = self.legacy_header.lower().encode() if self.legacy_header else None
        if wanted is None and legacy is not None and legacy in headers:
            wanted = headers[legacy].decode("latin-1").strip()
        if wanted is None:
            return APIVersion(*self.minimum)
        if wanted.lower() == "latest":
            return APIVersion(*self.maximum)
        match = _FORMAT.match(wanted)
        if match is None:
            raise errors.BadRequest(f"API Version String {wanted} is of invalid format. Must be of format "
                                    "MajorNum.MinorNum.")
        version = (int(match.group(1)), int(match.group(2)))
        if not self.minimum <= version <= self.maximum:
            raise errors.NotAcceptable(f"Version {wanted} is not supported by the API. Minimum is "
                                       f"{self.min_version()} and maximum is {self.max_version()}.")
        return APIVersion(*version)

    def served_headers(self, version: APIVersion) -> list[tuple[bytes, bytes]]:
        headers = [(b"openstack-api-version", f"{self.names[0]} {version}".encode())]
        vary = "OpenStack-API-Version"
        if self.legacy_header:
            headers.append((self.legacy_header.lower().encode(), str(version).encode()))
            vary += f", {self.legacy_header}"
        return [*headers, (b"vary", vary.encode())]

    def requested(self, request: Request) -> APIVersion:
        """FastAPI dependency: the microversion this request is served at."""
        return request.scope.get("state", {}).get("microversion") or APIVersion(*self.minimum)  # type: ignore[no-any-return]


class MicroversionMiddleware:
    """Parses the requested version into the scope and names the served one in the response."""

    def __init__(self, app: ASGIApp, versions: Microversions) -> None:
        self.app = app
        self.versions = versions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            version = self.versions.parse(dict(scope["headers"]))
        except errors.StratusError as exc:
            await fault_response(self.versions.fault_api, exc)(scope, receive, send)
            return
        scope.setdefault("state", {})["microversion"] = version
        served = self.versions.served_headers(version)

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *served]
            await send(message)

        await self.app(scope, receive, send_with_version)
