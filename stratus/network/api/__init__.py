"""The networking API application (Neutron v2.0)."""

from __future__ import annotations

from fastapi import FastAPI

from stratus.core.auth import TokenValidator
from stratus.core.http import create_app
from stratus.network.api import (
    agents,
    extensions,
    floatingips,
    networks,
    ports,
    quotas,
    routers,
    security_groups,
    subnets,
    tags,
    versions,
)
from stratus.network.service import NetworkService

ROUTERS = (versions, extensions, networks, subnets, ports, routers, floatingips, security_groups, quotas, tags, agents)


def create_network_app(service: NetworkService, validator: TokenValidator) -> FastAPI:
    app = create_app("Stratus Network", "network", max_body_bytes=service.config.server.max_body_bytes,
                     validator=validator, public_paths=("/", "/openapi.json"))
    app.state.network = service
    for module in ROUTERS:
        app.include_router(module.router)
    return app
