"""The block storage API application (Cinder v3 with microversions).

Routes are served at `/v3/...` and at `/v3/{project_id}/...` (the catalog URL carries the project
id, as Cinder's does); the second form is rewritten to the first on the way in.
"""

from __future__ import annotations

from fastapi import FastAPI

from stratus.core.auth import TokenValidator
from stratus.core.http import ProjectPrefixMiddleware, create_app
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


def create_volume_app(service: VolumeService, validator: TokenValidator) -> FastAPI:
    app = create_app("Stratus Block Storage", "volume", max_body_bytes=service.config.server.max_body_bytes,
                     validator=validator, public_paths=("/", "/v3", "/openapi.json"))
    app.state.volume = service
    for module in ROUTERS:
        app.include_router(module.router)
    app.add_middleware(MicroversionMiddleware, versions=VERSIONS)
    app.add_middleware(ProjectPrefixMiddleware, versions="/v3", root="/v3", bare_project=True)
    return app
