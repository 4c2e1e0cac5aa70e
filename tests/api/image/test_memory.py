"""Image data never sits whole in the server's memory: a 4 GiB upload and download through a real
`stratus up` keep its resident set within 100 MiB of where it started, and a client that walks away
mid-upload leaves nothing behind."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.clients.conftest import ADMIN_PASSWORD, launch, stop
from tests.ports import free_port

MiB = 1024 * 1024
GiB = 1024 * MiB
RSS_GROWTH_LIMIT = 100 * MiB


@dataclass
class Server:
    pid: int
    state_dir: Path
    image_url: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Auth-Token": self.token}

    def create(self, name: str) -> str:
        body = {"name": name, "disk_format": "raw", "container_format": "bare"}
        response = httpx.post(f"{self.image_url}/v2/images", json=body, headers=self.headers)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def show(self, image_id: str) -> dict[str, object]:
        response = httpx.get(f"{self.image_url}/v2/images/{image_id}", headers=self.headers)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def rss(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    state_dir = tmp_path_factory.mktemp("stratus-memory")
    port, image_port = free_port(), free_port()
    process = launch(state_dir, port, image_port)
    try:
        auth = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": ADMIN_PASSWORD}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
        token = httpx.post(f"http://127.0.0.1:{port}/v3/auth/tokens", json=auth).headers["X-Subject-Token"]
        yield Server(process.pid, state_dir, f"http://127.0.0.1:{image_port}", token)
    finally:
        stop(process, state_dir)


class PeakRss:
    """Samples the server's resident set every 50 ms in a thread; `peak` is the highest seen."""

    def __init__(self, server: Server) -> None:
        self.server, self.peak = server, server.rss()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(0.05):
            self.peak = max(self.peak, self.server.rss())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, self.server.rss())


def zeros(total: int, chunk: int = MiB) -> Iterator[bytes]:
    block = bytes(chunk)
    for _ in range(total // chunk):
        yield block


def upload(server: Server, image_id: str, body: Iterator[bytes]) -> httpx.Response:
    return httpx.put(f"{server.image_url}/v2/images/{image_id}/file", content=body, timeout=600,
                     headers={**server.headers, "Content-Type": "application/octet-stream"})


def download_md5(server: Server, image_id: str) -> tuple[str, int, str]:
    """Stream the image back, keeping only its md5: (hexdigest, bytes, the Content-MD5 header)."""
    md5, received = hashlib.md5(), 0
    with httpx.stream("GET", f"{server.image_url}/v2/images/{image_id}/file", headers=server.headers,
                      timeout=600) as response:
        assert response.status_code == 200
        for chunk in response.iter_raw(MiB):
            md5.update(chunk)
            received += len(chunk)
        return md5.hexdigest(), received, response.headers["content-md5"]


def test_4_gib_round_trip_keeps_rss_growth_under_100_mib(server: Server) -> None:
    # A small round trip first, so what the first upload loads once is not counted as growth.
    warm = server.create("warm-up")
    assert upload(server, warm, zeros(8 * MiB)).status_code == 204
    download_md5(server, warm)
    size = 4 * GiB
    image_id = server.create("four-gib")
    baseline = server.rss()
    try:
        with PeakRss(server) as during_upload:
            started = time.monotonic()
            assert upload(server, image_id, zeros(size)).status_code == 204
            upload_seconds = time.monotonic() - started
        shown = server.show(image_id)
        assert (shown["status"], shown["size"]) == ("active", size)
        with PeakRss(server) as during_download:
            started = time.monotonic()
            digest, received, header = download_md5(server, image_id)
            download_seconds = time.monotonic() - started
        print(f"\n4 GiB upload {size / MiB / upload_seconds:.0f} MB/s, download {size / MiB / download_seconds:.0f}"
              f" MB/s; RSS baseline {baseline / MiB:.0f} MiB, peak +{(during_upload.peak - baseline) / MiB:.0f}"
              f" MiB uploading, +{(during_download.peak - baseline) / MiB:.0f} MiB downloading")
        assert received == size
        assert digest == header == shown["checksum"]
        assert during_upload.peak - baseline < RSS_GROWTH_LIMIT
        assert during_download.peak - baseline < RSS_GROWTH_LIMIT
    finally:
        (server.state_dir / "images" / image_id).unlink(missing_ok=True)


def test_a_client_vanishing_mid_upload_leaves_the_image_queued_and_no_file(server: Server) -> None:
    image_id = server.create("vanishing")

    def breaks_off() -> Iterator[bytes]:
        yield from zeros(16 * MiB)
        raise ConnectionAbortedError("the client gave up")

    with pytest.raises(ConnectionAbortedError):
        upload(server, image_id, breaks_off())
    deadline = time.monotonic() + 10
    while server.show(image_id)["status"] != "queued" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.show(image_id)["status"] == "queued"
    assert sorted(p.name for p in (server.state_dir / "images").rglob("*") if p.is_file()
                  and image_id in p.name) == []
