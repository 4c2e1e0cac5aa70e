"""`stratus serve dashboard`: the dashboard alone, with no database or bus, logging users in through
the identity endpoint it is given and finding everything else in the catalog."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.browser.conftest import DashboardCloud
from tests.browser.test_dashboard_security import http_login
from tests.clients.conftest import ADMIN_PASSWORD, VENV_BIN, _clean_environ, _free_port, _wait_ready, stop


def test_serve_dashboard_role_alone(dashboard_cloud: DashboardCloud, tmp_path: Path) -> None:
    port = _free_port()
    env = {**_clean_environ(), "PYTHONUNBUFFERED": "1", "STRATUS_DASHBOARD__PORT": str(port),
           "STRATUS_DASHBOARD__IDENTITY_URL": dashboard_cloud.identity}
    with (tmp_path / "stratus-up.log").open("wb") as sink:  # the name _wait_ready and stop read
        process = subprocess.Popen([str(VENV_BIN / "stratus"), "serve", "--state-dir", str(tmp_path), "dashboard"],
                                   env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        _wait_ready(process, tmp_path / "stratus-up.log")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            http_login(client, "admin", ADMIN_PASSWORD)
            assert 'data-image="tiny-guest"' in client.get("/project/images").text
    finally:
        stop(process, tmp_path)
    # It kept nothing on disk: no database was made in its state dir.
    assert not list(tmp_path.glob("*.sqlite"))
