"""Volume types (extra specs, private access), quotas (totals and per type) and limits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.volume.helpers import admin, create_volume, member_headers, wait_status
from tests.conftest import VolumeHarness, _fresh_database


def _project_id(volume: VolumeHarness, headers: dict[str, str]) -> str:
    token = volume.identity.client.get("/v3/auth/tokens", headers={
        **volume.as_admin(), "X-Subject-Token": headers["X-Auth-Token"]})
    return str(token.json()["token"]["project"]["id"])


def test_private_type_needs_access_and_extra_specs_are_admin_only(volume: VolumeHarness) -> None:
    headers = member_headers(volume)
    project_id = _project_id(volume, headers)
    made = volume.client.post("/v3/types", json={"volume_type": {
        "name": "gold", "os-volume-type-access:is_public": False, "extra_specs": {"tier": "1"}}},
        headers=admin(volume))
    assert made.status_code == 200, made.text
    type_id = made.json()["volume_type"]["id"]
    assert volume.client.post("/v3/types", json={"volume_type": {"name": "x"}}, headers=headers).status_code == 403
    assert "gold" not in {t["name"] for t in volume.client.get("/v3/types", headers=headers).json()["volume_types"]}
    refused = volume.client.post("/v3/volumes", json={"volume": {"size": 1, "volume_type": "gold"}}, headers=headers)
    assert refused.status_code == 404
    granted = volume.client.post(f"/v3/types/{type_id}/action", json={"addProjectAccess": {"project": project_id}},
                                 headers=admin(volume))
    assert granted.status_code == 202
    access = volume.client.get(f"/v3/types/{type_id}/os-volume-type-access", headers=admin(volume)).json()
    assert access["volume_type_access"] == [{"volume_type_id": type_id, "project_id": project_id}]
    listed = {t["name"]: t for t in volume.client.get("/v3/types", headers=headers).json()["volume_types"]}
    assert listed["gold"]["extra_specs"] == {}  # a member does not see the specs
    made_volume = create_volume(volume, headers, size=1, volume_type="gold")
    assert made_volume["volume_type"] == "gold"
    volume.client.post(f"/v3/types/{type_id}/extra_specs", json={"extra_specs": {"b": "2"}}, headers=admin(volume))
    specs = volume.client.get(f"/v3/types/{type_id}/extra_specs", headers=admin(volume)).json()["extra_specs"]
    assert specs == {"tier": "1", "b": "2"}
    in_use = volume.client.delete(f"/v3/types/{type_id}", headers=admin(volume))
    assert in_use.status_code == 400


def test_backend_name_in_type_that_no_host_has_ends_in_error(volume: VolumeHarness) -> None:
    headers = member_headers(volume)
    volume.client.post("/v3/types", json={"volume_type": {"name": "lvm-only",
                                                          "extra_specs": {"volume_backend_name": "lvm"}}},
                       headers=admin(volume))
    made = create_volume(volume, headers, size=1, volume_type="lvm-only")
    failed = wait_status(volume, headers, f"/v3/volumes/{made['id']}", "error")
    assert failed["status"] == "error"


def test_quotas_refuse_in_the_creating_transaction_and_per_type(volume: VolumeHarness) -> None:
    headers = member_headers(volume)
    project_id = _project_id(volume, headers)
    volume.client.post("/v3/types", json={"volume_type": {"name": "ssd"}}, headers=admin(volume))
    update = volume.client.put(f"/v3/os-quota-sets/{project_id}", json={"quota_set": {
        "volumes": 3, "gigabytes": 4, "volumes_ssd": 1}}, headers=admin(volume))
    assert update.status_code == 200, update.text
    assert update.json()["quota_set"]["volumes_ssd"] == 1
    assert volume.client.put(f"/v3/os-quota-sets/{project_id}", json={"quota_set": {"volumes": 1}},
                             headers=headers).status_code == 403
    assert volume.client.put(f"/v3/os-quota-sets/{project_id}", json={"quota_set": {"bogus": 1}},
                             headers=admin(volume)).status_code == 400
    create_volume(volume, headers, size=1, volume_type="ssd")
    per_type = volume.client.post("/v3/volumes", json={"volume": {"size": 1, "volume_type": "ssd"}}, headers=headers)
    assert per_type.status_code == 413
    assert "volumes_ssd" in per_type.json()["overLimit"]["message"]
    too_big = volume.client.post("/v3/volumes", json={"volume": {"size": 4}}, headers=headers)
    assert too_big.status_code == 413 and "gigabytes" in too_big.json()["overLimit"]["message"]
    create_volume(volume, headers, size=1)
    create_volume(volume, headers, size=1)
    count = volume.client.post("/v3/volumes", json={"volume": {"size": 1}}, headers=headers)
    assert count.status_code == 413
    assert "Maximum number of volumes allowed (3) exceeded for quota 'volumes'" in count.json()["overLimit"]["message"]
    usage = volume.client.get(f"/v3/os-quota-sets/{project_id}?usage=True", headers=headers).json()["quota_set"]
    assert usage["volumes"] == {"limit": 3, "in_use": 3, "reserved": 0, "allocated": 0}
    assert usage["gigabytes"]["in_use"] == 3 and usage["volumes_ssd"]["in_use"] == 1
    absolute = volume.client.get("/v3/limits", headers=headers).json()["limits"]["absolute"]
    assert (absolute["maxTotalVolumes"], absolute["totalVolumesUsed"], absolute["totalGigabytesUsed"]) == (3, 3, 3)
    other = member_headers(volume, "bob")
    assert volume.client.get(f"/v3/os-quota-sets/{project_id}", headers=other).status_code == 403


def test_services_and_availability_zones(volume: VolumeHarness) -> None:
    services = volume.client.get("/v3/os-services", headers=admin(volume)).json()["services"]
    agent = next(s for s in services if s["binary"] == "cinder-volume")
    assert (agent["host"], agent["state"], agent["status"], agent["zone"]) == ("storage-1", "up", "enabled", "nova")
    assert {s["binary"] for s in services} >= {"cinder-volume", "cinder-scheduler"}
    assert volume.client.get("/v3/os-services", headers=member_headers(volume)).status_code == 403
    zones = volume.client.get("/v3/os-availability-zone", headers=admin(volume)).json()
    assert zones == {"availabilityZoneInfo": [{"zoneName": "nova", "zoneState": {"available": True}}]}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.backend),
                        pytest.param("mariadb", marks=pytest.mark.backend)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The quota checks lock rows and sum in SQL: they run on every engine."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'identity.sqlite'}"
    else:
        yield from _fresh_database(request.param)


def test_concurrent_creates_never_pass_the_limit(volume: VolumeHarness) -> None:
    """Six transactions race for two free volumes, each pausing between its check and its insert:
    the project lock makes them take turns, so exactly two get through."""
    import threading
    import time

    import sqlalchemy as sa

    from stratus.volume import models, quotas

    svc = volume.service
    with svc.db.transaction() as session:
        session.add(models.Quota(project_id="racer", resource="volumes", limit=2))
    barrier, outcomes = threading.Barrier(6), []

    def create() -> None:
        barrier.wait()
        try:
            with svc.db.transaction() as session:
                quotas.lock_project(session, "racer")
                quotas.check(session, svc.settings, "racer", type_name=None, volumes=1, gigabytes=1)
                time.sleep(0.05)
                session.add(models.Volume(project_id="racer", size=1, availability_zone="nova"))
            outcomes.append("made")
        except quotas.OverQuota:
            outcomes.append("refused")

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["made"] * 2 + ["refused"] * 4
    with svc.db.transaction() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(models.Volume).where(
            models.Volume.project_id == "racer")) == 2
