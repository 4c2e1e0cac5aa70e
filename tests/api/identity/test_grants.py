"""Role grants (project, domain, system, inherited) and `/v3/role_assignments`."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.identity.helpers import create, error_message, role_id
from tests.conftest import IdentityHarness

PASSWORD = "grant-test-Pw1"
ROOT = "http://testserver"





def _assignments(identity: IdentityHarness, query: str) -> list[dict[str, Any]]:
    response = identity.client.get(f"/v3/role_assignments?{query}", headers=identity.as_admin())
    assert response.status_code == 200, response.text
    return response.json()["role_assignments"]  # type: ignore[no-any-return]


def _scoped(identity: IdentityHarness, user_id: str, scope: dict[str, Any]) -> Any:
    return identity.client.post("/v3/auth/tokens", json={"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"id": user_id, "password": PASSWORD}}}, "scope": scope}})


@pytest.fixture
def world(identity: IdentityHarness) -> dict[str, Any]:
    """A project with a child, a user, a group holding a second user, and a role."""
    parent = create(identity, "project", name="parent")
    return {"project": parent, "child": create(identity, "project", name="child", parent_id=parent["id"]),
            "user": create(identity, "user", name="bob", password=PASSWORD),
            "member": create(identity, "user", name="carol", password=PASSWORD),
            "group": create(identity, "group", name="devs"),
            "role": create(identity, "role", name="auditor")}


def _join(identity: IdentityHarness, world: dict[str, Any]) -> None:
    path = f"/v3/groups/{world['group']['id']}/users/{world['member']['id']}"
    assert identity.client.put(path, headers=identity.as_admin()).status_code == 204


def test_project_user_grant_lifecycle(identity: IdentityHarness, world: dict[str, Any]) -> None:
    client, admin = identity.client, identity.as_admin()
    project, user, role = world["project"], world["user"], world["role"]
    grant = f"/v3/projects/{project['id']}/users/{user['id']}/roles/{role['id']}"
    assert client.head(grant, headers=admin).status_code == 404
    assert client.put(grant, headers=admin).status_code == 204
    assert client.put(grant, headers=admin).status_code == 204  # granting twice is harmless
    assert client.head(grant, headers=admin).status_code == 204
    assert client.get(grant, headers=admin).status_code == 204
    listed = client.get(f"/v3/projects/{project['id']}/users/{user['id']}/roles", headers=admin).json()
    assert [r["id"] for r in listed["roles"]] == [role["id"]]
    assert listed["roles"][0]["links"] == {"self": f"{ROOT}/v3/roles/{role['id']}"}
    assert _scoped(identity, user["id"], {"project": {"id": project["id"]}}).status_code == 201
    assert client.delete(grant, headers=admin).status_code == 204
    assert client.head(grant, headers=admin).status_code == 404
    assert "Could not find role assignment" in error_message(client.delete(grant, headers=admin), 404)
    assert client.get(f"/v3/projects/{project['id']}/users/{user['id']}/roles", headers=admin).json()["roles"] == []


def test_grants_name_the_missing_entity_and_store_nothing(identity: IdentityHarness, world: dict[str, Any]) -> None:
    client, admin = identity.client, identity.as_admin()
    project, user, group, role = world["project"]["id"], world["user"]["id"], world["group"]["id"], world["role"]["id"]
    cases = {f"/v3/projects/nowhere/users/{user}/roles/{role}": "Could not find project: nowhere.",
             f"/v3/projects/{project}/users/nobody/roles/{role}": "Could not find user: nobody.",
             f"/v3/projects/{project}/groups/nogroup/roles/{role}": "Could not find group: nogroup.",
             f"/v3/projects/{project}/users/{user}/roles/norole": "Could not find role: norole.",
             f"/v3/domains/nodomain/groups/{group}/roles/{role}": "Could not find domain: nodomain.",
             f"/v3/system/users/nobody/roles/{role}": "Could not find user: nobody.",
             f"/v3/OS-INHERIT/domains/nodomain/users/{user}/roles/{role}/inherited_to_projects":
                 "Could not find domain: nodomain."}
    for path, message in cases.items():
        assert error_message(client.put(path, headers=admin), 404) == message, path
        assert client.head(path, headers=admin).status_code == 404, path
    assert error_message(client.get(f"/v3/projects/{project}/users/nobody/roles", headers=admin), 404) == \
        "Could not find user: nobody."
    assert _assignments(identity, f"role.id={role}") == []


def test_domain_and_group_grants(identity: IdentityHarness, world: dict[str, Any]) -> None:
    client, admin = identity.client, identity.as_admin()
    _join(identity, world)
    group, member, role = world["group"], world["member"], world["role"]
    grant = f"/v3/domains/default/groups/{group['id']}/roles/{role['id']}"
    assert client.put(grant, headers=admin).status_code == 204
    assert client.head(grant, headers=admin).status_code == 204
    listed = client.get(f"/v3/domains/default/groups/{group['id']}/roles", headers=admin).json()["roles"]
    assert [r["name"] for r in listed] == ["auditor"]
    token = _scoped(identity, member["id"], {"domain": {"id": "default"}})
    assert token.status_code == 201
    assert [r["name"] for r in token.json()["token"]["roles"]] == ["auditor"]
    assert client.delete(grant, headers=admin).status_code == 204
    assert client.get("/v3/auth/projects", headers={"X-Auth-Token": token.headers["X-Subject-Token"]}
                      ).status_code == 401


def test_system_grants(identity: IdentityHarness, world: dict[str, Any]) -> None:
    client, admin = identity.client, identity.as_admin()
    user, role = world["user"], world["role"]
    grant = f"/v3/system/users/{user['id']}/roles/{role['id']}"
    assert client.put(grant, headers=admin).status_code == 204
    assert client.head(grant, headers=admin).status_code == 204
    assert [r["id"] for r in client.get(f"/v3/system/users/{user['id']}/roles", headers=admin).json()["roles"]] == \
        [role["id"]]
    token = _scoped(identity, user["id"], {"system": {"all": True}})
    assert token.status_code == 201
    assert _assignments(identity, f"scope.system=all&user.id={user['id']}") == [
        {"role": {"id": role["id"]}, "user": {"id": user["id"]}, "scope": {"system": {"all": True}},
         "links": {"assignment": f"{ROOT}{grant}"}}]
    assert client.delete(grant, headers=admin).status_code == 204
    assert client.get("/v3/auth/projects", headers={"X-Auth-Token": token.headers["X-Subject-Token"]}
                      ).status_code == 401
    group_grant = f"/v3/system/groups/{world['group']['id']}/roles/{role['id']}"
    assert client.put(group_grant, headers=admin).status_code == 204
    assert client.get(group_grant, headers=admin).status_code == 204


def test_revoking_a_project_grant_revokes_only_tokens_for_that_project(identity: IdentityHarness,
                                                                      world: dict[str, Any]) -> None:
    client, admin = identity.client, identity.as_admin()
    user, role = world["user"], world["role"]
    on_parent = f"/v3/projects/{world['project']['id']}/users/{user['id']}/roles/{role['id']}"
    client.put(on_parent, headers=admin)
    client.put(f"/v3/projects/{world['child']['id']}/users/{user['id']}/roles/{role['id']}", headers=admin)
    parent_token = identity.token("bob", PASSWORD, "parent")
    child_token = identity.token("bob", PASSWORD, "child")
    assert client.delete(on_parent, headers=admin).status_code == 204
    assert client.get("/v3/auth/projects", headers={"X-Auth-Token": parent_token}).status_code == 401
    assert client.get("/v3/auth/projects", headers={"X-Auth-Token": child_token}).status_code == 200


def test_revoking_a_group_grant_revokes_its_members(identity: IdentityHarness, world: dict[str, Any]) -> None:
    client, admin = identity.client, identity.as_admin()
    _join(identity, world)
    grant = f"/v3/projects/{world['project']['id']}/groups/{world['group']['id']}/roles/{world['role']['id']}"
    client.put(grant, headers=admin)
    token = identity.token("carol", PASSWORD, "parent")
    assert client.delete(grant, headers=admin).status_code == 204
    assert client.get("/v3/auth/projects", headers={"X-Auth-Token": token}).status_code == 401
    assert _scoped(identity, world["member"]["id"], {"project": {"id": world["project"]["id"]}}).status_code == 401


def test_domain_grant_inherited_to_projects(identity: IdentityHarness, world: dict[str, Any]) -> None:
    client, admin = identity.client, identity.as_admin()
    user, role = world["user"], world["role"]
    grant = f"/v3/OS-INHERIT/domains/default/users/{user['id']}/roles/{role['id']}/inherited_to_projects"
    assert client.put(grant, headers=admin).status_code == 204
    assert client.head(grant, headers=admin).status_code == 204
    listed = client.get(f"/v3/OS-INHERIT/domains/default/users/{user['id']}/roles/inherited_to_projects",
                        headers=admin).json()["roles"]
    assert [r["id"] for r in listed] == [role["id"]]
    # Not a role on the domain itself, but on every project in it.
    assert client.get(f"/v3/domains/default/users/{user['id']}/roles", headers=admin).json()["roles"] == []
    assert _scoped(identity, user["id"], {"domain": {"id": "default"}}).status_code == 401
    assert _scoped(identity, user["id"], {"project": {"id": world["child"]["id"]}}).status_code == 201
    assert _assignments(identity, f"user.id={user['id']}") == [
        {"role": {"id": role["id"]}, "user": {"id": user["id"]},
         "scope": {"domain": {"id": "default"}, "OS-INHERIT:inherited_to": "projects"},
         "links": {"assignment": f"{ROOT}{grant}"}}]
    effective = _assignments(identity, f"user.id={user['id']}&effective")
    scopes = {e["scope"]["project"]["id"] for e in effective}
    assert {world["project"]["id"], world["child"]["id"]} <= scopes
    assert all(e["scope"]["OS-INHERIT:inherited_to"] == "projects" for e in effective)
    assert all(e["links"]["assignment"] == f"{ROOT}{grant}" for e in effective)
    assert client.delete(grant, headers=admin).status_code == 204
    assert _scoped(identity, user["id"], {"project": {"id": world["child"]["id"]}}).status_code == 401


def test_project_grant_inherited_to_the_subtree_only(identity: IdentityHarness, world: dict[str, Any]) -> None:
    client, admin = identity.client, identity.as_admin()
    _join(identity, world)
    parent, child, member = world["project"], world["child"], world["member"]
    grant = (f"/v3/OS-INHERIT/projects/{parent['id']}/groups/{world['group']['id']}/roles/{world['role']['id']}"
             "/inherited_to_projects")
    assert client.put(grant, headers=admin).status_code == 204
    assert _scoped(identity, member["id"], {"project": {"id": child["id"]}}).status_code == 201
    assert _scoped(identity, member["id"], {"project": {"id": parent["id"]}}).status_code == 401
    effective = _assignments(identity, f"user.id={member['id']}&effective")
    assert [e["scope"]["project"]["id"] for e in effective] == [child["id"]]
    assert effective[0]["links"]["membership"] == f"{ROOT}/v3/groups/{world['group']['id']}/users/{member['id']}"
    inherited = _assignments(identity, "scope.OS-INHERIT:inherited_to=projects")
    assert [e["group"]["id"] for e in inherited] == [world["group"]["id"]]


def test_domain_specific_roles_stay_in_their_domain(identity: IdentityHarness, world: dict[str, Any]) -> None:
    client, admin = identity.client, identity.as_admin()
    other = create(identity, "domain", name="other")
    elsewhere = create(identity, "project", name="elsewhere", domain_id=other["id"])
    local = create(identity, "role", name="local", domain_id="default")
    user = world["user"]["id"]
    error_message(client.put(f"/v3/projects/{elsewhere['id']}/users/{user}/roles/{local['id']}", headers=admin), 403)
    error_message(client.put(f"/v3/system/users/{user}/roles/{local['id']}", headers=admin), 403)
    assert client.put(f"/v3/projects/{world['project']['id']}/users/{user}/roles/{local['id']}",
                      headers=admin).status_code == 204
    # A domain's role only serves to imply others: effective listings leave it out, as Keystone does.
    client.put(f"/v3/roles/{local['id']}/implies/{world['role']['id']}", headers=admin)
    effective = _assignments(identity, f"user.id={user}&effective")
    assert [e["role"]["id"] for e in effective] == [world["role"]["id"]]


def test_role_assignment_entries_look_like_the_reference(identity: IdentityHarness, world: dict[str, Any]) -> None:
    client, admin = identity.client, identity.as_admin()
    project, user, group, role = world["project"], world["user"], world["group"], world["role"]
    client.put(f"/v3/projects/{project['id']}/users/{user['id']}/roles/{role['id']}", headers=admin)
    client.put(f"/v3/domains/default/groups/{group['id']}/roles/{role['id']}", headers=admin)
    assert _assignments(identity, f"scope.project.id={project['id']}") == [
        {"role": {"id": role["id"]}, "user": {"id": user["id"]}, "scope": {"project": {"id": project["id"]}},
         "links": {"assignment": f"{ROOT}/v3/projects/{project['id']}/users/{user['id']}/roles/{role['id']}"}}]
    assert _assignments(identity, f"group.id={group['id']}") == [
        {"role": {"id": role["id"]}, "group": {"id": group["id"]}, "scope": {"domain": {"id": "default"}},
         "links": {"assignment": f"{ROOT}/v3/domains/default/groups/{group['id']}/roles/{role['id']}"}}]
    assert len(_assignments(identity, f"role.id={role['id']}")) == 2
    assert [a["group"]["id"] for a in _assignments(identity, f"role.id={role['id']}&scope.domain.id=default")] == \
        [group["id"]]
    named = _assignments(identity, f"user.id={user['id']}&include_names")
    assert named == [{
        "role": {"id": role["id"], "name": "auditor"},
        "user": {"id": user["id"], "name": "bob", "domain": {"id": "default", "name": "Default"}},
        "scope": {"project": {"id": project["id"], "name": "parent", "domain": {"id": "default", "name": "Default"}}},
        "links": {"assignment": f"{ROOT}/v3/projects/{project['id']}/users/{user['id']}/roles/{role['id']}"}}]
    group_named = _assignments(identity, f"group.id={group['id']}&include_names=1")[0]
    assert group_named["group"] == {"id": group["id"], "name": "devs", "domain": {"id": "default", "name": "Default"}}
    assert group_named["scope"] == {"domain": {"id": "default", "name": "Default"}}
    assert "name" not in _assignments(identity, f"user.id={user['id']}&include_names=0")[0]["role"]


def test_effective_assignments_expand_groups_and_implied_roles(identity: IdentityHarness,
                                                               world: dict[str, Any]) -> None:
    client, admin = identity.client, identity.as_admin()
    _join(identity, world)
    project, member, group = world["project"], world["member"], world["group"]
    member_role, reader = role_id(identity, "member"), role_id(identity, "reader")
    grant = f"/v3/projects/{project['id']}/groups/{group['id']}/roles/{member_role}"
    client.put(grant, headers=admin)
    effective = _assignments(identity, f"user.id={member['id']}&scope.project.id={project['id']}&effective")
    membership = f"{ROOT}/v3/groups/{group['id']}/users/{member['id']}"
    assert effective == [
        {"role": {"id": member_role}, "user": {"id": member["id"]}, "scope": {"project": {"id": project["id"]}},
         "links": {"assignment": f"{ROOT}{grant}", "membership": membership}},
        {"role": {"id": reader}, "user": {"id": member["id"]}, "scope": {"project": {"id": project["id"]}},
         "links": {"assignment": f"{ROOT}{grant}", "membership": membership,
                   "prior_role": f"{ROOT}/v3/roles/{member_role}/implies/{reader}"}}]
    # The same roles the token carries.
    token = _scoped(identity, member["id"], {"project": {"id": project["id"]}}).json()["token"]
    assert {r["id"] for r in token["roles"]} == {e["role"]["id"] for e in effective}
    assert [e["role"]["id"] for e in _assignments(identity, f"role.id={reader}&effective&user.id={member['id']}")] \
        == [reader]
    assert _assignments(identity, f"user.id={member['id']}") == []  # not effective: the grant is the group's


def test_include_subtree_lists_the_projects_below(identity: IdentityHarness, world: dict[str, Any]) -> None:
    client, admin = identity.client, identity.as_admin()
    user, role = world["user"], world["role"]
    client.put(f"/v3/projects/{world['child']['id']}/users/{user['id']}/roles/{role['id']}", headers=admin)
    parent = world["project"]["id"]
    assert _assignments(identity, f"scope.project.id={parent}") == []
    below = _assignments(identity, f"scope.project.id={parent}&include_subtree=true")
    assert [a["scope"]["project"]["id"] for a in below] == [world["child"]["id"]]


@pytest.mark.parametrize("query", [
    "user.id=a&group.id=b", "scope.project.id=a&scope.domain.id=b", "scope.system=all&scope.project.id=a",
    "scope.system=all&scope.domain.id=b", "scope.system=some", "scope.OS-INHERIT:inherited_to=domains",
    "effective&group.id=b", "effective&scope.domain.id=d&scope.OS-INHERIT:inherited_to=projects",
    "include_subtree=true"])
def test_role_assignment_filters_that_cannot_work_are_refused(identity: IdentityHarness, query: str) -> None:
    error_message(identity.client.get(f"/v3/role_assignments?{query}", headers=identity.as_admin()), 400)


def test_only_admins_grant_and_list_assignments(identity: IdentityHarness, world: dict[str, Any]) -> None:
    client, admin = identity.client, identity.as_admin()
    project, user = world["project"], world["user"]
    client.put(f"/v3/projects/{project['id']}/users/{user['id']}/roles/{role_id(identity, 'member')}",
               headers=admin)
    mine = {"X-Auth-Token": identity.token("bob", PASSWORD, "parent")}
    admin_role = role_id(identity, "admin")
    assert client.put(f"/v3/projects/{project['id']}/users/{user['id']}/roles/{admin_role}",
                      headers=mine).status_code == 403
    assert client.get("/v3/role_assignments", headers=mine).status_code == 403
    assert client.get(f"/v3/projects/{project['id']}/users/{user['id']}/roles", headers=mine).status_code == 403
    assert client.get("/v3/role_assignments").status_code == 401
