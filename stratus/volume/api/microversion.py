"""Block Storage API microversions: `OpenStack-API-Version: volume 3.x` in, the version served
out. A request without the header is served at 3.0; `latest` is the maximum."""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stratus.core import errors
from stratus.core.faults import fault_response

MIN = (3, 0)
# The highest microversion whose changes the API implements.
MAX = (3, 70)
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


def min_version() -> str:
    return f"{MIN[0]}.{MIN[1]}"


def max_version() -> str:
    return f"{MAX[0]}.{MAX[1]}"


def parse(headers: dict[bytes, bytes]) -> APIVersion:
    """The version a request asks for; 400 for a malformed one, 406 for one out of range."""
    wanted: str | None = None
    raw = headers.get(b"openstack-api-version")
    if raw is not None:
        for item in raw.decode("latin-1").split(","):
            service, _, value = item.strip().partition(" ")
            if service.lower() in ("volume", "block-storage"):
                wanted = value.strip()
    if wanted is None:
        return APIVersion(*MIN)
    if wanted.lower() == "latest":
        return APIVersion(*MAX)
    match = _FORMAT.match(wanted)
    if match is None:
        raise errors.BadRequest(f"Invalid API version string {wanted!r}: must be MajorNum.MinorNum.")
    version = (int(match.group(1)), int(match.group(2)))
    if not MIN <= version <= MAX:
        raise errors.NotAcceptable(f"Version {wanted} is not supported by the API. Minimum is "
                                   f"{min_version()} and maximum is {max_version()}.")
    return APIVersion(*version)


class MicroversionMiddleware:
    """Parses the requested version into the scope and names the served one in the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            version = parse(dict(scope["headers"]))
        except errors.StratusError as exc:
            await fault_response("volume", exc)(scope, receive, send)
            return
        scope.setdefault("state", {})["microversion"] = version
        served = [(b"openstack-api-version", f"volume {version}".encode()), (b"vary", b"OpenStack-API-Version")]

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *served]
            await send(message)

        await self.app(scope, receive, send_with_version)


def requested(request: Request) -> APIVersion:
    """FastAPI dependency: the microversion this request is served at."""
    return request.scope.get("state", {}).get("microversion") or APIVersion(*MIN)  # type: ignore[no-any-return]
