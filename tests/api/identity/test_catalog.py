"""Regions, services and endpoints, and the token catalog built from them."""

from __future__ import annotations

from typing import Any

from tests.api.identity.helpers import MEMBER_PASSWORD, add_member
from tests.conftest import IdentityHarness


def make_member(identity: IdentityHarness, name: str) -> dict[str, str]:
    """A member of a project of its own, with a token scoped to it."""
    user_id, project_id = add_member(identity, name, f"{name}-project")
    token = identity.token(name, MEMBER_PASSWORD, f"{name}-project")
    return {"user_id": user_id, "project_id": project_id, "token": token}


def _service(identity: IdentityHarness, **fields: Any) -> dict[str, Any]:
    body = {"type": "compute", "name": "nova", **fields}
    response = identity.client.post("/v3/services", headers=identity.as_admin(), json={"service": body})
    assert response.status_code == 201, response.text
    return response.json()["service"]


def _endpoint(identity: IdentityHarness, service_id: str, **fields: Any) -> dict[str, Any]:
    body = {"service_id": service_id, "interface": "public", "url": "http://10.0.0.1:8774/v2.1",
            "region_id": "RegionOne", **fields}
    response = identity.client.post("/v3/endpoints", headers=identity.as_admin(), json={"endpoint": body})
    assert response.status_code == 201, response.text
    return response.json()["endpoint"]


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == status
    return error


def _count(identity: IdentityHarness, collection: str) -> int:
    response = identity.client.get(f"/v3/{collection}", headers=identity.as_admin())
    assert response.status_code == 200
    return len(response.json()[collection])


# -- regions ------------------------------------------------------------------------------------
def test_region_create_with_given_or_generated_id(identity: IdentityHarness) -> None:
    client, admin = identity.client, identity.as_admin()
    named = client.post("/v3/regions", headers=admin, json={"region": {"id": "RegionTwo", "description": "d"}})
    assert named.status_code == 201
    region = named.json()["region"]
    assert region == {"id": "RegionTwo", "description": "d", "parent_region_id": None,
                      "links": {"self": "http://testserver/v3/regions/RegionTwo"}}
    generated = client.post("/v3/regions", headers=admin, json={"region": {}}).json()["region"]
    assert len(generated["id"]) == 32 and generated["description"] == ""
    put = client.put("/v3/regions/RegionThree", headers=admin,
                     json={"region": {"parent_region_id": "RegionTwo"}})
    assert put.status_code == 201
    assert put.json()["region"]["parent_region_id"] == "RegionTwo"
    assert client.get("/v3/regions/RegionThree", headers=admin).json()["region"]["id"] == "RegionThree"


def test_region_duplicates_and_bad_references_change_nothing(identity: IdentityHarness) -> None:
    client, admin = identity.client, identity.as_admin()
    before = _count(identity, "regions")
    _error(client.post("/v3/regions", headers=admin, json={"region": {"id": "RegionOne"}}), 409)
    _error(client.put("/v3/regions/RegionOne", headers=admin, json={"region": {}}), 409)
    missing = _error(client.post("/v3/regions", headers=admin,
                                 json={"region": {"id": "Child", "parent_region_id": "Nowhere"}}), 404)
    assert missing["message"] == "Could not find region: Nowhere."
    _error(client.put("/v3/regions/A", headers=admin, json={"region": {"id": "B"}}), 400)
    _error(client.post("/v3/regions", headers=admin, json={"region": {"id": 7}}), 400)
    _error(client.post("/v3/regions", headers=admin, json={"region": {"id": "x" * 256}}), 400)
    _error(client.put("/v3/regions/" + "x" * 256, headers=admin, json={"region": {}}), 400)
    _error(client.post("/v3/regions", headers=admin, json={"regions": {}}), 400)
    assert _count(identity, "regions") == before


def test_region_list_filter_show_and_update(identity: IdentityHarness) -> None:
    client, admin = identity.client, identity.as_admin()
    for region_id, parent in (("Europe", None), ("Paris", "Europe"), ("Berlin", "Europe")):
        client.put(f"/v3/regions/{region_id}", headers=admin, json={"region": {"parent_region_id": parent}})
    children = client.get("/v3/regions?parent_region_id=Europe", headers=admin).json()["regions"]
    assert [r["id"] for r in children] == ["Berlin", "Paris"]
    assert {r["id"] for r in client.get("/v3/regions", headers=admin).json()["regions"]} == {
        "RegionOne", "Europe", "Paris", "Berlin"}
    _error(client.get("/v3/regions/Atlantis", headers=admin), 404)

    updated = client.patch("/v3/regions/Paris", headers=admin,
                           json={"region": {"description": "city of light", "parent_region_id": None}})
    assert updated.status_code == 200
    assert updated.json()["region"]["description"] == "city of light"
    assert updated.json()["region"]["parent_region_id"] is None
    # A region cannot end up below itself, nor below a region that does not exist.
    _error(client.patch("/v3/regions/Europe", headers=admin, json={"region": {"parent_region_id": "Berlin"}}),
           400)
    _error(client.patch("/v3/regions/Europe", headers=admin, json={"region": {"parent_region_id": "Europe"}}),
           400)
    _error(client.patch("/v3/regions/Europe", headers=admin, json={"region": {"parent_region_id": "Nowhere"}}),
           404)
    _error(client.patch("/v3/regions/Europe", headers=admin, json={"region": {"id": "Asia"}}), 400)
    _error(client.patch("/v3/regions/Atlantis", headers=admin, json={"region": {"description": "x"}}), 404)
    assert client.get("/v3/regions/Europe", headers=admin).json()["region"]["parent_region_id"] is None


def test_region_delete_takes_children_but_not_while_endpoints_use_them(identity: IdentityHarness) -> None:
    client, admin = identity.client, identity.as_admin()
    client.put("/v3/regions/Europe", headers=admin, json={"region": {}})
    client.put("/v3/regions/Paris", headers=admin, json={"region": {"parent_region_id": "Europe"}})
    client.put("/v3/regions/Lyon", headers=admin, json={"region": {"parent_region_id": "Paris"}})
    endpoint = _endpoint(identity, _service(identity)["id"], region_id="Lyon")

    refused = _error(client.delete("/v3/regions/Europe", headers=admin), 403)
    assert "Europe" in refused["message"]
    assert client.get("/v3/regions/Lyon", headers=admin).status_code == 200

    assert client.delete(f"/v3/endpoints/{endpoint['id']}", headers=admin).status_code == 204
    assert client.delete("/v3/regions/Europe", headers=admin).status_code == 204
    for region_id in ("Europe", "Paris", "Lyon"):
        _error(client.get(f"/v3/regions/{region_id}", headers=admin), 404)
    _error(client.delete("/v3/regions/Europe", headers=admin), 404)


# -- services -----------------------------------------------------------------------------------
def test_service_crud(identity: IdentityHarness) -> None:
    client, admin = identity.client, identity.as_admin()
    created = _service(identity, description="Compute", enabled=True)
    assert created["type"] == "compute" and created["name"] == "nova" and created["enabled"] is True
    assert created["description"] == "Compute"
    assert created["links"]["self"].endswith(f"/v3/services/{created['id']}")
    _service(identity, type="image", name="glance")

    computes = client.get("/v3/services?type=compute", headers=admin).json()["services"]
    assert [s["id"] for s in computes] == [created["id"]]
    assert client.get(f"/v3/services/{created['id']}", headers=admin).json()["service"] == created

    updated = client.patch(f"/v3/services/{created['id']}", headers=admin,
                           json={"service": {"name": "compute", "enabled": False}})
    assert updated.status_code == 200
    assert updated.json()["service"]["name"] == "compute" and updated.json()["service"]["enabled"] is False
    assert updated.json()["service"]["type"] == "compute"

    assert client.delete(f"/v3/services/{created['id']}", headers=admin).status_code == 204
    missing = _error(client.get(f"/v3/services/{created['id']}", headers=admin), 404)
    assert missing["message"] == f"Could not find service: {created['id']}."


BAD_SERVICES = [
    {"name": "no-type"},
    {"type": ""},
    {"type": 5},
    {"type": "compute", "enabled": "true"},
    {"type": "compute", "name": "x" * 256},
]


def test_service_bad_input_creates_nothing(identity: IdentityHarness) -> None:
    before = _count(identity, "services")
    for body in BAD_SERVICES:
        response = identity.client.post("/v3/services", headers=identity.as_admin(), json={"service": body})
        assert response.status_code == 400, body
        _error(response, 400)
    assert _count(identity, "services") == before


def test_service_bad_update_changes_nothing(identity: IdentityHarness) -> None:
    client, admin = identity.client, identity.as_admin()
    created = _service(identity)
    path = f"/v3/services/{created['id']}"
    _error(client.patch(path, headers=admin, json={"service": {"type": ""}}), 400)
    _error(client.patch(path, headers=admin, json={"service": {"enabled": "no"}}), 400)
    _error(client.patch(path, headers=admin, json={"service": {"id": "other"}}), 400)
    _error(client.patch("/v3/services/nope", headers=admin, json={"service": {"name": "x"}}), 404)
    assert client.get(path, headers=admin).json()["service"] == created


def test_deleting_a_service_deletes_its_endpoints(identity: IdentityHarness) -> None:
    client, admin = identity.client, identity.as_admin()
    compute = _service(identity)
    endpoints = [_endpoint(identity, compute["id"], interface=i) for i in ("public", "internal", "admin")]
    assert client.delete(f"/v3/services/{compute['id']}", headers=admin).status_code == 204
    for endpoint in endpoints:
        _error(client.get(f"/v3/endpoints/{endpoint['id']}", headers=admin), 404)
    assert client.get(f"/v3/endpoints?service_id={compute['id']}", headers=admin).json()["endpoints"] == []


# -- endpoints ----------------------------------------------------------------------------------
def test_endpoint_crud_and_filters(identity: IdentityHarness) -> None:
    client, admin = identity.client, identity.as_admin()
    compute = _service(identity)
    public = _endpoint(identity, compute["id"])
    assert public == {"id": public["id"], "interface": "public", "region": "RegionOne", "region_id": "RegionOne",
                      "service_id": compute["id"], "url": "http://10.0.0.1:8774/v2.1", "enabled": True,
                      "links": {"self": f"http://testserver/v3/endpoints/{public['id']}"}}
    internal = _endpoint(identity, compute["id"], interface="internal", region_id=None,
                         url="https://compute.internal/v2.1/$(project_id)s")
    assert internal["region_id"] is None and internal["region"] is None

    def listed(query: str) -> set[str]:
        response = client.get(f"/v3/endpoints?{query}", headers=admin)
        assert response.status_code == 200
        return {e["id"] for e in response.json()["endpoints"]}

    assert listed(f"service_id={compute['id']}") == {public["id"], internal["id"]}
    assert listed(f"service_id={compute['id']}&interface=internal") == {internal["id"]}
    assert public["id"] in listed("region_id=RegionOne") and internal["id"] not in listed("region_id=RegionOne")
    assert client.get(f"/v3/endpoints/{public['id']}", headers=admin).json()["endpoint"] == public

    client.put("/v3/regions/RegionTwo", headers=admin, json={"region": {}})
    patched = client.patch(f"/v3/endpoints/{public['id']}", headers=admin, json={"endpoint": {
        "url": "https://compute.example.com/v2.1", "region_id": "RegionTwo", "enabled": False}})
    assert patched.status_code == 200
    endpoint = patched.json()["endpoint"]
    assert endpoint["url"] == "https://compute.example.com/v2.1" and endpoint["enabled"] is False
    assert endpoint["region_id"] == endpoint["region"] == "RegionTwo"
    assert endpoint["interface"] == "public" and endpoint["service_id"] == compute["id"]

    assert client.delete(f"/v3/endpoints/{public['id']}", headers=admin).status_code == 204
    missing = _error(client.get(f"/v3/endpoints/{public['id']}", headers=admin), 404)
    assert missing["message"] == f"Could not find endpoint: {public['id']}."
    _error(client.delete(f"/v3/endpoints/{public['id']}", headers=admin), 404)


def test_legacy_region_field_is_accepted_and_created_when_missing(identity: IdentityHarness) -> None:
    # The openstack CLI (through keystoneclient) names the region `region`; Keystone creates it.
    compute = _service(identity)
    endpoint = _endpoint(identity, compute["id"], region_id=None, region="RegionNorth")
    assert endpoint["region_id"] == endpoint["region"] == "RegionNorth"
    shown = identity.client.get("/v3/regions/RegionNorth", headers=identity.as_admin())
    assert shown.status_code == 200


# Each replaces or, when None, removes one field of an otherwise good endpoint.
BAD_ENDPOINTS = [
    {"interface": "private"},
    {"interface": None},
    {"url": None},
    {"url": ""},
    {"url": "not a url"},
    {"url": "ftp://files.example.com/"},
    {"url": "http://"},
    {"url": "http://host:99999/"},
    {"url": "http://[::1/"},
    {"url": "http://host/a b"},
    {"url": 42},
    {"service_id": "no-such-service"},
    {"service_id": None},
    {"region_id": "no-such-region"},
    {"enabled": "yes"},
]


def test_endpoint_bad_input_creates_nothing(identity: IdentityHarness) -> None:
    compute = _service(identity)
    before = _count(identity, "endpoints")
    for fields in BAD_ENDPOINTS:
        body = {"service_id": compute["id"], "interface": "public", "url": "http://10.0.0.1/", **fields}
        body = {k: v for k, v in body.items() if v is not None}
        response = identity.client.post("/v3/endpoints", headers=identity.as_admin(), json={"endpoint": body})
        assert response.status_code == 400, fields
        _error(response, 400)
    assert _count(identity, "endpoints") == before
    assert _count(identity, "regions") == 1


def test_endpoint_bad_update_changes_nothing(identity: IdentityHarness) -> None:
    client, admin = identity.client, identity.as_admin()
    endpoint = _endpoint(identity, _service(identity)["id"])
    path = f"/v3/endpoints/{endpoint['id']}"
    for fields in ({"interface": "private"}, {"url": "gopher://x/"}, {"service_id": "nope"},
                   {"region_id": "nope"}, {"id": "other"}):
        _error(client.patch(path, headers=admin, json={"endpoint": fields}), 400)
    _error(client.patch("/v3/endpoints/nope", headers=admin, json={"endpoint": {"enabled": False}}), 404)
    assert client.get(path, headers=admin).json()["endpoint"] == endpoint


# -- the token catalog --------------------------------------------------------------------------
def _catalog_urls(catalog: list[dict[str, Any]], service_type: str) -> set[str]:
    return {e["url"] for s in catalog if s["type"] == service_type for e in s["endpoints"]}


def _token_catalog(identity: IdentityHarness) -> list[dict[str, Any]]:
    response = identity.client.post("/v3/auth/tokens", json={"auth": {"identity": {
        "methods": ["token"], "token": {"id": identity.admin_token}}}})
    assert response.status_code == 201, response.text
    return response.json()["token"]["catalog"]


def _auth_catalog(identity: IdentityHarness) -> list[dict[str, Any]]:
    response = identity.client.get("/v3/auth/catalog", headers=identity.as_admin())
    assert response.status_code == 200
    return response.json()["catalog"]


def test_catalog_follows_endpoint_and_service_changes(identity: IdentityHarness) -> None:
    client, admin = identity.client, identity.as_admin()
    _auth_catalog(identity)  # warm the cache: later writes must invalidate it
    compute = _service(identity)
    endpoint = _endpoint(identity, compute["id"])
    for catalog in (_auth_catalog(identity), _token_catalog(identity)):
        entry = next(s for s in catalog if s["type"] == "compute")
        assert entry["id"] == compute["id"] and entry["name"] == "nova"
        assert entry["endpoints"] == [{"id": endpoint["id"], "interface": "public", "region_id": "RegionOne",
                                       "region": "RegionOne", "url": "http://10.0.0.1:8774/v2.1"}]

    client.patch(f"/v3/endpoints/{endpoint['id']}", headers=admin, json={"endpoint": {"enabled": False}})
    for catalog in (_auth_catalog(identity), _token_catalog(identity)):
        assert _catalog_urls(catalog, "compute") == set()

    client.patch(f"/v3/endpoints/{endpoint['id']}", headers=admin, json={"endpoint": {"enabled": True}})
    assert _catalog_urls(_auth_catalog(identity), "compute") == {"http://10.0.0.1:8774/v2.1"}
    client.patch(f"/v3/services/{compute['id']}", headers=admin, json={"service": {"enabled": False}})
    for catalog in (_auth_catalog(identity), _token_catalog(identity)):
        assert "compute" not in {s["type"] for s in catalog}
        assert "identity" in {s["type"] for s in catalog}


# -- policy -------------------------------------------------------------------------------------
def test_member_cannot_change_the_catalog(identity: IdentityHarness) -> None:
    client = identity.client
    member = {"X-Auth-Token": make_member(identity, "alice")["token"]}
    compute = _service(identity)
    endpoint = _endpoint(identity, compute["id"])
    counts = {c: _count(identity, c) for c in ("regions", "services", "endpoints")}

    _error(client.post("/v3/regions", headers=member, json={"region": {"id": "Mine"}}), 403)
    _error(client.put("/v3/regions/Mine", headers=member, json={"region": {}}), 403)
    _error(client.patch("/v3/regions/RegionOne", headers=member, json={"region": {"description": "x"}}), 403)
    _error(client.delete("/v3/regions/RegionOne", headers=member), 403)
    _error(client.post("/v3/services", headers=member, json={"service": {"type": "evil"}}), 403)
    _error(client.patch(f"/v3/services/{compute['id']}", headers=member, json={"service": {"name": "x"}}), 403)
    _error(client.delete(f"/v3/services/{compute['id']}", headers=member), 403)
    _error(client.post("/v3/endpoints", headers=member, json={"endpoint": {
        "service_id": compute["id"], "interface": "public", "url": "http://evil.example.com/"}}), 403)
    _error(client.patch(f"/v3/endpoints/{endpoint['id']}", headers=member,
                        json={"endpoint": {"url": "http://evil.example.com/"}}), 403)
    _error(client.delete(f"/v3/endpoints/{endpoint['id']}", headers=member), 403)

    assert {c: _count(identity, c) for c in counts} == counts
    assert client.get(f"/v3/endpoints/{endpoint['id']}", headers=identity.as_admin()).json()["endpoint"] == endpoint
    # Reading is allowed: members are readers.
    assert client.get("/v3/regions", headers=member).status_code == 200
    assert client.get("/v3/services", headers=member).status_code == 200
    assert client.get(f"/v3/endpoints/{endpoint['id']}", headers=member).status_code == 200


def test_catalog_calls_need_a_token(identity: IdentityHarness) -> None:
    for path in ("/v3/regions", "/v3/services", "/v3/endpoints"):
        _error(identity.client.get(path), 401)
    _error(identity.client.post("/v3/services", json={"service": {"type": "compute"}}), 401)


def test_project_templates_in_endpoint_urls_are_filled_from_the_token(identity: IdentityHarness) -> None:
    service = _service(identity, type="object-store", name="swift")
    _endpoint(identity, service["id"], url="http://10.0.0.1:8080/v1/AUTH_%(project_id)s")
    member = make_member(identity, "templated")
    body = identity.client.get("/v3/auth/tokens", headers={
        "X-Auth-Token": identity.admin_token, "X-Subject-Token": member["token"]}).json()["token"]
    urls = [ep["url"] for entry in body["catalog"] if entry["type"] == "object-store" for ep in entry["endpoints"]]
    assert urls == [f"http://10.0.0.1:8080/v1/AUTH_{member['project_id']}"]
    listed = identity.client.get("/v3/auth/catalog", headers={"X-Auth-Token": member["token"]}).json()["catalog"]
    assert any(ep["url"].endswith(member["project_id"]) for entry in listed for ep in entry["endpoints"])
    # the stored endpoint keeps its template
    stored = identity.client.get("/v3/endpoints", headers=identity.as_admin()).json()["endpoints"]
    assert any(ep["url"].endswith("AUTH_%(project_id)s") for ep in stored)
