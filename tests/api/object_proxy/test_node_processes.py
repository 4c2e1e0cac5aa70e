"""Durability with real storage nodes as separate processes: four `stratus serve object-node` processes
(one device each, three replicas) behind the proxy; one node is stopped while objects are written and
read, and a node killed mid-upload leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from stratus.object.proxy.app import create_proxy_app
from stratus.object.proxy.auth import AuthSettings
from stratus.object.proxy.server import ProxySettings
from stratus.object.ring.builder import RingBuilder
from stratus.object.ring.ring import Ring
from stratus.object.utils import ensure_hash_secret
from tests.ports import free_port
from tests.servers import Served

STRATUS = Path(__file__).resolve().parents[3] / ".venv" / "bin" / "stratus"
KINDS = ("account", "container", "object")
CONCURRENCY = 16  # client requests in flight in the 1,000-object test


@dataclass
class NodeProcess:
    index: int
    state: Path
    ports: dict[str, int]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.state / "node.log").open("ab")
        self.process = subprocess.Popen([str(STRATUS), "serve", "--state-dir", str(self.state), "object-node"],
                                        env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90  # generous: CI machines are often busy
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{self.ports['object']}/", timeout=1)
                return
            except httpx.HTTPError:
                assert self.process.poll() is None, (self.state / "node.log").read_text()
                time.sleep(0.2)
        raise AssertionError(f"node {self.index} did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@dataclass
class Cloud:
    url: str
    token: str
    storage: str
    nodes: list[NodeProcess]
    rings: Path


def _holders(cloud: Cloud, account: str, container: str, obj: str, http: httpx.Client) -> list[int]:
    """The object server ports whose device holds the object (asked directly, every device)."""
    ring = Ring(cloud.rings / "object.ring.gz")
    part = ring.get_part(account, container, obj)
    found = []
    for dev in ring.devs:
        if dev is None:
            continue
        path = "/".join(quote(p, safe="") for p in (dev["device"], str(part), account, container, obj))
        try:
            if http.head(f"http://127.0.0.1:{dev['port']}/{path}", timeout=30).status_code == 200:
                found.append(dev["port"])
        except httpx.ConnectError:
            pass  # the stopped node (a live node that does not answer fails the test)
    return found


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    root = tmp_path_factory.mktemp("node-processes")
    rings = root / "rings"
    ensure_hash_secret(rings)
    nodes = []
    for index in range(4):
        state = root / f"node{index}"
        (state / "devices" / f"d{index}").mkdir(parents=True)
        ports = {kind: free_port() for kind in KINDS}
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("STRATUS_")},
               "STRATUS_OBJECT__DEVICES_DIR": str(state / "devices"), "STRATUS_OBJECT__RING_DIR": str(rings),
               "STRATUS_SERVER__LOG_LEVEL": "warning", "STRATUS_OBJECT__REPLICATOR_INTERVAL": "0",
               "STRATUS_OBJECT__AUDITOR_INTERVAL": "0", "STRATUS_OBJECT__EXPIRER_INTERVAL": "0",
               "STRATUS_OBJECT__REAPER_INTERVAL": "0",
               **{f"STRATUS_OBJECT__{kind.upper()}_PORT": str(port) for kind, port in ports.items()}}
        nodes.append(NodeProcess(index, state, ports, env))
    for kind in KINDS:
        builder = RingBuilder(6, 3, 0)
        for node in nodes:
            builder.add_dev({"region": 1, "zone": node.index + 1, "ip": "127.0.0.1", "port": node.ports[kind],
                             "device": f"d{node.index}", "weight": 100.0})
        builder.rebalance()
        builder.get_ring().save(rings / f"{kind}.ring.gz")
    for node in nodes:
        node.start()
    settings = ProxySettings(ring_dir=rings, auth=AuthSettings(tempauth_users=["test:tester:testing:.admin"]),
                             info_cache_ttl=0.0)
    port = free_port()
    server = Served(create_proxy_app(settings, None), port).start()
    url = f"http://127.0.0.1:{port}"
    login = httpx.get(f"{url}/auth/v1.0", headers={"X-Auth-User": "test:tester", "X-Auth-Key": "testing"})
    try:
        yield Cloud(url, login.headers["x-auth-token"], login.headers["x-storage-url"], nodes, rings)
    finally:
        server.stop()
        for node in nodes:
            node.stop()


def test_a_stopped_node_process_leaves_puts_and_gets_working(cloud: Cloud) -> None:
    """Acceptance 2: with one node stopped, 1,000 PUTs (16 at a time) all succeed and read back."""
    headers = {"X-Auth-Token": cloud.token}
    count = 1000
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    with httpx.Client(headers=headers, timeout=30, limits=limits) as http, \
            httpx.Client(limits=limits) as nodes_http, ThreadPoolExecutor(CONCURRENCY) as pool:

        def put(index: int) -> tuple[int, int, str]:
            response = http.put(f"{cloud.storage}/durable/o{index}", content=f"body {index}".encode())
            return index, response.status_code, response.text

        def get(index: int) -> tuple[int, bytes]:
            return index, http.get(f"{cloud.storage}/durable/o{index}").content

        assert http.put(f"{cloud.storage}/durable").status_code == 201
        cloud.nodes[1].stop()
        try:
            failed = [(i, status, text) for i, status, text in pool.map(put, range(count)) if status != 201]
            assert not failed, f"{len(failed)} of {count} PUTs failed, first: {failed[:3]}"
            wrong = [i for i, body in pool.map(get, range(count)) if body != f"body {i}".encode()]
            assert not wrong, f"{len(wrong)} objects read back wrong, first: {wrong[:5]}"
            # A handoff stood in for the stopped node: three copies each, none on the stopped node.
            account = cloud.storage.rsplit("/", 1)[1]

            def holders(index: int) -> tuple[int, list[int]]:
                return index, _holders(cloud, account, "durable", f"o{index}", nodes_http)

            for index, ports in pool.map(holders, range(0, count, 5)):
                assert len(ports) == 3 and cloud.nodes[1].ports["object"] not in ports, (index, ports)
        finally:
            cloud.nodes[1].start()
        for index in range(0, count, 7):
            assert http.get(f"{cloud.storage}/durable/o{index}").content == f"body {index}".encode()


def test_a_client_killed_mid_upload_leaves_nothing(cloud: Cloud, tmp_path: Path) -> None:
    headers = {"X-Auth-Token": cloud.token}
    with httpx.Client(headers=headers, timeout=30) as http:
        assert http.put(f"{cloud.storage}/partial").status_code in (201, 202)
    # A client process that sends half its declared body and is killed.
    script = tmp_path / "client.py"
    script.write_text(f"""
import socket, time
from urllib.parse import urlsplit
url = urlsplit({cloud.storage + '/partial/half'!r})
sock = socket.create_connection((url.hostname, url.port))
sock.sendall(("PUT " + url.path + " HTTP/1.1\\r\\nHost: x\\r\\nX-Auth-Token: {cloud.token}\\r\\n"
              "Content-Length: 50000000\\r\\n\\r\\n").encode() + b"z" * 4000000)
print("sent", flush=True)
time.sleep(60)
""")
    client = subprocess.Popen([str(STRATUS.parent / "python"), str(script)], stdout=subprocess.PIPE)
    assert client.stdout is not None and client.stdout.readline().strip() == b"sent"
    client.kill()
    client.wait()
    time.sleep(1.0)
    with httpx.Client(headers=headers, timeout=30) as http:
        assert http.head(f"{cloud.storage}/partial/half").status_code == 404
        assert http.get(f"{cloud.storage}/partial").status_code == 204
