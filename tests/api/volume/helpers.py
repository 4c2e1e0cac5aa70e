"""Small builders the block storage API tests share."""

from __future__ import annotations

import time
from typing import Any

from tests.api.identity.helpers import MEMBER_PASSWORD, add_member
from tests.conftest import VolumeHarness

LATEST = {"OpenStack-API-Version": "volume 3.70"}


def member_headers(volume: VolumeHarness, name: str = "alice") -> dict[str, str]:
    """Headers (at microversion 3.70) of a member of a new project `<name>-project`."""
    add_member(volume.identity, name, f"{name}-project")
    return {"X-Auth-Token": volume.identity.token(name, MEMBER_PASSWORD, f"{name}-project"), **LATEST}


def admin(volume: VolumeHarness) -> dict[str, str]:
    return {**volume.as_admin(), **LATEST}


def create_volume(volume: VolumeHarness, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = volume.client.post("/v3/volumes", json={"volume": fields}, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()["volume"]  # type: ignore[no-any-return]


def wait_status(volume: VolumeHarness, headers: dict[str, str], path: str, wanted: str | set[str],
                timeout: float = 30.0) -> dict[str, Any]:
    """Poll `path` (a volume or snapshot) until its status is `wanted`; the last document."""
    wanted_set = {wanted} if isinstance(wanted, str) else wanted
    deadline = time.monotonic() + timeout
    while True:
        response = volume.client.get(path, headers=headers)
        assert response.status_code == 200, response.text
        doc = next(iter(response.json().values()))
        if doc["status"] in wanted_set:
            return doc  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"{path} stayed {doc['status']}, wanted {wanted_set}"
        time.sleep(0.05)


def wait_gone(volume: VolumeHarness, headers: dict[str, str], path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while volume.client.get(path, headers=headers).status_code != 404:
        assert time.monotonic() < deadline, f"{path} was not deleted"
        time.sleep(0.05)


def action(volume: VolumeHarness, headers: dict[str, str], volume_id: str, name: str, args: Any) -> Any:
    return volume.client.post(f"/v3/volumes/{volume_id}/action", json={name: args}, headers=headers)
