"""The Identity v2.0 calls: `POST /v2.0/tokens` and `GET /v2.0/tenants`."""

from __future__ import annotations

from typing import Any

from tests.api.identity.helpers import MEMBER_PASSWORD
from tests.api.identity.test_catalog import make_member
from tests.conftest import ADMIN_PASSWORD, IdentityHarness


def _password(username: str = "admin", password: str = ADMIN_PASSWORD, **scope: str) -> dict[str, Any]:
    return {"auth": {"passwordCredentials": {"username": username, "password": password}, **scope}}


def _access(identity: IdentityHarness, body: dict[str, Any]) -> dict[str, Any]:
    response = identity.client.post("/v2.0/tokens", json=body)
    assert response.status_code == 200, response.text
    return response.json()["access"]


def _error(response: Any, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == status


def test_password_and_tenant_name_give_the_v2_access_document(identity: IdentityHarness) -> None:
    access = _access(identity, _password(tenantName="admin"))
    token = access["token"]
    assert token["tenant"]["name"] == "admin" and token["tenant"]["enabled"] is True
    assert set(token["tenant"]) == {"id", "name", "description", "enabled"}
    assert token["expires"].endswith("Z") and len(token["expires"]) == len("2030-01-01T00:00:00Z")
    assert token["issued_at"] and len(token["audit_ids"]) == 1
    user = access["user"]
    assert user["name"] == user["username"] == "admin" and user["roles_links"] == []
    assert {r["name"] for r in user["roles"]} >= {"admin", "member", "reader"}
    assert access["metadata"]["is_admin"] == 0
    assert len(access["metadata"]["roles"]) == len(user["roles"])

    identity_service = next(s for s in access["serviceCatalog"] if s["type"] == "identity")
    assert identity_service["name"] == "keystone" and identity_service["endpoints_links"] == []
    [endpoint] = identity_service["endpoints"]
    assert endpoint["region"] == "RegionOne" and endpoint["id"]
    for key in ("publicURL", "internalURL", "adminURL"):
        assert endpoint[key] == "http://127.0.0.1:5000/v3"


def test_v2_token_is_an_ordinary_v3_token(identity: IdentityHarness) -> None:
    access = _access(identity, _password(tenantName="admin"))
    shown = identity.client.get("/v3/auth/tokens", headers={**identity.as_admin(),
                                                             "X-Subject-Token": access["token"]["id"]})
    assert shown.status_code == 200
    token = shown.json()["token"]
    assert token["project"]["id"] == access["token"]["tenant"]["id"]
    assert token["user"]["id"] == access["user"]["id"]
    assert token["audit_ids"] == access["token"]["audit_ids"]
    # And it authenticates v3 calls.
    assert identity.client.get("/v3/auth/projects", headers={"X-Auth-Token": access["token"]["id"]}).status_code == 200


def test_tenant_id_and_token_rescoping(identity: IdentityHarness) -> None:
    member = make_member(identity, "alice")
    by_id = _access(identity, _password("alice", MEMBER_PASSWORD, tenantId=member["project_id"]))
    assert by_id["token"]["tenant"]["id"] == member["project_id"]
    assert [r["name"] for r in by_id["user"]["roles"]] == ["member", "reader"]

    rescoped = _access(identity, {"auth": {"token": {"id": by_id["token"]["id"]}, "tenantName": "alice-project"}})
    assert rescoped["token"]["tenant"]["name"] == "alice-project"
    assert rescoped["token"]["id"] != by_id["token"]["id"]
    # A rescoped token shares the audit chain of the one it came from.
    assert rescoped["token"]["audit_ids"][1] == by_id["token"]["audit_ids"][0]


def test_service_catalog_merges_interfaces_per_region(identity: IdentityHarness) -> None:
    client, admin = identity.client, identity.as_admin()
    service = client.post("/v3/services", headers=admin, json={"service": {"type": "image", "name": "glance"}})
    service_id = service.json()["service"]["id"]
    client.put("/v3/regions/RegionTwo", headers=admin, json={"region": {}})
    for interface, region in (("public", "RegionOne"), ("internal", "RegionOne"), ("public", "RegionTwo")):
        response = client.post("/v3/endpoints", headers=admin, json={"endpoint": {
            "service_id": service_id, "interface": interface, "region_id": region,
            "url": f"http://{interface}.{region}.example.com:9292"}})
        assert response.status_code == 201
    client.post("/v3/services", headers=admin, json={"service": {"type": "empty", "name": "nothing"}})

    catalog = _access(identity, _password(tenantName="admin"))["serviceCatalog"]
    assert "empty" not in {s["type"] for s in catalog}
    image = next(s for s in catalog if s["type"] == "image")
    by_region = {e["region"]: e for e in image["endpoints"]}
    assert set(by_region) == {"RegionOne", "RegionTwo"}
    assert by_region["RegionOne"]["publicURL"] == "http://public.RegionOne.example.com:9292"
    assert by_region["RegionOne"]["internalURL"] == "http://internal.RegionOne.example.com:9292"
    assert "adminURL" not in by_region["RegionOne"]
    assert set(by_region["RegionTwo"]) == {"id", "region", "publicURL"}


def test_unscoped_v2_token_has_no_tenant_and_no_catalog(identity: IdentityHarness) -> None:
    admin = identity.as_admin()
    user = identity.client.post("/v3/users", headers=admin, json={"user": {"name": "bob", "password": "bob-Pw-1234"}})
    assert user.status_code == 201
    access = _access(identity, _password("bob", "bob-Pw-1234"))
    assert "tenant" not in access["token"]
    assert access["serviceCatalog"] == [] and access["user"]["roles"] == []
    assert access["metadata"] == {"is_admin": 0, "roles": []}


MALFORMED = [
    {},
    {"auth": "x"},
    {"auth": {}},
    {"auth": {"passwordCredentials": "admin"}},
    {"auth": {"passwordCredentials": {"password": ADMIN_PASSWORD}}},
    {"auth": {"passwordCredentials": {"username": 5, "password": ADMIN_PASSWORD}}},
    {"auth": {"passwordCredentials": {"username": "admin"}}},
    {"auth": {"passwordCredentials": {"username": "admin", "password": ADMIN_PASSWORD},
              "tenantName": "admin", "tenantId": "x"}},
    {"auth": {"passwordCredentials": {"username": "admin", "password": ADMIN_PASSWORD}, "tenantName": ["admin"]}},
    {"auth": {"token": "not-an-object"}},
]


def test_malformed_v2_requests_are_400(identity: IdentityHarness) -> None:
    for body in MALFORMED:
        response = identity.client.post("/v2.0/tokens", json=body)
        assert response.status_code == 400, body
        _error(response, 400)
    assert identity.client.post("/v2.0/tokens", content=b"{not json").status_code == 400


def test_v2_authentication_failures_are_401(identity: IdentityHarness) -> None:
    client = identity.client
    _error(client.post("/v2.0/tokens", json=_password(password="wrong")), 401)
    _error(client.post("/v2.0/tokens", json=_password("nobody", "whatever")), 401)
    _error(client.post("/v2.0/tokens", json=_password(tenantName="no-such-project")), 401)
    _error(client.post("/v2.0/tokens", json={"auth": {"token": {"id": "garbage"}}}), 401)
    response = client.post("/v2.0/tokens", json=_password(password="wrong"))
    assert set(response.json()["error"]) == {"code", "message", "title"}


def test_v2_reaches_the_default_domain_only(identity: IdentityHarness) -> None:
    client, admin = identity.client, identity.as_admin()
    domain = client.post("/v3/domains", headers=admin, json={"domain": {"name": "other"}}).json()["domain"]
    user = client.post("/v3/users", headers=admin, json={"user": {
        "name": "carol", "domain_id": domain["id"], "password": "carol-Pw-1234"}}).json()["user"]
    # By name, v2 looks in the Default domain; by id, the user is found but refused.
    _error(client.post("/v2.0/tokens", json=_password("carol", "carol-Pw-1234")), 401)
    _error(client.post("/v2.0/tokens", json={"auth": {"passwordCredentials": {
        "userId": user["id"], "password": "carol-Pw-1234"}}}), 401)
    # The same user authenticates on v3, and that token cannot be turned into a v2 one.
    v3 = client.post("/v3/auth/tokens", json={"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"id": user["id"], "password": "carol-Pw-1234"}}}}})
    assert v3.status_code == 201
    _error(client.post("/v2.0/tokens", json={"auth": {"token": {"id": v3.headers["X-Subject-Token"]}}}), 401)
    _error(client.get("/v2.0/tenants", headers={"X-Auth-Token": v3.headers["X-Subject-Token"]}), 401)


def test_tenants_lists_the_projects_the_user_has_roles_on(identity: IdentityHarness) -> None:
    client = identity.client
    member = make_member(identity, "alice")
    make_member(identity, "bob")
    listed = client.get("/v2.0/tenants", headers={"X-Auth-Token": member["token"]})
    assert listed.status_code == 200
    assert listed.json() == {"tenants": [{"id": member["project_id"], "name": "alice-project",
                                          "description": "", "enabled": True}], "tenants_links": []}
    # A v2 token works as well as a v3 one.
    v2_token = _access(identity, _password(tenantName="admin"))["token"]["id"]
    names = [t["name"] for t in client.get("/v2.0/tenants", headers={"X-Auth-Token": v2_token}).json()["tenants"]]
    assert names == ["admin"]
    paged = client.get("/v2.0/tenants?limit=0", headers={"X-Auth-Token": v2_token}).json()
    assert paged["tenants"] == []
    _error(client.get("/v2.0/tenants"), 401)
    _error(client.get("/v2.0/tenants", headers={"X-Auth-Token": "garbage"}), 401)
