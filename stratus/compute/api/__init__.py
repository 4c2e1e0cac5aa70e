"""The compute API application (Nova v2.1 with microversions).

Routes are served both at `/v2.1/...` and at `/v2.1/{project_id}/...` (the catalog URL of old
deployments carries the project id); the second form is rewritten to the first on the way in.
"""

from __future__ import annotations

from fastapi import FastAPI

from stratus.compute.api import (
    aggregates,
    availability_zones,
    flavors,
    hypervisors,
    instance_actions,
    keypairs,
    limits,
    migrations,
    quotas,
    server_actions,
    server_extras,
    server_groups,
    servers,
    services,
    usage,
    versions,
    volume_attachments,
)
from stratus.compute.api.microversion import VERSIONS
from stratus.compute.service import ComputeService
from stratus.core.auth import TokenValidator
from stratus.core.http import ProjectPrefixMiddleware, create_app
from stratus.core.microversion import MicroversionMiddleware

ROUTERS = (versions, flavors, keypairs, servers, server_actions, server_extras, instance_actions,
           availability_zones, aggregates, hypervisors, services, quotas, limits, server_groups, usage, migrations,
           volume_attachments)


def create_compute_app(service: ComputeService, validator: TokenValidator) -> FastAPI:
    app = create_app("Stratus Compute", "compute", max_body_bytes=service.config.server.max_body_bytes,
                     validator=validator, public_paths=("/", "/v2.1", "/openapi.json"))
    app.state.compute = service
    for module in ROUTERS:
        app.include_router(module.router)
    app.add_middleware(MicroversionMiddleware, versions=VERSIONS)
    app.add_middleware(ProjectPrefixMiddleware, versions=r"/v2(?:\.1)?", root="/v2.1", bare_project=False)
    return app
