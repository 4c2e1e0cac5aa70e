"""Object storage benchmark: Stratus's Swift API against the real Swift from PyPI, same layout, same run.

Run:  .venv/bin/python bench/objstore.py [--duration 6] [--rounds 3] [--concurrency 16] [--large-mib 256]
      [--large-runs 3] [--only stratus|swift]

Both clusters get the same layout on this machine's disk (a temporary folder under `bench/`): three
devices, three replicas, part power 10, every server on loopback, TempAuth users. Swift 2.38.3 runs
SAIO-style from `bench/.peers/swift` (proxy, account, container and object servers with one worker
each, memcached for its caches); Stratus runs `stratus up` (proxy, storage nodes and the identity
service it needs in one process).
- small objects (4 KiB): PUT (new names), GET and HEAD with `wrk`, `--concurrency` keep-alive
  connections for `--duration` seconds after a 2 s warm-up; ops/s and p99 latency, the medians of
  `--rounds` rounds.
- large objects (`--large-mib`, default 256 MiB): PUTs streamed in 1 MiB writes with Content-Length
  and GETs read into a reused buffer, over a plain socket; the median MB/s (10^6 bytes/s) of
  `--large-runs` (default 3) of each.
Targets (issue 7): small-object ops/s at least 2x Swift's, large-object MB/s at least 1.2x.
The headline is `stratus up`, the configuration a user gets by default (its ratios close the report);
`stratus-split` (node and proxy as two processes) is printed beside it. All clusters run for the whole
benchmark and every figure is measured in rounds that take them in turn, so a busy spell of the
machine falls on all of them alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
STRATUS = BENCH_DIR.parent / ".venv" / "bin" / "stratus"
SWIFT_PINS = ["swift==2.38.3"]
SMALL = 4096
CHUNK = 1024 * 1024
PART_POWER = 10
# The proxy pipeline of a SAIO, less what Stratus lacks too (staticweb, symlink, domain remap...).
SWIFT_PIPELINE = ("catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk tempurl slo dlo "
                  "tempauth copy container-quotas account-quotas proxy-logging proxy-server")

_WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests": %d, "duration_us": %d, "status_errors": %d, '
    .. '"socket_errors": %d, "p99_us": %d}\\n', summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(99.0)))
end
"""


@dataclass
class Cluster:
    name: str
    storage_url: str
    token: str
    processes: list[subprocess.Popen] = field(default_factory=list)
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            peers.stop(proc)
        for step in self.cleanup:
            step()


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    def ready() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code < 500
        except httpx.HTTPError:
            return False

    peers.wait_until(proc, ready, log, timeout)


def _tempauth(url: str, user: str, key: str) -> tuple[str, str]:
    response = httpx.get(f"{url}/auth/v1.0", headers={"X-Auth-User": user, "X-Auth-Key": key}, timeout=30)
    response.raise_for_status()
    return response.headers["X-Storage-Url"], response.headers["X-Auth-Token"]


# -- Stratus ----------------------------------------------------------------------------------------
def _stratus_env(port: int) -> dict[str, str]:
    return {"STRATUS_IDENTITY__PORT": str(peers.free_port()), "STRATUS_IMAGE__PORT": str(peers.free_port()),
            "STRATUS_NETWORK__PORT": str(peers.free_port()), "STRATUS_COMPUTE__PORT": str(peers.free_port()),
            "STRATUS_COMPUTE__METADATA_PORT": str(peers.free_port()),
            "STRATUS_OBJECT__PORT": str(port), "STRATUS_OBJECT__ACCOUNT_PORT": str(peers.free_port()),
            "STRATUS_OBJECT__CONTAINER_PORT": str(peers.free_port()),
            "STRATUS_OBJECT__OBJECT_PORT": str(peers.free_port()),
            "STRATUS_OBJECT__PART_POWER": str(PART_POWER),
            "STRATUS_OBJECT__TEMPAUTH_USERS": "bench:tester:testing:.admin",
            "STRATUS_BOOTSTRAP__ADMIN_PASSWORD": "bench-Admin-pw1", "STRATUS_SERVER__LOG_LEVEL": "warning",
            "STRATUS_COMPUTE__DRIVER": "fake", "STRATUS_NETWORK__AGENT_DATAPLANE": "noop"}


def start_stratus(workdir: Path) -> Cluster:
    """`stratus up`: the proxy, the storage node and the other services in one process."""
    state = workdir / "stratus"
    state.mkdir()
    port = peers.free_port()
    log = state / "stratus-up.log"
    proc = peers.start([str(STRATUS), "up", "--state-dir", str(state)], log, env=_stratus_env(port), cwd=state)
    cluster = Cluster("stratus-up", "", "", [proc])
    _wait_http(f"http://127.0.0.1:{port}/healthcheck", proc, log)
    cluster.storage_url, cluster.token = _tempauth(f"http://127.0.0.1:{port}", "bench:tester", "testing")
    return cluster


def start_stratus_split(workdir: Path) -> Cluster:
    """The same layout as two processes, as Swift runs: `stratus serve object-node` (account,
    container and object servers) and `stratus serve object-proxy`."""
    state = workdir / "stratus"
    state.mkdir()
    port = peers.free_port()
    env = _stratus_env(port)
    python = STRATUS.parent / "python"
    subprocess.run([str(python), "-c", "import sys; from pathlib import Path; from stratus.core import config; "
                    "from stratus.object.node import ensure_local_cluster; "
                    "ensure_local_cluster(config.load(state_dir=Path(sys.argv[1])))", str(state)],
                   check=True, env={**os.environ, **env})
    subprocess.run([str(STRATUS), "bootstrap", "--state-dir", str(state)], check=True, capture_output=True,
                   env={**os.environ, **env})
    log = state / "stratus.log"
    cluster = Cluster("stratus-split", "", "")
    for role in ("object-node", "object-proxy"):
        cluster.processes.append(peers.start([str(STRATUS), "serve", "--state-dir", str(state), role], log,
                                             env=env, cwd=state))
    for kind in ("ACCOUNT", "CONTAINER", "OBJECT"):  # the proxy must not start writing before the node listens
        _wait_http(f"http://127.0.0.1:{env[f'STRATUS_OBJECT__{kind}_PORT']}/", cluster.processes[0], log)
    _wait_http(f"http://127.0.0.1:{port}/healthcheck", cluster.processes[-1], log)
    cluster.storage_url, cluster.token = _tempauth(f"http://127.0.0.1:{port}", "bench:tester", "testing")
    return cluster


# -- Swift --------------------------------------------------------------------------------------------
def _write(path: Path, text: str) -> None:
    path.write_text(text.strip() + "\n")


def _server_conf(swift_dir: Path, devices: Path, port: int, kind: str) -> str:
    return f"""
[DEFAULT]
devices = {devices}
mount_check = false
bind_ip = 127.0.0.1
bind_port = {port}
workers = 1
user = root
swift_dir = {swift_dir}
log_level = WARNING
log_name = {kind}-server

[pipeline:main]
pipeline = {kind}-server

[app:{kind}-server]
use = egg:swift#{kind}

[{kind}-replicator]
[{kind}-auditor]
[{kind}-updater]
"""


def start_swift(workdir: Path) -> Cluster:
    venv = peers.ensure_venv("swift", SWIFT_PINS)
    bin_dir = venv / "bin"
    swift_dir, devices = workdir / "swift", workdir / "swift" / "srv"
    swift_dir.mkdir()
    for dev in ("sdb1", "sdc1", "sdd1"):
        (devices / dev).mkdir(parents=True)
    ports = {kind: peers.free_port() for kind in ("proxy", "account", "container", "object", "memcached")}
    _write(swift_dir / "swift.conf", """
[swift-hash]
swift_hash_path_prefix = stratusbench
swift_hash_path_suffix = stratusbench
[storage-policy:0]
name = Policy-0
default = yes
""")
    for kind in ("account", "container", "object"):
        builder = str(swift_dir / f"{kind}.builder")
        run = [str(bin_dir / "swift-ring-builder"), builder]
        subprocess.run([*run, "create", str(PART_POWER), "3", "1"], check=True, capture_output=True)
        for zone, dev in enumerate(("sdb1", "sdc1", "sdd1"), start=1):
            subprocess.run([*run, "add", f"r1z{zone}-127.0.0.1:{ports[kind]}/{dev}", "100"], check=True,
                           capture_output=True)
        subprocess.run([*run, "rebalance"], capture_output=True)
        _write(swift_dir / f"{kind}-server.conf", _server_conf(swift_dir, devices, ports[kind], kind))
    _write(swift_dir / "proxy-server.conf", f"""
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {ports['proxy']}
workers = 1
user = root
swift_dir = {swift_dir}
log_level = WARNING

[pipeline:main]
pipeline = {SWIFT_PIPELINE}

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:tempauth]
use = egg:swift#tempauth
user_bench_tester = testing .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:{ports['memcached']}

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:bulk]
use = egg:swift#bulk
[filter:tempurl]
use = egg:swift#tempurl
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
[filter:copy]
use = egg:swift#copy
[filter:container-quotas]
use = egg:swift#container_quotas
[filter:account-quotas]
use = egg:swift#account_quotas
""")
    cluster = Cluster("swift", "", "")
    memcached = shutil.which("memcached") or sys.exit("bench: Swift needs memcached (apt-get install memcached)")
    log = swift_dir / "servers.log"
    cluster.processes.append(peers.start([memcached, "-l", "127.0.0.1", "-p", str(ports["memcached"]), "-U", "0",
                                          "-u", "root", "-m", "256"], log))
    for kind in ("account", "container", "object", "proxy"):
        proc = peers.start([str(bin_dir / f"swift-{kind}-server"), str(swift_dir / f"{kind}-server.conf")], log,
                           cwd=swift_dir)
        cluster.processes.append(proc)
    proxy_url = f"http://127.0.0.1:{ports['proxy']}"
    _wait_http(f"{proxy_url}/healthcheck", cluster.processes[-1], log)
    for kind in ("account", "container", "object"):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", ports[kind])) == 0:
                    break
            time.sleep(0.2)
    cluster.storage_url, cluster.token = _tempauth(proxy_url, "bench:tester", "testing")
    return cluster


# -- load -------------------------------------------------------------------------------------------
def _wrk(url: str, lua: str, duration: float, connections: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(lua + _WRK_DONE)
        script.flush()
        result: dict[str, float] = {}
        for seconds in (2.0, duration):
            cmd = [peers.ensure_wrk(), "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
                   "-s", script.name, url]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
            counts = json.loads(line.removeprefix("WRKJSON "))
            ok = counts["requests"] - counts["status_errors"]
            result = {"rate": ok / (counts["duration_us"] / 1e6), "p99_ms": counts["p99_us"] / 1000,
                      "errors": counts["status_errors"] + counts["socket_errors"]}
    return result


def _lua(method: str, path: str, token: str, names: int | None) -> str:
    """A wrk script: PUT to new names (a counter), or GET/HEAD over `names` existing objects."""
    body = "string.rep('x', 4096)" if method == "PUT" else "nil"
    pick = "counter" if names is None else f"(counter % {names})"
    return f"""
counter = 0
local body = {body}
local headers = {{["X-Auth-Token"] = "{token}"}}
if body then headers["Content-Type"] = "application/octet-stream" end
request = function()
  counter = counter + 1
  return wrk.format("{method}", "{path}/o" .. {pick}, headers, body)
end
"""


SMALL_NAMES = 200  # objects the GET and HEAD loads read


def prepare_small(cluster: Cluster) -> None:
    container = f"{cluster.storage_url}/small"
    headers = {"X-Auth-Token": cluster.token}
    httpx.put(container, headers=headers, timeout=30).raise_for_status()
    with httpx.Client(headers=headers, timeout=30) as http:
        for index in range(SMALL_NAMES):
            http.put(f"{container}/o{index}", content=b"x" * SMALL).raise_for_status()


def small_load(cluster: Cluster, method: str, round_: int, duration: float, concurrency: int) -> dict[str, float]:
    """One method's load for `duration` seconds; PUTs go to names no earlier round used."""
    container = f"{cluster.storage_url}/small"
    path = urlsplit(container).path
    if method == "HEAD":
        # wrk waits for a body after a HEAD answer that has a Content-Length: HEAD gets its own loop.
        return asyncio.run(_head_load(container, cluster.token, SMALL_NAMES, duration, concurrency))
    lua = _lua(method, f"{path}/new{round_}" if method == "PUT" else path, cluster.token,
               None if method == "PUT" else SMALL_NAMES)
    return _wrk(container, lua, duration, concurrency)


def _median_load(samples: list[dict[str, float]]) -> dict[str, float]:
    return {"rate": statistics.median(s["rate"] for s in samples),
            "p99_ms": statistics.median(s["p99_ms"] for s in samples),
            "errors": sum(s["errors"] for s in samples)}


async def _head_load(container: str, token: str, names: int, duration: float,
                     connections: int) -> dict[str, float]:
    """HEAD requests over `connections` keep-alive sockets (raw asyncio: it costs far less than the
    servers measured); 2 s of warm-up, then `duration` seconds measured."""
    url = urlsplit(container)
    latencies: list[float] = []
    errors = 0
    counter = 0

    async def one(until: float, record: bool) -> None:
        nonlocal errors, counter
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        try:
            while time.perf_counter() < until:
                counter += 1
                request = (f"HEAD {url.path}/o{counter % names} HTTP/1.1\r\nHost: {url.netloc}\r\n"
                           f"X-Auth-Token: {token}\r\n\r\n").encode()
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                if record:
                    latencies.append(time.perf_counter() - started)
                    if not head.startswith(b"HTTP/1.1 2"):
                        errors += 1
        finally:
            writer.close()

    for seconds, record in ((2.0, False), (duration, True)):
        until = time.perf_counter() + seconds
        started = time.perf_counter()
        await asyncio.gather(*(one(until, record) for _ in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    ok = len(latencies) - errors
    p99 = latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0.0
    return {"rate": ok / elapsed, "p99_ms": p99, "errors": errors}


def _request_head(sock: socket.socket) -> tuple[int, int]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return status, length - len(rest)


def _large_put(cluster: Cluster, url: SplitResult, size: int) -> float:
    block = os.urandom(CHUNK)
    with socket.create_connection((url.hostname, url.port)) as sock:
        started = time.perf_counter()
        sock.sendall(f"PUT {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nX-Auth-Token: {cluster.token}\r\n"
                     f"Content-Length: {size}\r\nContent-Type: application/octet-stream\r\n\r\n".encode())
        for offset in range(0, size, CHUNK):
            sock.sendall(block[:min(CHUNK, size - offset)])
        status, _ = _request_head(sock)
        seconds = time.perf_counter() - started
    if status != 201:
        raise RuntimeError(f"{cluster.name}: large PUT answered {status}")
    return seconds


def _large_get(cluster: Cluster, url: SplitResult, size: int) -> float:
    buffer = bytearray(CHUNK)
    with socket.create_connection((url.hostname, url.port)) as sock:
        started = time.perf_counter()
        sock.sendall(f"GET {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nX-Auth-Token: {cluster.token}\r\n\r\n".encode())
        status, left = _request_head(sock)
        while left > 0:
            got = sock.recv_into(buffer, min(CHUNK, left))
            if not got:
                break
            left -= got
        seconds = time.perf_counter() - started
    if status != 200 or left:
        raise RuntimeError(f"{cluster.name}: large GET answered {status}, {left} bytes missing")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--large-mib", type=int, default=256)
    parser.add_argument("--large-runs", type=int, default=3)
    parser.add_argument("--only", choices=("stratus", "stratus-up", "stratus-split", "swift"))
    args = parser.parse_args()
    load = os.getloadavg()[0]
    clusters: list[Cluster] = []
    with tempfile.TemporaryDirectory(dir=BENCH_DIR, prefix=".bench-objstore-") as tmp:
        try:
            for name, start in (("stratus-up", start_stratus), ("stratus-split", start_stratus_split),
                                ("swift", start_swift)):
                if args.only and not name.startswith(args.only):
                    continue
                workdir = Path(tmp) / name
                workdir.mkdir()
                print(f"{name}: starting", flush=True)
                try:
                    clusters.append(start(workdir))
                except (peers.ServerFailed, subprocess.CalledProcessError, httpx.HTTPError) as exc:
                    print(f"{name}: could not start: {exc}", flush=True)
            results = measure(clusters, args)
        finally:
            for cluster in clusters:
                cluster.stop()
    report(results, args, load)


def measure(clusters: list[Cluster], args: argparse.Namespace) -> dict[str, dict[str, object]]:
    """Every figure in rounds that take the clusters in turn, so that a busy spell of the machine
    falls on all of them rather than on whichever ran then; medians over the rounds."""
    for cluster in clusters:
        prepare_small(cluster)
    small: dict[str, dict[str, list[dict[str, float]]]] = {c.name: {"PUT": [], "GET": [], "HEAD": []} for c in clusters}
    for round_ in range(args.rounds):
        for method in ("PUT", "GET", "HEAD"):
            for cluster in clusters:
                small[cluster.name][method].append(small_load(cluster, method, round_, args.duration,
                                                              args.concurrency))
        print(f"small objects: round {round_ + 1} of {args.rounds} done", flush=True)
    large: dict[str, dict[str, list[float]]] = {c.name: {"put": [], "get": []} for c in clusters}
    size = args.large_mib * CHUNK
    for run in range(args.large_runs):
        for cluster in clusters:
            if run == 0:
                httpx.put(f"{cluster.storage_url}/large", headers={"X-Auth-Token": cluster.token},
                          timeout=30).raise_for_status()
            url = urlsplit(f"{cluster.storage_url}/large/big{run}")
            large[cluster.name]["put"].append(size / _large_put(cluster, url, size) / 1e6)
            large[cluster.name]["get"].append(size / _large_get(cluster, url, size) / 1e6)
        print(f"large objects: run {run + 1} of {args.large_runs} done", flush=True)
    return {c.name: {"small": {m: _median_load(v) for m, v in small[c.name].items()},
                     "large": {k: statistics.median(v) for k, v in large[c.name].items()}} for c in clusters}


def report(results: dict[str, dict[str, object]], args: argparse.Namespace, load: float) -> None:
    print(f"\nobject storage, 3 replicas, 4 KiB objects at concurrency {args.concurrency}, {args.rounds} rounds of "
          f"{args.duration:.0f} s per method; {args.large_mib} MiB objects, {args.large_runs} runs (medians; load "
          f"average at start {load:.2f})")
    print("stratus-up: `stratus up`, one process; stratus-split: storage node and proxy as two processes")
    print(f"{'figure':<20}{'swift':>10}{'stratus-up':>12}{'ratio':>8}{'stratus-split':>15}{'ratio':>8}")
    rows = []
    for method in ("PUT", "GET", "HEAD"):
        rows.append((f"small {method} ops/s", lambda r, m=method: r["small"][m]["rate"], 2.0))
        rows.append((f"small {method} p99 ms", lambda r, m=method: r["small"][m]["p99_ms"], None))
    rows += [("large PUT MB/s", lambda r: r["large"]["put"], 1.2), ("large GET MB/s", lambda r: r["large"]["get"], 1.2)]
    below = []
    for label, pick, target in rows:
        swift = pick(results["swift"]) if "swift" in results else None
        line = f"{label:<20}" + (f"{swift:>10.1f}" if swift is not None else f"{'-':>10}")
        for name, width in (("stratus-up", 12), ("stratus-split", 15)):
            value = pick(results[name]) if name in results else None
            line += f"{value:>{width}.1f}" if value is not None else f"{'-':>{width}}"
            if value is not None and swift:
                ratio = value / swift
                line += f"{ratio:>7.2f}x"
                if target is not None and ratio < target:
                    below.append(f"{name} {label} ({ratio:.2f}x, target {target}x)")
            else:
                line += f"{'':>8}"
        print(line)
    for name, result in results.items():
        errors = sum(v["errors"] for v in result["small"].values())  # type: ignore[attr-defined]
        if errors:
            print(f"FLAGGED: {name} answered {errors:.0f} requests with errors")
    if below:
        print("below target: " + "; ".join(below))
    if "swift" in results and "stratus-up" in results:
        # The headline: `stratus up` is the configuration a user gets by default.
        ratios = []
        for label, pick, target in rows:
            if target is not None and pick(results["swift"]):
                name = label.removesuffix(" ops/s").removesuffix(" MB/s")
                ratios.append(f"{name} {pick(results['stratus-up']) / pick(results['swift']):.2f}x")
        print("headline (stratus up / swift): " + ", ".join(ratios))


if __name__ == "__main__":
    main()
