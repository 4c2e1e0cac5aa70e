"""One storage node on its own (no proxy): 4 KiB object PUT/GET/HEAD and container listing rates,
and large-object GET MB/s, straight at the object and container servers of `stratus serve object-node`.

It shows what the node costs per request, under the proxy's figures in `objstore.py`:
a PUT is a temp file, its fsync, a rename, the directory's fsync and the container row update.

    .venv/bin/python bench/object_node.py [--duration 10] [--connections 16]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import peers  # noqa: E402
from stratus.core import config as config_mod  # noqa: E402
from stratus.object import node  # noqa: E402

VENV_BIN = Path(sys.executable).parent

PUT_LUA = """
counter = 0
body = string.rep("x", 4096)
request = function()
  counter = counter + 1
  local stamp = string.format("%%.5f", os.time() + counter / 100000.0)
  return wrk.format("PUT", "/%(device)s/%(part)s/AUTH_bench/box/o" .. counter,
    {["X-Timestamp"] = stamp, ["Content-Length"] = "4096", ["Content-Type"] = "text/plain",
     ["X-Container-Host"] = "127.0.0.1:%(cport)d", ["X-Container-Device"] = "%(cdevice)s",
     ["X-Container-Partition"] = "%(cpart)s"}, body)
end
"""
READ_LUA = """
request = function()
  return wrk.format("%(method)s", "%(path)s")
end
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="bench-object-node-"))
    ports = {kind: peers.free_port() for kind in node.KINDS}
    env = {f"STRATUS_OBJECT__{k.upper()}_PORT": str(p) for k, p in ports.items()}
    env.update({"STRATUS_SERVER__LOG_LEVEL": "warning", "STRATUS_OBJECT__REPLICATOR_INTERVAL": "0",
                "STRATUS_OBJECT__AUDITOR_INTERVAL": "0", "STRATUS_OBJECT__UPDATER_INTERVAL": "0"})
    cfg = config_mod.load(state_dir=state, environ=env)
    node.ensure_local_cluster(cfg)
    log = state / "node.log"
    proc = peers.start([str(VENV_BIN / "stratus"), "serve", "--state-dir", str(state), "object-node"], log, env)
    base = {kind: f"http://127.0.0.1:{port}" for kind, port in ports.items()}

    def ready() -> bool:
        try:
            return httpx.get(base["object"] + "/", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    rows: list[tuple[str, float, str]] = []
    try:
        peers.wait_until(proc, ready, log, timeout=60)
        from stratus.object.ring.ring import Ring

        rings = node.ring_dir(cfg)
        cpart, cnodes = Ring(rings / "container.ring.gz").get_nodes("AUTH_bench", "box")
        for n in cnodes:
            httpx.put(f"{base['container']}/{n['device']}/{cpart}/AUTH_bench/box",
                      headers={"x-timestamp": f"{time.time():.5f}"})
        lua = PUT_LUA % {"device": "d1", "part": 0, "cport": ports["container"], "cdevice": cnodes[0]["device"],
                         "cpart": cpart}
        put = peers.wrk(base["object"], lua, args.duration, args.connections)
        rows.append(("object PUT 4 KiB (+ container row)", put["rate"], f"{put['errors']:.0f} errors"))
        small = "/d1/0/AUTH_bench/box/o10"  # (wrk's first generated request is never sent)
        # (HEAD is left out: wrk waits for a body after a HEAD answer's Content-Length.)
        result = peers.wrk(base["object"], READ_LUA % {"method": "GET", "path": small}, args.duration,
                           args.connections)
        rows.append(("object GET 4 KiB", result["rate"], f"{result['errors']:.0f} errors"))
        listing = f"/{cnodes[0]['device']}/{cpart}/AUTH_bench/box?format=json&limit=100"
        result = peers.wrk(base["container"], READ_LUA % {"method": "GET", "path": listing}, args.duration,
                           args.connections)
        rows.append(("container GET 100 rows (json)", result["rate"], f"{result['errors']:.0f} errors"))
        size = 256 * 1024 * 1024
        big = "/d1/0/AUTH_bench/box/big"
        with open(state / "big", "wb") as out:
            out.truncate(size)
        with open(state / "big", "rb") as data:
            started = time.perf_counter()
            httpx.put(base["object"] + big, content=data, timeout=300,
                      headers={"x-timestamp": f"{time.time():.5f}", "content-length": str(size)})
            rows.append(("object PUT 256 MiB", size / 2**20 / (time.perf_counter() - started), "MB/s"))
        started = time.perf_counter()
        with httpx.stream("GET", base["object"] + big, timeout=300) as response:
            got = sum(len(chunk) for chunk in response.iter_raw(1 << 20))
        assert got == size
        rows.append(("object GET 256 MiB", size / 2**20 / (time.perf_counter() - started), "MB/s"))
    finally:
        peers.stop(proc)
        shutil.rmtree(state, ignore_errors=True)
    print(f"{'operation':<38} {'rate':>10}")
    for name, rate, note in rows:
        print(f"{name:<38} {rate:>10.1f}  {note if note == 'MB/s' else 'ops/s, ' + note}")


if __name__ == "__main__":
    main()
