"""Networking control-plane benchmark: port creation rate and port list latency at 10,000 ports.

Run:  .venv/bin/python bench/network.py [--ports 10000] [--concurrency 8] [--dir DIR]

One `stratus up` (free ports, SQLite in a temporary state dir under DIR, default `bench/`). As the
admin: one network with a /16 subnet, then ports created through the API (POST /v2.0/ports, each
with its own device_id, so IPAM picks an address and a MAC for every one):
- create rate: the first 1,000 ports, one client, then the next 1,000 with `--concurrency` clients
  (keep-alive connections, one thread each), then on to `--ports` in total, whose last 1,000 give
  the rate when the subnet already holds most addresses;
- list latency at `--ports` ports (median and max of 7 calls): by a filter that matches one port
  (`device_id`), the whole network with `fields=id`, and the whole network with every field.
No peer runs beside it: Neutron cannot be installed from PyPI as a runnable server here.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402

STRATUS = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "stratus"


class Cloud:
    """A running `stratus up` and an admin token for its network API."""

    def __init__(self, state: Path, log: Path) -> None:
        password = secrets.token_urlsafe(12)
        env = peers.stratus_env(NETWORK__QUOTA_PORT="-1", BOOTSTRAP__ADMIN_PASSWORD=password,
                                IDENTITY__BCRYPT_ROUNDS="4", SERVER__LOG_LEVEL="warning")
        identity_port, network_port = peers.port_of(env, "IDENTITY__PORT"), peers.port_of(env, "NETWORK__PORT")
        self.proc = peers.start([str(STRATUS), "up", "--state-dir", str(state)], log, env)
        peers.wait_until(self.proc, lambda: "stratus: ready" in log.read_text(errors="replace"), log, timeout=180)
        self.url = f"http://127.0.0.1:{network_port}"
        self.headers = {"X-Auth-Token": peers.admin_token(f"http://127.0.0.1:{identity_port}/v3", password)}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=120)


def checked(response: httpx.Response) -> httpx.Response:
    if response.is_error:
        raise peers.ServerFailed(f"{response.request.method} {response.request.url}: "
                                 f"{response.status_code} {response.text[:300]}")
    return response


def create_ports(cloud: Cloud, network_id: str, first: int, count: int, concurrency: int) -> float:
    """Create ports `first`..`first+count-1` with `concurrency` clients; ports per second."""
    numbers = iter(range(first, first + count))
    lock, failures = threading.Lock(), []

    def worker() -> None:
        with cloud.client() as client:
            while True:
                with lock:
                    number = next(numbers, None)
                if number is None:
                    return
                try:
                    checked(client.post("/v2.0/ports", json={"port": {
                        "network_id": network_id, "device_id": f"vm-{number}", "name": f"port-{number}"}}))
                except Exception as exc:  # noqa: BLE001 (reported below)
                    failures.append(exc)
                    return

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise failures[0]
    return count / elapsed


def latency(client: httpx.Client, path: str, expect: int, runs: int = 7) -> tuple[float, float]:
    """Median and max seconds of GET `path`, whose list must hold `expect` ports."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        ports = checked(client.get(path)).json()["ports"]
        times.append(time.perf_counter() - started)
        if len(ports) != expect:
            raise peers.ServerFailed(f"GET {path} listed {len(ports)} ports, expected {expect}")
    return statistics.median(times), max(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ports", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--dir", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    if args.ports < 3000:
        parser.error("--ports must be at least 3000 (three batches of 1,000)")
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="network-bench-") as tmp:
        cloud = Cloud(Path(tmp) / "state", Path(tmp) / "stratus.log")
        try:
            with cloud.client() as client:
                network_id = checked(client.post("/v2.0/networks", json={"network": {"name": "bench"}})) \
                    .json()["network"]["id"]
                checked(client.post("/v2.0/subnets", json={"subnet": {
                    "network_id": network_id, "ip_version": 4, "cidr": "10.20.0.0/16", "name": "bench"}}))
                serial = create_ports(cloud, network_id, 0, 1000, 1)
                parallel = create_ports(cloud, network_id, 1000, 1000, args.concurrency)
                create_ports(cloud, network_id, 2000, args.ports - 3000, args.concurrency)
                full = create_ports(cloud, network_id, args.ports - 1000, 1000, args.concurrency)
                one = latency(client, f"/v2.0/ports?device_id=vm-{args.ports // 2}", 1)
                ids = latency(client, f"/v2.0/ports?network_id={network_id}&device_owner=&fields=id", args.ports)
                whole = latency(client, f"/v2.0/ports?network_id={network_id}&device_owner=", args.ports)
        finally:
            peers.stop(cloud.proc)
    print(f"network benchmark: {args.ports} ports on one /16 network (SQLite, stratus up, admin)")
    print(f"  create ports, 1 client, first 1,000          {serial:8.1f} ports/s")
    print(f"  create ports, {args.concurrency} clients, 1,000-2,000        {parallel:8.1f} ports/s")
    print(f"  create ports, {args.concurrency} clients, last 1,000         {full:8.1f} ports/s")
    print(f"  list at {args.ports} ports (median / max of 7):")
    print(f"    ?device_id=... (1 port)                {one[0] * 1000:8.1f} / {one[1] * 1000:.1f} ms")
    print(f"    ?network_id=...&fields=id (all)        {ids[0] * 1000:8.1f} / {ids[1] * 1000:.1f} ms")
    print(f"    ?network_id=... (all, every field)     {whole[0] * 1000:8.1f} / {whole[1] * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
