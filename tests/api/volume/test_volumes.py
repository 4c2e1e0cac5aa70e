"""Volumes through the API, conductor and a real file-backend agent (qemu-img)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.api.identity.helpers import MEMBER_PASSWORD
from tests.api.volume.helpers import (
    action,
    admin,
    create_volume,
    member_headers,
    wait_gone,
    wait_status,
)
from tests.conftest import ImageHarness, VolumeHarness, make_volume


def _file(volume: VolumeHarness, volume_id: str) -> Path:
    return volume.service.storage_dir() / f"volume-{volume_id}"


def _virtual_size(path: Path) -> int:
    info = subprocess.run(["qemu-img", "info", "--output=json", str(path)], capture_output=True, text=True,
                          check=True).stdout
    return int(json.loads(info)["virtual-size"])


def test_version_discovery_names_the_microversion_range(volume: VolumeHarness) -> None:
    response = volume.client.get("/")
    assert response.status_code == 300
    version = response.json()["versions"][0]
    assert (version["id"], version["min_version"], version["version"]) == ("v3.0", "3.0", "3.70")
    served = volume.client.get("/v3/volumes", headers={**volume.as_admin(), "OpenStack-API-Version": "volume 3.27"})
    assert served.headers["OpenStack-API-Version"] == "volume 3.27"
    too_new = volume.client.get("/v3/volumes", headers={**volume.as_admin(), "OpenStack-API-Version": "volume 3.99"})
    assert too_new.status_code == 406


def test_create_empty_volume_makes_a_sparse_file_of_that_size(volume: VolumeHarness) -> None:
    headers = member_headers(volume)
    created = create_volume(volume, headers, size=2, name="data", description="d", metadata={"k": "v"})
    assert created["status"] == "creating" and created["volume_type"] == "__DEFAULT__"
    done = wait_status(volume, headers, f"/v3/volumes/{created['id']}", "available")
    assert (done["size"], done["name"], done["metadata"], done["bootable"]) == (2, "data", {"k": "v"}, "false")
    path = _file(volume, created["id"])
    assert _virtual_size(path) == 2 * 1024**3
    assert path.stat().st_blocks * 512 < 10 * 1024**2  # sparse
    # The project prefix form of the URL reaches the same volume.
    project_id = done["os-vol-tenant-attr:tenant_id"]
    assert volume.client.get(f"/v3/{project_id}/volumes/{created['id']}", headers=headers).status_code == 200


def test_list_filters_sorts_and_pages_with_next_links(volume: VolumeHarness) -> None:
    headers = member_headers(volume)
    ids = [create_volume(volume, headers, size=1, name=f"v{i}", metadata={"n": str(i % 2)})["id"] for i in range(3)]
    for volume_id in ids:
        wait_status(volume, headers, f"/v3/volumes/{volume_id}", "available")
    page = volume.client.get("/v3/volumes?sort=name:asc&limit=2", headers=headers).json()
    assert [v["name"] for v in page["volumes"]] == ["v0", "v1"]
    next_href = page["volumes_links"][0]["href"]
    rest = volume.client.get(next_href.split("testserver", 1)[1], headers=headers).json()
    assert [v["name"] for v in rest["volumes"]] == ["v2"] and "volumes_links" not in rest
    detail = volume.client.get('/v3/volumes/detail?metadata={"n": "1"}', headers=headers).json()["volumes"]
    assert [v["name"] for v in detail] == ["v1"] and detail[0]["status"] == "available"
    assert volume.client.get("/v3/volumes?name=v2", headers=headers).json()["volumes"][0]["id"] == ids[2]
    assert volume.client.get("/v3/volumes?sort=bogus:asc", headers=headers).status_code == 400
    assert volume.client.get("/v3/volumes?marker=nope", headers=headers).status_code == 400


def test_update_metadata_extend_and_bootable(volume: VolumeHarness) -> None:
    headers = member_headers(volume)
    volume_id = create_volume(volume, headers, size=1)["id"]
    wait_status(volume, headers, f"/v3/volumes/{volume_id}", "available")
    updated = volume.client.put(f"/v3/volumes/{volume_id}", json={"volume": {"name": "renamed"}}, headers=headers)
    assert updated.json()["volume"]["name"] == "renamed"
    volume.client.post(f"/v3/volumes/{volume_id}/metadata", json={"metadata": {"a": "1", "b": "2"}}, headers=headers)
    assert volume.client.delete(f"/v3/volumes/{volume_id}/metadata/a", headers=headers).status_code == 200
    assert volume.client.get(f"/v3/volumes/{volume_id}/metadata", headers=headers).json() == {"metadata": {"b": "2"}}
    assert action(volume, headers, volume_id, "os-set_bootable", {"bootable": True}).status_code == 200
    assert action(volume, headers, volume_id, "os-extend", {"new_size": 1}).status_code == 400
    assert action(volume, headers, volume_id, "os-extend", {"new_size": 3}).status_code == 202
    done = wait_status(volume, headers, f"/v3/volumes/{volume_id}", "available")
    assert (done["size"], done["bootable"]) == (3, "true")
    assert _virtual_size(_file(volume, volume_id)) == 3 * 1024**3


def test_snapshot_then_volume_from_snapshot_and_clone_copy_the_data(volume: VolumeHarness) -> None:
    headers = member_headers(volume)
    source = create_volume(volume, headers, size=1)["id"]
    wait_status(volume, headers, f"/v3/volumes/{source}", "available")
    with open(_file(volume, source), "r+b") as handle:
        handle.seek(4096)
        handle.write(b"pattern-1234")
    snap = volume.client.post("/v3/snapshots", json={"snapshot": {"volume_id": source, "name": "s1"}},
                              headers=headers)
    assert snap.status_code == 202, snap.text
    snap_id = snap.json()["snapshot"]["id"]
    wait_status(volume, headers, f"/v3/snapshots/{snap_id}", "available")
    from_snap = create_volume(volume, headers, snapshot_id=snap_id, size=2)["id"]
    clone = create_volume(volume, headers, source_volid=source)["id"]
    for new in (from_snap, clone):
        wait_status(volume, headers, f"/v3/volumes/{new}", "available")
        with open(_file(volume, new), "rb") as handle:
            handle.seek(4096)
            assert handle.read(12) == b"pattern-1234"
    assert _virtual_size(_file(volume, from_snap)) == 2 * 1024**3
    # A volume with snapshots is deleted only with cascade.
    refused = volume.client.delete(f"/v3/volumes/{source}", headers=headers)
    assert refused.status_code == 400 and "snapshots" in refused.json()["badRequest"]["message"]
    assert volume.client.delete(f"/v3/volumes/{source}?cascade=true", headers=headers).status_code == 202
    wait_gone(volume, headers, f"/v3/volumes/{source}")
    assert volume.client.get(f"/v3/snapshots/{snap_id}", headers=headers).status_code == 404
    assert not _file(volume, source).exists()
    assert not (volume.service.storage_dir() / f"snapshot-{snap_id}").exists()


def test_create_from_image_streams_and_converts_it(volume: VolumeHarness, tmp_path: Path) -> None:
    headers = member_headers(volume)
    disk = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    image = volume.image.client.post("/v2/images", json={"name": "tiny", "disk_format": "qcow2",
                                                          "container_format": "bare", "os_distro": "debian"},
                                     headers={"X-Auth-Token": headers["X-Auth-Token"]}).json()
    uploaded = volume.image.client.put(f"/v2/images/{image['id']}/file", content=disk.read_bytes(),
                                       headers={"X-Auth-Token": headers["X-Auth-Token"],
                                                "Content-Type": "application/octet-stream"})
    assert uploaded.status_code == 204, uploaded.text
    created = create_volume(volume, headers, size=1, imageRef=image["id"])
    done = wait_status(volume, headers, f"/v3/volumes/{created['id']}", {"available", "error"})
    assert done["status"] == "available", done
    assert done["bootable"] == "true"
    assert done["volume_image_metadata"]["image_id"] == image["id"]
    assert done["volume_image_metadata"]["os_distro"] == "debian"
    assert _virtual_size(_file(volume, created["id"])) == 1024**3


def test_bad_input_gets_faults(volume: VolumeHarness) -> None:
    headers = member_headers(volume)
    assert volume.client.post("/v3/volumes", json={"volume": {}}, headers=headers).status_code == 400
    assert volume.client.post("/v3/volumes", json={"volume": {"size": 0}}, headers=headers).status_code == 400
    missing_type = volume.client.post("/v3/volumes", json={"volume": {"size": 1, "volume_type": "nope"}},
                                      headers=headers)
    assert missing_type.status_code == 404 and "itemNotFound" in missing_type.json()
    bad_zone = volume.client.post("/v3/volumes", json={"volume": {"size": 1, "availability_zone": "mars"}},
                                  headers=headers)
    assert bad_zone.status_code == 400
    volume_id = create_volume(volume, headers, size=1)["id"]
    assert action(volume, headers, volume_id, "os-bogus", {}).status_code == 400
    assert action(volume, headers, volume_id, "os-reset_status", {"status": "error"}).status_code == 403


def test_admin_reset_status_and_all_tenants(volume: VolumeHarness) -> None:
    headers = member_headers(volume)
    volume_id = create_volume(volume, headers, size=1)["id"]
    wait_status(volume, headers, f"/v3/volumes/{volume_id}", "available")
    assert action(volume, admin(volume), volume_id, "os-reset_status", {"status": "error"}).status_code == 202
    assert volume.client.get(f"/v3/volumes/{volume_id}", headers=headers).json()["volume"]["status"] == "error"
    mine = volume.client.get("/v3/volumes", headers=admin(volume)).json()["volumes"]
    everyone = volume.client.get("/v3/volumes?all_tenants=1", headers=admin(volume)).json()["volumes"]
    assert volume_id not in {v["id"] for v in mine} and volume_id in {v["id"] for v in everyone}
    assert volume.client.get("/v3/volumes?all_tenants=1", headers=headers).status_code == 403
    assert volume.client.delete(f"/v3/volumes/{volume_id}", headers=headers).status_code == 202
    wait_gone(volume, headers, f"/v3/volumes/{volume_id}")
    assert not _file(volume, volume_id).exists()


def test_upload_to_image_streams_the_volume_into_a_new_image(volume: VolumeHarness, tmp_path: Path) -> None:
    headers = member_headers(volume)
    volume_id = create_volume(volume, headers, size=1)["id"]
    wait_status(volume, headers, f"/v3/volumes/{volume_id}", "available")
    with open(_file(volume, volume_id), "r+b") as handle:
        handle.seek(1024**2)
        handle.write(b"\x5a" * 4096)
    # qcow2 keeps the upload small: only the written cluster travels.
    response = action(volume, headers, volume_id, "os-volume_upload_image",
                      {"image_name": "from-volume", "disk_format": "qcow2", "container_format": "bare",
                       "visibility": "private"})
    assert response.status_code == 200, response.text
    upload = response.json()["os-volume_upload_image"]
    assert (upload["status"], upload["image_name"], upload["disk_format"]) == ("uploading", "from-volume", "qcow2")
    wait_status(volume, headers, f"/v3/volumes/{volume_id}", "available")
    token = {"X-Auth-Token": headers["X-Auth-Token"]}
    image = volume.image.client.get(f"/v2/images/{upload['image_id']}", headers=token).json()
    assert (image["status"], image["disk_format"], image["visibility"]) == ("active", "qcow2", "private")
    copy = tmp_path / "copy.qcow2"
    copy.write_bytes(volume.image.client.get(f"/v2/images/{upload['image_id']}/file", headers=token).content)
    assert _virtual_size(copy) == 1024**3
    read = subprocess.run(["qemu-io", "-r", "-f", "qcow2", "-c", "read -P 0x5a 1M 4k", str(copy)],
                          capture_output=True, text=True, check=True).stdout
    assert "read 4096/4096" in read and "failed" not in read, read
    bad = action(volume, headers, volume_id, "os-volume_upload_image", {"image_name": "x", "disk_format": "vmdk"})
    assert bad.status_code == 400


def test_qcow2_file_format_snapshots_clones_and_extends(image: ImageHarness, database_url: str) -> None:
    harness = make_volume(image, database_url, file_format="qcow2")
    try:
        headers = member_headers(harness)
        source = create_volume(harness, headers, size=1)["id"]
        wait_status(harness, headers, f"/v3/volumes/{source}", "available")
        path = _file(harness, source)
        info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(path)], capture_output=True,
                                         text=True, check=True).stdout)
        assert info["format"] == "qcow2"
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 64k", str(path)], check=True,
                       capture_output=True)
        snap = harness.client.post("/v3/snapshots", json={"snapshot": {"volume_id": source}}, headers=headers)
        snap_id = snap.json()["snapshot"]["id"]
        wait_status(harness, headers, f"/v3/snapshots/{snap_id}", "available")
        copy = create_volume(harness, headers, snapshot_id=snap_id)["id"]
        wait_status(harness, headers, f"/v3/volumes/{copy}", "available")
        assert action(harness, headers, copy, "os-extend", {"new_size": 2}).status_code == 202
        wait_status(harness, headers, f"/v3/volumes/{copy}", "available")
        checked = subprocess.run(["qemu-io", "-f", "qcow2", "-c", "read -P 0x5a 0 64k", str(_file(harness, copy))],
                                 capture_output=True, text=True, check=True)
        assert "read 65536/65536" in checked.stdout and "failed" not in checked.stdout, checked.stdout
        assert _virtual_size(_file(harness, copy)) == 2 * 1024**3
    finally:
        harness.close()


def test_a_reader_sees_but_cannot_change(volume: VolumeHarness) -> None:
    headers = member_headers(volume)
    volume_id = create_volume(volume, headers, size=1)["id"]
    project = volume.identity.client.get("/v3/auth/tokens", headers={
        **volume.as_admin(), "X-Subject-Token": headers["X-Auth-Token"]}).json()["token"]["project"]["id"]
    reader_role = volume.identity.client.get("/v3/roles?name=reader", headers=volume.as_admin()).json()["roles"][0]
    user = volume.identity.client.post("/v3/users", json={"user": {"name": "rita", "password": MEMBER_PASSWORD}},
                                       headers=volume.as_admin()).json()["user"]
    volume.identity.client.put(f"/v3/projects/{project}/users/{user['id']}/roles/{reader_role['id']}",
                               headers=volume.as_admin())
    reader = {"X-Auth-Token": volume.identity.token("rita", MEMBER_PASSWORD, "alice-project")}
    assert volume.client.get(f"/v3/volumes/{volume_id}", headers=reader).status_code == 200
    assert volume.client.post("/v3/volumes", json={"volume": {"size": 1}}, headers=reader).status_code == 403
    assert volume.client.put(f"/v3/volumes/{volume_id}", json={"volume": {"name": "x"}},
                             headers=reader).status_code == 403


def test_image_metadata_readonly_and_force_delete_actions(volume: VolumeHarness) -> None:
    headers = member_headers(volume)
    volume_id = create_volume(volume, headers, size=1)["id"]
    wait_status(volume, headers, f"/v3/volumes/{volume_id}", "available")
    made = action(volume, headers, volume_id, "os-set_image_metadata", {"metadata": {"os_type": "linux", "x": "1"}})
    assert made.status_code == 200 and made.json()["metadata"] == {"os_type": "linux", "x": "1"}
    assert action(volume, headers, volume_id, "os-unset_image_metadata", {"key": "x"}).status_code == 200
    assert action(volume, headers, volume_id, "os-unset_image_metadata", {"key": "x"}).status_code == 404
    shown = action(volume, headers, volume_id, "os-show_image_metadata", {})
    assert shown.json() == {"metadata": {"os_type": "linux"}}
    assert volume.client.get(f"/v3/volumes/{volume_id}", headers=headers).json()["volume"][
        "volume_image_metadata"] == {"os_type": "linux"}
    assert action(volume, headers, volume_id, "os-update_readonly_flag", {"readonly": True}).status_code == 202
    assert action(volume, headers, volume_id, "os-force_delete", {}).status_code == 403
    action(volume, admin(volume), volume_id, "os-reset_status", {"status": "creating"})
    assert action(volume, admin(volume), volume_id, "os-force_delete", {}).status_code == 202
    wait_gone(volume, headers, f"/v3/volumes/{volume_id}")
    assert not _file(volume, volume_id).exists()
