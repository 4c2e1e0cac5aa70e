"""Quota sets (show, detail, defaults, update with and without force, revert), limits, and the
fields that change at 2.36; who may read and change them."""

from __future__ import annotations

import uuid
from typing import Any

from stratus.compute import models
from tests.api.compute.servers_helpers import Tenant, tenant
from tests.conftest import ComputeHarness

COMPUTE = {"instances", "cores", "ram", "key_pairs", "metadata_items", "server_groups", "server_group_members",
           "injected_files", "injected_file_content_bytes", "injected_file_path_bytes"}
PROXIED = {"fixed_ips", "floating_ips", "security_group_rules", "security_groups", "networks"}


def v(version: str, headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "OpenStack-API-Version": f"compute {version}"}


def message(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    (body,) = response.json().values()
    return body["message"]  # type: ignore[no-any-return]


def add_instances(compute: ComputeHarness, project_id: str, count: int, vcpus: int = 1, ram: int = 512,
                  **fields: Any) -> None:
    with compute.service.db.transaction() as session:
        for _ in range(count):
            session.add(models.Instance(id=str(uuid.uuid4()), project_id=project_id, user_id="u", name="vm",
                                        flavor={}, flavor_id="1", vcpus=vcpus, memory_mb=ram, **fields))


def put(compute: ComputeHarness, project_id: str, values: dict[str, Any], version: str = "2.53") -> Any:
    return compute.client.put(f"/v2.1/os-quota-sets/{project_id}", json={"quota_set": values},
                              headers=v(version, compute.as_admin()))


def test_show_has_every_resource_and_the_proxied_fields_below_236(compute: ComputeHarness) -> None:
    alice = tenant(compute, "alice", network=False)
    old = compute.client.get(f"/v2.1/os-quota-sets/{alice.project_id}", headers=v("2.1", alice.headers)).json()
    assert set(old["quota_set"]) == COMPUTE | PROXIED | {"id"}
    assert old["quota_set"]["id"] == alice.project_id and old["quota_set"]["floating_ips"] == -1
    assert old["quota_set"]["instances"] == 10 and old["quota_set"]["ram"] == 51200
    new = compute.client.get(f"/v2.1/os-quota-sets/{alice.project_id}", headers=v("2.36", alice.headers)).json()
    assert set(new["quota_set"]) == COMPUTE | {"id"}
    defaults = compute.client.get(f"/v2.1/os-quota-sets/{alice.project_id}/defaults",
                                  headers=v("2.53", alice.headers)).json()["quota_set"]
    assert defaults == new["quota_set"]


def test_detail_counts_what_the_project_holds(compute: ComputeHarness) -> None:
    alice = tenant(compute, "alice", network=False)
    add_instances(compute, alice.project_id, 2, vcpus=2, ram=1024, vm_state="active", host="h")
    add_instances(compute, alice.project_id, 1, vm_state="error")  # failed everywhere: holds nothing
    add_instances(compute, alice.project_id, 1, deleted=True)
    detail = compute.client.get(f"/v2.1/os-quota-sets/{alice.project_id}/detail",
                                headers=v("2.53", alice.headers)).json()["quota_set"]
    assert detail["instances"] == {"in_use": 2, "limit": 10, "reserved": 0}
    assert detail["cores"] == {"in_use": 4, "limit": 20, "reserved": 0}
    assert detail["ram"] == {"in_use": 2048, "limit": 51200, "reserved": 0}
    assert detail["id"] == alice.project_id and "floating_ips" not in detail
    old = compute.client.get(f"/v2.1/os-quota-sets/{alice.project_id}/detail",
                             headers=v("2.1", alice.headers)).json()["quota_set"]
    assert old["security_groups"] == {"in_use": 0, "limit": -1, "reserved": 0}


def test_update_sets_limits_and_revert_restores_defaults(compute: ComputeHarness) -> None:
    alice = tenant(compute, "alice", network=False)
    response = put(compute, alice.project_id, {"instances": 2, "cores": "5", "ram": -1})
    assert response.status_code == 200, response.text
    body = response.json()["quota_set"]
    assert "id" not in body and body["instances"] == 2 and body["cores"] == 5 and body["ram"] == -1
    shown = compute.client.get(f"/v2.1/os-quota-sets/{alice.project_id}", headers=alice.headers).json()["quota_set"]
    assert (shown["instances"], shown["cores"], shown["ram"]) == (2, 5, -1)
    assert put(compute, alice.project_id, {"instances": 3}).json()["quota_set"]["cores"] == 5
    reverted = compute.client.delete(f"/v2.1/os-quota-sets/{alice.project_id}", headers=compute.as_admin())
    assert reverted.status_code == 202
    shown = compute.client.get(f"/v2.1/os-quota-sets/{alice.project_id}", headers=alice.headers).json()["quota_set"]
    assert (shown["instances"], shown["cores"], shown["ram"]) == (10, 20, 51200)


def test_update_below_usage_needs_force(compute: ComputeHarness) -> None:
    alice = tenant(compute, "alice", network=False)
    add_instances(compute, alice.project_id, 3, vm_state="active", host="h")
    text = message(put(compute, alice.project_id, {"instances": 2}), 400)
    assert text == "Quota limit 2 for instances must be greater than or equal to already used and reserved 3."
    assert put(compute, alice.project_id, {"instances": 2, "force": True}).status_code == 200
    assert put(compute, alice.project_id, {"instances": -1}).status_code == 200


def test_update_validation(compute: ComputeHarness) -> None:
    project = uuid.uuid4().hex
    for values in ({"instances": -2}, {"instances": "many"}, {"instances": 2**31}, {"instances": True},
                   {"colour": 1}, {"force": "perhaps", "instances": 1}, {"instances": None}):
        message(put(compute, project, values), 400)
    message(put(compute, project, {"floating_ips": 10}, version="2.36"), 400)
    accepted = put(compute, project, {"floating_ips": 10}, version="2.35")  # accepted and ignored, as Nova's
    assert accepted.status_code == 200 and accepted.json()["quota_set"]["floating_ips"] == -1
    message(compute.client.put(f"/v2.1/os-quota-sets/{project}", json={"quota": {}}, headers=compute.as_admin()),
            400)


def test_members_see_only_their_own_and_change_nothing(compute: ComputeHarness) -> None:
    alice = tenant(compute, "alice", network=False)
    bob = tenant(compute, "bob", network=False)
    message(compute.client.get(f"/v2.1/os-quota-sets/{bob.project_id}", headers=alice.headers), 403)
    message(compute.client.get(f"/v2.1/os-quota-sets/{bob.project_id}/detail", headers=alice.headers), 403)
    message(compute.client.put(f"/v2.1/os-quota-sets/{alice.project_id}", json={"quota_set": {"instances": 99}},
                               headers=alice.headers), 403)
    message(compute.client.delete(f"/v2.1/os-quota-sets/{alice.project_id}", headers=alice.headers), 403)
    message(compute.client.get(f"/v2.1/limits?tenant_id={bob.project_id}", headers=alice.headers),
            403)
    admin_view = compute.client.get(f"/v2.1/os-quota-sets/{bob.project_id}", headers=compute.as_admin())
    assert admin_view.status_code == 200


def _absolute(compute: ComputeHarness, who: Tenant, version: str) -> dict[str, int]:
    response = compute.client.get("/v2.1/limits", headers=v(version, who.headers))
    assert response.status_code == 200, response.text
    limits = response.json()["limits"]
    assert limits["rate"] == []
    return limits["absolute"]  # type: ignore[no-any-return]


def test_limits_show_maximums_and_usage(compute: ComputeHarness) -> None:
    alice = tenant(compute, "alice", network=False)
    add_instances(compute, alice.project_id, 2, vcpus=3, ram=256, vm_state="active", host="h")
    put(compute, alice.project_id, {"instances": 4})
    old = _absolute(compute, alice, "2.1")
    assert old["maxTotalInstances"] == 4 and old["totalInstancesUsed"] == 2
    assert old["totalCoresUsed"] == 6 and old["totalRAMUsed"] == 512 and old["maxTotalCores"] == 20
    assert old["maxTotalRAMSize"] == 51200 and old["maxTotalKeypairs"] == 100 and old["maxServerMeta"] == 128
    assert old["maxServerGroups"] == 10 and old["maxServerGroupMembers"] == 10 and old["totalServerGroupsUsed"] == 0
    assert old["maxPersonality"] == 5 and old["maxPersonalitySize"] == 10240 and old["maxImageMeta"] == 128
    assert old["maxTotalFloatingIps"] == -1 and old["maxSecurityGroups"] == -1 and old["totalFloatingIpsUsed"] == 0
    new = _absolute(compute, alice, "2.53")
    assert not {"maxTotalFloatingIps", "maxSecurityGroups", "maxSecurityGroupRules", "totalFloatingIpsUsed",
                "totalSecurityGroupsUsed", "maxImageMeta"} & set(new)
    assert new["maxTotalInstances"] == 4
    other = compute.client.get(f"/v2.1/limits?tenant_id={alice.project_id}", headers=compute.as_admin())
    assert other.json()["limits"]["absolute"]["totalInstancesUsed"] == 2


def test_quota_class_default_shows_the_configured_defaults(compute: ComputeHarness) -> None:
    response = compute.client.get("/v2.1/os-quota-class-sets/default", headers=v("2.53", compute.as_admin()))
    assert response.status_code == 200
    body = response.json()["quota_class_set"]
    assert body["id"] == "default" and body["instances"] == 10 and body["server_groups"] == 10
