"""Tenant isolation and the events that must invalidate tokens."""

from __future__ import annotations

import time
from pathlib import Path

from tests.api.identity.helpers import MEMBER_PASSWORD, add_member
from tests.conftest import IdentityHarness, make_identity

PASSWORD = MEMBER_PASSWORD



def _works(identity: IdentityHarness, token: str) -> bool:
    status = identity.client.get("/v3/auth/projects", headers={"X-Auth-Token": token}).status_code
    assert status in (200, 401)
    return status == 200


def test_member_cannot_reach_beyond_its_project(identity: IdentityHarness) -> None:
    user_a, project_a = add_member(identity, "alice", "project-a")
    _, project_b = add_member(identity, "bob", "project-b")
    token = identity.token("alice", PASSWORD, "project-a")
    headers = {"X-Auth-Token": token}
    client = identity.client

    listed = client.get("/v3/users", headers=headers)
    assert listed.status_code == 403 and listed.json()["error"]["code"] == 403
    created = client.post("/v3/projects", headers=headers, json={"project": {"name": "sneaky"}})
    assert created.status_code == 403
    assert client.get("/v3/projects?name=sneaky", headers=identity.as_admin()).json()["projects"] == []
    assert client.get(f"/v3/projects/{project_b}", headers=headers).status_code == 404
    assert client.patch(f"/v3/projects/{project_b}", headers=headers,
                        json={"project": {"description": "x"}}).status_code == 404
    assert client.delete(f"/v3/projects/{project_b}", headers=headers).status_code == 404
    assert client.get("/v3/projects", headers=headers).status_code == 403
    # What is theirs, they can see.
    assert client.get(f"/v3/projects/{project_a}", headers=headers).status_code == 200
    assert client.get(f"/v3/users/{user_a}", headers=headers).status_code == 200
    mine = client.get("/v3/auth/projects", headers=headers).json()["projects"]
    assert [p["name"] for p in mine] == ["project-a"]
    # A user cannot scope to a project where it holds no role.
    refused = client.post("/v3/auth/tokens", json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "alice", "domain": {"id": "default"}, "password": PASSWORD}}},
        "scope": {"project": {"id": project_b}}}})
    assert refused.status_code == 401


def test_member_cannot_validate_others_tokens(identity: IdentityHarness) -> None:
    add_member(identity, "alice", "project-a")
    token = identity.token("alice", PASSWORD, "project-a")
    other = identity.client.get("/v3/auth/tokens", headers={"X-Auth-Token": token,
                                                            "X-Subject-Token": identity.admin_token})
    assert other.status_code == 403
    own = identity.client.get("/v3/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token})
    assert own.status_code == 200


def test_password_change_by_the_user_revokes_its_tokens(identity: IdentityHarness) -> None:
    user_id, _ = add_member(identity, "alice", "project-a")
    token = identity.token("alice", PASSWORD, "project-a")
    assert _works(identity, token)
    wrong = identity.client.post(f"/v3/users/{user_id}/password", headers={"X-Auth-Token": token},
                                 json={"user": {"original_password": "not-it", "password": "new-Pw-456"}})
    assert wrong.status_code == 401 and _works(identity, token)
    changed = identity.client.post(f"/v3/users/{user_id}/password", headers={"X-Auth-Token": token},
                                   json={"user": {"original_password": PASSWORD, "password": "new-Pw-456"}})
    assert changed.status_code == 204
    assert not _works(identity, token)
    assert _works(identity, identity.token("alice", "new-Pw-456", "project-a"))


def test_admin_password_reset_disable_and_delete_revoke_tokens(identity: IdentityHarness) -> None:
    user_id, project_id = add_member(identity, "alice", "project-a")
    client, admin = identity.client, identity.as_admin()
    token = identity.token("alice", PASSWORD, "project-a")
    assert client.patch(f"/v3/users/{user_id}", headers=admin,
                        json={"user": {"password": "reset-Pw-1"}}).status_code == 200
    assert not _works(identity, token)

    token = identity.token("alice", "reset-Pw-1", "project-a")
    assert client.patch(f"/v3/users/{user_id}", headers=admin, json={"user": {"enabled": False}}).status_code == 200
    assert not _works(identity, token)
    assert client.patch(f"/v3/users/{user_id}", headers=admin, json={"user": {"enabled": True}}).status_code == 200

    token = identity.token("alice", "reset-Pw-1", "project-a")
    assert client.patch(f"/v3/projects/{project_id}", headers=admin,
                        json={"project": {"enabled": False}}).status_code == 200
    assert not _works(identity, token)
    assert client.patch(f"/v3/projects/{project_id}", headers=admin,
                        json={"project": {"enabled": True}}).status_code == 200

    token = identity.token("alice", "reset-Pw-1", "project-a")
    assert client.delete(f"/v3/users/{user_id}", headers=admin).status_code == 204
    assert not _works(identity, token)


def test_bad_input_changes_nothing(identity: IdentityHarness) -> None:
    client, admin = identity.client, identity.as_admin()
    before = client.get("/v3/projects", headers=admin).json()["projects"]
    for body in ({"project": {"name": ""}}, {"project": {"name": 5}}, {"project": {"enabled": "yes", "name": "x"}},
                 {"project": {"name": "x", "domain_id": "nope"}}, {"nothing": {}}, [1, 2]):
        response = client.post("/v3/projects", headers=admin, json=body)
        assert 400 <= response.status_code < 500, (body, response.text)
        assert "error" in response.json()
    assert client.get("/v3/projects", headers=admin).json()["projects"] == before
    duplicate = client.post("/v3/projects", headers=admin, json={"project": {"name": "admin"}})
    assert duplicate.status_code == 409
    huge = client.post("/v3/projects", content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                       headers={**admin, "Content-Type": "application/json"})
    assert huge.status_code == 413


def test_lockout_after_repeated_failures(tmp_path: Path) -> None:
    harness = make_identity(tmp_path / "state", f"sqlite:///{tmp_path / 'id.sqlite'}",
                            lockout_failure_attempts=2, lockout_duration=60)
    add_member(harness, "alice", "project-a")
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "alice", "domain": {"id": "default"}, "password": "wrong"}}}}}
    for _ in range(2):
        assert harness.client.post("/v3/auth/tokens", json=body).status_code == 401
    body["auth"]["identity"]["password"]["user"]["password"] = PASSWORD
    locked = harness.client.post("/v3/auth/tokens", json=body)
    assert locked.status_code == 401


def test_unknown_user_and_wrong_password_take_similar_time(tmp_path: Path) -> None:
    harness = make_identity(tmp_path / "state", f"sqlite:///{tmp_path / 'id.sqlite'}", bcrypt_rounds=10)

    def attempt(name: str) -> float:
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": name, "domain": {"id": "default"}, "password": "wrong"}}}}}
        start = time.perf_counter()
        assert harness.client.post("/v3/auth/tokens", json=body).status_code == 401
        return time.perf_counter() - start

    # Interleaved, so that a busy moment of the machine weighs on both alike.
    unknown = wrong = 0.0
    for _ in range(6):
        unknown += attempt("nobody")
        wrong += attempt("admin")
    # Both pay one bcrypt check at the same cost; without the dummy check, unknown would be ~0.
    assert 0.5 < unknown / wrong < 2.0, (unknown, wrong)


def test_nul_bytes_are_refused_not_crashing(identity: IdentityHarness) -> None:
    admin = identity.as_admin()
    assert identity.client.get("/v3/projects/a%00b", headers=admin).status_code in (400, 404)
    created = identity.client.post("/v3/projects", headers=admin, json={"project": {"name": "a\u0000b"}})
    assert created.status_code in (201, 400)
    assert identity.client.get("/v3/users?name=x%00y", headers=admin).status_code in (200, 400)
