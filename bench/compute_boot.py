"""The boot section of bench/compute.py: a real cloud (fake driver, many fake hosts) boots servers
through the public API at a fixed concurrency, and we time each server from POST to ACTIVE.

Every server goes the whole way: API checks and quota, conductor, scheduler claim, a port made in
the network service, the host's agent. At the end the hypervisors API must show no host over its
allocation ratios.

Two deployments (`--deployment`):
- `up`: one `stratus up` process on SQLite and the in-process bus (the default).
- `split`: the production shape on this one machine, each group of roles in a process of its own
  (`stratus serve api`, then `stratus serve conductor compute network-agent`) sharing a new
  PostgreSQL database on 127.0.0.1:5432 and RabbitMQ on 127.0.0.1:5672. The figure to read there
  is the CPU per server of every process, the database and the broker included: it says what the
  boot rate can be on a machine with more cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import peers
import sqlalchemy as sa

PASSWORD = "bench-Admin-pw1"
LATEST = {"OpenStack-API-Version": "compute 2.53"}
STRATUS = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "stratus"
POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"
SPLIT_ROLES = (("api",), ("conductor", "compute", "network-agent"))
# The servers the split deployment leans on, by process name, for their share of the CPU.
BACKEND_PROCESSES = {"postgres": "PostgreSQL", "beam.smp": "RabbitMQ"}


def _env(hosts: int, **settings: str) -> dict[str, str]:
    return peers.stratus_env(BOOTSTRAP__ADMIN_PASSWORD=PASSWORD, IDENTITY__BCRYPT_ROUNDS="4",
                             COMPUTE__FAKE_HOSTS=str(hosts), COMPUTE__QUOTA_INSTANCES="-1", COMPUTE__QUOTA_CORES="-1",
                             COMPUTE__QUOTA_RAM="-1", NETWORK__QUOTA_PORT="-1", SERVER__LOG_LEVEL="warning",
                             **settings)


def _serve(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    proc = peers.start([str(STRATUS), *args], log, env)
    try:
        peers.wait_until(proc, lambda: "stratus: ready" in log.read_text(errors="replace"), log, timeout=300)
    except BaseException:
        peers.stop(proc)
        raise
    return proc


@contextmanager
def _postgres_database() -> Iterator[str]:
    """A new database on the local PostgreSQL server, dropped afterwards."""
    name = f"stratus_bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_SERVER + "postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError as exc:
        raise SystemExit(f"the split deployment needs PostgreSQL on 127.0.0.1:5432: {exc}") from None
    try:
        yield POSTGRES_SERVER + name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@contextmanager
def _cloud(tmp: Path, hosts: int, deployment: str) -> Iterator[tuple[dict[str, subprocess.Popen], dict[str, str]]]:
    """The cloud's processes by name, and its API URLs; everything started is stopped afterwards
    (the processes before their database is dropped)."""
    procs: dict[str, subprocess.Popen] = {}
    state = ["--state-dir", str(tmp / "state")]
    with ExitStack() as started:
        if deployment == "up":
            env = _env(hosts)
            procs["stratus up"] = _serve(["up", *state], tmp / "stratus.log", env)
            started.callback(peers.stop, procs["stratus up"])
            yield procs, _urls(env)
            return
        database = started.enter_context(_postgres_database())
        env = _env(hosts, DATABASE__URL=database, BUS__URL=RABBITMQ_URL)
        # The schema and the admin first, so that the role processes do not race to make them.
        for step in (["db", "upgrade"], ["bootstrap"]):
            done = subprocess.run([str(STRATUS), *step, *state], env={**os.environ, **env},
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"stratus {' '.join(step)} failed:\n{done.stdout}{done.stderr}")
        for roles in SPLIT_ROLES:
            name = f"stratus serve {' '.join(roles)}"
            procs[name] = _serve(["serve", *state, *roles], tmp / f"{roles[0]}.log", env)
            started.callback(peers.stop, procs[name])
        yield procs, _urls(env)


def _urls(env: dict[str, str]) -> dict[str, str]:
    return {name: f"http://127.0.0.1:{peers.port_of(env, listener)}"
            for name, listener in (("identity", "IDENTITY__PORT"), ("image", "IMAGE__PORT"),
                                   ("network", "NETWORK__PORT"), ("compute", "COMPUTE__PORT"))}


def boot_section(args: argparse.Namespace) -> None:
    hosts, count, concurrency = args.boot_hosts, args.servers, args.concurrency
    shape = "stratus up" if args.deployment == "up" else "split: " + " + ".join(
        " ".join(roles) for roles in SPLIT_ROLES) + " on PostgreSQL and RabbitMQ"
    print(f"\nboot: {count} servers at concurrency {concurrency} on {hosts} fake hosts ({shape})", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-compute-") as scratch, \
            _cloud(Path(scratch), hosts, args.deployment) as (procs, urls):
        _run(urls, hosts, count, concurrency, {name: proc.pid for name, proc in procs.items()},
             backends=args.deployment == "split")


def _cpu_seconds(pid: int, children: bool = False) -> float | None:
    """User + system CPU time of process `pid` so far (with its reaped children's, if asked; Linux
    /proc), None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = sum(int(field) for field in fields[11:15 if children else 13])
    return ticks / os.sysconf("SC_CLK_TCK")


def _cpu(pids: dict[str, int], backends: bool) -> dict[str, float]:
    """CPU seconds so far of each named process and, with `backends`, of all the database's and the
    broker's processes together (their exited children, a closed connection's backend, included)."""
    seconds = {name: _cpu_seconds(pid) or 0.0 for name, pid in pids.items()}
    if backends:
        for entry in Path("/proc").iterdir():
            try:
                label = BACKEND_PROCESSES.get((entry / "comm").read_text().strip()) if entry.name.isdigit() else None
            except OSError:
                continue
            if label is not None:
                seconds[label] = seconds.get(label, 0.0) + (_cpu_seconds(int(entry.name), children=True) or 0.0)
    return seconds


def _machine_busy() -> tuple[float, float]:
    """CPU seconds this machine's cores were busy and in all, so far (/proc/stat)."""
    with open("/proc/stat") as stat:
        ticks = [int(field) for field in stat.readline().split()[1:9]]
    idle = ticks[3] + ticks[4]  # idle and iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


def _run(urls: dict[str, str], hosts: int, count: int, concurrency: int, pids: dict[str, int],
         backends: bool = False) -> None:
    token = peers.admin_token(f"{urls['identity']}/v3", PASSWORD)
    headers = {"X-Auth-Token": token, **LATEST}
    http = httpx.Client(headers=headers, timeout=120)
    image = http.post(f"{urls['image']}/v2/images", json={"name": "bench", "disk_format": "raw",
                                                          "container_format": "bare", "visibility": "public"}).json()
    http.put(f"{urls['image']}/v2/images/{image['id']}/file", content=bytes(4096),
             headers={"Content-Type": "application/octet-stream"}).raise_for_status()
    net = http.post(f"{urls['network']}/v2.0/networks", json={"network": {"name": "bench"}}).json()["network"]
    http.post(f"{urls['network']}/v2.0/subnets", json={"subnet": {
        "network_id": net["id"], "cidr": "10.128.0.0/16", "ip_version": 4}}).raise_for_status()
    # Every host must have reported before the clock starts.
    deadline = time.monotonic() + 120
    while len(http.get(f"{urls['compute']}/v2.1/os-hypervisors").json()["hypervisors"]) < hosts:
        if time.monotonic() > deadline:
            raise SystemExit("the fake hosts did not all report within 120 s")
        time.sleep(0.5)
    body = {"server": {"name": "b", "imageRef": image["id"], "flavorRef": "1", "networks": [{"uuid": net["id"]}]}}
    posted: dict[str, float] = {}
    active: dict[str, float] = {}
    errors: list[str] = []
    lock = threading.Lock()

    def post(_index: int) -> None:
        started = time.monotonic()
        response = http.post(f"{urls['compute']}/v2.1/servers", json=body)
        if response.status_code != 202:
            with lock:
                errors.append(response.text[:200])
            return
        with lock:
            posted[response.json()["server"]["id"]] = started

    started = time.monotonic()
    cpu_started, machine_started = _cpu(pids, backends), _machine_busy()
    done_posting = threading.Event()

    def watch() -> None:
        while True:
            # The summary list (no addresses, no flavors) keeps the watcher's own load small.
            listing = http.get(f"{urls['compute']}/v2.1/servers", params={"status": "ACTIVE"}).json()
            now = time.monotonic()
            for server in listing["servers"]:
                active.setdefault(server["id"], now)
            failed = http.get(f"{urls['compute']}/v2.1/servers/detail", params={"status": "ERROR"}).json()["servers"]
            for server in failed:
                line = f"ERROR {server['id']}: {server.get('fault', {}).get('message', '')[:300]}"
                if line not in errors:
                    errors.append(line)
            if done_posting.is_set() and len(active) + len(failed) >= len(posted):
                return
            if now - started > 900:
                errors.append("timed out waiting for ACTIVE")
                return
            time.sleep(0.5)

    watcher = threading.Thread(target=watch)
    watcher.start()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(post, range(count)))
    done_posting.set()
    watcher.join()
    cpu_finished, machine_finished = _cpu(pids, backends), _machine_busy()
    elapsed = max(active.values(), default=started) - started
    times = sorted(active[i] - posted[i] for i in posted if i in active)
    print(f"  {len(active)}/{count} ACTIVE in {elapsed:.1f} s: {len(active) / elapsed:.1f} servers/s to ACTIVE")
    if times:
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(f"  time to ACTIVE: p50 {statistics.median(times):.2f} s, p99 {p99:.2f} s "
              "(the watcher polls every 0.5 s plus a list call)")
    wall = time.monotonic() - started
    if active:
        # The cloud's CPU (API, network, conductor, agents, and the watcher's lists) per server.
        used = {name: cpu_finished[name] - cpu_started.get(name, 0.0) for name in cpu_finished}
        for name, seconds in used.items():
            print(f"  {name} CPU: {seconds:.1f} s over {wall:.1f} s, {seconds / len(active) * 1000:.1f} ms per server")
        if len(used) > 1:
            total = sum(used.values())
            print(f"  all of them: {total / len(active) * 1000:.1f} ms of CPU per server")
        busy, overall = (finished - begun for finished, begun in zip(machine_finished, machine_started, strict=True))
        print(f"  the machine's {os.cpu_count()} cores were busy {busy / overall:.0%} of the time "
              "(this benchmark's client included)")
    hypervisors = http.get(f"{urls['compute']}/v2.1/os-hypervisors/detail").json()["hypervisors"]
    over = [h["hypervisor_hostname"] for h in hypervisors
            if h["vcpus_used"] > h["vcpus"] * 16 or h["memory_mb_used"] > h["memory_mb"] * 1.5]
    print(f"  hosts over their allocation ratios: {len(over)}; servers in ERROR or refused: {len(errors)}")
    for line in errors[:5]:
        print(f"    {line}")
