"""Roles and implied-role rules through the identity API."""

from __future__ import annotations

from typing import Any

from tests.api.identity.helpers import create, error_message, role_id
from tests.conftest import IdentityHarness

PASSWORD = "role-test-Pw1"





def _user_on_project(identity: IdentityHarness, name: str, project: dict[str, Any], role_id: str) -> dict[str, str]:
    """A new user holding `role_id` on the project, and the headers of a token scoped to it."""
    user = create(identity, "user", name=name, password=PASSWORD)
    grant = f"/v3/projects/{project['id']}/users/{user['id']}/roles/{role_id}"
    assert identity.client.put(grant, headers=identity.as_admin()).status_code == 204
    return {"X-Auth-Token": identity.token(name, PASSWORD, project["name"])}


def _token_roles(identity: IdentityHarness, headers: dict[str, str]) -> set[str]:
    check = {**identity.as_admin(), "X-Subject-Token": headers["X-Auth-Token"]}
    return {r["name"] for r in identity.client.get("/v3/auth/tokens", headers=check).json()["token"]["roles"]}


def test_role_create_show_list_update_delete(identity: IdentityHarness) -> None:
    client, admin = identity.client, identity.as_admin()
    role = create(identity, "role", name="auditor", description="reads logs")
    assert role == {"id": role["id"], "name": "auditor", "domain_id": None, "description": "reads logs",
                    "options": {}, "links": {"self": f"http://testserver/v3/roles/{role['id']}"}}
    assert client.get(f"/v3/roles/{role['id']}", headers=admin).json()["role"] == role
    names = [r["name"] for r in client.get("/v3/roles", headers=admin).json()["roles"]]
    assert names == ["admin", "auditor", "member", "reader", "service"]
    assert [r["id"] for r in client.get("/v3/roles?name=auditor", headers=admin).json()["roles"]] == [role["id"]]

    patched = client.patch(f"/v3/roles/{role['id']}", json={"role": {"name": "inspector", "description": ""}},
                           headers=admin)
    assert patched.status_code == 200
    assert (patched.json()["role"]["name"], patched.json()["role"]["description"]) == ("inspector", "")
    renamed = client.patch(f"/v3/roles/{role['id']}", json={"role": {"name": "Inspector"}}, headers=admin)
    assert renamed.status_code == 200  # a change of case only does not collide with the role itself
    assert client.delete(f"/v3/roles/{role['id']}", headers=admin).status_code == 204
    gone = client.get(f"/v3/roles/{role['id']}", headers=admin)
    assert error_message(gone, 404) == f"Could not find role: {role['id']}."


def test_domain_specific_roles_are_listed_only_by_domain(identity: IdentityHarness) -> None:
    client, admin = identity.client, identity.as_admin()
    role = create(identity, "role", name="auditor", domain_id="default")
    assert role["domain_id"] == "default"
    create(identity, "role", name="auditor")  # the same name may exist globally
    listed = client.get("/v3/roles?domain_id=default", headers=admin).json()["roles"]
    assert [r["id"] for r in listed] == [role["id"]]
    assert role["id"] not in {r["id"] for r in client.get("/v3/roles", headers=admin).json()["roles"]}
    assert client.get("/v3/roles?domain_id=<<null>>", headers=admin).json()["roles"] == []
    assert error_message(client.post("/v3/roles", json={"role": {"name": "auditor", "domain_id": "default"}},
                              headers=admin), 409)
    assert error_message(client.post("/v3/roles", json={"role": {"name": "x", "domain_id": "nowhere"}}, headers=admin),
                  404) == "Could not find domain: nowhere."
    error_message(client.patch(f"/v3/roles/{role['id']}", json={"role": {"domain_id": None}}, headers=admin), 400)


def test_bad_role_requests_change_nothing(identity: IdentityHarness) -> None:
    client, admin = identity.client, identity.as_admin()
    before = client.get("/v3/roles", headers=admin).json()["roles"]
    assert "Duplicate entry" in error_message(client.post("/v3/roles", json={"role": {"name": "admin"}}, headers=admin),
                                       409)
    error_message(client.post("/v3/roles", json={"role": {}}, headers=admin), 400)
    error_message(client.post("/v3/roles", json={"role": {"name": ""}}, headers=admin), 400)
    error_message(client.post("/v3/roles", json={"role": {"name": "x", "extra": 1}}, headers=admin), 400)
    error_message(client.post("/v3/roles", json={"role": {"name": "x", "options": {"immutable": True}}}, headers=admin),
           400)
    error_message(client.post("/v3/roles", json=["role"], headers=admin), 400)
    member = role_id(identity, "member")
    error_message(client.patch(f"/v3/roles/{member}", json={"role": {"name": "admin"}}, headers=admin), 409)
    error_message(client.patch(f"/v3/roles/{member}", json={"role": {"domain_id": "default"}}, headers=admin), 400)
    error_message(client.patch("/v3/roles/missing", json={"role": {"name": "y"}}, headers=admin), 404)
    error_message(client.delete("/v3/roles/missing", headers=admin), 404)
    assert client.get("/v3/roles", headers=admin).json()["roles"] == before
    # Clients send the immutable option unset by default: that is accepted.
    created = client.post("/v3/roles", json={"role": {"name": "ok", "options": {"immutable": False}}}, headers=admin)
    assert created.status_code == 201


def test_deleting_a_role_removes_its_grants_and_revokes_its_holders(identity: IdentityHarness) -> None:
    client, admin = identity.client, identity.as_admin()
    project = create(identity, "project", name="team")
    role = create(identity, "role", name="auditor")
    direct = _user_on_project(identity, "direct", project, role["id"])
    via_group = create(identity, "user", name="grouped", password=PASSWORD)
    group = create(identity, "group", name="auditors")
    client.put(f"/v3/groups/{group['id']}/users/{via_group['id']}", headers=admin)
    client.put(f"/v3/projects/{project['id']}/groups/{group['id']}/roles/{role['id']}", headers=admin)
    grouped = {"X-Auth-Token": identity.token("grouped", PASSWORD, "team")}
    bystander = _user_on_project(identity, "bystander", project, role_id(identity, "member"))

    assert client.delete(f"/v3/roles/{role['id']}", headers=admin).status_code == 204
    assert client.get("/v3/auth/projects", headers=direct).status_code == 401
    assert client.get("/v3/auth/projects", headers=grouped).status_code == 401
    assert client.get("/v3/auth/projects", headers=bystander).status_code == 200
    assert client.get(f"/v3/role_assignments?role.id={role['id']}", headers=admin).json()["role_assignments"] == []


def test_implied_role_rules(identity: IdentityHarness) -> None:
    client, admin = identity.client, identity.as_admin()
    prior, implied = create(identity, "role", name="lead"), create(identity, "role", name="auditor")
    rule = f"/v3/roles/{prior['id']}/implies/{implied['id']}"
    assert client.head(rule, headers=admin).status_code == 404
    assert error_message(client.get(rule, headers=admin), 404) == f"{prior['id']} does not imply {implied['id']}."
    created = client.put(rule, headers=admin)
    assert created.status_code == 201
    body = created.json()
    assert body["links"] == {"self": f"http://testserver{rule}"}
    assert body["role_inference"]["prior_role"]["id"] == prior["id"]
    assert body["role_inference"]["prior_role"]["links"] == {"self": f"http://testserver/v3/roles/{prior['id']}"}
    assert (body["role_inference"]["implies"]["id"], body["role_inference"]["implies"]["name"]) == \
        (implied["id"], "auditor")
    assert client.put(rule, headers=admin).status_code == 201  # creating it again changes nothing
    assert client.get(rule, headers=admin).json() == body
    assert client.head(rule, headers=admin).status_code == 204

    listed = client.get(f"/v3/roles/{prior['id']}/implies", headers=admin).json()
    assert listed["role_inference"]["prior_role"]["name"] == "lead"
    assert [r["name"] for r in listed["role_inference"]["implies"]] == ["auditor"]
    inferences = {i["prior_role"]["name"]: [r["name"] for r in i["implies"]]
                  for i in client.get("/v3/role_inferences", headers=admin).json()["role_inferences"]}
    assert inferences == {"admin": ["member"], "member": ["reader"], "lead": ["auditor"]}

    assert client.delete(rule, headers=admin).status_code == 204
    assert client.delete(rule, headers=admin).status_code == 404
    assert error_message(client.put(f"/v3/roles/{prior['id']}/implies/missing", headers=admin), 404) == \
        "Could not find role: missing."


def test_implied_roles_reach_tokens_and_leave_them_when_the_rule_goes(identity: IdentityHarness) -> None:
    client, admin = identity.client, identity.as_admin()
    project = create(identity, "project", name="team")
    lead, auditor = create(identity, "role", name="lead"), create(identity, "role", name="auditor")
    rule = f"/v3/roles/{lead['id']}/implies/{auditor['id']}"
    assert client.put(rule, headers=admin).status_code == 201
    headers = _user_on_project(identity, "bob", project, lead["id"])
    assert _token_roles(identity, headers) == {"lead", "auditor"}
    assert client.delete(rule, headers=admin).status_code == 204
    assert client.get("/v3/auth/projects", headers=headers).status_code == 401
    assert _token_roles(identity, {"X-Auth-Token": identity.token("bob", PASSWORD, "team")}) == {"lead"}


def test_rules_that_would_loop_or_escalate_are_refused(identity: IdentityHarness) -> None:
    client, admin = identity.client, identity.as_admin()
    admin_role, member, reader = (role_id(identity, n) for n in ("admin", "member", "reader"))
    # Bootstrap made admin -> member -> reader: reader -> member would close a loop.
    assert "cycle" in error_message(client.put(f"/v3/roles/{reader}/implies/{member}", headers=admin), 409)
    assert "cycle" in error_message(client.put(f"/v3/roles/{reader}/implies/{reader}", headers=admin), 409)
    a, b, c = (create(identity, "role", name=n)["id"] for n in ("a", "b", "c"))
    assert client.put(f"/v3/roles/{a}/implies/{b}", headers=admin).status_code == 201
    assert client.put(f"/v3/roles/{b}/implies/{c}", headers=admin).status_code == 201
    error_message(client.put(f"/v3/roles/{c}/implies/{a}", headers=admin), 409)
    # No role may imply admin.
    assert "cannot be an implied role" in error_message(client.put(f"/v3/roles/{a}/implies/{admin_role}",
                                                            headers=admin), 403)
    # A global role cannot imply a domain's own role; a domain role may imply a global one.
    local = create(identity, "role", name="local", domain_id="default")["id"]
    error_message(client.put(f"/v3/roles/{a}/implies/{local}", headers=admin), 400)
    assert client.put(f"/v3/roles/{local}/implies/{a}", headers=admin).status_code == 201
    rules = client.get("/v3/role_inferences", headers=admin).json()["role_inferences"]
    assert sum(len(r["implies"]) for r in rules) == 5


def test_readers_see_roles_but_only_admins_change_them(identity: IdentityHarness) -> None:
    client = identity.client
    project = create(identity, "project", name="team")
    role = create(identity, "role", name="auditor")
    reader = _user_on_project(identity, "bob", project, role_id(identity, "reader"))
    assert client.get("/v3/roles", headers=reader).status_code == 200
    assert client.get(f"/v3/roles/{role['id']}", headers=reader).status_code == 200
    assert client.get("/v3/role_inferences", headers=reader).status_code == 200
    assert client.post("/v3/roles", json={"role": {"name": "mine"}}, headers=reader).status_code == 403
    assert client.patch(f"/v3/roles/{role['id']}", json={"role": {"name": "x"}}, headers=reader).status_code == 403
    assert client.delete(f"/v3/roles/{role['id']}", headers=reader).status_code == 403
    member = role_id(identity, "member")
    assert client.put(f"/v3/roles/{role['id']}/implies/{member}", headers=reader).status_code == 403
