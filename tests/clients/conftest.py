"""A real `stratus up` on a free loopback port, and the official `openstack` CLI pointed at it.

The cloud starts once per test session; each test creates what it needs under unique names.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from openstack.config.loader import OpenStackConfig
from openstack.connection import Connection

from tests.ports import free_port

VENV_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"
ADMIN_PASSWORD = "client-Admin-pw1"
READY_LINE = "stratus: ready"
START_TIMEOUT = 60.0
# A cloud that ran real VMs or hundreds of fake ones has seen this take over 10 s on a busy 2-core
# machine (its last handlers finish first); the exit must still be clean.
STOP_TIMEOUT = 60.0
CLI_TIMEOUT = 120.0


def _clean_environ() -> dict[str, str]:
    """The test runner's environment without any OS_* or STRATUS_* setting that could leak in."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "STRATUS_"))}


@dataclass
class Cloud:
    state_dir: Path
    url: str  # the identity root, e.g. http://127.0.0.1:PORT
    image_url: str = ""  # the image API root, when the test knows its port

    @property
    def auth_url(self) -> str:
        return f"{self.url}/v3"

    @property
    def clouds_yaml(self) -> Path:
        return self.state_dir / "clouds.yaml"

    @property
    def no_clouds_yaml(self) -> Path:
        path = self.state_dir / "no-clouds.yaml"
        if not path.exists():
            path.write_text("clouds: {}\n")
        return path

    def _cli(self, args: tuple[str, ...], *, check: bool,
             clouds: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {**_clean_environ(), "OS_CLIENT_CONFIG_FILE": str(clouds or self.clouds_yaml)}
        done = subprocess.run([str(VENV_BIN / "openstack"), *args], env=env, capture_output=True, text=True,
                              timeout=CLI_TIMEOUT, cwd=self.state_dir)
        if check and done.returncode != 0:
            pytest.fail(f"openstack {' '.join(args)} exited {done.returncode}\n"
                        f"stdout: {done.stdout}\nstderr: {done.stderr}")
        return done

    def run_raw(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`openstack --os-cloud stratus ARGS` as the admin (project-scoped)."""
        return self._cli(("--os-cloud", "stratus", *args), check=check)

    def run(self, *args: str) -> Any:
        """`openstack --os-cloud stratus ARGS -f json` as the admin; the parsed output."""
        return json.loads(self.run_raw(*args, "-f", "json").stdout)

    def run_with(self, auth: list[str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The CLI with explicit --os-* authentication options instead of the admin's cloud entry.

        It reads a clouds.yaml without clouds: given the admin's file, the CLI would merge that
        file's only cloud (admin project included) into these options."""
        return self._cli(("--os-auth-url", self.auth_url, "--os-identity-api-version", "3",
                          "--os-interface", "public", *auth, *args), check=check, clouds=self.no_clouds_yaml)

    def run_as(self, username: str, password: str, project: str | None, *args: str,
               check: bool = True) -> subprocess.CompletedProcess[str]:
        """The CLI as another user of the Default domain (unscoped when `project` is None)."""
        auth = ["--os-username", username, "--os-password", password, "--os-user-domain-name", "Default"]
        if project is not None:
            auth += ["--os-project-name", project, "--os-project-domain-name", "Default"]
        return self.run_with(auth, *args, check=check)

    def admin_token(self) -> tuple[str, dict[str, Any]]:
        """A project-scoped admin token got over plain HTTP, and its body's `token`."""
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": ADMIN_PASSWORD}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
        response = httpx.post(f"{self.auth_url}/auth/tokens", json=body)
        assert response.status_code == 201, response.text
        return response.headers["X-Subject-Token"], response.json()["token"]

    def validate(self, subject: str) -> httpx.Response:
        """GET /v3/auth/tokens for `subject`, asked by the admin."""
        token, _ = self.admin_token()
        return httpx.get(f"{self.auth_url}/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": subject})


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _wait_ready(process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if READY_LINE in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            break
        time.sleep(0.1)
    output = log.read_text(errors="replace")
    if process.poll() is None:
        process.kill()
        process.wait()
    pytest.fail(f"stratus up did not print {READY_LINE!r} within {START_TIMEOUT:.0f} s "
                f"(exit code {process.returncode}); its output:\n{output}")


# What the client tests run on: simulated hosts and a data plane that builds nothing, asked for
# explicitly because `stratus up` runs real VMs and networks wherever it can.
FAKE_BACKENDS = {"STRATUS_COMPUTE__DRIVER": "fake", "STRATUS_NETWORK__AGENT_DATAPLANE": "noop"}


def launch(state_dir: Path, port: int, image_port: int | None = None, *,
           real_vms: bool = False) -> subprocess.Popen[bytes]:
    """`stratus up` with identity on `port` (every other API on a free port), returned once it
    printed that it is ready. With the fake driver and the noop data plane unless `real_vms`
    (then the state dir's stratus.toml or the defaults say)."""
    env = {**_clean_environ(), **({} if real_vms else FAKE_BACKENDS),
           "PYTHONUNBUFFERED": "1", "STRATUS_IDENTITY__PORT": str(port),
           "STRATUS_IMAGE__PORT": str(image_port or free_port()), "STRATUS_NETWORK__PORT": str(free_port()),
           "STRATUS_COMPUTE__PORT": str(free_port()), "STRATUS_COMPUTE__METADATA_PORT": str(free_port()),
           "STRATUS_DASHBOARD__PORT": str(free_port()), "STRATUS_VOLUME__PORT": str(free_port()),
           # Object storage: the proxy and the storage node's three servers, and a TempAuth user.
           "STRATUS_OBJECT__PORT": str(free_port()), "STRATUS_OBJECT__ACCOUNT_PORT": str(free_port()),
           "STRATUS_OBJECT__CONTAINER_PORT": str(free_port()), "STRATUS_OBJECT__OBJECT_PORT": str(free_port()),
           "STRATUS_OBJECT__TEMPAUTH_USERS": "test:tester:testing:.admin",
           "STRATUS_BOOTSTRAP__ADMIN_PASSWORD": ADMIN_PASSWORD, "STRATUS_IDENTITY__BCRYPT_ROUNDS": "4"}
    log = state_dir / "stratus-up.log"
    # Output goes to a file, not a pipe: a server that logs a lot can never block on a full pipe.
    with log.open("wb") as sink:
        process = subprocess.Popen([str(VENV_BIN / "stratus"), "up", "--state-dir", str(state_dir)],
                                   env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=state_dir)
    _wait_ready(process, log)
    return process


def stop(process: subprocess.Popen[bytes], state_dir: Path) -> None:
    """SIGTERM, then insist on a clean exit (code 0) within STOP_TIMEOUT."""
    os.kill(process.pid, signal.SIGTERM)
    try:
        code = process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"stratus up did not stop within {STOP_TIMEOUT:.0f} s of SIGTERM")
    log = (state_dir / "stratus-up.log").read_text(errors="replace")
    assert code == 0, f"stratus up exited {code} on SIGTERM; its output:\n{log}"


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    state_dir = tmp_path_factory.mktemp("stratus-cloud")
    port, image_port = free_port(), free_port()
    process = launch(state_dir, port, image_port)
    try:
        yield Cloud(state_dir=state_dir, url=f"http://127.0.0.1:{port}", image_url=f"http://127.0.0.1:{image_port}")
    finally:
        stop(process, state_dir)


@pytest.fixture(scope="module")
def conn(cloud: Cloud) -> Iterator[Connection]:
    """openstacksdk connected to the cloud as its admin (the clouds.yaml `stratus up` wrote)."""
    config = OpenStackConfig(config_files=[str(cloud.clouds_yaml)], load_envvars=False)
    connection = Connection(config=config.get_one(cloud="stratus"))
    yield connection
    connection.close()
