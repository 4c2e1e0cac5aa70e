"""The official `openstack` CLI against `stratus up` (fake driver): `server add volume` /
`server remove volume`, and `server create --volume` booting from an existing bootable volume.
The waiting and the set-up not under test go over plain HTTP; every CLI run costs seconds."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.clients.conftest import Cloud, unique


class Api:
    """The compute, block storage and image APIs as the admin, over HTTP."""

    def __init__(self, cloud: Cloud) -> None:
        token, body = cloud.admin_token()
        self.http = httpx.Client(timeout=30, headers={"X-Auth-Token": token})

        def public(kind: str) -> str:
            return next(e["url"] for s in body["catalog"] if s["type"] == kind for e in s["endpoints"]
                        if e["interface"] == "public")

        self.volume, self.image, self.compute = public("block-storage"), public("image"), public("compute")

    def volume_doc(self, volume_id: str) -> dict[str, Any] | None:
        response = self.http.get(f"{self.volume}/volumes/{volume_id}")
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        return response.json()["volume"]  # type: ignore[no-any-return]

    def wait_volume(self, volume_id: str, wanted: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            doc = self.volume_doc(volume_id)
            assert doc is not None, f"volume {volume_id} is gone"
            if doc["status"] == wanted:
                return doc
            assert doc["status"] != "error" and time.monotonic() < deadline, (volume_id, doc["status"], wanted)
            time.sleep(0.2)

    def create_volume(self, **fields: Any) -> str:
        response = self.http.post(f"{self.volume}/volumes", json={"volume": {"size": 1, "name": unique("v"),
                                                                             **fields}})
        assert response.status_code == 202, response.text
        volume_id = str(response.json()["volume"]["id"])
        self.wait_volume(volume_id, "available")
        return volume_id

    def wait_server_gone(self, server_id: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.http.get(f"{self.compute}/servers/{server_id}").status_code != 404:
            assert time.monotonic() < deadline, f"server {server_id} was not deleted"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def api(cloud: Cloud) -> Iterator[Api]:
    client = Api(cloud)
    yield client
    client.http.close()


@pytest.fixture(scope="module")
def world(cloud: Cloud, api: Api) -> dict[str, str]:
    """A public raw image and a small flavor."""
    image = api.http.post(f"{api.image}/v2/images", json={"name": unique("img"), "disk_format": "raw",
                                                          "container_format": "bare", "visibility": "public"})
    assert image.status_code == 201, image.text
    image_id = image.json()["id"]
    put = api.http.put(f"{api.image}/v2/images/{image_id}/file", content=bytes(65536),
                       headers={"Content-Type": "application/octet-stream"})
    assert put.status_code == 204, put.text
    flavor = cloud.run("flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1", unique("vflv"))
    return {"image": image_id, "flavor": flavor["id"]}


def test_server_add_volume_then_remove_volume(cloud: Cloud, api: Api, world: dict[str, str]) -> None:
    server = cloud.run("server", "create", "--image", world["image"], "--flavor", world["flavor"], "--nic", "none",
                       "--wait", unique("vsrv"))
    volume_id = api.create_volume()
    cloud.run_raw("server", "add", "volume", "--device", "/dev/vdc", server["id"], volume_id)
    doc = api.wait_volume(volume_id, "in-use")
    assert [a["server_id"] for a in doc["attachments"]] == [server["id"]]
    shown = api.http.get(f"{api.compute}/servers/{server['id']}/os-volume_attachments").json()
    assert shown["volumeAttachments"] == [{"id": volume_id, "serverId": server["id"], "volumeId": volume_id,
                                           "device": "/dev/vdc"}]
    cloud.run_raw("server", "remove", "volume", server["id"], volume_id)
    assert api.wait_volume(volume_id, "available")["attachments"] == []
    cloud.run_raw("server", "delete", "--wait", server["id"])
    api.http.delete(f"{api.volume}/volumes/{volume_id}")


def test_server_create_from_a_bootable_volume_leaves_it_after_delete(cloud: Cloud, api: Api,
                                                                     world: dict[str, str]) -> None:
    volume_id = api.create_volume(imageRef=world["image"])
    server = cloud.run("server", "create", "--volume", volume_id, "--flavor", world["flavor"], "--nic", "none",
                       "--wait", unique("bfv"))
    assert server["status"] == "ACTIVE"
    assert [v["id"] for v in server["volumes_attached"]] == [volume_id]
    api.wait_volume(volume_id, "in-use")
    cloud.run_raw("server", "delete", "--wait", server["id"])
    api.wait_server_gone(server["id"])
    assert api.wait_volume(volume_id, "available")["attachments"] == []
    api.http.delete(f"{api.volume}/volumes/{volume_id}")
