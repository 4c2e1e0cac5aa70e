"""Shared fixtures: an in-process identity service on each database engine the project supports."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from stratus.compute.api import create_compute_app
from stratus.compute.service import ComputeService
from stratus.core import config as config_mod
from stratus.core.bus import Bus
from stratus.core.service_client import ServiceAuth
from stratus.identity.api import create_identity_app
from stratus.identity.bootstrap import CatalogEntry, bootstrap
from stratus.identity.client import IdentityClient, ServiceCredentials
from stratus.identity.service import IdentityService
from stratus.image.api import create_image_app
from stratus.image.client import ImageClient
from stratus.image.service import ImageService
from stratus.network.api import create_network_app
from stratus.network.client import NetworkClient
from stratus.network.service import NetworkService

ADMIN_PASSWORD = "admin-secret-Pw1"
SERVICE_PASSWORD = "service-secret-Pw1"
SERVER_URLS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/",
}


def _fresh_database(engine: str) -> Iterator[str]:
    """A new, empty database on the local server; dropped afterwards."""
    name = f"stratus_t_{uuid.uuid4().hex[:12]}"
    try:
        admin = sa.create_engine(SERVER_URLS[engine] + ("postgres" if engine == "postgresql" else ""),
                                 isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"the local {engine} server is needed for this test and did not answer: {exc}")
    try:
        yield SERVER_URLS[engine] + name
    finally:
        with admin.connect() as conn:
            if engine == "postgresql":
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.backend),
                        pytest.param("mariadb", marks=pytest.mark.backend)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'identity.sqlite'}"
    else:
        yield from _fresh_database(request.param)


@dataclass
class IdentityHarness:
    service: IdentityService
    client: TestClient
    admin_token: str

    def token(self, username: str, password: str, project: str | None = None, **scope: Any) -> str:
        auth: dict[str, Any] = {"identity": {"methods": ["password"], "password": {
            "user": {"name": username, "domain": {"id": "default"}, "password": password}}}}
        if project:
            auth["scope"] = {"project": {"name": project, "domain": {"id": "default"}}}
        elif scope:
            auth["scope"] = scope
        response = self.client.post("/v3/auth/tokens", json={"auth": auth})
        assert response.status_code == 201, response.text
        return response.headers["X-Subject-Token"]

    def as_admin(self) -> dict[str, str]:
        return {"X-Auth-Token": self.admin_token}


def make_identity(state_dir: Path, database_url: str, **identity_settings: Any) -> IdentityHarness:
    environ = {"STRATUS_DATABASE__URL": database_url, "STRATUS_IDENTITY__BCRYPT_ROUNDS": "4",
               "STRATUS_BOOTSTRAP__ADMIN_PASSWORD": ADMIN_PASSWORD,
               "STRATUS_BOOTSTRAP__SERVICE_PASSWORD": SERVICE_PASSWORD}
    environ.update({f"STRATUS_IDENTITY__{k.upper()}": str(v) for k, v in identity_settings.items()})
    cfg = config_mod.load(state_dir=state_dir, environ=environ)
    svc = IdentityService(cfg)
    svc.setup()
    bootstrap(svc, [CatalogEntry("identity", "keystone", "http://127.0.0.1:5000/v3")],
              service_users=["glance", "neutron", "nova", "cinder"])
    client = TestClient(create_identity_app(svc))
    harness = IdentityHarness(svc, client, "")
    harness.admin_token = harness.token("admin", ADMIN_PASSWORD, "admin")
    return harness


@pytest.fixture
def identity(tmp_path: Path, database_url: str) -> Iterator[IdentityHarness]:
    harness = make_identity(tmp_path / "state", database_url)
    yield harness
    harness.client.close()
    harness.service.db.dispose()


@dataclass
class ImageHarness:
    """An in-process image API whose tokens are validated by an in-process identity service."""

    identity: IdentityHarness
    service: ImageService
    client: TestClient

    def as_admin(self) -> dict[str, str]:
        return self.identity.as_admin()


def make_image(identity: IdentityHarness, database_url: str, **image_settings: Any) -> ImageHarness:
    environ = {"STRATUS_DATABASE__URL": database_url}
    environ.update({f"STRATUS_IMAGE__{k.upper()}": str(v) for k, v in image_settings.items()})
    cfg = config_mod.load(state_dir=identity.service.config.server.state_dir, environ=environ)
    svc = ImageService(cfg)
    svc.setup()
    identity_http = httpx.AsyncClient(transport=httpx.ASGITransport(identity.client.app), base_url="http://identity")
    validator = IdentityClient("http://identity", ServiceCredentials("glance", SERVICE_PASSWORD, "service"),
                               http=identity_http)
    identity.service.revocations.listeners.append(validator.forget)
    return ImageHarness(identity, svc, TestClient(create_image_app(svc, validator)))


@pytest.fixture
def image(identity: IdentityHarness, database_url: str) -> Iterator[ImageHarness]:
    """The image API on the same engine as `identity` (its own tables, as in production)."""
    harness = make_image(identity, database_url)
    yield harness
    harness.client.close()
    harness.service.db.dispose()


@dataclass
class NetworkHarness:
    """An in-process network API (tokens validated by an in-process identity service) and its bus."""

    identity: IdentityHarness
    service: NetworkService
    client: TestClient
    bus: Bus

    def as_admin(self) -> dict[str, str]:
        return self.identity.as_admin()


def make_network(identity: IdentityHarness, database_url: str, **network_settings: Any) -> NetworkHarness:
    environ = {"STRATUS_DATABASE__URL": database_url}
    environ.update({f"STRATUS_NETWORK__{k.upper()}": str(v) for k, v in network_settings.items()})
    cfg = config_mod.load(state_dir=identity.service.config.server.state_dir, environ=environ)
    bus = Bus("memory://", exchange=f"stratus-{uuid.uuid4().hex[:8]}")
    svc = NetworkService(cfg, bus=bus)
    svc.setup()
    identity_http = httpx.AsyncClient(transport=httpx.ASGITransport(identity.client.app), base_url="http://identity")
    validator = IdentityClient("http://identity", ServiceCredentials("neutron", SERVICE_PASSWORD, "service"),
                               http=identity_http)
    identity.service.revocations.listeners.append(validator.forget)
    return NetworkHarness(identity, svc, TestClient(create_network_app(svc, validator)), bus)


@pytest.fixture
def network(identity: IdentityHarness, database_url: str) -> Iterator[NetworkHarness]:
    """The network API on the same engine as `identity`."""
    harness = make_network(identity, database_url)
    yield harness
    harness.client.close()
    harness.bus.close()
    harness.service.db.dispose()


@dataclass
class ComputeHarness:
    """An in-process compute API with the network and image APIs it uses, on one engine and one bus.

    `runtime` is what `stratus up` starts beside the API (conductor, scheduler, fake agents); it
    is None until `start()`.
    """

    identity: IdentityHarness
    network: NetworkHarness
    image: ImageHarness
    service: ComputeService
    client: TestClient
    runtime: Any = None

    def as_admin(self) -> dict[str, str]:
        return self.identity.as_admin()

    def start(self, **fake: Any) -> Any:
        """Start the conductor, scheduler and fake compute agents (settings from `make_compute`)."""
        from stratus.compute.runtime import start_runtime

        self.runtime = start_runtime(self.service, self.network.bus)
        return self.runtime

    def close(self) -> None:
        if self.runtime is not None:
            self.runtime.stop()
        self.client.close()
        self.service.db.dispose()


def make_compute(network: NetworkHarness, image: ImageHarness, database_url: str,
                 **compute_settings: Any) -> ComputeHarness:
    """The compute API beside `network` and `image` (its own tables on the same engine); it reaches
    them through the same typed clients as in production, over in-process HTTP."""
    identity = network.identity
    environ = {"STRATUS_DATABASE__URL": database_url}
    environ.update({f"STRATUS_COMPUTE__{k.upper()}": str(v) for k, v in compute_settings.items()})
    cfg = config_mod.load(state_dir=identity.service.config.server.state_dir, environ=environ)
    auth = ServiceAuth("http://identity", "nova", SERVICE_PASSWORD, http=identity.client)
    svc = ComputeService(cfg, bus=network.bus, network=NetworkClient("http://network", auth, http=network.client),
                         image=ImageClient("http://image", auth, http=image.client))
    svc.setup()
    identity_http = httpx.AsyncClient(transport=httpx.ASGITransport(identity.client.app), base_url="http://identity")
    validator = IdentityClient("http://identity", ServiceCredentials("nova", SERVICE_PASSWORD, "service"),
                               http=identity_http)
    identity.service.revocations.listeners.append(validator.forget)
    return ComputeHarness(identity, network, image, svc, TestClient(create_compute_app(svc, validator)))


@pytest.fixture
def compute(network: NetworkHarness, image: ImageHarness, database_url: str) -> Iterator[ComputeHarness]:
    """The compute API on the same engine as `network` and `image`."""
    harness = make_compute(network, image, database_url)
    yield harness
    harness.close()


@dataclass
class VolumeHarness:
    """An in-process block storage API with its conductor and one file-backend agent (host
    `storage-1`, files under the state dir), the image API it reads from, on one engine and bus."""

    identity: IdentityHarness
    image: ImageHarness
    service: Any
    client: TestClient
    bus: Bus
    runtime: Any = None

    def as_admin(self) -> dict[str, str]:
        return self.identity.as_admin()

    def close(self) -> None:
        if self.runtime is not None:
            self.runtime.stop()
        self.client.close()
        self.bus.close()
        self.service.db.dispose()


def make_volume(image: ImageHarness, database_url: str, *, start: bool = True, **volume_settings: Any) -> VolumeHarness:
    from stratus.volume.api import create_volume_app
    from stratus.volume.runtime import start_runtime
    from stratus.volume.service import VolumeService

    identity = image.identity
    environ = {"STRATUS_DATABASE__URL": database_url, "STRATUS_VOLUME__HOST": "storage-1",
               "STRATUS_VOLUME__CAPACITY_GB": "100"}
    environ.update({f"STRATUS_VOLUME__{k.upper()}": str(v) for k, v in volume_settings.items()})
    cfg = config_mod.load(state_dir=identity.service.config.server.state_dir, environ=environ)
    bus = Bus("memory://", exchange=f"stratus-{uuid.uuid4().hex[:8]}")
    auth = ServiceAuth("http://identity", "cinder", SERVICE_PASSWORD, http=identity.client)
    svc = VolumeService(cfg, bus=bus, image=ImageClient("http://image", auth, http=image.client))
    svc.setup()
    identity_http = httpx.AsyncClient(transport=httpx.ASGITransport(identity.client.app), base_url="http://identity")
    validator = IdentityClient("http://identity", ServiceCredentials("cinder", SERVICE_PASSWORD, "service"),
                               http=identity_http)
    identity.service.revocations.listeners.append(validator.forget)
    harness = VolumeHarness(identity, image, svc, TestClient(create_volume_app(svc, validator)), bus)
    if start:
        harness.runtime = start_runtime(svc, bus)
    return harness


@pytest.fixture
def volume(image: ImageHarness, database_url: str) -> Iterator[VolumeHarness]:
    """The block storage API, conductor and a file-backend agent on the same engine as `image`."""
    harness = make_volume(image, database_url)
    yield harness
    harness.close()
