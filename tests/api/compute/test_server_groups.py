"""Server groups: create with one policy (soft ones from 2.15), the view by microversion, members
that are not deleted, listing with all_projects/limit/offset, the quota, and isolation."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from stratus.compute import models, server_groups
from stratus.core import errors
from tests.api.compute.servers_helpers import Tenant, tenant
from tests.conftest import ComputeHarness


def v(version: str, headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "OpenStack-API-Version": f"compute {version}"}


def create(compute: ComputeHarness, who: Tenant, name: str = "g", policy: str = "anti-affinity",
           version: str = "2.53", expect: int = 200) -> dict[str, Any]:
    response = compute.client.post("/v2.1/os-server-groups", headers=v(version, who.headers),
                                   json={"server_group": {"name": name, "policies": [policy]}})
    assert response.status_code == expect, response.text
    return response.json()  # type: ignore[no-any-return]


def message(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    (body,) = response.json().values()
    return body["message"]  # type: ignore[no-any-return]


def test_create_and_show_with_the_fields_of_the_microversion(compute: ComputeHarness) -> None:
    alice = tenant(compute, "alice", network=False)
    made = create(compute, alice, "web")["server_group"]
    assert made["name"] == "web" and made["policies"] == ["anti-affinity"] and made["members"] == []
    assert made["metadata"] == {} and made["project_id"] == alice.project_id and made["user_id"]
    old = compute.client.get(f"/v2.1/os-server-groups/{made['id']}", headers=v("2.12", alice.headers)).json()
    assert set(old["server_group"]) == {"id", "name", "policies", "members", "metadata"}
    new = compute.client.get(f"/v2.1/os-server-groups/{made['id']}", headers=v("2.13", alice.headers)).json()
    assert new["server_group"] == made


def test_policies_soft_ones_from_215_and_exactly_one(compute: ComputeHarness) -> None:
    alice = tenant(compute, "alice", network=False)
    for policy in ("affinity", "anti-affinity"):
        create(compute, alice, policy=policy, version="2.1")
    create(compute, alice, policy="soft-affinity", version="2.14", expect=400)
    assert create(compute, alice, policy="soft-anti-affinity", version="2.15")["server_group"]["policies"] == [
        "soft-anti-affinity"]
    create(compute, alice, policy="clustered", expect=400)
    for body in ({"name": "g", "policies": []}, {"name": "g", "policies": ["affinity", "anti-affinity"]},
                 {"name": "g", "policies": "affinity"}, {"policies": ["affinity"]}, {"name": "g"},
                 {"name": " g", "policies": ["affinity"]}, {"name": "g", "policies": ["affinity"], "rules": {}}):
        response = compute.client.post("/v2.1/os-server-groups", json={"server_group": body}, headers=alice.headers)
        assert response.status_code == 400, (body, response.text)


def test_members_are_the_instances_not_deleted(compute: ComputeHarness) -> None:
    alice = tenant(compute, "alice", network=False)
    group = create(compute, alice)["server_group"]
    live, gone = str(uuid.uuid4()), str(uuid.uuid4())
    with compute.service.db.transaction() as session:
        for instance_id, deleted in ((live, False), (gone, True)):
            session.add(models.Instance(id=instance_id, project_id=alice.project_id, user_id="u", name="vm",
                                        flavor={}, flavor_id="1", deleted=deleted))
            session.flush()
            session.add(models.ServerGroupMember(group_id=group["id"], instance_id=instance_id))
    shown = compute.client.get(f"/v2.1/os-server-groups/{group['id']}", headers=alice.headers).json()
    assert shown["server_group"]["members"] == [live]
    listed = compute.client.get("/v2.1/os-server-groups", headers=alice.headers).json()["server_groups"]
    assert listed[0]["members"] == [live]


def test_delete_is_204_then_404(compute: ComputeHarness) -> None:
    alice = tenant(compute, "alice", network=False)
    group = create(compute, alice)["server_group"]
    assert compute.client.delete(f"/v2.1/os-server-groups/{group['id']}", headers=alice.headers).status_code == 204
    assert message(compute.client.get(f"/v2.1/os-server-groups/{group['id']}", headers=alice.headers), 404) == \
        f"Instance group {group['id']} could not be found."
    message(compute.client.delete(f"/v2.1/os-server-groups/{group['id']}", headers=alice.headers), 404)


def test_another_projects_group_is_404_and_only_the_operator_lists_all(compute: ComputeHarness) -> None:
    alice = tenant(compute, "alice", network=False)
    bob = tenant(compute, "bob", network=False)
    group = create(compute, alice)["server_group"]
    create(compute, bob, "bobs")
    message(compute.client.get(f"/v2.1/os-server-groups/{group['id']}", headers=bob.headers), 404)
    message(compute.client.delete(f"/v2.1/os-server-groups/{group['id']}", headers=bob.headers), 404)
    own = compute.client.get("/v2.1/os-server-groups?all_projects=True", headers=bob.headers).json()
    assert [g["name"] for g in own["server_groups"]] == ["bobs"]
    everyone = compute.client.get("/v2.1/os-server-groups?all_projects=True", headers=compute.as_admin()).json()
    assert {g["name"] for g in everyone["server_groups"]} == {"g", "bobs"}
    admins_own = compute.client.get("/v2.1/os-server-groups", headers=compute.as_admin()).json()
    assert admins_own["server_groups"] == []
    shown = compute.client.get(f"/v2.1/os-server-groups/{group['id']}", headers=compute.as_admin())
    assert shown.status_code == 200
    with compute.service.db.transaction() as session:
        assert server_groups.get_group(session, group["id"], alice.project_id, False).id == group["id"]
        assert server_groups.get_group(session, group["id"], bob.project_id, True).id == group["id"]
        with pytest.raises(errors.NotFound, match="could not be found"):
            server_groups.get_group(session, group["id"], bob.project_id, False)


def test_limit_and_offset(compute: ComputeHarness) -> None:
    alice = tenant(compute, "alice", network=False)
    for name in ("a", "b", "c"):
        create(compute, alice, name)
    page = compute.client.get("/v2.1/os-server-groups?limit=2&offset=1", headers=alice.headers).json()
    assert [g["name"] for g in page["server_groups"]] == ["b", "c"]
    message(compute.client.get("/v2.1/os-server-groups?limit=-1", headers=alice.headers), 400)
    message(compute.client.get("/v2.1/os-server-groups?offset=x", headers=alice.headers), 400)


def test_server_groups_quota(compute: ComputeHarness) -> None:
    alice = tenant(compute, "alice", network=False)
    put = compute.client.put(f"/v2.1/os-quota-sets/{alice.project_id}", json={"quota_set": {"server_groups": 1}},
                             headers=compute.as_admin())
    assert put.status_code == 200
    create(compute, alice, "one")
    response = compute.client.post("/v2.1/os-server-groups", headers=alice.headers,
                                   json={"server_group": {"name": "two", "policies": ["affinity"]}})
    assert message(response, 403) == "Quota exceeded, too many server groups."
    limits = compute.client.get("/v2.1/limits", headers=alice.headers).json()["limits"]["absolute"]
    assert limits["totalServerGroupsUsed"] == 1 and limits["maxServerGroups"] == 1
