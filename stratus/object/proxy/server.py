"""The proxy's core: authorize a SwiftRequest and route it to the right controller.

The Swift front (app.py), the S3 front and the proxy's own sub-requests (segments, copies, versions)
all come through `Proxy.handle`; sub-requests marked `internal` skip authorization.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from stratus.object.proxy import acl, bulk, large_objects, tempurl, versioning
from stratus.object.proxy.auth import Authenticator, AuthSettings, Validator
from stratus.object.proxy.controllers import account, container
from stratus.object.proxy.controllers import obj as objects
from stratus.object.proxy.controllers.base import Cluster, drain
from stratus.object.proxy.request import (
    ClientDisconnected,
    SwiftError,
    SwiftRequest,
    SwiftResponse,
    error_response,
)

log = logging.getLogger("stratus.object.proxy")


@dataclass
class ProxySettings:
    ring_dir: Path
    auth: AuthSettings = field(default_factory=AuthSettings)
    connect_timeout: float = 1.0
    node_timeout: float = 10.0
    info_cache_ttl: float = 3.0
    cors_allow_origin: list[str] = field(default_factory=list)
    s3_enabled: bool = True
    # Virtual-host-style S3: a Host of `<bucket>.<s3_domain>` names the bucket.
    s3_domain: str = ""
    # How the identity service is reached for S3 signatures (POST /v3/ec2tokens).
    identity_url: str = ""


class Proxy:
    def __init__(self, settings: ProxySettings, validator: Validator | None) -> None:
        self.settings = settings
        self.cluster = Cluster(settings.ring_dir, connect_timeout=settings.connect_timeout,
                               node_timeout=settings.node_timeout, info_ttl=settings.info_cache_ttl)
        self.auth = Authenticator(validator, settings.auth)

    async def handle(self, req: SwiftRequest) -> SwiftResponse:
        """The answer to `req`; errors become Swift's plain-text error answers."""
        try:
            return await self._dispatch(req)
        except SwiftError as exc:
            return error_response(exc.status, exc.message, exc.headers)
        except ClientDisconnected:
            return error_response(499, "Client Disconnect")

    async def _authorize(self, req: SwiftRequest) -> None:
        if req.internal:
            return
        if tempurl.applies(req):
            await tempurl.authorize(self, req)
            return
        if req.caller.owns(req.account):
            return
        headers = None
        if req.container is not None:
            info = await self.cluster.container_info(req.account, req.container)
            headers = info["headers"] if info["status"] // 100 == 2 else None
        acl.authorize(req, headers)

    async def _dispatch(self, req: SwiftRequest) -> SwiftResponse:
        if not req.account or len(req.account.encode()) > 256:
            raise SwiftError(400, "Invalid account name")
        if req.method == "COPY" and req.obj is not None:
            # Reading the source is authorized by the copy itself; the destination PUT here.
            return await self.handle(objects.copy_to_put(req))
        await self._authorize(req)
        if req.container is None:
            if req.method == "POST" and "bulk-delete" in req.query:
                return await bulk.delete(self, req)
            return await account.handle(self, req)
        if req.obj is None:
            if req.method == "GET" and "versions" in req.query:
                return await versioning.list_versions(self, req)
            response = await container.handle(self, req)
            if req.method in ("PUT", "POST") and req.headers.get("x-versions-enabled", "").lower() == "true" \
                    and response.status // 100 == 2:
                await versioning.ensure_archive(self, req)
            return response
        return await self._object(req)

    async def _versioned(self, req: SwiftRequest) -> bool:
        assert req.container is not None
        if req.container.startswith(container.VERSIONS_PREFIX) or "x-backend-skip-versioning" in req.headers:
            return False
        info = await self.cluster.container_info(req.account, req.container)
        return info["status"] // 100 == 2 and versioning.enabled(info["headers"])

    async def _object(self, req: SwiftRequest) -> SwiftResponse:
        method = req.method
        if method in ("GET", "HEAD"):
            if "version_id" in req.query and await self._versioned(req):
                return await versioning.get_version(self, req)
            backend = await objects.read(self, req, method)
            large = await large_objects.respond(self, req, backend)
            response = large if large is not None else await objects.get_plain(self, req, backend)
            if req.caller.method == "tempurl" and method == "GET":
                response.headers.update(tempurl.download_headers(req))
            return response
        if method == "PUT":
            if "x-copy-from" in req.headers:
                if req.body is not None:
                    await drain(req.body)

                async def do_put(r: SwiftRequest) -> SwiftResponse:
                    return await objects.copy(self, r)
            elif req.query.get("multipart-manifest") == "put":
                return await large_objects.put_manifest(self, req)
            else:
                length = objects.upload_length(req)
                body = req.body
                if body is None:
                    raise SwiftError(411, "Length Required")

                async def do_put(r: SwiftRequest) -> SwiftResponse:
                    return await objects.put(self, r, body, length)
            if await self._versioned(req):
                return await versioning.put(self, req, do_put)
            return await do_put(req)
        if method == "POST":
            return await objects.post(self, req)
        if method == "DELETE":
            if req.query.get("multipart-manifest") == "delete":
                return await large_objects.delete_manifest(self, req)
            if await self._versioned(req):
                return await versioning.delete(self, req)
            return await objects.delete(self, req)
        raise SwiftError(405, "Method Not Allowed", {"allow": "GET, HEAD, PUT, POST, DELETE, COPY, OPTIONS"})
