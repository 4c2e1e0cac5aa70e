"""Servers through the whole control plane: API -> conductor -> scheduler -> fake agents, with ports
from the network service and images from the image service."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from stratus.compute import flavors, models
from tests.api.compute.servers_helpers import (
    LATEST,
    action,
    boot,
    public_image,
    show,
    tenant,
    wait_for,
    wait_gone,
)
from tests.conftest import ComputeHarness, ImageHarness, NetworkHarness, make_compute


@pytest.fixture
def cloud(network: NetworkHarness, image: ImageHarness, database_url: str) -> Iterator[ComputeHarness]:
    harness = make_compute(network, image, database_url, host="node", fake_hosts=3, report_interval=0.5)
    with harness.service.db.transaction() as session:
        flavors.seed_default_flavors(session)
    harness.start()
    yield harness
    harness.close()


def _ports(cloud: ComputeHarness, server_id: str) -> list[dict]:
    response = cloud.network.client.get(f"/v2.0/ports?device_id={server_id}", headers=cloud.as_admin())
    return response.json()["ports"]  # type: ignore[no-any-return]


def test_boot_reaches_active_with_an_address_and_a_bound_port(cloud: ComputeHarness) -> None:
    alice = tenant(cloud, "alice")
    image_id = public_image(cloud)
    created = boot(cloud, alice, image_id, name="web")
    assert created["adminPass"] and created["links"][0]["href"].endswith(created["id"])
    server = wait_for(cloud, alice, created["id"], "ACTIVE")
    assert server["OS-EXT-STS:power_state"] == 1 and server["OS-EXT-STS:vm_state"] == "active"
    (address,) = server["addresses"]["alice-net"]
    assert address["addr"].startswith("10.9.0.") and address["OS-EXT-IPS:type"] == "fixed"
    assert server["hostId"] and server["flavor"]["original_name"] == "m1.tiny"
    assert server["image"]["id"] == image_id and "OS-EXT-SRV-ATTR:host" not in server
    (port,) = _ports(cloud, created["id"])
    assert port["binding:host_id"] and port["device_owner"] == "compute:nova"
    admin_view = show(cloud, cloud.as_admin(), created["id"])
    assert admin_view["OS-EXT-SRV-ATTR:host"] == port["binding:host_id"]


def test_a_server_without_groups_is_in_its_projects_default_group(cloud: ComputeHarness) -> None:
    alice = tenant(cloud, "alice")
    image_id = public_image(cloud)
    server = boot(cloud, alice, image_id)
    wait_for(cloud, alice, server["id"], "ACTIVE")
    groups = cloud.network.client.get("/v2.0/security-groups?name=default", headers=alice.headers).json()
    (default,) = groups["security_groups"]
    (port,) = _ports(cloud, server["id"])
    assert port["security_groups"] == [default["id"]] and port["project_id"] == default["project_id"]
    assert show(cloud, alice, server["id"])["security_groups"] == [{"name": "default"}]
    # On a network without port security the port has no group, and the server still boots.
    bare = cloud.network.client.post("/v2.0/networks", headers=alice.headers, json={"network": {
        "name": "bare", "port_security_enabled": False}}).json()["network"]
    cloud.network.client.post("/v2.0/subnets", headers=alice.headers, json={"subnet": {
        "network_id": bare["id"], "cidr": "10.10.0.0/24", "ip_version": 4}}).raise_for_status()
    response = cloud.client.post("/v2.1/servers", headers=alice.headers, json={"server": {
        "name": "bare", "imageRef": image_id, "flavorRef": "1", "networks": [{"uuid": bare["id"]}]}})
    assert response.status_code == 202, response.text
    wait_for(cloud, alice, response.json()["server"]["id"], "ACTIVE")
    (port,) = _ports(cloud, response.json()["server"]["id"])
    assert port["security_groups"] == [] and port["port_security_enabled"] is False


def test_delete_frees_the_port_and_the_claim(cloud: ComputeHarness) -> None:
    alice = tenant(cloud, "alice")
    server = boot(cloud, alice, public_image(cloud))
    wait_for(cloud, alice, server["id"], "ACTIVE")
    assert cloud.client.delete(f"/v2.1/servers/{server['id']}", headers=alice.headers).status_code == 204
    wait_gone(cloud, alice, server["id"])
    assert _ports(cloud, server["id"]) == []
    with cloud.service.db.transaction() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(models.Allocation)) == 0
        used = session.scalar(sa.select(sa.func.sum(models.ComputeNode.vcpus_used)))
        assert not used


def test_list_detail_filters_and_paging(cloud: ComputeHarness) -> None:
    alice = tenant(cloud, "alice")
    image_id = public_image(cloud)
    ids = [boot(cloud, alice, image_id, name=f"node-{i}")["id"] for i in range(3)]
    other = boot(cloud, alice, image_id, name="db")["id"]
    for server_id in [*ids, other]:
        wait_for(cloud, alice, server_id, "ACTIVE")
    names = cloud.client.get("/v2.1/servers?name=^node-", headers=alice.headers).json()["servers"]
    assert sorted(s["id"] for s in names) == sorted(ids)
    page = cloud.client.get("/v2.1/servers/detail?limit=2", headers=alice.headers).json()
    assert len(page["servers"]) == 2 and "servers_links" in page
    rest = cloud.client.get(f"/v2.1/servers/detail?limit=2&marker={page['servers'][-1]['id']}",
                            headers=alice.headers).json()
    seen = {s["id"] for s in page["servers"]} | {s["id"] for s in rest["servers"]}
    assert seen == {*ids, other}
    action(cloud, alice, other, "os-stop")
    wait_for(cloud, alice, other, "SHUTOFF")
    stopped = cloud.client.get("/v2.1/servers?status=SHUTOFF", headers=alice.headers).json()["servers"]
    assert [s["id"] for s in stopped] == [other]
    bad = cloud.client.get("/v2.1/servers?sort_key=bogus", headers=alice.headers)
    assert bad.status_code == 400


def test_power_actions_move_through_the_documented_states(cloud: ComputeHarness) -> None:
    alice = tenant(cloud, "alice")
    server_id = boot(cloud, alice, public_image(cloud))["id"]
    wait_for(cloud, alice, server_id, "ACTIVE")
    for name, args, status, power in (("os-stop", None, "SHUTOFF", 4), ("os-start", None, "ACTIVE", 1),
                                      ("pause", None, "PAUSED", 3), ("unpause", None, "ACTIVE", 1),
                                      ("suspend", None, "SUSPENDED", 7), ("resume", None, "ACTIVE", 1),
                                      ("reboot", {"type": "SOFT"}, "ACTIVE", 1),
                                      ("reboot", {"type": "HARD"}, "ACTIVE", 1)):
        action(cloud, alice, server_id, name, args)
        assert wait_for(cloud, alice, server_id, status)["OS-EXT-STS:power_state"] == power
    # An action the state does not allow is a 409 and changes nothing.
    action(cloud, alice, server_id, "unpause", expect=409)
    action(cloud, alice, server_id, "reboot", {"type": "GENTLE"}, expect=400)
    action(cloud, alice, server_id, "fly", expect=400)
    events = cloud.client.get(f"/v2.1/servers/{server_id}/os-instance-actions", headers=alice.headers).json()
    names = [a["action"] for a in events["instanceActions"]]
    assert names[-1] == "create" and names.count("reboot") == 2 and "pause" in names


def test_lock_refuses_the_owner_but_not_the_admin(cloud: ComputeHarness) -> None:
    alice = tenant(cloud, "alice")
    server_id = boot(cloud, alice, public_image(cloud))["id"]
    wait_for(cloud, alice, server_id, "ACTIVE")
    action(cloud, alice, server_id, "lock")
    assert show(cloud, alice, server_id)["locked"] is True
    action(cloud, alice, server_id, "os-stop", expect=409)
    assert cloud.client.delete(f"/v2.1/servers/{server_id}", headers=alice.headers).status_code == 409
    action(cloud, cloud.as_admin(), server_id, "os-stop")
    wait_for(cloud, alice, server_id, "SHUTOFF")
    action(cloud, alice, server_id, "unlock")
    action(cloud, alice, server_id, "os-start")
    wait_for(cloud, alice, server_id, "ACTIVE")


def test_resize_confirm_and_revert(cloud: ComputeHarness) -> None:
    alice = tenant(cloud, "alice")
    server_id = boot(cloud, alice, public_image(cloud))["id"]
    first = wait_for(cloud, cloud.as_admin(), server_id, "ACTIVE")
    source = first["OS-EXT-SRV-ATTR:host"]
    action(cloud, alice, server_id, "resize", {"flavorRef": "2"})
    resized = wait_for(cloud, cloud.as_admin(), server_id, "VERIFY_RESIZE")
    assert resized["flavor"]["original_name"] == "m1.small" and resized["OS-EXT-SRV-ATTR:host"] != source
    action(cloud, alice, server_id, "confirmResize", expect=204)
    confirmed = wait_for(cloud, cloud.as_admin(), server_id, "ACTIVE")
    with cloud.service.db.transaction() as session:
        holds = session.execute(sa.select(models.Allocation.host, models.Allocation.memory_mb).where(
            models.Allocation.instance_id == server_id)).all()
    assert holds == [(confirmed["OS-EXT-SRV-ATTR:host"], 2048)]
    # Now back again, reverted: the server returns to its host with its flavor.
    home = confirmed["OS-EXT-SRV-ATTR:host"]
    action(cloud, alice, server_id, "resize", {"flavorRef": "3"})
    wait_for(cloud, alice, server_id, "VERIFY_RESIZE")
    action(cloud, alice, server_id, "revertResize")
    reverted = wait_for(cloud, cloud.as_admin(), server_id, "ACTIVE")
    assert reverted["OS-EXT-SRV-ATTR:host"] == home and reverted["flavor"]["original_name"] == "m1.small"
    with cloud.service.db.transaction() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(models.Allocation).where(
            models.Allocation.instance_id == server_id)) == 1
    action(cloud, alice, server_id, "resize", {"flavorRef": "2"}, expect=400)  # the same flavor
    migrations = cloud.client.get("/v2.1/os-migrations", headers={**cloud.as_admin(), **LATEST})
    if migrations.status_code == 200:
        statuses = sorted(m["status"] for m in migrations.json()["migrations"])
        assert statuses == ["confirmed", "reverted"]


def test_rebuild_snapshot_and_console(cloud: ComputeHarness) -> None:
    alice = tenant(cloud, "alice")
    image_id = public_image(cloud)
    other_image = public_image(cloud, name="other")
    server_id = boot(cloud, alice, image_id)["id"]
    wait_for(cloud, alice, server_id, "ACTIVE")
    rebuilt = action(cloud, alice, server_id, "rebuild", {"imageRef": other_image, "name": "renamed"}).json()
    assert rebuilt["server"]["adminPass"]
    server = wait_for(cloud, alice, server_id, "ACTIVE")
    assert server["image"]["id"] == other_image and server["name"] == "renamed"
    made = action(cloud, alice, server_id, "createImage", {"name": "snap", "metadata": {"kind": "backup"}})
    snapshot_id = made.json()["image_id"]
    assert made.headers["Location"].endswith(snapshot_id)
    wait_for(cloud, alice, server_id, "ACTIVE")
    snap = cloud.image.client.get(f"/v2/images/{snapshot_id}", headers=alice.headers).json()
    assert snap["status"] == "active" and snap["kind"] == "backup" and snap["instance_uuid"] == server_id
    assert snap["owner"] == alice.project_id and snap["size"] > 0
    console = action(cloud, alice, server_id, "os-getConsoleOutput", {"length": 5}, expect=200).json()["output"]
    assert "login:" in console and "snapshot" in console


def test_metadata_tags_and_ips(cloud: ComputeHarness) -> None:
    alice = tenant(cloud, "alice")
    server_id = boot(cloud, alice, public_image(cloud), metadata={"role": "web"}, tags=["blue"])["id"]
    wait_for(cloud, alice, server_id, "ACTIVE")
    base = f"/v2.1/servers/{server_id}"
    assert cloud.client.get(f"{base}/metadata", headers=alice.headers).json() == {"metadata": {"role": "web"}}
    cloud.client.post(f"{base}/metadata", json={"metadata": {"tier": "1"}}, headers=alice.headers)
    assert cloud.client.get(f"{base}/metadata/tier", headers=alice.headers).json() == {"meta": {"tier": "1"}}
    assert cloud.client.delete(f"{base}/metadata/role", headers=alice.headers).status_code == 204
    assert cloud.client.get(f"{base}/metadata/role", headers=alice.headers).status_code == 404
    assert cloud.client.put(f"{base}/tags/green", headers=alice.headers).status_code == 201
    assert cloud.client.get(f"{base}/tags", headers=alice.headers).json() == {"tags": ["blue", "green"]}
    tagged = cloud.client.get("/v2.1/servers?tags=green", headers=alice.headers).json()["servers"]
    assert [s["id"] for s in tagged] == [server_id]
    assert cloud.client.get("/v2.1/servers?not-tags=green", headers=alice.headers).json()["servers"] == []
    ips = cloud.client.get(f"{base}/ips", headers=alice.headers).json()["addresses"]
    assert list(ips) == ["alice-net"] and ips["alice-net"][0]["version"] == 4


def test_another_project_sees_nothing_and_can_do_nothing(cloud: ComputeHarness) -> None:
    alice, bob = tenant(cloud, "alice"), tenant(cloud, "bob")
    server_id = boot(cloud, alice, public_image(cloud))["id"]
    wait_for(cloud, alice, server_id, "ACTIVE")
    assert cloud.client.get(f"/v2.1/servers/{server_id}", headers=bob.headers).status_code == 404
    assert cloud.client.get("/v2.1/servers", headers=bob.headers).json()["servers"] == []
    assert cloud.client.get("/v2.1/servers?all_tenants=1", headers=bob.headers).status_code == 403
    assert cloud.client.delete(f"/v2.1/servers/{server_id}", headers=bob.headers).status_code == 404
    action(cloud, bob, server_id, "os-stop", expect=404)
    assert cloud.client.get(f"/v2.1/servers/{server_id}/metadata", headers=bob.headers).status_code == 404
    assert cloud.client.get(f"/v2.1/servers/{server_id}/os-instance-actions", headers=bob.headers).status_code == 404
    # Bob may not boot on Alice's network either.
    refused = cloud.client.post("/v2.1/servers", headers=bob.headers, json={"server": {
        "name": "x", "imageRef": public_image(cloud, name="b"), "flavorRef": "1",
        "networks": [{"uuid": alice.network_id}]}})
    assert refused.status_code == 400
    everyone = cloud.client.get("/v2.1/servers?all_tenants=1", headers={**cloud.as_admin(), **LATEST}).json()
    assert server_id in [s["id"] for s in everyone["servers"]]


def test_bad_requests_make_nothing(cloud: ComputeHarness) -> None:
    alice = tenant(cloud, "alice")
    image_id = public_image(cloud)
    bad = [
        ({"name": "x", "imageRef": image_id, "flavorRef": "999", "networks": "none"}, 400),
        ({"name": "x", "imageRef": "00000000-0000-0000-0000-000000000000", "flavorRef": "1", "networks": "none"}, 400),
        ({"name": "x", "imageRef": image_id, "flavorRef": "1", "networks": "none", "key_name": "nokey"}, 400),
        ({"name": "x", "imageRef": image_id, "flavorRef": "1", "networks": "none", "user_data": "!!"}, 400),
        ({"name": "", "imageRef": image_id, "flavorRef": "1", "networks": "none"}, 400),
        ({"name": "x", "imageRef": image_id, "flavorRef": "1"}, 400),  # networks required at 2.37+
        ({"name": "x", "imageRef": image_id, "flavorRef": "1", "networks": "none", "bogus": 1}, 400),
        ({"name": "x", "imageRef": image_id, "flavorRef": "1", "networks": "none",
          "availability_zone": "nowhere"}, 400),
        ({"name": "x", "imageRef": image_id, "flavorRef": "1", "networks": "none",
          "security_groups": [{"name": "missing"}]}, 200),
    ]
    for body, status in bad:
        response = cloud.client.post("/v2.1/servers", json={"server": body}, headers=alice.headers)
        if status == 400:
            assert response.status_code == 400, (body, response.text)
            assert "badRequest" in response.json()
    with cloud.service.db.transaction() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(models.Instance).where(
            models.Instance.name == "x", models.Instance.vm_state != "active")) in (0, 1)


def test_quota_refuses_the_server_over_the_limit(cloud: ComputeHarness) -> None:
    alice = tenant(cloud, "alice")
    image_id = public_image(cloud)
    with cloud.service.db.transaction() as session:
        session.add(models.Quota(project_id=alice.project_id, resource="instances", hard_limit=2))
    for index in range(2):
        boot(cloud, alice, image_id, name=f"q{index}")
    refused = cloud.client.post("/v2.1/servers", headers=alice.headers, json={"server": {
        "name": "q3", "imageRef": image_id, "flavorRef": "1", "networks": "none"}})
    assert refused.status_code == 403
    assert "Quota exceeded for instances" in refused.json()["forbidden"]["message"]

