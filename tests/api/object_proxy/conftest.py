"""The proxy on a loopback port, in front of four fake storage nodes (three replicas, so every
partition has a handoff) and a real identity service; two projects with a member each, and TempAuth users.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from stratus.identity.api import create_identity_app
from stratus.identity.client import IdentityClient, ServiceCredentials
from stratus.object.proxy.app import ProxyApp, create_proxy_app
from stratus.object.proxy.auth import AuthSettings
from stratus.object.proxy.server import ProxySettings
from tests.api.object_proxy.fakenode import FakeNode, FakeRing, FakeRings, free_port
from tests.conftest import SERVICE_PASSWORD, IdentityHarness, make_identity

TEMPAUTH_USERS = ["test:tester:testing:.admin", "test:viewer:viewing", "reseller:root:rootpw:.reseller_admin"]


def serve(app: Any, port: int) -> uvicorn.Server:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off", loop="asyncio", interface="asgi3"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "a test server did not start"
    return server


@dataclass
class User:
    name: str
    password: str
    project: str
    project_id: str
    user_id: str
    token: str

    @property
    def account(self) -> str:
        return f"AUTH_{self.project_id}"


@dataclass
class ProxyHarness:
    url: str
    identity_url: str
    identity: IdentityHarness
    app: ProxyApp
    nodes: list[FakeNode]
    ring: FakeRing
    users: dict[str, User] = field(default_factory=dict)

    def client(self, user: User | None = None, token: str | None = None) -> httpx.Client:
        headers = {"X-Auth-Token": token or user.token} if (user or token) else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def account_url(self, user: User) -> str:
        return f"/v1/{user.account}"

    def ec2_credentials(self, user: User) -> tuple[str, str]:
        response = self.identity.client.post(f"/v3/users/{user.user_id}/credentials/OS-EC2",
                                              json={"tenant_id": user.project_id},
                                              headers={"X-Auth-Token": user.token})
        assert response.status_code == 201, response.text
        body = response.json()["credential"]
        return body["access"], body["secret"]

    def object_copies(self, account: str, container: str, obj: str) -> list[FakeNode]:
        """The fake nodes holding a live copy of the object."""
        return [n for n in self.nodes if (c := n.objects.get((account, container, obj))) is not None and not c.deleted]


def _user(identity: IdentityHarness, name: str) -> User:
    admin = identity.as_admin()
    project = identity.client.post("/v3/projects", json={"project": {"name": name, "domain_id": "default"}},
                                   headers=admin).json()["project"]
    password = "pw-" + uuid.uuid4().hex[:8]
    user = identity.client.post("/v3/users", json={"user": {"name": name + "-user", "password": password,
                                                            "domain_id": "default"}}, headers=admin).json()["user"]
    roles = identity.client.get("/v3/roles?name=member", headers=admin).json()["roles"]
    response = identity.client.put(f"/v3/projects/{project['id']}/users/{user['id']}/roles/{roles[0]['id']}",
                                   headers=admin)
    assert response.status_code == 204, response.text
    token = identity.token(name + "-user", password, name)
    return User(name + "-user", password, name, project["id"], user["id"], token)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyHarness]:
    state: Path = tmp_path_factory.mktemp("object-proxy")
    identity = make_identity(state / "state", f"sqlite:///{state / 'identity.sqlite'}")
    identity_port = free_port()
    identity_server = serve(create_identity_app(identity.service), identity_port)
    identity_url = f"http://127.0.0.1:{identity_port}"
    nodes = [FakeNode(free_port(), device=f"d{i}") for i in range(4)]
    for node in nodes:
        node.start()
    ring = FakeRing(nodes, replicas=3)
    settings = ProxySettings(ring_dir=state, auth=AuthSettings(tempauth_users=TEMPAUTH_USERS),
                             identity_url=identity_url, s3_domain="s3.localhost", info_cache_ttl=0.0,
                             cors_allow_origin=[])
    validator = IdentityClient(identity_url, ServiceCredentials("glance", SERVICE_PASSWORD, "service"), cache_ttl=5)
    app = create_proxy_app(settings, validator)
    app.proxy.cluster.rings = FakeRings(ring)  # type: ignore[assignment]
    port = free_port()
    server = serve(app, port)
    harness = ProxyHarness(f"http://127.0.0.1:{port}", identity_url, identity, app, nodes, ring)
    for name in ("alpha", "beta"):
        harness.users[name] = _user(identity, f"{name}-{uuid.uuid4().hex[:6]}")
    try:
        yield harness
    finally:
        server.should_exit = True
        identity_server.should_exit = True
        for node in nodes:
            node.stop()
        identity.client.close()
        identity.service.db.dispose()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
