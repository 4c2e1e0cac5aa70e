"""The image API application (Glance v2)."""

from __future__ import annotations

from fastapi import FastAPI

from stratus.core.auth import TokenValidator
from stratus.core.http import create_app
from stratus.image.api import data, images, imports, members, schemas, versions
from stratus.image.service import ImageService

ROUTERS = (versions, schemas, images, members, data, imports)
# Image data streams in at any size; every other body is small JSON.
DATA_PATHS = r"/v2/images/[^/]+/(file|stage)"


def create_image_app(service: ImageService, validator: TokenValidator) -> FastAPI:
    app = create_app("Stratus Image", "image", max_body_bytes=service.config.server.max_body_bytes,
                     streaming_paths=DATA_PATHS, validator=validator, public_paths=("/", "/versions", "/openapi.json"))
    app.state.image = service
    for module in ROUTERS:
        app.include_router(module.router)
    return app
