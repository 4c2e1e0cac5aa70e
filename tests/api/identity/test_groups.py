"""Groups and group membership through the identity API."""

from __future__ import annotations

from tests.api.identity.helpers import create, error_message, role_id
from tests.conftest import IdentityHarness

PASSWORD = "group-test-Pw1"





def test_group_create_show_list_update_delete(identity: IdentityHarness) -> None:
    client, admin = identity.client, identity.as_admin()
    group = create(identity, "group", name="devs", description="developers")
    assert group == {"id": group["id"], "name": "devs", "domain_id": "default", "description": "developers",
                     "links": {"self": f"http://testserver/v3/groups/{group['id']}"}}
    assert client.get(f"/v3/groups/{group['id']}", headers=admin).json()["group"] == group
    other_domain = create(identity, "domain", name="elsewhere")
    create(identity, "group", name="devs", domain_id=other_domain["id"])  # names are unique per domain

    listed = client.get("/v3/groups", headers=admin).json()
    assert [g["name"] for g in listed["groups"]] == ["devs", "devs"]
    assert listed["links"]["self"].endswith("/v3/groups")
    only = client.get("/v3/groups?name=devs&domain_id=default", headers=admin).json()["groups"]
    assert [g["id"] for g in only] == [group["id"]]

    patched = client.patch(f"/v3/groups/{group['id']}", json={"group": {"name": "ops", "description": "x"}},
                           headers=admin)
    assert patched.status_code == 200
    assert (patched.json()["group"]["name"], patched.json()["group"]["description"]) == ("ops", "x")
    renamed = client.patch(f"/v3/groups/{group['id']}", json={"group": {"name": "Ops"}}, headers=admin)
    assert renamed.status_code == 200  # a change of case only does not collide with the group itself
    assert client.delete(f"/v3/groups/{group['id']}", headers=admin).status_code == 204
    assert error_message(client.get(f"/v3/groups/{group['id']}", headers=admin), 404) == \
        f"Could not find group: {group['id']}."


def test_bad_group_requests_change_nothing(identity: IdentityHarness) -> None:
    client, admin = identity.client, identity.as_admin()
    group = create(identity, "group", name="devs")
    duplicate = client.post("/v3/groups", json={"group": {"name": "devs"}}, headers=admin)
    assert "Duplicate entry" in error_message(duplicate, 409)
    error_message(client.post("/v3/groups", json={"group": {"description": "no name"}}, headers=admin), 400)
    error_message(client.post("/v3/groups", json={"group": {"name": 5}}, headers=admin), 400)
    error_message(client.post("/v3/groups", json={"group": {"name": "x", "colour": "red"}}, headers=admin), 400)
    assert error_message(client.post("/v3/groups", json={"group": {"name": "x", "domain_id": "nowhere"}},
                              headers=admin), 404) == "Could not find domain: nowhere."
    error_message(client.patch(f"/v3/groups/{group['id']}", json={"group": {"domain_id": "other"}}, headers=admin), 400)
    create(identity, "group", name="ops")
    error_message(client.patch(f"/v3/groups/{group['id']}", json={"group": {"name": "ops"}}, headers=admin), 409)
    error_message(client.patch("/v3/groups/missing", json={"group": {"name": "y"}}, headers=admin), 404)
    error_message(client.delete("/v3/groups/missing", headers=admin), 404)
    names = sorted(g["name"] for g in client.get("/v3/groups", headers=admin).json()["groups"])
    assert names == ["devs", "ops"]


def test_membership_add_check_list_remove(identity: IdentityHarness) -> None:
    client, admin = identity.client, identity.as_admin()
    group = create(identity, "group", name="devs")
    user = create(identity, "user", name="bob", password=PASSWORD)
    member = f"/v3/groups/{group['id']}/users/{user['id']}"
    assert client.head(member, headers=admin).status_code == 404
    assert error_message(client.get(member, headers=admin), 404) == \
        f"User {user['id']} is not a member of group {group['id']}."
    assert client.put(member, headers=admin).status_code == 204
    assert client.put(member, headers=admin).status_code == 204  # adding twice is harmless
    assert client.head(member, headers=admin).status_code == 204
    assert client.get(member, headers=admin).status_code == 204
    users = client.get(f"/v3/groups/{group['id']}/users", headers=admin).json()["users"]
    assert [u["name"] for u in users] == ["bob"]
    groups = client.get(f"/v3/users/{user['id']}/groups", headers=admin).json()["groups"]
    assert [g["id"] for g in groups] == [group["id"]]
    assert client.delete(member, headers=admin).status_code == 204
    assert client.head(member, headers=admin).status_code == 404
    assert client.delete(member, headers=admin).status_code == 404
    assert client.get(f"/v3/groups/{group['id']}/users", headers=admin).json()["users"] == []


def test_membership_names_the_missing_entity(identity: IdentityHarness) -> None:
    client, admin = identity.client, identity.as_admin()
    group = create(identity, "group", name="devs")
    user = create(identity, "user", name="bob", password=PASSWORD)
    assert error_message(client.put(f"/v3/groups/{group['id']}/users/nobody", headers=admin), 404) == \
        "Could not find user: nobody."
    assert error_message(client.put(f"/v3/groups/nogroup/users/{user['id']}", headers=admin), 404) == \
        "Could not find group: nogroup."
    assert error_message(client.get("/v3/groups/nogroup/users", headers=admin), 404) == "Could not find group: nogroup."
    assert client.get(f"/v3/groups/{group['id']}/users", headers=admin).json()["users"] == []


def test_role_through_group_gives_a_token_until_the_user_leaves(identity: IdentityHarness) -> None:
    client, admin = identity.client, identity.as_admin()
    project = create(identity, "project", name="team")
    group = create(identity, "group", name="devs")
    user = create(identity, "user", name="bob", password=PASSWORD)
    member = f"/v3/groups/{group['id']}/users/{user['id']}"
    assert client.put(member, headers=admin).status_code == 204
    grant = f"/v3/projects/{project['id']}/groups/{group['id']}/roles/{role_id(identity, 'member')}"
    assert client.put(grant, headers=admin).status_code == 204

    token = identity.token("bob", PASSWORD, "team")
    mine = {"X-Auth-Token": token}
    assert client.get("/v3/auth/projects", headers=mine).status_code == 200
    body = client.get("/v3/auth/tokens", headers={**admin, "X-Subject-Token": token}).json()["token"]
    assert {r["name"] for r in body["roles"]} == {"member", "reader"}

    assert client.delete(member, headers=admin).status_code == 204
    assert client.get("/v3/auth/projects", headers=mine).status_code == 401
    retry = client.post("/v3/auth/tokens", json={"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"id": user["id"], "password": PASSWORD}}}, "scope": {"project": {"id": project["id"]}}}})
    assert retry.status_code == 401


def test_deleting_a_group_revokes_its_members_and_its_grants(identity: IdentityHarness) -> None:
    client, admin = identity.client, identity.as_admin()
    project = create(identity, "project", name="team")
    group = create(identity, "group", name="devs")
    user = create(identity, "user", name="bob", password=PASSWORD)
    client.put(f"/v3/groups/{group['id']}/users/{user['id']}", headers=admin)
    client.put(f"/v3/projects/{project['id']}/groups/{group['id']}/roles/{role_id(identity, 'member')}",
               headers=admin)
    token = identity.token("bob", PASSWORD, "team")
    assert client.delete(f"/v3/groups/{group['id']}", headers=admin).status_code == 204
    assert client.get("/v3/auth/projects", headers={"X-Auth-Token": token}).status_code == 401
    left = client.get(f"/v3/role_assignments?group.id={group['id']}", headers=admin).json()["role_assignments"]
    assert left == []
    assert client.get(f"/v3/users/{user['id']}/groups", headers=admin).json()["groups"] == []


def test_only_admins_manage_groups(identity: IdentityHarness) -> None:
    client, admin = identity.client, identity.as_admin()
    project = create(identity, "project", name="team")
    user = create(identity, "user", name="bob", password=PASSWORD)
    group = create(identity, "group", name="devs")
    client.put(f"/v3/projects/{project['id']}/users/{user['id']}/roles/{role_id(identity, 'member')}",
               headers=admin)
    mine = {"X-Auth-Token": identity.token("bob", PASSWORD, "team")}
    assert client.post("/v3/groups", json={"group": {"name": "mine"}}, headers=mine).status_code == 403
    assert client.get("/v3/groups", headers=mine).status_code == 403
    assert client.put(f"/v3/groups/{group['id']}/users/{user['id']}", headers=mine).status_code == 403
    assert client.delete(f"/v3/groups/{group['id']}", headers=mine).status_code == 403
    assert client.get("/v3/groups").status_code == 401
    # The user may still see their own groups.
    assert client.get(f"/v3/users/{user['id']}/groups", headers=mine).status_code == 200
