"""Storage node servers for tests: in-process ASGI clients, and a one-node cluster (three devices,
three rings, the three servers under uvicorn on free loopback ports) for the daemons."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from stratus.core import config as config_mod
from stratus.core.config import Config
from stratus.object import node
from stratus.object.diskfile import DiskFileManager
from stratus.object.ring.ring import Ring
from stratus.object.servers.account import AccountServer
from stratus.object.servers.container import ContainerServer
from stratus.object.servers.object import ObjectServer
from stratus.object.updater import node_url
from stratus.object.utils import load_hash_secret, normalize_timestamp
from tests.ports import free_port
from tests.servers import Served

SECRET = ("", "api-test-secret")


def stamp(offset: float = 0.0) -> str:
    return normalize_timestamp(time.time() + offset)


@pytest.fixture
def devices(tmp_path: Path) -> Path:
    root = tmp_path / "devices"
    for name in ("d1", "d2", "d3"):
        (root / name).mkdir(parents=True)
    return root


@pytest.fixture
def object_client(devices: Path) -> Iterator[TestClient]:
    with TestClient(ObjectServer(DiskFileManager(devices, hash_secret=SECRET))) as client:
        yield client


@pytest.fixture
def container_client(devices: Path) -> Iterator[TestClient]:
    with TestClient(ContainerServer(devices, SECRET)) as client:
        yield client


@pytest.fixture
def account_client(devices: Path) -> Iterator[TestClient]:
    with TestClient(AccountServer(devices, SECRET)) as client:
        yield client


@dataclass
class Cluster:
    cfg: Config
    ring_dir: Path
    devices_dir: Path
    servers: dict[str, Served]
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))

    def ring(self, kind: str) -> Ring:
        return Ring(self.ring_dir / f"{kind}.ring.gz")

    def manager(self) -> DiskFileManager:
        return DiskFileManager(self.devices_dir, hash_secret=load_hash_secret(self.ring_dir))

    def url(self, node_dict: dict[str, Any], part: int, *names: str) -> str:
        return node_url(f"{node_dict['ip']}:{node_dict['port']}", node_dict["device"], part, *names)

    def create_account(self, account: str) -> None:
        part, nodes = self.ring("account").get_nodes(account)
        for n in nodes:
            assert self.client.put(self.url(n, part, account), headers={"x-timestamp": stamp()}).status_code == 201

    def create_container(self, account: str, container: str) -> None:
        apart, anodes = self.ring("account").get_nodes(account)
        part, nodes = self.ring("container").get_nodes(account, container)
        for i, n in enumerate(nodes):
            headers = {"x-timestamp": stamp(), "x-account-host": f"{anodes[i]['ip']}:{anodes[i]['port']}",
                       "x-account-device": anodes[i]["device"], "x-account-partition": str(apart)}
            assert self.client.put(self.url(n, part, account, container), headers=headers).status_code in (201, 202)

    def put_object(self, account: str, container: str, obj: str, data: bytes,
                   headers: dict[str, str] | None = None, timestamp: str | None = None) -> str:
        """PUT on every primary with its container update headers, as the proxy does."""
        cpart, cnodes = self.ring("container").get_nodes(account, container)
        part, nodes = self.ring("object").get_nodes(account, container, obj)
        timestamp = timestamp or stamp()
        for i, n in enumerate(nodes):
            extra = {"x-timestamp": timestamp, "content-type": "text/plain",
                     "x-container-host": f"{cnodes[i]['ip']}:{cnodes[i]['port']}",
                     "x-container-device": cnodes[i]["device"], "x-container-partition": str(cpart),
                     **(headers or {})}
            response = self.client.put(self.url(n, part, account, container, obj), content=data, headers=extra)
            assert response.status_code == 201, response.text
        return timestamp

    def listing(self, account: str, container: str, node_index: int = 0) -> list[dict[str, Any]]:
        part, nodes = self.ring("container").get_nodes(account, container)
        response = self.client.get(self.url(nodes[node_index], part, account, container), params={"format": "json"})
        assert response.status_code == 200, response.text
        result: list[dict[str, Any]] = response.json()
        return result


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    yield from make_cluster(tmp_path, devices=3)


@pytest.fixture
def cluster4(tmp_path: Path) -> Iterator[Cluster]:
    """Four devices for three replicas: every partition has a handoff device."""
    yield from make_cluster(tmp_path, devices=4)


def make_cluster(tmp_path: Path, devices: int) -> Iterator[Cluster]:
    ports = {kind: free_port() for kind in node.KINDS}
    cfg = config_mod.load(state_dir=tmp_path / "state", environ={
        "STRATUS_OBJECT__ACCOUNT_PORT": str(ports["account"]),
        "STRATUS_OBJECT__CONTAINER_PORT": str(ports["container"]),
        "STRATUS_OBJECT__OBJECT_PORT": str(ports["object"]),
        "STRATUS_OBJECT__PART_POWER": "4",
        "STRATUS_OBJECT__DEVICES": str(devices),
    })
    ring_dir = node.ensure_local_cluster(cfg)
    apps = node.make_apps(cfg)
    servers = {kind: Served(apps[kind], ports[kind]) for kind in node.KINDS}
    for served in servers.values():
        served.start()
    result = Cluster(cfg, ring_dir, node.devices_dir(cfg), servers)
    try:
        yield result
    finally:
        result.client.close()
        for served in servers.values():
            served.stop()
