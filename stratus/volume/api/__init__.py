"""The block storage API application (Cinder v3 with microversions).

Routes are served at `/v3/...` and at `/v3/{project_id}/...` (the catalog URL carries the project
id, as Cinder's does); the second form is rewritten to the first on the way in.
"""

from __future__ import annotations

import re

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from stratus.core.auth import TokenValidator
from stratus.core.http import create_app
from stratus.core.microversion import MicroversionMiddleware
from stratus.volume.api import (
    attachments,
    quotas,
    services,
    snapshots,
    types,
    versions,
    volume_actions,
    volumes,
)
from stratus.volume.api.microversion import VERSIONS
from stratus.volume.service import VolumeService

ROUTERS = (versions, volumes, volume_actions, snapshots, types, quotas, services, attachments)

_PROJECT_PREFIX = re.compile(r"^/v3/([0-9a-fA-F]{32}|[0-9a-fA-F-]{36})(/.*)?$")


class ProjectPrefixMiddleware:
    """`/v3/{project_id}/volumes` -> `/v3/volumes`: both URL forms reach the same routes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            match = _PROJECT_PREFIX.match(scope["path"])
            if match is not None:
                scope = dict(scope)
                scope["path"] = "/v3" + (match.group(2) or "/")
                scope["raw_path"] = scope["path"].encode()
        await self.app(scope, receive, send)


def create_volume_app(service: VolumeService, validator: TokenValidator) -> FastAPI:
    app = create_app("Stratus Block Storage", "volume", max_body_bytes=service.config.server.max_body_bytes,
                     validator=validator, public_paths=("/", "/v3", "/openapi.json"))
    app.state.volume = service
    for module in ROUTERS:
        app.include_router(module.router)
    app.add_middleware(MicroversionMiddleware, versions=VERSIONS)
    app.add_middleware(ProjectPrefixMiddleware)
    return app
