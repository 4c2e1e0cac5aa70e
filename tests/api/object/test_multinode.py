"""Four storage nodes (one device each, their own ports and device directories, three replicas): a
node is down while objects are written (handoffs take its copies); once it is back, one replication
pass on every node puts every object on exactly its three primaries."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from stratus.object.diskfile import DiskFileManager
from stratus.object.replicator import ObjectReplicator
from stratus.object.ring.builder import RingBuilder
from stratus.object.ring.ring import Ring
from stratus.object.servers.object import ObjectServer
from stratus.object.updater import node_url
from stratus.object.utils import ensure_hash_secret
from tests.api.object.conftest import Served, stamp
from tests.ports import free_port

ACCOUNT, CONTAINER = "AUTH_multi", "c"


@dataclass
class Node:
    devices: Path
    port: int
    server: Served

    def manager(self, secret: tuple[str, str]) -> DiskFileManager:
        return DiskFileManager(self.devices, hash_secret=secret)


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[list[Node], Path, tuple[str, str]]]:
    rings = tmp_path / "rings"
    secret = ensure_hash_secret(rings)
    nodes = []
    builder = RingBuilder(5, 3, 0)
    for i in range(4):
        devices = tmp_path / f"node{i}"
        (devices / f"sd{i}").mkdir(parents=True)
        port = free_port()
        nodes.append(Node(devices, port, Served(ObjectServer(DiskFileManager(devices, hash_secret=secret)), port)))
        builder.add_dev({"zone": i + 1, "ip": "127.0.0.1", "port": port, "device": f"sd{i}", "weight": 1})
    builder.rebalance()
    builder.get_ring().save(rings / "object.ring.gz")
    for n in nodes:
        n.server.start()
    yield nodes, rings, secret
    for n in nodes:
        n.server.stop()


def put_like_the_proxy(client: httpx.Client, ring: Ring, obj: str, data: bytes) -> None:
    """PUT on every primary; a handoff stands in for each primary that cannot be reached."""
    part, primaries = ring.get_nodes(ACCOUNT, CONTAINER, obj)
    handoffs = ring.get_more_nodes(part)
    timestamp = stamp()
    stored = 0
    for target in primaries:
        while True:
            try:
                response = client.put(node_url(f"{target['ip']}:{target['port']}", target["device"], part, ACCOUNT,
                                               CONTAINER, obj), content=data, headers={"x-timestamp": timestamp})
                stored += response.status_code == 201
                break
            except httpx.ConnectError:
                target = next(handoffs)
    assert stored == 3


def holders(nodes: list[Node], secret: tuple[str, str], part: int, obj: str) -> set[str]:
    out = set()
    for i, n in enumerate(nodes):
        df = n.manager(secret).get(f"sd{i}", part, ACCOUNT, CONTAINER, obj).open()
        if df.data_file is not None:
            out.add(f"sd{i}")
    return out


def test_a_node_down_during_writes_gets_its_copies_after_one_pass(
        nodes: tuple[list[Node], Path, tuple[str, str]]) -> None:
    cluster, rings, secret = nodes
    ring = Ring(rings / "object.ring.gz")
    cluster[1].server.stop()
    with httpx.Client(timeout=10) as client:
        for i in range(60):
            put_like_the_proxy(client, ring, f"o{i}", f"data {i}".encode())
    on_handoffs = sum(1 for i in range(60) if "sd1" in {n["device"] for n in ring.get_nodes(ACCOUNT, CONTAINER,
                                                                                          f"o{i}")[1]})
    assert on_handoffs > 0  # the layout really put some objects' primaries on the stopped node
    restarted = Served(cluster[1].server.app, cluster[1].port)
    restarted.start()
    cluster[1].server = restarted
    started = time.monotonic()
    for n in cluster:  # one replication pass on every node
        stats = ObjectReplicator(n.manager(secret), rings, ips={"127.0.0.1"}, port=n.port).run_once()
        assert stats["failures"] == 0
    assert time.monotonic() - started < 60
    for i in range(60):
        part, primaries = ring.get_nodes(ACCOUNT, CONTAINER, f"o{i}")
        assert holders(cluster, secret, part, f"o{i}") == {p["device"] for p in primaries}, f"o{i}"
