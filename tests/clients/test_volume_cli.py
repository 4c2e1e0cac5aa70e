"""The official `openstack` CLI against `stratus up`: volumes (empty, from an image, a snapshot or
another volume), properties, bootable, extend, types, snapshots, the in-use delete refusal, volume
quotas, and another project's isolation (404).

Every CLI run costs seconds, so the waiting and the set-up that is not under test go over plain
HTTP (`Api`)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients.conftest import Cloud, unique

MEMBER_PASSWORD = "pw-Member-1"


class Api:
    """The block storage, identity and image APIs as the admin, over HTTP."""

    def __init__(self, cloud: Cloud) -> None:
        token, body = cloud.admin_token()
        self.token = token
        self.http = httpx.Client(timeout=30, headers={"X-Auth-Token": token})

        def public(kind: str) -> str:
            return next(e["url"] for s in body["catalog"] if s["type"] == kind for e in s["endpoints"]
                        if e["interface"] == "public")

        self.volume = public("block-storage")
        self.identity = cloud.auth_url
        self.image = public("image")
        self.latest = {"OpenStack-API-Version": "volume 3.44"}

    def status(self, kind: str, ident: str) -> str | None:
        response = self.http.get(f"{self.volume}/{kind}/{ident}")
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        return str(next(iter(response.json().values()))["status"])

    def wait(self, kind: str, ident: str, wanted: str | None = "available", timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while (status := self.status(kind, ident)) != wanted:
            assert status not in ("error", "error_deleting") and time.monotonic() < deadline, (kind, ident, status)
            time.sleep(0.2)

    def create_volume(self, **fields: Any) -> str:
        response = self.http.post(f"{self.volume}/volumes", json={"volume": fields})
        assert response.status_code == 202, response.text
        volume_id = str(response.json()["volume"]["id"])
        self.wait("volumes", volume_id)
        return volume_id

    def delete(self, kind: str, ident: str) -> None:
        self.http.delete(f"{self.volume}/{kind}/{ident}")
        self.wait(kind, ident, None)

    def member_project(self, name: str) -> None:
        """A project `name` with a user `name` (MEMBER_PASSWORD) holding member on it."""
        project = self.http.post(f"{self.identity}/projects", json={"project": {"name": name}}).json()["project"]
        user = self.http.post(f"{self.identity}/users", json={"user": {
            "name": name, "password": MEMBER_PASSWORD, "default_project_id": project["id"]}}).json()["user"]
        role = self.http.get(f"{self.identity}/roles?name=member").json()["roles"][0]
        done = self.http.put(f"{self.identity}/projects/{project['id']}/users/{user['id']}/roles/{role['id']}")
        assert done.status_code == 204, done.text


@pytest.fixture(scope="module")
def api(cloud: Cloud) -> Iterator[Api]:
    client = Api(cloud)
    yield client
    client.http.close()


def test_volume_create_list_show_set_extend_delete(cloud: Cloud, api: Api) -> None:
    name = unique("vol")
    made = cloud.run("volume", "create", "--size", "1", "--description", "first", "--property", "a=1", name)
    assert made["size"] == 1 and made["name"] == name
    api.wait("volumes", made["id"])
    assert name in {v["Name"] for v in cloud.run("volume", "list")}
    cloud.run_raw("volume", "set", "--property", "b=2", "--bootable", "--name", f"{name}-x", made["id"])
    cloud.run_raw("volume", "set", "--size", "2", made["id"])
    api.wait("volumes", made["id"])
    shown = cloud.run("volume", "show", made["id"])
    assert (shown["name"], shown["size"], shown["bootable"], shown["type"]) == (f"{name}-x", 2, True, "__DEFAULT__")
    assert shown["properties"] == {"a": "1", "b": "2"} and shown["description"] == "first"
    cloud.run_raw("volume", "delete", made["id"])
    api.wait("volumes", made["id"], None)


def test_volume_type_create_then_volume_create_with_type(cloud: Cloud, api: Api) -> None:
    type_name = unique("fast")
    made_type = cloud.run("volume", "type", "create", "--property", "tier=gold", type_name)
    assert made_type["name"] == type_name
    vol = cloud.run("volume", "create", "--size", "1", "--type", type_name, unique("typed"))
    assert vol["type"] == type_name
    api.wait("volumes", vol["id"])
    api.delete("volumes", vol["id"])
    assert api.http.delete(f"{api.volume}/types/{made_type['id']}").status_code == 202


def test_snapshot_create_list_delete_and_volumes_from_snapshot_and_source(cloud: Cloud, api: Api) -> None:
    source = api.create_volume(size=1, name=unique("src"))
    snap_name = unique("snap")
    snap = cloud.run("volume", "snapshot", "create", "--volume", source, snap_name)
    api.wait("snapshots", snap["id"])
    assert snap_name in {s["Name"] for s in cloud.run("volume", "snapshot", "list")}
    from_snap = cloud.run("volume", "create", "--snapshot", snap["id"], unique("fromsnap"))
    clone = cloud.run("volume", "create", "--source", source, unique("clone"))
    assert (from_snap["snapshot_id"], clone["source_volid"]) == (snap["id"], source)
    for made in (from_snap, clone):
        api.wait("volumes", made["id"])
        api.delete("volumes", made["id"])
    cloud.run_raw("volume", "snapshot", "delete", snap["id"])
    api.wait("snapshots", snap["id"], None)
    api.delete("volumes", source)


def test_volume_create_from_image_is_bootable_with_the_image_metadata(cloud: Cloud, api: Api, tmp_path: Path) -> None:
    disk = tmp_path / "tiny.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "32M"], check=True)
    image = api.http.post(f"{api.image}/v2/images", json={"name": unique("img"), "disk_format": "qcow2",
                                                          "container_format": "bare"}).json()
    uploaded = api.http.put(f"{api.image}/v2/images/{image['id']}/file", content=disk.read_bytes(),
                            headers={"Content-Type": "application/octet-stream"})
    assert uploaded.status_code == 204, uploaded.text
    vol = cloud.run("volume", "create", "--size", "1", "--image", image["id"], unique("boot"))
    api.wait("volumes", vol["id"])
    shown = api.http.get(f"{api.volume}/volumes/{vol['id']}").json()["volume"]
    assert shown["bootable"] == "true" and shown["volume_image_metadata"]["image_id"] == image["id"]
    api.delete("volumes", vol["id"])
    api.http.delete(f"{api.image}/v2/images/{image['id']}")


def test_volume_delete_refused_while_in_use(cloud: Cloud, api: Api) -> None:
    volume_id = api.create_volume(size=1, name=unique("attached"))
    made = api.http.post(f"{api.volume}/attachments", headers=api.latest, json={"attachment": {
        "volume_uuid": volume_id, "instance_uuid": "2f8c1c2e-6b1e-4a7e-9d43-5a0c3f5e7b11"}})
    assert made.status_code == 200, made.text
    attachment = made.json()["attachment"]
    assert api.status("volumes", volume_id) == "reserved"
    host = api.http.get(f"{api.volume}/volumes/{volume_id}").json()["volume"]["os-vol-host-attr:host"].split("@")[0]
    connected = api.http.put(f"{api.volume}/attachments/{attachment['id']}", headers=api.latest,
                             json={"attachment": {"connector": {"host": host}}})
    assert connected.status_code == 200, connected.text
    info = connected.json()["attachment"]["connection_info"]
    assert info["driver_volume_type"] == "local" and Path(info["data"]["device_path"]).exists()
    completed = api.http.post(f"{api.volume}/attachments/{attachment['id']}/action", headers=api.latest,
                              json={"os-complete": {}})
    assert completed.status_code == 204, completed.text
    assert api.status("volumes", volume_id) == "in-use"
    refused = cloud.run_raw("volume", "delete", volume_id, check=False)
    assert refused.returncode != 0 and "status must be available" in refused.stderr, refused.stderr
    assert api.status("volumes", volume_id) == "in-use"
    assert api.http.delete(f"{api.volume}/attachments/{attachment['id']}", headers=api.latest).status_code == 200
    assert api.status("volumes", volume_id) == "available"
    api.delete("volumes", volume_id)


def test_quota_set_volumes_then_exceeding_it_gives_the_quota_error(cloud: Cloud, api: Api) -> None:
    project = unique("quota")
    api.member_project(project)
    cloud.run_raw("quota", "set", "--volumes", "1", project)
    first = cloud.run_as(project, MEMBER_PASSWORD, project, "volume", "create", "--size", "1", unique("q"))
    assert first.returncode == 0
    second = cloud.run_as(project, MEMBER_PASSWORD, project, "volume", "create", "--size", "1", unique("q"),
                          check=False)
    assert second.returncode != 0
    assert "Maximum number of volumes allowed (1) exceeded for quota 'volumes'" in second.stderr, second.stderr


def test_another_project_cannot_see_attach_or_snapshot_a_volume(cloud: Cloud, api: Api) -> None:
    volume_id = api.create_volume(size=1, name=unique("private"))
    other = unique("other")
    api.member_project(other)
    shown = cloud.run_as(other, MEMBER_PASSWORD, other, "volume", "show", volume_id, check=False)
    assert shown.returncode != 0 and "No Volume found for" in shown.stderr, shown.stderr
    snap = cloud.run_as(other, MEMBER_PASSWORD, other, "volume", "snapshot", "create", "--volume", volume_id,
                        unique("s"), check=False)
    assert snap.returncode != 0 and "No Volume found for" in snap.stderr, snap.stderr
    listed = cloud.run_as(other, MEMBER_PASSWORD, other, "volume", "list", "-f", "json")
    assert volume_id not in listed.stdout
    api.delete("volumes", volume_id)
