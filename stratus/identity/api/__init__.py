"""The identity API application (Keystone v3 and the v2.0 calls old clients use)."""

from __future__ import annotations

from fastapi import FastAPI

from stratus.core.http import create_app
from stratus.identity.api import (
    app_creds,
    auth,
    catalog,
    credentials,
    domains,
    grants,
    groups,
    projects,
    roles,
    users,
    v2,
    versions,
)
from stratus.identity.auth import Authenticator
from stratus.identity.service import IdentityService

ROUTERS = (versions, auth, domains, projects, users, groups, roles, grants, catalog, app_creds, credentials, v2)


def create_identity_app(service: IdentityService) -> FastAPI:
    app = create_app("Stratus Identity", "identity", max_body_bytes=service.config.server.max_body_bytes)
    app.state.identity = service
    app.state.authenticator = Authenticator(service)
    for module in ROUTERS:
        app.include_router(module.router)
    return app
