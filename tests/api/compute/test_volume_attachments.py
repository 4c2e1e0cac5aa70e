"""Volumes on servers through the whole control plane: os-volume_attachments (attach, list, show,
detach), volumes_attached on the server, detach on server delete, and boot from volume — the
compute API and conductor calling the block storage API with the fake driver on host storage-1
(where the volume files are, so the connection is a local path)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from stratus.compute import flavors, models
from stratus.core.service_client import ServiceAuth
from stratus.volume.client import VolumeClient
from tests.api.compute.servers_helpers import Tenant, boot, public_image, show, tenant, wait_for, wait_gone
from tests.conftest import (
    SERVICE_PASSWORD,
    ComputeHarness,
    ImageHarness,
    NetworkHarness,
    VolumeHarness,
    make_compute,
)

VOLUME_API = "volume 3.70"


@pytest.fixture
def cloud(network: NetworkHarness, image: ImageHarness, volume: VolumeHarness,
          database_url: str) -> Iterator[ComputeHarness]:
    harness = make_compute(network, image, database_url, driver="fake", host="storage-1", fake_hosts=1,
                           report_interval=0.5)
    auth = ServiceAuth("http://identity", "nova", SERVICE_PASSWORD, http=volume.identity.client)
    harness.service.volume = VolumeClient("http://volume", auth, http=volume.client)
    with harness.service.db.transaction() as session:
        flavors.seed_default_flavors(session)
    harness.start()
    yield harness
    harness.close()


def _vheaders(who: Tenant) -> dict[str, str]:
    return {"X-Auth-Token": who.headers["X-Auth-Token"], "OpenStack-API-Version": VOLUME_API}


def _volume(volume: VolumeHarness, who: Tenant, volume_id: str) -> dict[str, Any]:
    response = volume.client.get(f"/v3/volumes/{volume_id}", headers=_vheaders(who))
    assert response.status_code == 200, response.text
    return response.json()["volume"]  # type: ignore[no-any-return]


def _wait_volume(volume: VolumeHarness, who: Tenant, volume_id: str, status: str,
                 timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        doc = _volume(volume, who, volume_id)
        if doc["status"] == status:
            return doc
        assert time.monotonic() < deadline, f"volume {volume_id} stayed {doc['status']}, wanted {status}"
        time.sleep(0.05)


def _new_volume(volume: VolumeHarness, who: Tenant, **fields: Any) -> str:
    response = volume.client.post("/v3/volumes", json={"volume": {"size": 1, **fields}}, headers=_vheaders(who))
    assert response.status_code == 202, response.text
    volume_id = str(response.json()["volume"]["id"])
    _wait_volume(volume, who, volume_id, "available")
    return volume_id


def _attach(cloud: ComputeHarness, who: Tenant, server_id: str, volume_id: str, **extra: Any) -> Any:
    return cloud.client.post(f"/v2.1/servers/{server_id}/os-volume_attachments", headers=who.headers,
                             json={"volumeAttachment": {"volumeId": volume_id, **extra}})


def _driver_volumes(cloud: ComputeHarness, server_id: str) -> dict[str, Any]:
    """What the fake hypervisor has plugged into the instance, by device."""
    driver = cloud.runtime.agents[0]._driver
    return dict(driver._instances[server_id].volumes)


def _mappings(cloud: ComputeHarness, server_id: str) -> list[models.BlockDeviceMapping]:
    with cloud.service.db.transaction() as session:
        rows = list(session.scalars(sa.select(models.BlockDeviceMapping)
                                    .where(models.BlockDeviceMapping.instance_id == server_id)))
        session.expunge_all()
        return rows


def test_attach_list_show_and_detach_move_the_volume_through_in_use(cloud: ComputeHarness,
                                                                    volume: VolumeHarness) -> None:
    alice = tenant(cloud, "alice")
    server_id = boot(cloud, alice, public_image(cloud))["id"]
    wait_for(cloud, alice, server_id, "ACTIVE")
    volume_id = _new_volume(volume, alice)

    response = _attach(cloud, alice, server_id, volume_id)
    assert response.status_code == 200, response.text
    assert response.json()["volumeAttachment"] == {"id": volume_id, "serverId": server_id, "volumeId": volume_id,
                                                   "device": "/dev/vdb"}
    doc = _wait_volume(volume, alice, volume_id, "in-use")
    assert [(a["server_id"], a["device"] if "device" in a else None) for a in doc["attachments"]][0][0] == server_id
    assert "/dev/vdb" in _driver_volumes(cloud, server_id)
    assert _driver_volumes(cloud, server_id)["/dev/vdb"]["driver_volume_type"] == "local"
    assert show(cloud, alice, server_id)["os-extended-volumes:volumes_attached"] == [{"id": volume_id}]

    listed = cloud.client.get(f"/v2.1/servers/{server_id}/os-volume_attachments", headers=alice.headers)
    assert listed.status_code == 200
    assert [a["volumeId"] for a in listed.json()["volumeAttachments"]] == [volume_id]
    shown = cloud.client.get(f"/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}", headers=alice.headers)
    assert shown.json()["volumeAttachment"]["device"] == "/dev/vdb"
    swap = cloud.client.put(f"/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}", headers=alice.headers,
                            json={"volumeAttachment": {"volumeId": volume_id}})
    assert swap.status_code == 400

    detach = cloud.client.delete(f"/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}",
                                 headers=alice.headers)
    assert detach.status_code == 202, detach.text
    doc = _wait_volume(volume, alice, volume_id, "available")
    assert doc["attachments"] == []
    assert _driver_volumes(cloud, server_id) == {}
    assert show(cloud, alice, server_id)["os-extended-volumes:volumes_attached"] == []
    missing = cloud.client.get(f"/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}", headers=alice.headers)
    assert missing.status_code == 404


def test_a_volume_in_use_or_of_another_project_or_unknown_is_refused(cloud: ComputeHarness,
                                                                      volume: VolumeHarness) -> None:
    alice, bob = tenant(cloud, "alice"), tenant(cloud, "bob")
    image_id = public_image(cloud)
    first = boot(cloud, alice, image_id, name="one")["id"]
    second = boot(cloud, alice, image_id, name="two")["id"]
    wait_for(cloud, alice, first, "ACTIVE")
    wait_for(cloud, alice, second, "ACTIVE")
    volume_id = _new_volume(volume, alice)
    assert _attach(cloud, alice, first, volume_id).status_code == 200
    _wait_volume(volume, alice, volume_id, "in-use")

    again = _attach(cloud, alice, first, volume_id)
    assert again.status_code == 400, again.text
    in_use = _attach(cloud, alice, second, volume_id)
    assert in_use.status_code == 400, in_use.text
    assert "badRequest" in in_use.json()
    assert _mappings(cloud, second) == []

    bobs_server = boot(cloud, bob, image_id, name="bobs")["id"]
    wait_for(cloud, bob, bobs_server, "ACTIVE")
    others = _attach(cloud, bob, bobs_server, _new_volume(volume, alice))
    assert others.status_code == 404, others.text
    unknown = _attach(cloud, alice, second, "0b7e0c52-64c8-4fb4-9a3c-1a0b8f9d2e11")
    assert unknown.status_code == 404
    bad_id = _attach(cloud, alice, second, "not-a-uuid")
    assert bad_id.status_code == 400
    bad_device = _attach(cloud, alice, second, _new_volume(volume, alice), device="/dev/sdz")
    assert bad_device.status_code == 400
    # Bob sees neither Alice's server nor its attachments.
    hidden = cloud.client.get(f"/v2.1/servers/{first}/os-volume_attachments", headers=bob.headers)
    assert hidden.status_code == 404


def test_deleting_a_server_detaches_its_volumes(cloud: ComputeHarness, volume: VolumeHarness) -> None:
    alice = tenant(cloud, "alice")
    server_id = boot(cloud, alice, public_image(cloud))["id"]
    wait_for(cloud, alice, server_id, "ACTIVE")
    volume_id = _new_volume(volume, alice)
    assert _attach(cloud, alice, server_id, volume_id).status_code == 200
    _wait_volume(volume, alice, volume_id, "in-use")
    assert cloud.client.delete(f"/v2.1/servers/{server_id}", headers=alice.headers).status_code == 204
    wait_gone(cloud, alice, server_id)
    assert _wait_volume(volume, alice, volume_id, "available")["attachments"] == []
    assert _mappings(cloud, server_id) == []


def _boot_from_volume(cloud: ComputeHarness, who: Tenant, bdm: dict[str, Any]) -> Any:
    body = {"server": {"name": "bfv", "flavorRef": "1", "networks": "none",
                       "block_device_mapping_v2": [{"boot_index": 0, "destination_type": "volume", **bdm}]}}
    return cloud.client.post("/v2.1/servers", json=body, headers=who.headers)


def test_boot_from_an_image_made_volume_deleted_with_the_server(cloud: ComputeHarness, volume: VolumeHarness) -> None:
    alice = tenant(cloud, "alice", network=False)
    image_id = public_image(cloud)
    response = _boot_from_volume(cloud, alice, {"source_type": "image", "uuid": image_id, "volume_size": 1,
                                                "delete_on_termination": True})
    assert response.status_code == 202, response.text
    server_id = response.json()["server"]["id"]
    server = wait_for(cloud, alice, server_id, "ACTIVE")
    assert server["image"] == ""
    attached = server["os-extended-volumes:volumes_attached"]
    assert len(attached) == 1
    volume_id = attached[0]["id"]
    doc = _wait_volume(volume, alice, volume_id, "in-use")
    assert doc["bootable"] == "true"
    assert doc["volume_image_metadata"]["image_id"] == image_id
    assert "/dev/vda" in _driver_volumes(cloud, server_id)
    root = cloud.client.delete(f"/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}", headers=alice.headers)
    assert root.status_code == 400  # the root disk stays

    assert cloud.client.delete(f"/v2.1/servers/{server_id}", headers=alice.headers).status_code == 204
    wait_gone(cloud, alice, server_id)
    deadline = time.monotonic() + 30
    while volume.client.get(f"/v3/volumes/{volume_id}", headers=_vheaders(alice)).status_code != 404:
        assert time.monotonic() < deadline, "the delete_on_termination volume was not deleted"
        time.sleep(0.05)


def test_boot_from_an_existing_volume_keeps_it_after_the_server(cloud: ComputeHarness, volume: VolumeHarness) -> None:
    alice = tenant(cloud, "alice", network=False)
    volume_id = _new_volume(volume, alice, imageRef=public_image(cloud))
    plain = _new_volume(volume, alice)
    not_bootable = _boot_from_volume(cloud, alice, {"source_type": "volume", "uuid": plain})
    assert not_bootable.status_code == 400, not_bootable.text
    response = _boot_from_volume(cloud, alice, {"source_type": "volume", "uuid": volume_id,
                                                "delete_on_termination": False})
    assert response.status_code == 202, response.text
    server_id = response.json()["server"]["id"]
    server = wait_for(cloud, alice, server_id, "ACTIVE")
    assert server["os-extended-volumes:volumes_attached"] == [{"id": volume_id}]
    _wait_volume(volume, alice, volume_id, "in-use")
    busy = _boot_from_volume(cloud, alice, {"source_type": "volume", "uuid": volume_id})
    assert busy.status_code == 400, busy.text

    assert cloud.client.delete(f"/v2.1/servers/{server_id}", headers=alice.headers).status_code == 204
    wait_gone(cloud, alice, server_id)
    assert _wait_volume(volume, alice, volume_id, "available")["attachments"] == []
