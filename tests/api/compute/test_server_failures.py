"""A hypervisor that fails: the build retries on another host; failing everywhere, the server ends
in ERROR with a fault, holding no port, no claim and no quota."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from stratus.compute import flavors, models, networking, quotas
from tests.api.compute.servers_helpers import boot, public_image, show, tenant, wait_for
from tests.conftest import ComputeHarness, ImageHarness, NetworkHarness, make_compute


def _cloud(network: NetworkHarness, image: ImageHarness, database_url: str, failing: str) -> ComputeHarness:
    harness = make_compute(network, image, database_url, host="node", fake_hosts=3, report_interval=0.5,
                           fake_fail_hosts=failing, max_attempts=3)
    with harness.service.db.transaction() as session:
        flavors.seed_default_flavors(session)
    harness.start()
    return harness


def test_a_failing_host_is_retried_elsewhere(network: NetworkHarness, image: ImageHarness, database_url: str) -> None:
    cloud = _cloud(network, image, database_url, "node-2")
    try:
        alice = tenant(cloud, "alice")
        image_id = public_image(cloud)
        ids = [boot(cloud, alice, image_id, name=f"r{i}")["id"] for i in range(4)]
        hosts = {wait_for(cloud, cloud.as_admin(), server_id, "ACTIVE")["OS-EXT-SRV-ATTR:host"] for server_id in ids}
        assert "node-2" not in hosts
        with cloud.service.db.transaction() as session:
            failed_events = session.scalar(sa.select(sa.func.count()).select_from(models.InstanceActionEvent).where(
                models.InstanceActionEvent.result == "Error", models.InstanceActionEvent.host == "node-2"))
            on_failing = session.scalar(sa.select(sa.func.count()).select_from(models.Allocation).where(
                models.Allocation.host == "node-2"))
        # The spread weighers send some first attempts to the empty failing host.
        assert failed_events >= 1 and on_failing == 0
    finally:
        cloud.close()


def test_failing_everywhere_ends_in_error_and_frees_everything(network: NetworkHarness, image: ImageHarness,
                                                               database_url: str) -> None:
    cloud = _cloud(network, image, database_url, "node-1,node-2,node-3")
    try:
        alice = tenant(cloud, "alice")
        server_id = boot(cloud, alice, public_image(cloud))["id"]
        server = wait_for(cloud, alice, server_id, "ERROR")
        assert "node-" in server["fault"]["message"] and server["fault"]["code"] == 500
        ports = cloud.network.client.get(f"/v2.0/ports?device_id={server_id}", headers=cloud.as_admin())
        assert ports.json()["ports"] == []
        with cloud.service.db.transaction() as session:
            assert session.scalar(sa.select(sa.func.count()).select_from(models.Allocation)) == 0
            assert not session.scalar(sa.select(sa.func.sum(models.ComputeNode.memory_mb_used)))
            used = quotas.usage(session, alice.project_id)
        assert used["instances"] == 0 and used["cores"] == 0 and used["ram"] == 0
        assert show(cloud, cloud.as_admin(), server_id)["OS-EXT-SRV-ATTR:host"] is None
        # The ERROR server can still be deleted.
        assert cloud.client.delete(f"/v2.1/servers/{server_id}", headers=alice.headers).status_code == 204
    finally:
        cloud.close()


def test_an_unexpected_error_mid_build_ends_in_error_and_frees_everything(
        network: NetworkHarness, image: ImageHarness, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cloud = _cloud(network, image, database_url, "")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the database went away")

    # After the ports exist: what the build does next fails with an error it does not expect.
    monkeypatch.setattr(networking, "network_info", broken)
    try:
        alice = tenant(cloud, "alice")
        server_id = boot(cloud, alice, public_image(cloud))["id"]
        server = wait_for(cloud, alice, server_id, "ERROR")
        assert "the database went away" in server["fault"]["message"]
        ports = cloud.network.client.get(f"/v2.0/ports?device_id={server_id}", headers=cloud.as_admin())
        assert ports.json()["ports"] == []
        with cloud.service.db.transaction() as session:
            assert session.scalar(sa.select(sa.func.count()).select_from(models.Allocation)) == 0
            used = quotas.usage(session, alice.project_id)
        assert used["instances"] == 0 and used["cores"] == 0
    finally:
        cloud.close()
