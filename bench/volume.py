"""Block storage benchmark: volumes created per second, and sequential MB/s of a volume's backing file.

Run:  .venv/bin/python bench/volume.py [--volumes 50] [--concurrency 4] [--mib 1024] [--dir DIR] [--no-guest]

One `stratus up` (free ports, SQLite and the file backend in a temporary state dir under DIR,
default `bench/`). As the admin, through the API (POST /v3/volumes, then polling the list until
every volume is `available`):
- empty 1 GiB volumes (sparse raw files made by `qemu-img create`), `--volumes` of them with
  `--concurrency` clients: volumes per second from the first POST to the last `available`;
- then the same number deleted (until every one is gone): deletes per second.
Then the host side of the data path: sequential write then read of `--mib` MiB on one volume's
backing file with O_DIRECT (`dd`, 1 MiB blocks), as a guest would see through a raw file.
Then the guest side (volume_guest.py, needs root and QEMU; `--no-guest` leaves it out): a second
`stratus up` with real VMs boots one `stratus-guest` server, attaches a volume of the same size, and
the server's user_data runs the same dd (busybox, O_DIRECT) on /dev/vdb and prints the figures on
the console, read back through os-getConsoleOutput; printed next to the host's, with the ratio.
"""

from __future__ import annotations

import argparse
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402
import volume_guest  # noqa: E402

STRATUS = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "stratus"
VERSION = {"OpenStack-API-Version": "volume 3.70"}


class Cloud:
    """A running `stratus up` and an admin token for its block storage API."""

    def __init__(self, state: Path, log: Path) -> None:
        password = secrets.token_urlsafe(12)
        env = peers.stratus_env(VOLUME__QUOTA_VOLUMES="-1", VOLUME__QUOTA_GIGABYTES="-1",
                                BOOTSTRAP__ADMIN_PASSWORD=password, IDENTITY__BCRYPT_ROUNDS="4",
                                SERVER__LOG_LEVEL="warning", VOLUME__HOST="bench-storage")
        identity_port, volume_port = peers.port_of(env, "IDENTITY__PORT"), peers.port_of(env, "VOLUME__PORT")
        self.state = state
        self.proc = peers.start([str(STRATUS), "up", "--state-dir", str(state)], log, env)
        peers.wait_until(self.proc, lambda: "stratus: ready" in log.read_text(errors="replace"), log, timeout=180)
        self.url = f"http://127.0.0.1:{volume_port}/v3"
        self.headers = {"X-Auth-Token": peers.admin_token(f"http://127.0.0.1:{identity_port}/v3", password), **VERSION}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=120)


def checked(response: httpx.Response) -> httpx.Response:
    if response.is_error:
        raise peers.ServerFailed(f"{response.request.method} {response.request.url}: "
                                 f"{response.status_code} {response.text[:300]}")
    return response


def statuses(client: httpx.Client) -> dict[str, str]:
    volumes = checked(client.get("/volumes/detail", params={"limit": 1000})).json()["volumes"]
    return {v["id"]: v["status"] for v in volumes}


def in_parallel(count: int, concurrency: int, work: object) -> None:
    numbers = iter(range(count))
    lock, failures = threading.Lock(), []

    def worker() -> None:
        with cloud_client() as client:
            while True:
                with lock:
                    number = next(numbers, None)
                if number is None:
                    return
                try:
                    work(client, number)  # type: ignore[operator]
                except Exception as exc:  # noqa: BLE001 (reported below)
                    failures.append(exc)
                    return

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


_CLOUD: Cloud | None = None


def cloud_client() -> httpx.Client:
    assert _CLOUD is not None
    return _CLOUD.client()


def create_rate(cloud: Cloud, count: int, concurrency: int) -> tuple[float, list[str]]:
    ids: list[str] = []
    start = time.perf_counter()

    def create(client: httpx.Client, number: int) -> None:
        made = checked(client.post("/volumes", json={"volume": {"size": 1, "name": f"bench-{number}"}}))
        ids.append(made.json()["volume"]["id"])

    in_parallel(count, concurrency, create)
    with cloud.client() as client:
        while True:
            current = statuses(client)
            failed = [i for i in ids if current.get(i) == "error"]
            if failed:
                raise peers.ServerFailed(f"{len(failed)} volumes ended in error")
            if all(current.get(i) == "available" for i in ids):
                break
            time.sleep(0.05)
    return count / (time.perf_counter() - start), ids


def delete_rate(cloud: Cloud, ids: list[str], concurrency: int) -> float:
    start = time.perf_counter()
    in_parallel(len(ids), concurrency, lambda client, n: checked(client.delete(f"/volumes/{ids[n]}")))
    with cloud.client() as client:
        while set(ids) & set(statuses(client)):
            time.sleep(0.05)
    return len(ids) / (time.perf_counter() - start)


def dd_rate(args: list[str]) -> float:
    """MB/s of one dd run: the bytes it reports copied over the wall time it took."""
    start = time.perf_counter()
    done = subprocess.run(["dd", *args, "bs=1M"], capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - start
    match = re.search(r"(\d+) bytes", done.stderr)
    size = int(match.group(1)) if match else 0
    return size / elapsed / 1e6


def backing_file_rates(cloud: Cloud, mib: int) -> tuple[float, float]:
    """Sequential O_DIRECT write then read of `mib` MiB on a new volume's backing file."""
    with cloud.client() as client:
        size_gib = max(1, -(-mib // 1024))
        made = checked(client.post("/volumes", json={"volume": {"size": size_gib, "name": "bench-dd"}})).json()
        volume_id = made["volume"]["id"]
        while statuses(client).get(volume_id) != "available":
            time.sleep(0.05)
    path = cloud.state / "volumes" / f"volume-{volume_id}"
    write = dd_rate(["if=/dev/zero", f"of={path}", f"count={mib}", "oflag=direct", "conv=notrunc,fsync"])
    read = dd_rate([f"if={path}", "of=/dev/null", f"count={mib}", "iflag=direct"])
    with cloud.client() as client:
        checked(client.delete(f"/volumes/{volume_id}"))
    return write, read


def main() -> int:
    global _CLOUD
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--volumes", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--dir", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--no-guest", action="store_true", help="leave out the in-guest measurement")
    args = parser.parse_args()
    if not args.no_guest:
        volume_guest.check_host()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix=".bench-volume-") as tmp:
        cloud = _CLOUD = Cloud(Path(tmp) / "state", Path(tmp) / "stratus.log")
        try:
            rate, ids = create_rate(cloud, args.volumes, args.concurrency)
            print(f"volume create (empty, 1 GiB, file backend, concurrency {args.concurrency}): "
                  f"{rate:.1f} volumes/s to available ({args.volumes} volumes)")
            print(f"volume delete: {delete_rate(cloud, ids, args.concurrency):.1f} volumes/s until gone")
            write, read = backing_file_rates(cloud, args.mib)
            print(f"host, backing file, O_DIRECT 1 MiB blocks, {args.mib} MiB: write {write:.0f} MB/s, "
                  f"read {read:.0f} MB/s")
        finally:
            peers.stop(cloud.proc)
    if not args.no_guest:
        volume_guest.report(args.mib, write, read, args.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
