"""The dashboard in a real browser: one `stratus up` (fake compute driver) per test session, Debian's
Chromium driven headless by Playwright, axe-core (npm, tests/browser/node_modules) for accessibility.

The cloud gets a member user in a project of its own (for the isolation tests), an external network
(for floating IPs) and a small image (to launch from). Each test saves a screenshot under
`test-artifacts/dashboard/`.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients.conftest import (
    ADMIN_PASSWORD,
    VENV_BIN,
    _clean_environ,
    _wait_ready,
    stop,
)
from tests.ports import free_port

CHROMIUM = Path("/usr/bin/chromium")
AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
MEMBER_PASSWORD = "member-Pw-123"


@dataclass
class DashboardCloud:
    state_dir: Path
    identity: str  # http://127.0.0.1:PORT
    dashboard: str
    member_project: str = ""
    external_network: str = ""
    image_id: str = ""

    def token(self, user: str = "admin", password: str = ADMIN_PASSWORD, project: str = "admin") -> tuple[str, Any]:
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
        response = httpx.post(f"{self.identity}/v3/auth/tokens", json=body)
        assert response.status_code == 201, response.text
        return response.headers["X-Subject-Token"], response.json()["token"]

    def api(self, token_body: Any, service_type: str) -> str:
        for entry in token_body["catalog"]:
            if entry["type"] == service_type:
                return next(e["url"] for e in entry["endpoints"] if e["interface"] == "public").rstrip("/")
        raise AssertionError(f"no {service_type} in the catalog")


def _launch(state_dir: Path, identity_port: int, dashboard_port: int) -> subprocess.Popen[bytes]:
    env = {**_clean_environ(), "PYTHONUNBUFFERED": "1", "STRATUS_IDENTITY__PORT": str(identity_port),
           "STRATUS_DASHBOARD__PORT": str(dashboard_port), "STRATUS_BOOTSTRAP__ADMIN_PASSWORD": ADMIN_PASSWORD,
           "STRATUS_IDENTITY__BCRYPT_ROUNDS": "4",
           # Room for the 500 instances of the speed test (no ports: they boot with networks "none").
           "STRATUS_COMPUTE__QUOTA_INSTANCES": "-1", "STRATUS_COMPUTE__QUOTA_CORES": "-1",
           "STRATUS_COMPUTE__QUOTA_RAM": "-1", "STRATUS_COMPUTE__FAKE_MEMORY_MB": "524288",
           "STRATUS_COMPUTE__FAKE_VCPUS": "64",
           # Simulated hosts and networks, asked for since `stratus up` runs real ones where it can.
           "STRATUS_COMPUTE__DRIVER": "fake", "STRATUS_NETWORK__AGENT_DATAPLANE": "noop"}
    for name in ("IMAGE__PORT", "NETWORK__PORT", "COMPUTE__PORT", "COMPUTE__METADATA_PORT", "VOLUME__PORT",
                 "OBJECT__PORT", "OBJECT__ACCOUNT_PORT", "OBJECT__CONTAINER_PORT", "OBJECT__OBJECT_PORT"):
        env[f"STRATUS_{name}"] = str(free_port())
    log = state_dir / "stratus-up.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([str(VENV_BIN / "stratus"), "up", "--state-dir", str(state_dir)],
                                   env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=state_dir)
    _wait_ready(process, log)
    return process


def _prepare(cloud: DashboardCloud) -> None:
    """What the tests start from: a member in project `demo`, a public network, an image."""
    token, body = cloud.token()
    h = {"X-Auth-Token": token}
    identity = f"{cloud.identity}/v3"
    project = httpx.post(f"{identity}/projects", headers=h, json={"project": {"name": "demo", "domain_id": "default"}})
    assert project.status_code == 201, project.text
    cloud.member_project = project.json()["project"]["id"]
    user = httpx.post(f"{identity}/users", headers=h, json={"user": {
        "name": "demo-member", "domain_id": "default", "password": MEMBER_PASSWORD}})
    assert user.status_code == 201, user.text
    roles = httpx.get(f"{identity}/roles", headers=h, params={"name": "member"}).json()["roles"]
    grant = httpx.put(f"{identity}/projects/{cloud.member_project}/users/{user.json()['user']['id']}"
                      f"/roles/{roles[0]['id']}", headers=h)
    assert grant.status_code == 204, grant.text
    # The admin is a member of `demo` too, to switch projects in the browser.
    grant = httpx.put(f"{identity}/projects/{cloud.member_project}/users/{body['user']['id']}"
                      f"/roles/{roles[0]['id']}", headers=h)
    assert grant.status_code == 204, grant.text
    network_url = cloud.api(body, "network")
    net = httpx.post(f"{network_url}/v2.0/networks", headers=h, json={"network": {
        "name": "public", "router:external": True, "provider:network_type": "flat",
        "provider:physical_network": "public"}})
    assert net.status_code == 201, net.text
    cloud.external_network = net.json()["network"]["id"]
    subnet = httpx.post(f"{network_url}/v2.0/subnets", headers=h, json={"subnet": {
        "network_id": cloud.external_network, "cidr": "203.0.113.0/24", "ip_version": 4, "enable_dhcp": False}})
    assert subnet.status_code == 201, subnet.text
    image_url = cloud.api(body, "image")
    image = httpx.post(f"{image_url}/v2/images", headers=h, json={
        "name": "tiny-guest", "disk_format": "raw", "container_format": "bare", "visibility": "public"})
    assert image.status_code == 201, image.text
    cloud.image_id = image.json()["id"]
    data = httpx.put(f"{image_url}/v2/images/{cloud.image_id}/file", content=b"\0" * 65536,
                     headers={**h, "Content-Type": "application/octet-stream"})
    assert data.status_code == 204, data.text


@pytest.fixture(scope="session")
def dashboard_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardCloud]:
    state_dir = tmp_path_factory.mktemp("stratus-dashboard")
    identity_port, dashboard_port = free_port(), free_port()
    process = _launch(state_dir, identity_port, dashboard_port)
    try:
        cloud = DashboardCloud(state_dir, f"http://127.0.0.1:{identity_port}", f"http://127.0.0.1:{dashboard_port}")
        _prepare(cloud)
        yield cloud
    finally:
        stop(process, state_dir)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is needed for the dashboard's browser tests (make install adds it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


def login(page: Any, base: str, user: str = "admin", password: str = ADMIN_PASSWORD) -> None:
    page.goto(f"{base}/auth/login")
    page.get_by_label("Domain").fill("Default")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r".*/project/$"))


@pytest.fixture
def page(browser: Any, dashboard_cloud: DashboardCloud, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context logged in as the admin; its screenshot is saved when the test ends."""
    context = browser.new_context(accept_downloads=True, bypass_csp=True)  # axe is injected inline
    context.set_default_timeout(15000)
    tab = context.new_page()
    tab.on("dialog", lambda dialog: dialog.accept())
    login(tab, dashboard_cloud.dashboard)
    try:
        yield tab
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        context.close()


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now."""
    if not AXE.exists():
        pytest.fail(f"axe-core is missing at {AXE}: run `make install` (npm ci in tests/browser)")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document)")
    return list(result["violations"])


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met within the timeout")
