"""The token middleware other services use, validating through the identity client."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import Depends

from stratus.core.auth import AuthMiddleware, request_context
from stratus.core.context import RequestContext
from stratus.core.http import create_app
from stratus.identity.client import IdentityClient, ServiceCredentials
from tests.conftest import ADMIN_PASSWORD, make_identity


def _protected_app(validator: IdentityClient) -> object:
    app = create_app("probe", "compute")

    @app.get("/")
    def discovery() -> dict:
        return {"versions": []}

    @app.get("/whoami")
    def whoami(ctx: RequestContext = Depends(request_context)) -> dict:
        return {"user": ctx.user_name, "project": ctx.project_name, "roles": sorted(ctx.roles),
                "service_roles": ctx.service_roles}

    app.add_middleware(AuthMiddleware, validator=validator, style="compute")
    return app


@pytest.mark.anyio
async def test_middleware_builds_context_and_honours_revocation(tmp_path: Path) -> None:
    harness = make_identity(tmp_path / "state", f"sqlite:///{tmp_path / 'id.sqlite'}")
    identity_http = httpx.AsyncClient(transport=httpx.ASGITransport(harness.client.app), base_url="http://id")
    client = IdentityClient("http://id", ServiceCredentials("admin", ADMIN_PASSWORD, "admin"),
                            cache_ttl=300, http=identity_http)
    harness.service.revocations.listeners.append(client.forget)
    api = httpx.AsyncClient(transport=httpx.ASGITransport(_protected_app(client)), base_url="http://api")
    user_token = harness.token("admin", ADMIN_PASSWORD, "admin")

    assert (await api.get("/")).status_code == 200
    missing = await api.get("/whoami")
    assert missing.status_code == 401 and missing.json()["unauthorized"]["code"] == 401
    assert (await api.get("/whoami", headers={"X-Auth-Token": "garbage"})).status_code == 401

    ok = await api.get("/whoami", headers={"X-Auth-Token": user_token, "X-Service-Token": user_token})
    assert ok.status_code == 200
    assert ok.json()["user"] == "admin" and ok.json()["project"] == "admin"
    assert "admin" in ok.json()["roles"] and "admin" in ok.json()["service_roles"]

    # Revoked in identity: the long cache is emptied by the revocation announcement.
    revoke = harness.client.delete("/v3/auth/tokens", headers={**harness.as_admin(), "X-Subject-Token": user_token})
    assert revoke.status_code == 204
    assert (await api.get("/whoami", headers={"X-Auth-Token": user_token})).status_code == 401
    await api.aclose()
    await client.aclose()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
