"""Image data path benchmark: upload and download MB/s of a 1 GiB image against the disk's raw speed.

Run:  .venv/bin/python bench/image.py [--size-mib 1024] [--runs 1] [--dir DIR]

One `stratus up` (free ports, state dir in a temporary folder under DIR, default `bench/`) and, in
the same run and on the same filesystem as its image store, the machine's raw sequential disk speed:
- raw write: the image bytes written to a new file in 1 MiB writes, fsync at the end (the file store
  also fsyncs before it renames the image into place); raw read: that file read back in 1 MiB reads.
- upload: POST /v2/images (raw, bare), then PUT /v2/images/{id}/file streamed from a generator of
  1 MiB chunks, once with Content-Length and once chunked; the image must end `active` with the
  right size and md5 checksum. download: GET /v2/images/{id}/file, the body read and discarded.
- Both reads run under the same cache conditions: the page cache is dropped before each (as root:
  `echo 3 > /proc/sys/vm/drop_caches`); otherwise both read warm and the report says so.
The data moves over a plain socket (`sendall` of each chunk, `recv_into` one reused 1 MiB buffer):
on a loaded 2-core machine that client did 1.2 GB/s up and 0.7 GB/s down against trivial peers,
where curl managed 0.23 GB/s up (64 KiB reads) and httpx 0.2 GB/s down, so the figures are the
server's. MB/s = 10^6 bytes/s. Targets: upload >= 60% of raw write, download >= 80% of raw read.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402

STRATUS = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "stratus"
CHUNK = 1024 * 1024
UPLOAD_TARGET, DOWNLOAD_TARGET = 0.60, 0.80


class Source:
    """`size` bytes as 1 MiB chunks of one random MiB repeated: cheap to make, no disk format's magic."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.block = os.urandom(CHUNK)
        md5 = hashlib.md5(usedforsecurity=False)
        for chunk in self.chunks():
            md5.update(chunk)
        self.md5 = md5.hexdigest()

    def chunks(self) -> Iterator[bytes]:
        for offset in range(0, self.size, CHUNK):
            yield self.block[: min(CHUNK, self.size - offset)]


class Cloud:
    """A running `stratus up` and an admin token for its image API."""

    def __init__(self, state: Path, log: Path) -> None:
        password = secrets.token_urlsafe(12)
        env = peers.stratus_env(BOOTSTRAP__ADMIN_PASSWORD=password, IDENTITY__BCRYPT_ROUNDS="4")
        identity_port, self.image_port = peers.port_of(env, "IDENTITY__PORT"), peers.port_of(env, "IMAGE__PORT")
        self.proc = peers.start([str(STRATUS), "up", "--state-dir", str(state)], log, env)
        peers.wait_until(self.proc, lambda: "stratus: ready" in log.read_text(errors="replace"), log, timeout=180)
        self.url = f"http://127.0.0.1:{self.image_port}"
        self.token = peers.admin_token(f"http://127.0.0.1:{identity_port}/v3", password)

    def call(self, method: str, path: str, body: dict | None = None) -> httpx.Response:
        response = httpx.request(method, f"{self.url}{path}", headers={"X-Auth-Token": self.token},
                                 json=body, timeout=60)
        if response.is_error:
            raise peers.ServerFailed(f"{method} {path}: {response.status_code} {response.text}")
        return response


def drop_caches() -> bool:
    """Empty the page cache (needs root); whether it was done."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def raw_write(source: Source, target: Path) -> float:
    """Write the source to `target` in 1 MiB writes, fsync included; seconds."""
    started = time.perf_counter()
    with target.open("wb", buffering=0) as out:
        for chunk in source.chunks():
            out.write(chunk)
        os.fsync(out.fileno())
    return time.perf_counter() - started


def raw_read(path: Path) -> float:
    """Read `path` in 1 MiB reads, discarding; seconds."""
    buffer = bytearray(CHUNK)
    started = time.perf_counter()
    with path.open("rb", buffering=0) as src:
        while src.readinto(buffer):
            pass
    return time.perf_counter() - started


def framed(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """HTTP/1.1 chunked transfer coding of `chunks`."""
    for chunk in chunks:
        yield b"%x\r\n" % len(chunk)
        yield chunk
        yield b"\r\n"
    yield b"0\r\n\r\n"


def exchange(cloud: Cloud, method: str, path: str, headers: dict[str, str],
             body: Iterable[bytes] = ()) -> tuple[int, int, float]:
    """One request on a fresh connection (closed by the server after its answer), the response body read
    into one reused buffer and discarded; (status, body bytes, seconds from first byte sent to EOF)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{cloud.image_port}", "Connection: close",
             f"X-Auth-Token: {cloud.token}", *(f"{k}: {v}" for k, v in headers.items())]
    buffer, head, received = bytearray(CHUNK), b"", 0
    with socket.create_connection(("127.0.0.1", cloud.image_port)) as sock:
        started = time.perf_counter()
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        for chunk in body:
            sock.sendall(chunk)
        while count := sock.recv_into(buffer):
            if b"\r\n\r\n" in head:
                received += count
                continue
            head += bytes(buffer[:count])  # the status line and headers arrive in the first reads
            if b"\r\n\r\n" in head:
                head, rest = head.split(b"\r\n\r\n", 1)
                head, received = head + b"\r\n\r\n", len(rest)
        seconds = time.perf_counter() - started
    return int(head.split(b" ", 2)[1]), received, seconds


def upload(cloud: Cloud, source: Source, chunked: bool) -> tuple[float, str]:
    """Create a raw/bare image and PUT the source into it; seconds of the PUT, and the image's ID."""
    image = cloud.call("POST", "/v2/images", {"name": f"bench-{secrets.token_hex(4)}", "disk_format": "raw",
                                              "container_format": "bare"}).json()
    headers = {"Content-Type": "application/octet-stream"}
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
        body = framed(source.chunks())
    else:
        headers["Content-Length"] = str(source.size)
        body = source.chunks()
    status, _, seconds = exchange(cloud, "PUT", f"/v2/images/{image['id']}/file", headers, body)
    if status != 204:
        raise peers.ServerFailed(f"PUT file answered {status}")
    shown = cloud.call("GET", f"/v2/images/{image['id']}").json()
    if (shown["status"], shown["size"], shown["checksum"]) != ("active", source.size, source.md5):
        raise peers.ServerFailed(f"uploaded image is {shown['status']}, size {shown['size']}, checksum "
                                 f"{shown['checksum']} (expected active, {source.size}, {source.md5})")
    return seconds, image["id"]


def download(cloud: Cloud, image_id: str, size: int) -> float:
    status, received, seconds = exchange(cloud, "GET", f"/v2/images/{image_id}/file", {})
    if status != 200 or received != size:
        raise peers.ServerFailed(f"GET file answered {status} with {received} of {size} bytes")
    return seconds


def filesystem(path: Path) -> str:
    done = subprocess.run(["df", "--output=source,fstype", str(path)], capture_output=True, text=True)
    return " ".join(done.stdout.split()[2:]) or "unknown"


def measure(work: Path, source: Source) -> tuple[dict[str, float], bool]:
    """MB/s of raw write/read and of the image upload/download; and whether the caches were dropped."""
    rates: dict[str, float] = {}
    mb = source.size / 1e6
    cloud = Cloud(work / "state", work / "stratus.log")
    try:
        store, raw = work / "state" / "images", work / "state" / "raw-disk-test.bin"
        if store.stat().st_dev != raw.parent.stat().st_dev:
            raise peers.ServerFailed(f"{store} and {raw.parent} are on different filesystems")
        rates["raw write"] = mb / raw_write(source, raw)
        dropped = drop_caches()
        rates["raw read"] = mb / raw_read(raw)
        raw.unlink()
        seconds, image_id = upload(cloud, source, chunked=False)
        rates["upload (Content-Length)"] = mb / seconds
        seconds, _ = upload(cloud, source, chunked=True)
        rates["upload (chunked)"] = mb / seconds
        drop_caches()
        rates["download"] = mb / download(cloud, image_id, source.size)
    finally:
        peers.stop(cloud.proc)
    return rates, dropped


def report(rates: dict[str, float], size: int, runs: int, dropped: bool, fs: str) -> None:
    print(f"\nimage benchmark: {size / CHUNK:.0f} MiB image (raw, bare), store on {fs}, {os.cpu_count()} cores"
          + (f", median of {runs} runs" if runs > 1 else ""))
    print("reads: " + ("cold page cache (dropped before each read)" if dropped else
                       "warm page cache (not root: could not drop it; both reads alike)"))
    print(f"{'':26}{'MB/s':>10}{'vs raw':>10}{'target':>10}")
    print(f"{'raw write (fsync)':26}{rates['raw write']:10.0f}")
    print(f"{'raw read':26}{rates['raw read']:10.0f}")
    for row in ("upload (Content-Length)", "upload (chunked)", "download"):
        raw, target = ("raw write", UPLOAD_TARGET) if row.startswith("upload") else ("raw read", DOWNLOAD_TARGET)
        ratio = rates[row] / rates[raw]
        print(f"{row:26}{rates[row]:10.0f}{ratio:9.0%} {f'>={target:.0%}':>9} {'ok' if ratio >= target else 'BELOW'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="image size in MiB (default 1024)")
    parser.add_argument("--runs", type=int, default=1, help="repeat everything; report each figure's median")
    parser.add_argument("--dir", type=Path, default=Path(__file__).resolve().parent,
                        help="where the temporary state dir goes: the disk under test (default bench/)")
    args = parser.parse_args()
    if os.getloadavg()[0] > 0.5:
        print(f"note: load average is {os.getloadavg()[0]:.2f}; figures will be low and noisy")
    source = Source(args.size_mib * CHUNK)
    runs: list[dict[str, float]] = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix=".bench-image-", dir=args.dir) as tmpdir:
            work = Path(tmpdir)
            try:
                rates, dropped = measure(work, source)
            except (peers.ServerFailed, OSError) as failure:
                print(f"bench: {failure}\n{peers.log_tail(work / 'stratus.log')}", file=sys.stderr)
                return 1
            fs = filesystem(work)
        runs.append(rates)
        print("run " + ", ".join(f"{row} {rate:.0f}" for row, rate in rates.items()) + " MB/s", flush=True)
    median = {row: statistics.median(run[row] for run in runs) for row in runs[0]}
    report(median, source.size, len(runs), dropped, fs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
