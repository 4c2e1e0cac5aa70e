"""`stratus up` with `[compute] driver = "qemu"`: one real host, and a server on it that is a real
VM — booted (`openstack server create --wait`) from the guest image, left running across a
restart of the cloud (its agent) with its state right, and deleted without a trace. No network:
the server is created with `--nic none` (the linux data plane is tested on its own); the power
operations are tested on the driver itself (test_qemu_driver.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stratus.compute.drivers.base import PAUSED
from stratus.compute.drivers.qemu import process, qmp
from stratus.compute.drivers.qemu.setup import choose_accel
from stratus.compute.drivers.qemu.spec import InstanceDir
from tests.clients.conftest import Cloud, launch, stop
from tests.ports import free_port
from tests.vm.test_qemu_driver import MARKER, _require_host

WAIT = 120.0


def _until(what: str, check: Any, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    pytest.fail(f"{what} did not happen within {timeout:g} s")


def _kill_leftovers(instances: Path) -> None:
    if not instances.is_dir():
        return
    for path in instances.iterdir():
        if (path / "instance.json").is_file():
            where = InstanceDir(instances, path.name)
            pid = process.find(where)
            if pid is not None:
                process.kill(pid, path.name)


@pytest.fixture
def qemu_cloud(tmp_path: Path) -> Iterator[tuple[Cloud, Path, str]]:
    _require_host()
    from stratus.guest import build

    guest = build()
    host = f"qemutest-{uuid.uuid4().hex[:6]}"
    state = tmp_path / "state"
    state.mkdir()
    (state / "stratus.toml").write_text(
        f'[compute]\ndriver = "qemu"\nhost = "{host}"\nqemu_accel = "{choose_accel("auto")}"\n'
        'qemu_shutdown_timeout = 15.0\nqemu_soft_reboot_timeout = 15.0\n'
        '[network]\nagent_dataplane = "noop"\n')
    port = free_port()
    proc = launch(state, port, real_vms=True)
    cloud = Cloud(state_dir=state, url=f"http://127.0.0.1:{port}")
    holder = {"proc": proc}
    cloud.relaunch = lambda: holder.update(proc=launch(state, port, real_vms=True))  # type: ignore[attr-defined]
    cloud.shutdown = lambda: stop(holder["proc"], state)  # type: ignore[attr-defined]
    cloud.guest = guest  # type: ignore[attr-defined]
    try:
        yield cloud, state / "instances", host
    finally:
        if holder["proc"].poll() is None:
            stop(holder["proc"], state)
        _kill_leftovers(state / "instances")


class Api:
    """The cloud's compute and image APIs over plain HTTP as its admin (quicker than a CLI per poll)."""

    def __init__(self, cloud: Cloud) -> None:
        self.token, body = cloud.admin_token()
        urls = {entry["type"]: next(e["url"] for e in entry["endpoints"] if e["interface"] == "public")
                for entry in body["catalog"]}
        self.compute, self.image = urls["compute"].rstrip("/"), urls["image"].rstrip("/")

    def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {"X-Auth-Token": self.token, **kwargs.pop("headers", {})}
        return httpx.request(method, url, headers=headers, timeout=60, **kwargs)

    def upload(self, path: Path, **fields: Any) -> str:
        created = self.call("POST", f"{self.image}/v2/images", json=fields)
        assert created.status_code == 201, created.text
        image_id: str = created.json()["id"]
        done = self.call("PUT", f"{self.image}/v2/images/{image_id}/file", content=path.read_bytes(),
                         headers={"Content-Type": "application/octet-stream"})
        assert done.status_code == 204, done.text
        return image_id

    def server(self, server_id: str) -> httpx.Response:
        return self.call("GET", f"{self.compute}/servers/{server_id}")

    def console(self, server_id: str) -> str:
        answer = self.call("POST", f"{self.compute}/servers/{server_id}/action", json={"os-getConsoleOutput": {}})
        return str(answer.json().get("output", "")) if answer.status_code == 200 else ""


def test_a_server_is_a_real_vm_that_outlives_its_agent(qemu_cloud: tuple[Cloud, Path, str]) -> None:
    cloud, instances, host = qemu_cloud
    guest = cloud.guest  # type: ignore[attr-defined]
    hypervisors = cloud.run("hypervisor", "list", "--long")
    assert [(h["Hypervisor Hostname"], h["Hypervisor Type"]) for h in hypervisors] == [(host, "QEMU")]

    api = Api(cloud)
    name = f"guest-{uuid.uuid4().hex[:6]}"
    kernel = api.upload(guest.kernel, name=f"{name}-kernel", disk_format="aki", container_format="aki")
    ramdisk = api.upload(guest.initrd, name=f"{name}-ramdisk", disk_format="ari", container_format="ari")
    image = api.upload(guest.disk, name=name, disk_format="qcow2", container_format="bare", kernel_id=kernel,
                       ramdisk_id=ramdisk, os_command_line=guest.cmdline, hw_machine_type=guest.machine)
    flavor = api.call("POST", f"{api.compute}/flavors",
                      json={"flavor": {"name": name, "vcpus": 1, "ram": 192, "disk": 1}})
    assert flavor.status_code == 200, flavor.text

    server = cloud.run("server", "create", "--image", image, "--flavor", name, "--nic", "none", "--wait", name)
    assert server["status"] == "ACTIVE"
    where = InstanceDir(instances, server["id"])
    _until("the boot marker on the console", lambda: MARKER in api.console(server["id"]))
    pid = process.find(where)
    assert pid is not None

    cloud.shutdown()  # type: ignore[attr-defined]
    assert process.find(where) == pid  # the VM runs on without its agent
    with qmp.connect(where.qmp_socket) as monitor:  # and is paused behind the cloud's back
        monitor.execute("stop")
    cloud.relaunch()  # type: ignore[attr-defined]
    api = Api(cloud)  # the other APIs came back on other ports
    shown = api.server(server["id"]).json()["server"]
    assert shown["OS-EXT-STS:power_state"] == PAUSED  # the restarted agent reported what really runs
    assert process.find(where) == pid

    assert api.call("DELETE", f"{api.compute}/servers/{server['id']}").status_code == 204
    _until("the server gone", lambda: api.server(server["id"]).status_code == 404)
    assert not process.is_running(pid, server["id"])
    assert not where.path.exists()
    assert [p.name for p in instances.iterdir()] == ["_base"]
