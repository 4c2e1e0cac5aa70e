"""`stratus serve dashboard`: the dashboard alone, with no database or bus, logging users in through
the identity endpoint it is given and finding everything else in the catalog; and, in that process
of its own, proof that an image upload streams through it (its memory does not grow by the image)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.browser.conftest import DashboardCloud
from tests.browser.test_dashboard_security import http_login
from tests.clients.conftest import ADMIN_PASSWORD, VENV_BIN, _clean_environ, _wait_ready, stop
from tests.ports import free_port

UPLOAD_MIB = 160


def _zeros(mib: int) -> Iterator[bytes]:
    chunk = b"\0" * (1 << 20)
    for _ in range(mib):
        yield chunk


def _peak_rss_mib(pid: int) -> int:
    """The process's high-water resident memory (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmHWM in /proc status")


def test_serve_dashboard_role_alone(dashboard_cloud: DashboardCloud, tmp_path: Path) -> None:
    port = free_port()
    env = {**_clean_environ(), "PYTHONUNBUFFERED": "1", "STRATUS_DASHBOARD__PORT": str(port),
           "STRATUS_DASHBOARD__IDENTITY_URL": dashboard_cloud.identity}
    with (tmp_path / "stratus-up.log").open("wb") as sink:  # the name _wait_ready and stop read
        process = subprocess.Popen([str(VENV_BIN / "stratus"), "serve", "--state-dir", str(tmp_path), "dashboard"],
                                   env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        _wait_ready(process, tmp_path / "stratus-up.log")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            csrf = http_login(client, "admin", ADMIN_PASSWORD)
            assert 'data-image="tiny-guest"' in client.get("/project/images").text
            before = _peak_rss_mib(process.pid)
            upload = client.put("/project/images/upload", params={"name": "streamed", "disk_format": "raw"},
                                content=_zeros(UPLOAD_MIB), timeout=120,
                                headers={"X-CSRF-Token": csrf, "Content-Length": str(UPLOAD_MIB << 20)})
            assert upload.status_code == 201, upload.text
            grown = _peak_rss_mib(process.pid) - before
            assert grown < UPLOAD_MIB / 4, f"the dashboard's peak memory grew {grown} MiB for a {UPLOAD_MIB} MiB upload"
            assert 'data-image="streamed"' in client.get("/project/images").text
    finally:
        stop(process, tmp_path)
    # It kept nothing on disk: no database was made in its state dir.
    assert not list(tmp_path.glob("*.sqlite"))
