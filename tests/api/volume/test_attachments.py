"""Attachments: the v3 API and the legacy actions, their statuses, and another project's 404."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from tests.api.volume.helpers import action, admin, create_volume, member_headers, wait_status
from tests.conftest import VolumeHarness

SERVER = "8d3f1d7e-3a57-4f43-9d39-2a2f6b8c7e10"


def _available(volume: VolumeHarness, headers: dict[str, str]) -> str:
    volume_id = create_volume(volume, headers, size=1)["id"]
    wait_status(volume, headers, f"/v3/volumes/{volume_id}", "available")
    return str(volume_id)


def _status(volume: VolumeHarness, headers: dict[str, str], volume_id: str) -> str:
    return str(volume.client.get(f"/v3/volumes/{volume_id}", headers=headers).json()["volume"]["status"])


def test_attachments_api_moves_the_volume_through_its_states(volume: VolumeHarness) -> None:
    headers = member_headers(volume)
    volume_id = _available(volume, headers)
    old = {**headers, "OpenStack-API-Version": "volume 3.26"}
    assert volume.client.post("/v3/attachments", json={}, headers=old).status_code == 404
    made = volume.client.post("/v3/attachments", json={"attachment": {"volume_uuid": volume_id,
                                                                       "instance_uuid": SERVER}}, headers=headers)
    assert made.status_code == 200, made.text
    attachment = made.json()["attachment"]
    assert attachment["status"] == "reserved" and _status(volume, headers, volume_id) == "reserved"
    second = volume.client.post("/v3/attachments", json={"attachment": {"volume_uuid": volume_id}}, headers=headers)
    assert second.status_code == 400  # not multiattach
    early = volume.client.post(f"/v3/attachments/{attachment['id']}/action", json={"os-complete": {}},
                               headers=headers)
    assert early.status_code == 400
    updated = volume.client.put(f"/v3/attachments/{attachment['id']}",
                                json={"attachment": {"connector": {"host": "storage-1"}}}, headers=headers)
    assert updated.status_code == 200, updated.text
    info = updated.json()["attachment"]["connection_info"]
    assert info["driver_volume_type"] == "local"
    assert Path(info["data"]["device_path"]) == volume.service.storage_dir() / f"volume-{volume_id}"
    assert _status(volume, headers, volume_id) == "attaching"
    done = volume.client.post(f"/v3/attachments/{attachment['id']}/action", json={"os-complete": {}},
                              headers=headers)
    assert done.status_code == 204
    shown = volume.client.get(f"/v3/volumes/{volume_id}", headers=headers).json()["volume"]
    assert shown["status"] == "in-use"
    assert shown["attachments"][0]["server_id"] == SERVER
    assert shown["attachments"][0]["attachment_id"] == attachment["id"]
    refused = volume.client.delete(f"/v3/volumes/{volume_id}", headers=headers)
    assert refused.status_code == 400
    listed = volume.client.get(f"/v3/attachments?volume_id={volume_id}", headers=headers).json()["attachments"]
    assert [a["id"] for a in listed] == [attachment["id"]]
    assert volume.client.delete(f"/v3/attachments/{attachment['id']}", headers=headers).status_code == 200
    assert _status(volume, headers, volume_id) == "available"


def test_legacy_actions_reserve_connect_attach_detach(volume: VolumeHarness) -> None:
    headers = member_headers(volume)
    volume_id = _available(volume, headers)
    assert action(volume, headers, volume_id, "os-reserve", {}).status_code == 202
    assert _status(volume, headers, volume_id) == "attaching"
    assert action(volume, headers, volume_id, "os-unreserve", {}).status_code == 202
    assert _status(volume, headers, volume_id) == "available"
    assert action(volume, headers, volume_id, "os-reserve", {}).status_code == 202
    connected = action(volume, headers, volume_id, "os-initialize_connection", {"connector": {"host": "storage-1"}})
    assert connected.status_code == 200, connected.text
    assert connected.json()["connection_info"]["driver_volume_type"] == "local"
    attached = action(volume, headers, volume_id, "os-attach", {"instance_uuid": SERVER, "mountpoint": "/dev/vdb"})
    assert attached.status_code == 202
    shown = volume.client.get(f"/v3/volumes/{volume_id}", headers=headers).json()["volume"]
    assert shown["status"] == "in-use" and shown["attachments"][0]["device"] == "/dev/vdb"
    assert action(volume, headers, volume_id, "os-begin_detaching", {}).status_code == 202
    assert _status(volume, headers, volume_id) == "detaching"
    assert action(volume, headers, volume_id, "os-roll_detaching", {}).status_code == 202
    assert _status(volume, headers, volume_id) == "in-use"
    assert action(volume, headers, volume_id, "os-begin_detaching", {}).status_code == 202
    assert action(volume, headers, volume_id, "os-terminate_connection",
                  {"connector": {"host": "storage-1"}}).status_code == 202
    assert action(volume, headers, volume_id, "os-detach",
                  {"attachment_id": shown["attachments"][0]["attachment_id"]}).status_code == 202
    assert _status(volume, headers, volume_id) == "available"


def test_in_use_volume_extends_from_3_42(volume: VolumeHarness) -> None:
    headers = member_headers(volume)
    volume_id = _available(volume, headers)
    action(volume, headers, volume_id, "os-attach", {"instance_uuid": SERVER, "mountpoint": "/dev/vdb"})
    old = {**headers, "OpenStack-API-Version": "volume 3.41"}
    assert action(volume, old, volume_id, "os-extend", {"new_size": 2}).status_code == 400
    assert action(volume, headers, volume_id, "os-extend", {"new_size": 2}).status_code == 202
    assert wait_status(volume, headers, f"/v3/volumes/{volume_id}", "in-use")["size"] == 2


def test_another_project_gets_404_for_everything_of_a_volume(volume: VolumeHarness) -> None:
    owner = member_headers(volume)
    volume_id = _available(volume, owner)
    other = member_headers(volume, "mallory")
    assert volume.client.get(f"/v3/volumes/{volume_id}", headers=other).status_code == 404
    assert volume_id not in volume.client.get("/v3/volumes", headers=other).text
    assert volume.client.put(f"/v3/volumes/{volume_id}", json={"volume": {"name": "x"}},
                             headers=other).status_code == 404
    assert volume.client.delete(f"/v3/volumes/{volume_id}", headers=other).status_code == 404
    assert action(volume, other, volume_id, "os-extend", {"new_size": 5}).status_code == 404
    assert action(volume, other, volume_id, "os-reserve", {}).status_code == 404
    attach = volume.client.post("/v3/attachments", json={"attachment": {"volume_uuid": volume_id}}, headers=other)
    assert attach.status_code == 404
    snap = volume.client.post("/v3/snapshots", json={"snapshot": {"volume_id": volume_id}}, headers=other)
    assert snap.status_code == 404
    clone = volume.client.post("/v3/volumes", json={"volume": {"source_volid": volume_id}}, headers=other)
    assert clone.status_code == 404
    assert _status(volume, owner, volume_id) == "available"
    # The admin sees it.
    assert volume.client.get(f"/v3/volumes/{volume_id}", headers=admin(volume)).status_code == 200


def test_another_compute_host_gets_an_nbd_export_that_ends_with_the_attachment(volume: VolumeHarness) -> None:
    headers = member_headers(volume)
    volume_id = _available(volume, headers)
    made = volume.client.post("/v3/attachments", json={"attachment": {
        "volume_uuid": volume_id, "instance_uuid": SERVER, "connector": {"host": "compute-7"}}}, headers=headers)
    assert made.status_code == 200, made.text
    attachment = made.json()["attachment"]
    info = attachment["connection_info"]
    assert info["driver_volume_type"] == "nbd" and info["data"]["host"] == "127.0.0.1"
    url = f"nbd://127.0.0.1:{info['data']['port']}/{info['data']['export_name']}"
    probe = subprocess.run(["qemu-img", "info", "--output=json", url], capture_output=True, text=True, timeout=30)
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout)["virtual-size"] == 1024**3
    assert volume.client.delete(f"/v3/attachments/{attachment['id']}", headers=headers).status_code == 200
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", info["data"]["port"]), timeout=1).close()
