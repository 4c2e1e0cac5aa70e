"""Token issue, validation, scoping and revocation through the identity API."""

from __future__ import annotations

import time
from pathlib import Path

from stratus.identity.api import create_identity_app
from tests.conftest import ADMIN_PASSWORD, IdentityHarness, make_identity


def _password_auth(name: str, password: str, scope: dict | None = None) -> dict:
    auth: dict = {"identity": {"methods": ["password"], "password": {
        "user": {"name": name, "domain": {"name": "Default"}, "password": password}}}}
    if scope is not None:
        auth["scope"] = scope
    return {"auth": auth}


def test_discovery_lists_v3_as_stable(identity: IdentityHarness) -> None:
    root = identity.client.get("/")
    assert root.status_code == 300
    ids = {v["id"]: v["status"] for v in root.json()["versions"]["values"]}
    assert ids["v3.14"] == "stable"
    v3 = identity.client.get("/v3").json()["version"]
    assert v3["links"][0]["href"].endswith("/v3/")
    assert identity.client.get("/v3").headers["x-openstack-request-id"].startswith("req-")


def test_project_scoped_token_carries_roles_and_catalog(identity: IdentityHarness) -> None:
    response = identity.client.post("/v3/auth/tokens", json=_password_auth(
        "admin", ADMIN_PASSWORD, {"project": {"name": "admin", "domain": {"name": "Default"}}}))
    assert response.status_code == 201
    token = response.json()["token"]
    assert response.headers["X-Subject-Token"]
    assert token["project"]["name"] == "admin"
    assert token["user"]["domain"] == {"id": "default", "name": "Default"}
    assert {r["name"] for r in token["roles"]} >= {"admin", "member", "reader"}
    assert token["methods"] == ["password"]
    assert token["expires_at"].endswith("Z") and len(token["audit_ids"]) == 1
    assert [s["type"] for s in token["catalog"]] == ["identity"]
    assert {e["interface"] for e in token["catalog"][0]["endpoints"]} == {"public", "internal", "admin"}


def test_nocatalog_omits_catalog(identity: IdentityHarness) -> None:
    response = identity.client.post("/v3/auth/tokens?nocatalog", json=_password_auth(
        "admin", ADMIN_PASSWORD, {"project": {"name": "admin", "domain": {"id": "default"}}}))
    assert "catalog" not in response.json()["token"]
    subject = response.headers["X-Subject-Token"]
    check = identity.client.get("/v3/auth/tokens?nocatalog",
                                headers={**identity.as_admin(), "X-Subject-Token": subject})
    assert "catalog" not in check.json()["token"]


def test_unscoped_domain_and_system_scopes(identity: IdentityHarness) -> None:
    client = identity.client
    # admin has a default project: an unscoped request is scoped to it, as Keystone does.
    scoped = client.post("/v3/auth/tokens", json=_password_auth("admin", ADMIN_PASSWORD)).json()["token"]
    assert scoped["project"]["name"] == "admin"
    domain = client.post("/v3/auth/tokens", json=_password_auth(
        "admin", ADMIN_PASSWORD, {"domain": {"id": "default"}})).json()["token"]
    assert domain["domain"] == {"id": "default", "name": "Default"}
    system = client.post("/v3/auth/tokens", json=_password_auth(
        "admin", ADMIN_PASSWORD, {"system": {"all": True}})).json()["token"]
    assert system["system"] == {"all": True}
    assert "admin" in {r["name"] for r in system["roles"]}


def test_validate_check_and_revoke(identity: IdentityHarness) -> None:
    client, admin = identity.client, identity.as_admin()
    subject = identity.token("admin", ADMIN_PASSWORD, "admin")
    headers = {**admin, "X-Subject-Token": subject}
    shown = client.get("/v3/auth/tokens", headers=headers)
    assert shown.status_code == 200 and shown.headers["X-Subject-Token"] == subject
    assert client.head("/v3/auth/tokens", headers=headers).status_code == 200
    assert client.delete("/v3/auth/tokens", headers=headers).status_code == 204
    assert client.get("/v3/auth/tokens", headers=headers).status_code == 404
    assert client.get("/v3/auth/projects", headers={"X-Auth-Token": subject}).status_code == 401


def test_rescope_with_token_method_keeps_chain_and_expiry(identity: IdentityHarness) -> None:
    client = identity.client
    first = client.post("/v3/auth/tokens", json=_password_auth(
        "admin", ADMIN_PASSWORD, {"domain": {"id": "default"}}))
    body = {"auth": {"identity": {"methods": ["token"], "token": {"id": first.headers["X-Subject-Token"]}},
                     "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
    second = client.post("/v3/auth/tokens", json=body)
    assert second.status_code == 201
    t1, t2 = first.json()["token"], second.json()["token"]
    assert t2["audit_ids"][1] == t1["audit_ids"][0]
    assert t2["expires_at"] == t1["expires_at"]
    assert t2["project"]["name"] == "admin"


def test_wrong_password_and_unknown_user_get_the_same_401(identity: IdentityHarness) -> None:
    wrong = identity.client.post("/v3/auth/tokens", json=_password_auth("admin", "nope"))
    unknown = identity.client.post("/v3/auth/tokens", json=_password_auth("nobody", "nope"))
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"]["code"] == 401


def test_malformed_auth_requests_are_400(identity: IdentityHarness) -> None:
    client = identity.client
    assert client.post("/v3/auth/tokens", content=b"{not json",
                       headers={"Content-Type": "application/json"}).status_code == 400
    assert client.post("/v3/auth/tokens", json={"auth": {}}).status_code == 400
    assert client.post("/v3/auth/tokens", json={"auth": {"identity": {"methods": ["password"]}}}).status_code == 400
    assert client.post("/v3/auth/tokens", json=_password_auth(
        "admin", ADMIN_PASSWORD, {"project": "admin"})).status_code == 400


def test_token_expires(tmp_path: Path) -> None:
    harness = make_identity(tmp_path / "state", f"sqlite:///{tmp_path / 'id.sqlite'}", token_expiration=1)
    subject = harness.token("admin", ADMIN_PASSWORD, "admin")
    assert harness.client.get("/v3/auth/projects", headers={"X-Auth-Token": subject}).status_code == 200
    time.sleep(1.2)
    assert harness.client.get("/v3/auth/projects", headers={"X-Auth-Token": subject}).status_code == 401


def test_tokens_survive_rotation_but_not_key_removal(identity: IdentityHarness) -> None:
    subject = identity.token("admin", ADMIN_PASSWORD, "admin")
    keys = identity.service.keys
    keys.rotate()
    # A fresh app (as after a restart) reads the rotated repository.
    client = type(identity.client)(create_identity_app(identity.service))
    assert client.get("/v3/auth/projects", headers={"X-Auth-Token": subject}).status_code == 200
    newer = identity.token("admin", ADMIN_PASSWORD, "admin")
    for _ in range(keys.max_active):
        keys.rotate()
    time.sleep(1.1)  # the repository is re-read at most once a second
    assert client.get("/v3/auth/projects", headers={"X-Auth-Token": subject}).status_code == 401
    assert identity.client.get("/v3/auth/projects", headers={"X-Auth-Token": newer}).status_code == 401
