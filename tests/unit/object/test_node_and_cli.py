"""The all-in-one layout (`ensure_local_cluster`), `stratus ring ...`, and `stratus serve object-node`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from stratus.cli import main
from stratus.core import config as config_mod
from stratus.object import node
from stratus.object.ring.builder import RingBuilder
from stratus.object.ring.ring import Ring
from tests.ports import free_port

VENV_BIN = Path(sys.executable).parent


def test_ensure_local_cluster_makes_devices_and_rings_once(tmp_path: Path) -> None:
    cfg = config_mod.load(state_dir=tmp_path, environ={"STRATUS_OBJECT__OBJECT_PORT": "7100"})
    ring_dir = node.ensure_local_cluster(cfg)
    assert ring_dir == tmp_path / "object" / "rings"
    assert sorted(os.listdir(tmp_path / "object" / "devices")) == ["d1", "d2", "d3"]
    assert (ring_dir / "hash_path_secret").exists()
    ring = Ring(ring_dir / "object.ring.gz")
    assert ring.replica_count == 3 and ring.partition_count == 2 ** 8
    assert {d["port"] for d in ring.devs if d} == {7100}
    assert sorted(d["zone"] for d in ring.devs if d) == [1, 2, 3]
    assert Ring(ring_dir / "account.ring.gz").devs[0]["port"] == 6202  # type: ignore[index]
    before = Ring(ring_dir / "object.ring.gz").get_part_nodes(5)
    secret = (ring_dir / "hash_path_secret").read_text()
    # A restart on other ports keeps the placement and the secret, and follows the ports.
    moved = config_mod.load(state_dir=tmp_path, environ={"STRATUS_OBJECT__OBJECT_PORT": "7200"})
    node.ensure_local_cluster(moved)
    after = Ring(ring_dir / "object.ring.gz").get_part_nodes(5)
    assert [n["device"] for n in after] == [n["device"] for n in before]
    assert {n["port"] for n in after} == {7200}
    assert (ring_dir / "hash_path_secret").read_text() == secret


def test_ring_commands(tmp_path: Path) -> None:
    runner = CliRunner()
    rings = str(tmp_path)

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, ["ring", *args[:1], "--ring-dir", rings, *args[1:]])
        assert result.exit_code == code, result.output
        return result.output

    run("create", "object", "6", "3", "0")
    run("create", "object", "6", "3", code=1)
    for i in range(5):
        run("add", "object", f"r1z{i + 1}-10.0.0.{i}:6200/sdb", "100")
    assert "expected" in run("add", "object", "10.0.0.9/sdb", "100", code=1)
    assert "already" in run("add", "object", "r1z1-10.0.0.0:6200/sdb", "100", code=1)
    assert "assigned" in run("rebalance", "object")
    ring = Ring(tmp_path / "object.ring.gz")
    assert ring.partition_count == 64 and len([d for d in ring.devs if d]) == 5
    run("set-weight", "object", "d0", "0")
    run("remove", "object", "10.0.0.3:6200/sdb")
    shown = run("show", "object")
    assert "(removing)" in shown and "pending a rebalance" in shown
    run("rebalance", "object")
    builder = RingBuilder.load(tmp_path / "object.builder")
    assert builder.assigned_parts()[0] == 0  # weight 0: drained, still listed
    assert [d["id"] for d in builder.devs if d] == [0, 1, 2, 4]
    assert "matches 0 devices" in run("remove", "object", "d9", code=1)
    assert "no such builder" in run("show", "container", code=1)


@pytest.mark.timeout(90)
def test_serve_object_node_runs_the_three_servers_and_the_daemons(tmp_path: Path) -> None:
    ports = {kind: free_port() for kind in node.KINDS}
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("STRATUS_")},
           **{f"STRATUS_OBJECT__{k.upper()}_PORT": str(p) for k, p in ports.items()},
           "STRATUS_SERVER__LOG_LEVEL": "warning", "STRATUS_OBJECT__REPLICATOR_INTERVAL": "0.5"}
    cfg = config_mod.load(state_dir=tmp_path, environ=env)
    node.ensure_local_cluster(cfg)
    log = (tmp_path / "node.log").open("wb")
    process = subprocess.Popen([str(VENV_BIN / "stratus"), "serve", "--state-dir", str(tmp_path), "object-node"],
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answers = [httpx.get(f"http://127.0.0.1:{p}/", timeout=1).status_code for p in ports.values()]
                break
            except httpx.HTTPError:
                assert process.poll() is None, (tmp_path / "node.log").read_text()
                assert time.monotonic() < deadline, "the node did not start"
                time.sleep(0.2)
        assert answers == [200, 200, 200]
        url = f"http://127.0.0.1:{ports['object']}/d1/0/AUTH_a/c/o"
        assert httpx.put(url, content=b"x", headers={"x-timestamp": f"{time.time():.5f}"}).status_code == 201
        assert httpx.get(url).content == b"x"
        # The replicator runs in the node: an object stored on one primary reaches the other two.
        ring = Ring(node.ring_dir(cfg) / "object.ring.gz")
        part, primaries = ring.get_nodes("AUTH_a", "c", "o2")
        urls = [f"http://127.0.0.1:{ports['object']}/{n['device']}/{part}/AUTH_a/c/o2" for n in primaries]
        assert httpx.put(urls[0], content=b"y", headers={"x-timestamp": f"{time.time():.5f}"}).status_code == 201
        deadline = time.monotonic() + 30
        while [httpx.get(u).status_code for u in urls] != [200, 200, 200]:
            assert time.monotonic() < deadline, "the node's replicator did not copy the object"
            time.sleep(0.3)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(20)
    assert code == 0, (tmp_path / "node.log").read_text()


def test_empty_paths_in_the_configuration_mean_the_defaults(tmp_path: Path) -> None:
    cfg = config_mod.load(state_dir=tmp_path, environ={"STRATUS_OBJECT__RING_DIR": "",
                                                       "STRATUS_OBJECT__DEVICES_DIR": ""})
    assert node.ring_dir(cfg) == tmp_path / "object" / "rings"
    assert node.devices_dir(cfg) == tmp_path / "object" / "devices"
