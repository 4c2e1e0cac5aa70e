"""Application credentials: their lifecycle, who may manage them, and authenticating with them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from stratus.identity.models import ApplicationCredential
from tests.api.identity.helpers import MEMBER_PASSWORD, add_member
from tests.conftest import IdentityHarness

PASSWORD = MEMBER_PASSWORD



def _create(identity: IdentityHarness, token: str, user_id: str, **fields: Any) -> Any:
    return identity.client.post(f"/v3/users/{user_id}/application_credentials", headers={"X-Auth-Token": token},
                                json={"application_credential": fields})


def _auth(identity: IdentityHarness, credential: dict[str, Any]) -> Any:
    return identity.client.post("/v3/auth/tokens", json={"auth": {"identity": {
        "methods": ["application_credential"], "application_credential": credential}}})


def _role_names(body: Any) -> set[str]:
    return {r["name"] for r in body["token"]["roles"]}


def test_create_shows_the_secret_once_and_defaults_to_the_tokens_roles(identity: IdentityHarness) -> None:
    user_id, project_id = add_member(identity, "alice", "project-a")
    token = identity.token("alice", PASSWORD, "project-a")
    created = _create(identity, token, user_id, name="ci", description="for CI")
    assert created.status_code == 201, created.text
    cred = created.json()["application_credential"]
    assert cred["secret"] and len(cred["secret"]) >= 32
    assert cred["project_id"] == project_id and cred["user_id"] == user_id
    assert {r["name"] for r in cred["roles"]} == {"member", "reader"}
    assert cred["unrestricted"] is False and cred["expires_at"] is None and cred["access_rules"] == []
    assert cred["links"]["self"].endswith(f"/v3/users/{user_id}/application_credentials/{cred['id']}")

    headers = {"X-Auth-Token": token}
    shown = identity.client.get(f"/v3/users/{user_id}/application_credentials/{cred['id']}", headers=headers)
    assert shown.status_code == 200
    assert "secret" not in shown.json()["application_credential"]
    assert shown.json()["application_credential"]["description"] == "for CI"
    listed = identity.client.get(f"/v3/users/{user_id}/application_credentials", headers=headers).json()
    assert [c["name"] for c in listed["application_credentials"]] == ["ci"]
    assert "secret" not in listed["application_credentials"][0]
    by_name = identity.client.get(f"/v3/users/{user_id}/application_credentials?name=nope", headers=headers)
    assert by_name.json()["application_credentials"] == []
    with identity.service.read() as session:
        stored = session.get(ApplicationCredential, cred["id"])
        assert stored is not None and cred["secret"] not in stored.secret_hash


def test_invalid_requests_are_refused_and_change_nothing(identity: IdentityHarness) -> None:
    user_id, _ = add_member(identity, "alice", "project-a")
    token = identity.token("alice", PASSWORD, "project-a")
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    assert _create(identity, token, user_id, name="one", secret="s3cret").status_code == 201
    cases = [
        ({"name": "one"}, 409),
        ({}, 400),
        ({"name": ""}, 400),
        ({"name": "x", "expires_at": past}, 400),
        ({"name": "x", "expires_at": "next tuesday"}, 400),
        ({"name": "x", "unrestricted": "yes"}, 400),
        ({"name": "x", "roles": [{"name": "admin"}]}, 403),
        ({"name": "x", "roles": [{"name": "no-such-role"}]}, 404),
        ({"name": "x", "roles": [{}]}, 400),
        ({"name": "x", "access_rules": [{"path": "/v2.1/servers", "method": "GET", "service": "compute"}]}, 400),
    ]
    for fields, status in cases:
        response = _create(identity, token, user_id, **fields)
        assert response.status_code == status, (fields, response.text)
        assert "error" in response.json()
    listed = identity.client.get(f"/v3/users/{user_id}/application_credentials",
                                 headers={"X-Auth-Token": token}).json()["application_credentials"]
    assert [c["name"] for c in listed] == ["one"]


def test_only_the_owner_creates_and_others_cannot_see(identity: IdentityHarness) -> None:
    alice, _ = add_member(identity, "alice", "project-a")
    bob, _ = add_member(identity, "bob", "project-b")
    alice_token = identity.token("alice", PASSWORD, "project-a")
    bob_token = identity.token("bob", PASSWORD, "project-b")
    cred = _create(identity, alice_token, alice, name="mine").json()["application_credential"]

    assert _create(identity, bob_token, alice, name="theirs").status_code == 403
    assert _create(identity, identity.admin_token, alice, name="by-admin").status_code == 403
    bob_headers = {"X-Auth-Token": bob_token}
    assert identity.client.get(f"/v3/users/{alice}/application_credentials", headers=bob_headers).status_code == 403
    assert identity.client.delete(f"/v3/users/{alice}/application_credentials/{cred['id']}",
                                  headers=bob_headers).status_code == 403
    # Under another user's path the credential does not exist.
    missing = identity.client.get(f"/v3/users/{bob}/application_credentials/{cred['id']}", headers=bob_headers)
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == f"Could not find Application Credential: {cred['id']}."
    # The admin may look.
    admin_view = identity.client.get(f"/v3/users/{alice}/application_credentials", headers=identity.as_admin())
    assert [c["id"] for c in admin_view.json()["application_credentials"]] == [cred["id"]]
    domain_token = identity.token("admin", "admin-secret-Pw1", domain={"id": "default"})
    admin_id = identity.client.get("/v3/auth/tokens", headers={**identity.as_admin(),
                                                                "X-Subject-Token": domain_token})
    assert _create(identity, domain_token, admin_id.json()["token"]["user"]["id"], name="x").status_code == 400


def test_authenticate_by_id_and_by_name_gets_only_the_delegated_roles(identity: IdentityHarness) -> None:
    user_id, project_id = add_member(identity, "alice", "project-a")
    token = identity.token("alice", PASSWORD, "project-a")
    cred = _create(identity, token, user_id, name="reader-only", secret="app-Secret-1",
                   roles=[{"name": "reader"}]).json()["application_credential"]
    assert [r["name"] for r in cred["roles"]] == ["reader"]

    by_id = _auth(identity, {"id": cred["id"], "secret": "app-Secret-1"})
    assert by_id.status_code == 201, by_id.text
    body = by_id.json()
    assert body["token"]["project"]["id"] == project_id
    assert _role_names(body) == {"reader"}
    assert body["token"]["methods"] == ["application_credential"]
    assert body["token"]["application_credential"] == {"id": cred["id"], "name": "reader-only", "restricted": True}

    by_name = _auth(identity, {"name": "reader-only", "secret": "app-Secret-1",
                               "user": {"name": "alice", "domain": {"id": "default"}}})
    assert by_name.status_code == 201 and _role_names(by_name.json()) == {"reader"}
    assert _auth(identity, {"id": cred["id"], "secret": "wrong"}).status_code == 401
    assert _auth(identity, {"name": "reader-only", "secret": "app-Secret-1", "user": {"id": "nobody"}}).status_code \
        == 401


def test_expired_credential_no_longer_authenticates(identity: IdentityHarness) -> None:
    user_id, _ = add_member(identity, "alice", "project-a")
    token = identity.token("alice", PASSWORD, "project-a")
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).replace(microsecond=0)
    cred = _create(identity, token, user_id, name="short", secret="app-Secret-1",
                   expires_at=soon.strftime("%Y-%m-%dT%H:%M:%S")).json()["application_credential"]
    assert cred["expires_at"] == soon.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    issued = _auth(identity, {"id": cred["id"], "secret": "app-Secret-1"})
    assert issued.status_code == 201
    # A token never outlives the credential that obtained it.
    assert issued.json()["token"]["expires_at"] <= cred["expires_at"]
    with identity.service.write() as session:
        stored = session.get(ApplicationCredential, cred["id"])
        stored.expires_at = stored.expires_at - dt.timedelta(hours=2)
    assert _auth(identity, {"id": cred["id"], "secret": "app-Secret-1"}).status_code == 401


def test_deleting_a_credential_revokes_its_tokens(identity: IdentityHarness) -> None:
    user_id, _ = add_member(identity, "alice", "project-a")
    token = identity.token("alice", PASSWORD, "project-a")
    cred = _create(identity, token, user_id, name="gone", secret="app-Secret-1").json()["application_credential"]
    app_token = _auth(identity, {"id": cred["id"], "secret": "app-Secret-1"}).headers["X-Subject-Token"]
    check = {"X-Auth-Token": token, "X-Subject-Token": app_token}
    assert identity.client.get("/v3/auth/tokens", headers=check).status_code == 200
    deleted = identity.client.delete(f"/v3/users/{user_id}/application_credentials/{cred['id']}",
                                     headers={"X-Auth-Token": token})
    assert deleted.status_code == 204
    assert identity.client.get("/v3/auth/tokens", headers=check).status_code == 404
    assert _auth(identity, {"id": cred["id"], "secret": "app-Secret-1"}).status_code == 401
    again = identity.client.delete(f"/v3/users/{user_id}/application_credentials/{cred['id']}",
                                   headers={"X-Auth-Token": token})
    assert again.status_code == 404


def test_restricted_credential_cannot_manage_credentials(identity: IdentityHarness) -> None:
    user_id, _ = add_member(identity, "alice", "project-a")
    token = identity.token("alice", PASSWORD, "project-a")
    restricted = _create(identity, token, user_id, name="restricted", secret="s-1").json()["application_credential"]
    unrestricted = _create(identity, token, user_id, name="free", secret="s-2", unrestricted=True,
                           roles=[{"name": "reader"}]).json()["application_credential"]
    assert unrestricted["unrestricted"] is True

    limited = _auth(identity, {"id": restricted["id"], "secret": "s-1"}).headers["X-Subject-Token"]
    assert _create(identity, limited, user_id, name="child").status_code == 403
    refused = identity.client.delete(f"/v3/users/{user_id}/application_credentials/{unrestricted['id']}",
                                     headers={"X-Auth-Token": limited})
    assert refused.status_code == 403
    # Listing is harmless and allowed.
    assert identity.client.get(f"/v3/users/{user_id}/application_credentials",
                               headers={"X-Auth-Token": limited}).status_code == 200

    free = _auth(identity, {"id": unrestricted["id"], "secret": "s-2"}).headers["X-Subject-Token"]
    # An unrestricted credential may create others, but only with the roles its own token carries.
    assert _create(identity, free, user_id, name="too-much", roles=[{"name": "member"}]).status_code == 403
    child = _create(identity, free, user_id, name="child")
    assert child.status_code == 201 and [r["name"] for r in child.json()["application_credential"]["roles"]] == [
        "reader"]
