"""CORS: a container allows origins with X-Container-Meta-Access-Control-Allow-Origin (space-separated,
or `*`), and may set -Max-Age and -Expose-Headers; the proxy answers preflight OPTIONS from that."""

from __future__ import annotations

from stratus.object.proxy.request import SwiftResponse

ALLOW_ORIGIN = "x-container-meta-access-control-allow-origin"
MAX_AGE = "x-container-meta-access-control-max-age"
EXPOSE = "x-container-meta-access-control-expose-headers"
ALLOWED_METHODS = "HEAD, GET, PUT, POST, COPY, OPTIONS, DELETE"
# Headers a browser script may read from every response (Swift exposes the same set).
DEFAULT_EXPOSE = ("cache-control, content-language, content-type, expires, last-modified, pragma, etag, "
                  "x-timestamp, x-trans-id, x-openstack-request-id, x-object-version-id")


def origin_allowed(origin: str, container_headers: dict[str, str], global_origins: list[str]) -> bool:
    allowed = container_headers.get(ALLOW_ORIGIN, "").split() + global_origins
    return "*" in allowed or origin in allowed


def preflight(origin: str | None, request_method: str | None, request_headers: str | None,
              container_headers: dict[str, str], global_origins: list[str]) -> SwiftResponse:
    if not origin or not request_method or not origin_allowed(origin, container_headers, global_origins):
        return SwiftResponse(401, {"content-length": "0"})
    headers = {"access-control-allow-origin": origin, "access-control-allow-methods": ALLOWED_METHODS,
               "content-length": "0", "allow": ALLOWED_METHODS}
    if container_headers.get(MAX_AGE, "").isdigit():
        headers["access-control-max-age"] = container_headers[MAX_AGE]
    if request_headers:
        headers["access-control-allow-headers"] = request_headers
    return SwiftResponse(200, headers)


def decorate(response: SwiftResponse, origin: str, container_headers: dict[str, str],
             global_origins: list[str]) -> None:
    """Add the CORS headers to an actual (non-preflight) response when the origin is allowed."""
    if not origin_allowed(origin, container_headers, global_origins):
        return
    expose = DEFAULT_EXPOSE
    extra = container_headers.get(EXPOSE, "")
    meta = [h for h in response.headers if h.startswith(("x-object-meta-", "x-container-meta-"))]
    if extra or meta:
        expose = ", ".join(filter(None, [expose, extra, *meta]))
    wildcard = "*" in container_headers.get(ALLOW_ORIGIN, "").split() and "x-auth-token" not in response.headers
    response.headers["access-control-allow-origin"] = "*" if wildcard else origin
    response.headers["access-control-expose-headers"] = expose
