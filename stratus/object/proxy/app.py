"""The proxy as a plain ASGI app: `/v1/...` (Swift), `/auth/v1.0` (TempAuth), `/info`, `/healthcheck`,
and everything else to the S3 front. Request and response bodies stream in both directions."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

from stratus.object.proxy import cors, info
from stratus.object.proxy.backend import decode_header
from stratus.object.proxy.request import (
    ClientDisconnected,
    SwiftError,
    SwiftRequest,
    SwiftResponse,
    clean_client_headers,
    error_response,
    title_case,
)
from stratus.object.proxy.server import Proxy, ProxySettings

log = logging.getLogger("stratus.object.proxy")
TEMPAUTH_PATHS = ("/auth/v1.0", "/auth/v1", "/v1.0")


def scope_headers(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        value = decode_header(raw_value)
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


def scope_query(scope: Scope) -> dict[str, str]:
    raw = scope.get("query_string", b"").decode("latin-1")
    return {k: v for k, v in parse_qsl(raw, keep_blank_values=True, encoding="utf-8", errors="replace")}


async def request_body(receive: Receive) -> AsyncIterator[bytes]:
    """The request body as it arrives; ClientDisconnected when the client leaves first."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def send_response(send: Send, response: SwiftResponse, method: str, trans_id: str) -> None:
    headers = [(title_case(k).encode("latin-1"), v.encode("utf-8")) for k, v in response.headers.items()]
    headers += [(b"X-Trans-Id", trans_id.encode()), (b"X-Openstack-Request-Id", trans_id.encode())]
    try:
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        if method == "HEAD" or isinstance(response.body, bytes):
            body = b"" if method == "HEAD" else response.body
            await send({"type": "http.response.body", "body": body})
            return
        async for chunk in response.body:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        await response.close()


def split_swift_path(path: str) -> tuple[str, str | None, str | None]:
    """`/v1/a/c/o` -> (a, c, o); a trailing slash leaves the next part out."""
    rest = path[len("/v1/"):]
    account, _, rest = rest.partition("/")
    container, _, obj = rest.partition("/")
    return account, container or None, obj or None


class ProxyApp:
    def __init__(self, proxy: Proxy, s3: Any | None = None) -> None:
        self.proxy = proxy
        self.s3 = s3

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        trans_id = "tx" + uuid.uuid4().hex
        method, path = scope["method"], scope["path"]
        headers = scope_headers(scope)
        try:
            if path.startswith("/v1/"):
                response = await self._swift(scope, receive, method, path, headers)
            elif path in TEMPAUTH_PATHS:
                response = self.proxy.auth.login(headers, self._base_url(scope, headers))
            elif path == "/info" and method in ("GET", "HEAD"):
                body = json.dumps(info.capabilities(bool(self.proxy.auth.users), self.s3 is not None)).encode()
                response = SwiftResponse(200, {"content-type": "application/json; charset=utf-8",
                                               "content-length": str(len(body))}, body)
            elif path == "/healthcheck" or (path == "/" and method == "GET" and not _signed(scope, headers)):
                response = SwiftResponse(200, {"content-type": "text/plain", "content-length": "2"}, b"OK")
            elif self.s3 is not None:
                await self.s3(scope, receive, send)
                return
            else:
                response = error_response(404)
        except SwiftError as exc:
            response = error_response(exc.status, exc.message, exc.headers)
        except ClientDisconnected:
            return
        except Exception:
            log.exception("proxy: unexpected error in %s %s", method, path)
            response = error_response(500, "An unexpected error prevented the request.")
        await send_response(send, response, method, trans_id)

    def _base_url(self, scope: Scope, headers: dict[str, str]) -> str:
        host = headers.get("host") or "{}:{}".format(*scope.get("server") or ("127.0.0.1", 8080))
        return f"{scope.get('scheme', 'http')}://{host}"

    async def _swift(self, scope: Scope, receive: Receive, method: str, path: str,
                     headers: dict[str, str]) -> SwiftResponse:
        account, container, obj = split_swift_path(path)
        client = scope.get("client") or ("", 0)
        req = SwiftRequest(method=method, account=account, container=container, obj=obj,
                           query=scope_query(scope), headers=clean_client_headers(headers),
                           body=request_body(receive), host=headers.get("host", ""), remote_addr=client[0])
        origin = headers.get("origin")
        if method == "OPTIONS":
            if container is None:
                return SwiftResponse(200, {"allow": cors.ALLOWED_METHODS, "content-length": "0"})
            cinfo = await self.proxy.cluster.container_info(account, container)
            return cors.preflight(origin, headers.get("access-control-request-method"),
                                  headers.get("access-control-request-headers"), cinfo["headers"],
                                  self.proxy.settings.cors_allow_origin)
        token = headers.get("x-auth-token") or headers.get("x-storage-token")
        req.caller = await self.proxy.auth.caller(token)
        response = await self.proxy.handle(req)
        if origin and container is not None:
            cinfo = await self.proxy.cluster.container_info(account, container)
            cors.decorate(response, origin, cinfo["headers"], self.proxy.settings.cors_allow_origin)
        return response


def _signed(scope: Scope, headers: dict[str, str]) -> bool:
    return "authorization" in headers or b"X-Amz-" in scope.get("query_string", b"")


def create_proxy_app(settings: ProxySettings, validator: Any | None) -> ProxyApp:
    proxy = Proxy(settings, validator)
    s3 = None
    if settings.s3_enabled:
        from stratus.object.s3.app import S3App

        s3 = S3App(proxy)
    return ProxyApp(proxy, s3)
