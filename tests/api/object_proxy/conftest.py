"""The proxy on a loopback port in front of storage nodes and a real identity service; two projects with
a member each, and TempAuth users.

`proxy` runs every test three times: over four fake nodes (tests/api/object_proxy/fakenode.py), over the
real storage node (stratus.object.node: account, container and object servers on four devices), and over
that node with its servers also registered as in-process (`stratus up`'s wiring: writes skip HTTP).
Three replicas over four devices leave every partition a handoff. `fake_proxy` is the fake-node one alone,
for tests that stop a node or fill its device.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from stratus.identity.api import create_identity_app
from stratus.identity.client import IdentityClient, ServiceCredentials
from stratus.object.proxy.app import ProxyApp, create_proxy_app
from stratus.object.proxy.auth import AuthSettings
from stratus.object.proxy.server import ProxySettings
from tests.api.object_proxy.fakenode import FakeNode, FakeRing, FakeRings
from tests.conftest import SERVICE_PASSWORD, IdentityHarness, make_identity
from tests.ports import free_port
from tests.servers import Served

TEMPAUTH_USERS = ["test:tester:testing:.admin", "test:viewer:viewing", "reseller:root:rootpw:.reseller_admin"]


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
    ring: FakeRing | None
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

    def stored_copies(self, account: str, container: str, obj: str) -> int:
        """How many devices (primaries and handoffs) answer 200 for the object, asked directly."""
        ring = self.app.proxy.cluster.rings.get("object")
        part, primaries = ring.get_nodes(account, container, obj)
        count = 0
        for node in [*primaries, *ring.get_more_nodes(part)]:
            path = "/".join(quote(p, safe="") for p in (node["device"], str(part), account, container, obj))
            try:
                count += httpx.head(f"http://{node['ip']}:{node['port']}/{path}", timeout=5).status_code == 200
            except httpx.HTTPError:
                pass
        return count

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


def _storage_node(state: Path) -> tuple[Path, list[Served], list[tuple[str, int, Any]]]:
    """The real storage node (four devices, three replicas) on free ports; returns its ring dir, its
    servers and their (ip, port, app)."""
    from stratus.core import config as config_mod
    from stratus.object.node import ensure_local_cluster, start_node

    environ = {"STRATUS_OBJECT__DEVICES": "4", "STRATUS_OBJECT__REPLICAS": "3", "STRATUS_OBJECT__PART_POWER": "6",
               **{f"STRATUS_OBJECT__{kind}_PORT": str(free_port()) for kind in ("ACCOUNT", "CONTAINER", "OBJECT")}}
    cfg = config_mod.load(state_dir=state / "node", environ=environ)
    rings = ensure_local_cluster(cfg)
    listeners = start_node(cfg, daemons=False)
    return rings, [Served(item.app, item.port).start() for item in listeners], \
        [(cfg.object.node_ip, item.port, item.app) for item in listeners]


@contextmanager
def _harness(state: Path, backend: str) -> Iterator[ProxyHarness]:
    identity = make_identity(state / "state", f"sqlite:///{state / 'identity.sqlite'}")
    identity_port = free_port()
    servers = [Served(create_identity_app(identity.service), identity_port).start()]
    identity_url = f"http://127.0.0.1:{identity_port}"
    nodes: list[FakeNode] = []
    ring_dir = state
    in_process: list[tuple[str, int, Any]] = []
    if backend == "fake-nodes":
        nodes = [FakeNode(free_port(), device=f"d{i}") for i in range(4)]
        for node in nodes:
            node.start()
    else:
        ring_dir, node_servers, in_process = _storage_node(state)
        servers += node_servers
    ring = FakeRing(nodes, replicas=3) if nodes else None
    settings = ProxySettings(ring_dir=ring_dir, auth=AuthSettings(tempauth_users=TEMPAUTH_USERS),
                             identity_url=identity_url, s3_domain="s3.localhost", info_cache_ttl=0.0,
                             cors_allow_origin=[])
    validator = IdentityClient(identity_url, ServiceCredentials("glance", SERVICE_PASSWORD, "service"), cache_ttl=5)
    app = create_proxy_app(settings, validator)
    if ring is not None:
        app.proxy.cluster.rings = FakeRings(ring)  # type: ignore[assignment]
    if backend == "in-process-nodes":
        for ip, node_port, node_app in in_process:
            app.proxy.cluster.local.add(ip, node_port, node_app)
    port = free_port()
    servers.append(Served(app, port).start())
    harness = ProxyHarness(f"http://127.0.0.1:{port}", identity_url, identity, app, nodes, ring)
    for name in ("alpha", "beta"):
        harness.users[name] = _user(identity, f"{name}-{uuid.uuid4().hex[:6]}")
    try:
        yield harness
    finally:
        for server in servers:
            server.stop()
        for node in nodes:
            node.stop()
        identity.client.close()
        identity.service.db.dispose()


@pytest.fixture(scope="module", params=["fake-nodes", "storage-nodes", "in-process-nodes"])
def proxy(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyHarness]:
    with _harness(tmp_path_factory.mktemp("object-proxy"), request.param) as harness:
        yield harness


@pytest.fixture(scope="module")
def in_process_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyHarness]:
    with _harness(tmp_path_factory.mktemp("object-proxy"), "in-process-nodes") as harness:
        yield harness


@pytest.fixture(scope="module")
def fake_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyHarness]:
    with _harness(tmp_path_factory.mktemp("object-proxy"), "fake-nodes") as harness:
        yield harness


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
