"""A small cloud for server tests: the compute harness running (3 fake hosts), a member project
with a network and subnet, and an active image."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tests.api.identity.helpers import MEMBER_PASSWORD, add_member
from tests.conftest import ComputeHarness

LATEST = {"OpenStack-API-Version": "compute 2.53"}


@dataclass
class Tenant:
    name: str
    project_id: str
    headers: dict[str, str]
    network_id: str = ""


def tenant(compute: ComputeHarness, name: str, *, network: bool = True) -> Tenant:
    """A member of a new project (with a network 10.N.0.0/24 of its own when asked)."""
    _user_id, project_id = add_member(compute.identity, name, f"{name}-project")
    token = compute.identity.token(name, MEMBER_PASSWORD, f"{name}-project")
    found = Tenant(name, project_id, {"X-Auth-Token": token, **LATEST})
    if network:
        net = compute.network.client.post("/v2.0/networks", json={"network": {"name": f"{name}-net"}},
                                          headers=found.headers)
        assert net.status_code == 201, net.text
        found.network_id = net.json()["network"]["id"]
        sub = compute.network.client.post("/v2.0/subnets", headers=found.headers, json={"subnet": {
            "network_id": found.network_id, "cidr": "10.9.0.0/24", "ip_version": 4, "name": f"{name}-sub"}})
        assert sub.status_code == 201, sub.text
    return found


def public_image(compute: ComputeHarness, name: str = "cirros", size: int = 4096, **fields: Any) -> str:
    """An active public raw image; its id."""
    admin = compute.as_admin()
    made = compute.image.client.post("/v2/images", headers=admin, json={
        "name": name, "disk_format": "raw", "container_format": "bare", "visibility": "public", **fields})
    assert made.status_code == 201, made.text
    image_id = made.json()["id"]
    put = compute.image.client.put(f"/v2/images/{image_id}/file", content=bytes(size),
                                   headers={**admin, "Content-Type": "application/octet-stream"})
    assert put.status_code == 204, put.text
    return str(image_id)


def boot(compute: ComputeHarness, who: Tenant, image_id: str, name: str = "vm", flavor: str = "1",
         **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "imageRef": image_id, "flavorRef": flavor,
                            "networks": [{"uuid": who.network_id}] if who.network_id else "none"}
    body.update(fields)
    hints = body.pop("hints", None)
    payload: dict[str, Any] = {"server": body}
    if hints:
        payload["os:scheduler_hints"] = hints
    response = compute.client.post("/v2.1/servers", json=payload, headers=who.headers)
    assert response.status_code == 202, response.text
    return response.json()["server"]  # type: ignore[no-any-return]


def show(compute: ComputeHarness, who: Tenant | dict[str, str], server_id: str) -> dict[str, Any]:
    headers = who.headers if isinstance(who, Tenant) else who
    response = compute.client.get(f"/v2.1/servers/{server_id}", headers={**LATEST, **headers})
    assert response.status_code == 200, response.text
    return response.json()["server"]  # type: ignore[no-any-return]


def wait_for(compute: ComputeHarness, who: Tenant | dict[str, str], server_id: str, status: str,
             timeout: float = 20.0) -> dict[str, Any]:
    """The server once it reaches `status` with no task in progress; fails on ERROR or timeout."""
    deadline = time.monotonic() + timeout
    server: dict[str, Any] = {}
    while time.monotonic() < deadline:
        server = show(compute, who, server_id)
        if server["status"] == status and server["OS-EXT-STS:task_state"] is None:
            return server
        if server["status"] == "ERROR" and status != "ERROR":
            raise AssertionError(f"server {server_id} went to ERROR: {server.get('fault')}")
        time.sleep(0.05)
    raise AssertionError(f"server {server_id} did not reach {status} in {timeout} s: {server}")


def wait_gone(compute: ComputeHarness, who: Tenant, server_id: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = compute.client.get(f"/v2.1/servers/{server_id}", headers=who.headers)
        if response.status_code == 404:
            return
        time.sleep(0.05)
    raise AssertionError(f"server {server_id} still there after {timeout} s")


def action(compute: ComputeHarness, who: Tenant | dict[str, str], server_id: str, name: str, args: Any = None,
           expect: int = 202) -> Any:
    headers = who.headers if isinstance(who, Tenant) else {**LATEST, **who}
    response = compute.client.post(f"/v2.1/servers/{server_id}/action", json={name: args}, headers=headers)
    assert response.status_code == expect, response.text
    return response
