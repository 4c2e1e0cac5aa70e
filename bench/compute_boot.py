"""The boot section of bench/compute.py: a real `stratus up` (fake driver, many fake hosts) boots
servers through the public API at a fixed concurrency, and we time each server from POST to ACTIVE.

Every server goes the whole way: API checks and quota, conductor, scheduler claim, a port made in
the network service, the host's agent. At the end the hypervisors API must show no host over its
allocation ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import peers

PASSWORD = "bench-Admin-pw1"
LATEST = {"OpenStack-API-Version": "compute 2.53"}


def _start(tmp: Path, hosts: int) -> tuple[object, dict[str, str]]:
    env = peers.stratus_env(BOOTSTRAP__ADMIN_PASSWORD=PASSWORD, IDENTITY__BCRYPT_ROUNDS="4",
                            COMPUTE__FAKE_HOSTS=str(hosts), COMPUTE__QUOTA_INSTANCES="-1", COMPUTE__QUOTA_CORES="-1",
                            COMPUTE__QUOTA_RAM="-1", NETWORK__QUOTA_PORT="-1", SERVER__LOG_LEVEL="warning")
    log = tmp / "stratus.log"
    stratus = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "stratus"
    proc = peers.start([str(stratus), "up", "--state-dir", str(tmp / "state")], log, env)
    peers.wait_until(proc, lambda: "stratus: ready" in log.read_text(errors="replace"), log, timeout=300)
    urls = {name: f"http://127.0.0.1:{peers.port_of(env, listener)}"
            for name, listener in (("identity", "IDENTITY__PORT"), ("image", "IMAGE__PORT"),
                                   ("network", "NETWORK__PORT"), ("compute", "COMPUTE__PORT"))}
    return proc, urls


def boot_section(args: argparse.Namespace) -> None:
    hosts, count, concurrency = args.boot_hosts, args.servers, args.concurrency
    print(f"\nboot: {count} servers at concurrency {concurrency} on {hosts} fake hosts (stratus up)", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-compute-") as scratch:
        proc, urls = _start(Path(scratch), hosts)
        try:
            _run(urls, hosts, count, concurrency, getattr(proc, "pid", None))
        finally:
            peers.stop(proc)  # type: ignore[arg-type]


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of process `pid` so far (Linux /proc), None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError, TypeError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run(urls: dict[str, str], hosts: int, count: int, concurrency: int, pid: int | None = None) -> None:
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
    cpu_started = _cpu_seconds(pid)
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
    cpu_finished = _cpu_seconds(pid)
    elapsed = max(active.values(), default=started) - started
    times = sorted(active[i] - posted[i] for i in posted if i in active)
    print(f"  {len(active)}/{count} ACTIVE in {elapsed:.1f} s: {len(active) / elapsed:.1f} servers/s to ACTIVE")
    if times:
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(f"  time to ACTIVE: p50 {statistics.median(times):.2f} s, p99 {p99:.2f} s "
              "(the watcher polls every 0.5 s plus a list call)")
    if cpu_started is not None and cpu_finished is not None and active:
        # The whole cloud's CPU (API, network, conductor, agents, and the watcher's lists) per server.
        cpu = cpu_finished - cpu_started
        print(f"  stratus up CPU: {cpu:.1f} s over {time.monotonic() - started:.1f} s, "
              f"{cpu / len(active) * 1000:.1f} ms per server")
    hypervisors = http.get(f"{urls['compute']}/v2.1/os-hypervisors/detail").json()["hypervisors"]
    over = [h["hypervisor_hostname"] for h in hypervisors
            if h["vcpus_used"] > h["vcpus"] * 16 or h["memory_mb_used"] > h["memory_mb"] * 1.5]
    print(f"  hosts over their allocation ratios: {len(over)}; servers in ERROR or refused: {len(errors)}")
    for line in errors[:5]:
        print(f"    {line}")
