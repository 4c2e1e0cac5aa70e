"""The official `openstack` CLI against `stratus up` (fake driver, 3 fake hosts): flavors, keypairs,
servers and their actions, server groups, aggregates and zones, quotas, and the admin views."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.clients.conftest import Cloud, unique

MEMBER_PASSWORD = "member-Pw-123"


@pytest.fixture(scope="module")
def world(cloud: Cloud) -> dict[str, str]:
    """An image, a network with a subnet, and a flavor every test here can boot with."""
    disk = cloud.state_dir / "tiny.raw"
    disk.write_bytes(bytes(65536))
    image = cloud.run("image", "create", "--file", str(disk), "--disk-format", "raw", "--container-format", "bare",
                      "--public", unique("img"))
    net = cloud.run("network", "create", unique("cnet"))
    cloud.run("subnet", "create", "--network", net["id"], "--subnet-range", "10.77.0.0/24", unique("csub"))
    flavor = cloud.run("flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1", unique("tiny"))
    return {"image": image["id"], "network": net["id"], "flavor": flavor["id"], "network_name": net["name"]}


def _boot(cloud: Cloud, world: dict[str, str], name: str, *extra: str) -> dict[str, Any]:
    return cloud.run("server", "create", "--image", world["image"], "--flavor", world["flavor"],
                     "--network", world["network"], "--wait", *extra, name)


def _host(cloud: Cloud, server_id: str) -> str:
    return str(cloud.run("server", "show", server_id)["OS-EXT-SRV-ATTR:host"])


def test_flavor_lifecycle(cloud: Cloud) -> None:
    name = unique("flv")
    made = cloud.run("flavor", "create", "--ram", "1024", "--disk", "10", "--vcpus", "2", "--ephemeral", "1", name)
    assert (made["ram"], made["disk"], made["vcpus"], made["OS-FLV-EXT-DATA:ephemeral"]) == (1024, 10, 2, 1)
    assert name in {f["Name"] for f in cloud.run("flavor", "list")}
    cloud.run_raw("flavor", "set", "--property", "hw:cpu_policy=shared", name)
    shown = cloud.run("flavor", "show", name)
    assert shown["properties"] == {"hw:cpu_policy": "shared"}
    cloud.run_raw("flavor", "delete", name)
    assert cloud.run_raw("flavor", "show", name, check=False).returncode != 0


def test_keypair_create_prints_the_private_key_and_import_takes_a_public_key(cloud: Cloud, tmp_path: Path) -> None:
    name = unique("key")
    private = cloud.run_raw("keypair", "create", name).stdout
    assert "PRIVATE KEY" in private
    shown = cloud.run("keypair", "show", name)
    assert shown["fingerprint"] and shown["name"] == name
    public = tmp_path / "id.pub"
    public.write_text(cloud.run_raw("keypair", "show", "--public-key", name).stdout)
    imported = cloud.run("keypair", "create", "--public-key", str(public), unique("imported"))
    assert imported["fingerprint"] == shown["fingerprint"]


def test_server_lifecycle_with_every_action(cloud: Cloud, world: dict[str, str], tmp_path: Path) -> None:
    key = unique("k")
    cloud.run_raw("keypair", "create", key)
    user_data = tmp_path / "user-data"
    user_data.write_text("#!/bin/sh\necho hello\n")
    server = _boot(cloud, world, unique("vm"), "--key-name", key, "--security-group", "default",
                   "--user-data", str(user_data))
    assert server["status"] == "ACTIVE" and server["key_name"] == key
    assert "10.77.0." in json.dumps(server["addresses"])
    server_id = server["id"]
    assert server_id in {s["ID"] for s in cloud.run("server", "list")}
    for verb, status in (("stop", "SHUTOFF"), ("start", "ACTIVE"), ("pause", "PAUSED"), ("unpause", "ACTIVE"),
                         ("suspend", "SUSPENDED"), ("resume", "ACTIVE"), ("reboot", "ACTIVE")):
        cloud.run_raw("server", verb, server_id)
        _wait_status(cloud, server_id, status)
    cloud.run_raw("server", "lock", server_id)
    assert cloud.run("server", "show", server_id)["locked"] is True
    cloud.run_raw("server", "unlock", server_id)
    bigger = cloud.run("flavor", "create", "--ram", "512", "--disk", "1", "--vcpus", "2", unique("bigger"))
    cloud.run_raw("server", "resize", "--flavor", bigger["id"], "--wait", server_id)
    assert cloud.run("server", "show", server_id)["status"] == "VERIFY_RESIZE"
    cloud.run_raw("server", "resize", "confirm", server_id)
    _wait_status(cloud, server_id, "ACTIVE")
    cloud.run_raw("server", "resize", "--flavor", world["flavor"], "--wait", server_id)
    cloud.run_raw("server", "resize", "revert", server_id)
    _wait_status(cloud, server_id, "ACTIVE")
    assert cloud.run("server", "show", server_id)["flavor"]["original_name"] == bigger["name"]
    cloud.run_raw("server", "rebuild", "--image", world["image"], "--wait", server_id)
    snapshot = cloud.run("server", "image", "create", "--name", unique("snap"), "--wait", server_id)
    assert cloud.run("image", "show", snapshot["id"])["status"] == "active"
    assert "login:" in cloud.run_raw("console", "log", "show", server_id).stdout
    port_ids = [p["ID"] for p in cloud.run("port", "list", "--device-id", server_id)]
    assert len(port_ids) == 1
    cloud.run_raw("server", "delete", "--wait", server_id)
    assert cloud.run("port", "list", "--device-id", server_id) == []


def _wait_status(cloud: Cloud, server_id: str, status: str, tries: int = 100) -> None:
    for _ in range(tries):
        shown = cloud.run("server", "show", server_id)
        if shown["status"] == status and not shown.get("OS-EXT-STS:task_state"):
            return
        time.sleep(0.2)
    raise AssertionError(f"{server_id} did not reach {status}: {shown}")


def test_anti_affinity_group_spreads_three_and_refuses_a_fourth(cloud: Cloud, world: dict[str, str]) -> None:
    group = cloud.run("server", "group", "create", "--policy", "anti-affinity", unique("grp"))
    ids = [_boot(cloud, world, unique("aa"), "--hint", f"group={group['id']}")["id"] for _ in range(3)]
    assert len({_host(cloud, server_id) for server_id in ids}) == 3
    fourth = cloud.run_raw("server", "create", "--image", world["image"], "--flavor", world["flavor"],
                           "--network", world["network"], "--hint", f"group={group['id']}", "--wait",
                           unique("aa"), check=False)
    assert fourth.returncode != 0
    failed = [s for s in cloud.run("server", "list", "--status", "ERROR") if s["Name"].startswith("aa-")]
    assert failed
    fault = cloud.run("server", "show", failed[0]["ID"])["fault"]
    assert "No valid host" in json.dumps(fault)
    for server_id in [*ids, failed[0]["ID"]]:
        cloud.run_raw("server", "delete", "--wait", server_id)


def test_aggregate_zone_places_the_server_there(cloud: Cloud, world: dict[str, str]) -> None:
    hosts = [s["Host"] for s in cloud.run("compute", "service", "list", "--service", "nova-compute")]
    agg = cloud.run("aggregate", "create", "--zone", "az2", unique("agg"))
    cloud.run_raw("aggregate", "add", "host", str(agg["id"]), hosts[0])
    server = _boot(cloud, world, unique("az"), "--availability-zone", "az2")
    shown = cloud.run("server", "show", server["id"])
    assert shown["OS-EXT-AZ:availability_zone"] == "az2" and shown["OS-EXT-SRV-ATTR:host"] == hosts[0]
    assert "az2" in {z["Zone Name"] for z in cloud.run("availability", "zone", "list", "--compute")}
    cloud.run_raw("server", "delete", "--wait", server["id"])
    cloud.run_raw("aggregate", "remove", "host", str(agg["id"]), hosts[0])
    cloud.run_raw("aggregate", "delete", str(agg["id"]))


def test_instance_quota_refuses_the_third_server(cloud: Cloud, world: dict[str, str]) -> None:
    project = cloud.run("project", "create", unique("quota"))
    user = unique("quser")
    cloud.run("user", "create", "--password", MEMBER_PASSWORD, "--project", project["id"], user)
    cloud.run_raw("role", "add", "--user", user, "--project", project["id"], "member")
    cloud.run_raw("quota", "set", "--instances", "2", project["id"])
    as_user = ("--os-username", user, "--os-password", MEMBER_PASSWORD, "--os-user-domain-name", "Default",
               "--os-project-id", project["id"])
    net = json.loads(cloud.run_with(list(as_user), "network", "create", "-f", "json", unique("qnet")).stdout)
    cloud.run_with(list(as_user), "subnet", "create", "--network", net["id"], "--subnet-range", "10.78.0.0/24",
                   unique("qsub"))
    base = ("server", "create", "--image", world["image"], "--flavor", world["flavor"], "--network", net["id"])
    for index in range(2):
        cloud.run_with(list(as_user), *base, f"q{index}")
    third = cloud.run_with(list(as_user), *base, "q3", check=False)
    assert third.returncode != 0 and "Quota exceeded for instances" in third.stderr


def test_admin_views_services_hypervisors_usage(cloud: Cloud) -> None:
    services = cloud.run("compute", "service", "list")
    binaries = {s["Binary"] for s in services}
    assert {"nova-compute", "nova-conductor", "nova-scheduler"} <= binaries
    assert all(s["State"] == "up" for s in services)
    hypervisors = cloud.run("hypervisor", "list")
    assert len(hypervisors) >= 3 and all(h["State"] == "up" for h in hypervisors)
    stats = cloud.run("hypervisor", "stats", "show")
    assert stats["count"] >= 3 and stats["vcpus"] > 0
    usage = cloud.run_raw("usage", "list").stdout
    assert "Usage from" in usage


def test_member_cannot_see_admin_or_other_projects(cloud: Cloud, world: dict[str, str]) -> None:
    server = _boot(cloud, world, unique("mine"))
    project = cloud.run("project", "create", unique("other"))
    user = unique("other")
    cloud.run("user", "create", "--password", MEMBER_PASSWORD, "--project", project["id"], user)
    cloud.run_raw("role", "add", "--user", user, "--project", project["id"], "member")
    shown = cloud.run_as(user, MEMBER_PASSWORD, project["name"], "server", "show", server["id"], check=False)
    assert shown.returncode != 0 and "No Server found" in shown.stderr
    services = cloud.run_as(user, MEMBER_PASSWORD, project["name"], "compute", "service", "list", check=False)
    assert services.returncode != 0
    cloud.run_raw("server", "delete", "--wait", server["id"])
