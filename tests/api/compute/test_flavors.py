"""Flavors: the default set, listing filters and pages, create/delete, extra specs, private flavors
and their access lists, and isolation between projects."""

from __future__ import annotations

from typing import Any

import pytest

from stratus.compute import flavors
from tests.api.compute.servers_helpers import LATEST, tenant
from tests.conftest import ComputeHarness


@pytest.fixture
def seeded(compute: ComputeHarness) -> ComputeHarness:
    with compute.service.db.transaction() as session:
        flavors.seed_default_flavors(session)
    return compute


def admin(compute: ComputeHarness, version: str = "2.53") -> dict[str, str]:
    return {**compute.as_admin(), "OpenStack-API-Version": f"compute {version}"}


def make(compute: ComputeHarness, expect: int = 200, **fields: Any) -> dict[str, Any]:
    body = {"name": "f1", "ram": 256, "vcpus": 1, "disk": 1, **fields}
    response = compute.client.post("/v2.1/flavors", json={"flavor": body}, headers=admin(compute))
    assert response.status_code == expect, response.text
    return response.json().get("flavor", response.json())  # type: ignore[no-any-return]


def fault(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    (body,) = response.json().values()
    assert body["code"] == status
    return body["message"]  # type: ignore[no-any-return]


def test_default_flavors_are_seeded_once_and_only_into_an_empty_cloud(seeded: ComputeHarness) -> None:
    with seeded.service.db.transaction() as session:
        flavors.seed_default_flavors(session)
    listed = seeded.client.get("/v2.1/flavors/detail", headers=seeded.as_admin()).json()["flavors"]
    assert [(f["id"], f["name"], f["ram"], f["vcpus"], f["disk"]) for f in listed] == [
        ("1", "m1.tiny", 512, 1, 1), ("2", "m1.small", 2048, 1, 20), ("3", "m1.medium", 4096, 2, 40),
        ("4", "m1.large", 8192, 4, 80), ("5", "m1.xlarge", 16384, 8, 160)]


def test_detail_view_has_the_reference_fields(seeded: ComputeHarness) -> None:
    response = seeded.client.get("/v2.1/flavors/1", headers=seeded.as_admin())
    flavor = response.json()["flavor"]
    assert set(flavor) == {"id", "name", "ram", "vcpus", "disk", "swap", "OS-FLV-EXT-DATA:ephemeral",
                           "OS-FLV-DISABLED:disabled", "os-flavor-access:is_public", "rxtx_factor", "links"}
    assert flavor["swap"] == "" and flavor["OS-FLV-EXT-DATA:ephemeral"] == 0 and flavor["rxtx_factor"] == 1.0
    assert flavor["os-flavor-access:is_public"] is True and flavor["OS-FLV-DISABLED:disabled"] is False
    assert [link["rel"] for link in flavor["links"]] == ["self", "bookmark"]
    assert flavor["links"][0]["href"].endswith("/v2.1/flavors/1")
    summary = seeded.client.get("/v2.1/flavors", headers=seeded.as_admin()).json()["flavors"][0]
    assert set(summary) == {"id", "name", "links"}


def test_filters_sort_and_pages_with_next_links(seeded: ComputeHarness) -> None:
    get = seeded.client.get
    big = get("/v2.1/flavors?minRam=4096&minDisk=80", headers=seeded.as_admin()).json()["flavors"]
    assert [f["id"] for f in big] == ["4", "5"]
    desc = get("/v2.1/flavors?sort_key=memory_mb&sort_dir=desc", headers=seeded.as_admin()).json()["flavors"]
    assert [f["id"] for f in desc] == ["5", "4", "3", "2", "1"]
    page = get("/v2.1/flavors/detail?limit=2&sort_key=name", headers=seeded.as_admin()).json()
    assert [f["name"] for f in page["flavors"]] == ["m1.large", "m1.medium"]
    (link,) = page["flavors_links"]
    assert link["rel"] == "next" and "/v2.1/flavors/detail?" in link["href"] and "marker=3" in link["href"]
    rest = get(link["href"], headers=seeded.as_admin()).json()
    assert [f["name"] for f in rest["flavors"]] == ["m1.small", "m1.tiny"]
    last = get("/v2.1/flavors?limit=2&marker=4", headers=seeded.as_admin()).json()
    assert [f["id"] for f in last["flavors"]] == ["5"] and "flavors_links" not in last
    assert "marker [nope] not found" in fault(get("/v2.1/flavors?marker=nope", headers=seeded.as_admin()), 400)
    assert "minRam" in fault(get("/v2.1/flavors?minRam=lots", headers=seeded.as_admin()), 400)
    assert fault(get("/v2.1/flavors?sort_key=colour", headers=seeded.as_admin()), 400)
    assert fault(get("/v2.1/flavors?limit=-1", headers=seeded.as_admin()), 400)


def test_create_returns_200_with_the_view_and_generates_an_id(compute: ComputeHarness) -> None:
    made = make(compute, name="big", ram="1024", vcpus=2, disk=10, swap=512, rxtx_factor=2.5,
                **{"OS-FLV-EXT-DATA:ephemeral": 5, "os-flavor-access:is_public": "false"})  # type: ignore[arg-type]
    assert made["ram"] == 1024 and made["swap"] == 512 and made["OS-FLV-EXT-DATA:ephemeral"] == 5
    assert made["rxtx_factor"] == 2.5 and made["os-flavor-access:is_public"] is False
    assert len(made["id"]) == 36
    explicit = make(compute, name="named", id="my.flavor-1")
    assert explicit["id"] == "my.flavor-1"
    nulled = make(compute, name="nulled", id=None, description=None)  # as openstacksdk's cloud layer sends
    assert len(nulled["id"]) == 36 and "description" not in nulled
    shown = compute.client.get(f"/v2.1/flavors/{made['id']}", headers=compute.as_admin()).json()["flavor"]
    assert shown == made


@pytest.mark.parametrize("fields", [
    {"ram": 0}, {"vcpus": 0}, {"disk": -1}, {"ram": "lots"}, {"ram": True}, {"swap": -1},
    {"OS-FLV-EXT-DATA:ephemeral": -1}, {"rxtx_factor": 0}, {"rxtx_factor": "fast"}, {"name": " padded"},
    {"name": ""}, {"name": "x" * 256}, {"id": "bad/id"}, {"id": ""}, {"os-flavor-access:is_public": "maybe"},
    {"description": "beyond 2.53"}, {"colour": "red"}, {"ram": 2**31},
])
def test_create_refuses_invalid_input_with_400(compute: ComputeHarness, fields: dict[str, Any]) -> None:
    make(compute, expect=400, **fields)


def test_create_refuses_a_missing_field(compute: ComputeHarness) -> None:
    response = compute.client.post("/v2.1/flavors", json={"flavor": {"name": "x", "ram": 1, "vcpus": 1}},
                                   headers=admin(compute))
    assert "disk" in fault(response, 400)


def test_duplicate_name_or_id_is_409(compute: ComputeHarness) -> None:
    make(compute, name="one", id="10")
    assert "name one already exists" in fault(compute.client.post(
        "/v2.1/flavors", json={"flavor": {"name": "one", "ram": 1, "vcpus": 1, "disk": 0}}, headers=admin(compute)),
        409)
    assert "ID 10 already exists" in fault(compute.client.post(
        "/v2.1/flavors", json={"flavor": {"name": "two", "ram": 1, "vcpus": 1, "disk": 0, "id": "10"}},
        headers=admin(compute)), 409)


def test_delete_is_202_then_404(seeded: ComputeHarness) -> None:
    response = seeded.client.delete("/v2.1/flavors/2", headers=seeded.as_admin())
    assert response.status_code == 202
    assert "Flavor 2 could not be found." == fault(seeded.client.get("/v2.1/flavors/2", headers=seeded.as_admin()),
                                                   404)
    assert fault(seeded.client.delete("/v2.1/flavors/2", headers=seeded.as_admin()), 404)


def test_update_is_beyond_the_served_versions(seeded: ComputeHarness) -> None:
    response = seeded.client.put("/v2.1/flavors/1", json={"flavor": {"description": "d"}}, headers=admin(seeded))
    fault(response, 404)


def test_members_may_not_manage_flavors(seeded: ComputeHarness) -> None:
    member = tenant(seeded, "mallory", network=False)
    response = seeded.client.post("/v2.1/flavors", json={"flavor": {"name": "x", "ram": 1, "vcpus": 1, "disk": 0}},
                                  headers=member.headers)
    fault(response, 403)
    fault(seeded.client.delete("/v2.1/flavors/1", headers=member.headers), 403)
    fault(seeded.client.post("/v2.1/flavors/1/os-extra_specs", json={"extra_specs": {"a": "b"}},
                             headers=member.headers), 403)
    fault(seeded.client.post("/v2.1/flavors/1/action", json={"addTenantAccess": {"tenant": member.project_id}},
                             headers=member.headers), 403)


def test_extra_specs_create_show_update_delete(seeded: ComputeHarness) -> None:
    url = "/v2.1/flavors/1/os-extra_specs"
    made = seeded.client.post(url, json={"extra_specs": {"hw:cpu_policy": "dedicated", "quota:cpu": 100}},
                              headers=seeded.as_admin())
    assert made.status_code == 200 and made.json() == {"extra_specs": {"hw:cpu_policy": "dedicated",
                                                                       "quota:cpu": "100"}}
    member = tenant(seeded, "reader", network=False)
    listed = seeded.client.get(url, headers=member.headers)
    assert listed.json() == {"extra_specs": {"hw:cpu_policy": "dedicated", "quota:cpu": "100"}}
    assert seeded.client.get(f"{url}/quota:cpu", headers=member.headers).json() == {"quota:cpu": "100"}
    updated = seeded.client.put(f"{url}/quota:cpu", json={"quota:cpu": "50"}, headers=seeded.as_admin())
    assert updated.status_code == 200 and updated.json() == {"quota:cpu": "50"}
    assert "mismatch" in fault(seeded.client.put(f"{url}/quota:cpu", json={"other": "1"},
                                                 headers=seeded.as_admin()), 400)
    fault(seeded.client.put(f"{url}/quota:cpu", json={"quota:cpu": "1", "b": "2"}, headers=seeded.as_admin()), 400)
    fault(seeded.client.post(url, json={"extra_specs": {"bad/key": "v"}}, headers=seeded.as_admin()), 400)
    fault(seeded.client.post(url, json={"extra_specs": {"k": "v" * 256}}, headers=seeded.as_admin()), 400)
    fault(seeded.client.post(url, json={"extra_specs": {"k": True}}, headers=seeded.as_admin()), 400)
    assert seeded.client.delete(f"{url}/quota:cpu", headers=seeded.as_admin()).status_code == 200
    assert "no extra specs with key quota:cpu" in fault(seeded.client.get(f"{url}/quota:cpu",
                                                                          headers=seeded.as_admin()), 404)
    fault(seeded.client.delete(f"{url}/quota:cpu", headers=seeded.as_admin()), 404)
    fault(seeded.client.get("/v2.1/flavors/99/os-extra_specs", headers=seeded.as_admin()), 404)
    with seeded.service.db.transaction() as session:
        snapshot = flavors.flavor_snapshot(session, flavors.find_flavor(session, "1", None, True))
    assert snapshot == {"id": "1", "name": "m1.tiny", "vcpus": 1, "ram": 512, "disk": 1, "ephemeral": 0,
                        "swap": 0, "rxtx_factor": 1.0, "extra_specs": {"hw:cpu_policy": "dedicated"}}


def _private(compute: ComputeHarness) -> dict[str, Any]:
    return make(compute, name="secret", id="p1", **{"os-flavor-access:is_public": False})


def test_private_flavor_is_hidden_from_projects_without_access(seeded: ComputeHarness) -> None:
    _private(seeded)
    outsider = tenant(seeded, "outsider", network=False)
    ids = [f["id"] for f in seeded.client.get("/v2.1/flavors", headers=outsider.headers).json()["flavors"]]
    assert "p1" not in ids and "1" in ids
    assert fault(seeded.client.get("/v2.1/flavors/p1", headers=outsider.headers), 404) == \
        "Flavor p1 could not be found."
    fault(seeded.client.get("/v2.1/flavors/p1/os-extra_specs", headers=outsider.headers), 404)
    fault(seeded.client.get("/v2.1/flavors/p1/os-flavor-access", headers=outsider.headers), 404)
    with seeded.service.db.transaction() as session:
        with pytest.raises(Exception, match="could not be found"):
            flavors.find_flavor(session, "p1", outsider.project_id, False)


def test_access_list_grants_and_revokes_a_project(seeded: ComputeHarness) -> None:
    _private(seeded)
    friend = tenant(seeded, "friend", network=False)
    url = "/v2.1/flavors/p1/action"
    added = seeded.client.post(url, json={"addTenantAccess": {"tenant": friend.project_id}}, headers=admin(seeded))
    assert added.status_code == 200
    assert added.json() == {"flavor_access": [{"flavor_id": "p1", "tenant_id": friend.project_id}]}
    assert "already exists" in fault(seeded.client.post(
        url, json={"addTenantAccess": {"tenant": friend.project_id}}, headers=admin(seeded)), 409)
    ids = [f["id"] for f in seeded.client.get("/v2.1/flavors", headers=friend.headers).json()["flavors"]]
    assert "p1" in ids
    assert seeded.client.get("/v2.1/flavors/p1", headers=friend.headers).status_code == 200
    listed = seeded.client.get("/v2.1/flavors/p1/os-flavor-access", headers=friend.headers)
    assert listed.json()["flavor_access"] == [{"flavor_id": "p1", "tenant_id": friend.project_id}]
    removed = seeded.client.post(url, json={"removeTenantAccess": {"tenant": friend.project_id}},
                                 headers=admin(seeded))
    assert removed.status_code == 200 and removed.json() == {"flavor_access": []}
    assert "not found" in fault(seeded.client.post(
        url, json={"removeTenantAccess": {"tenant": friend.project_id}}, headers=admin(seeded)), 404)
    fault(seeded.client.get("/v2.1/flavors/p1", headers=friend.headers), 404)
    fault(seeded.client.post(url, json={"addTenantAccess": {}}, headers=admin(seeded)), 400)
    fault(seeded.client.post(url, json={"shareWithEveryone": {}}, headers=admin(seeded)), 400)


def test_admin_listing_by_is_public(seeded: ComputeHarness) -> None:
    _private(seeded)
    get = seeded.client.get

    def ids(query: str) -> set[str]:
        return {f["id"] for f in get(f"/v2.1/flavors{query}", headers=seeded.as_admin()).json()["flavors"]}

    assert ids("") == {"1", "2", "3", "4", "5"}
    assert ids("?is_public=false") == {"p1"}
    assert ids("?is_public=none") == {"1", "2", "3", "4", "5", "p1"}
    assert ids("?is_public=true") == {"1", "2", "3", "4", "5"}
    assert "is_public" in fault(get("/v2.1/flavors?is_public=perhaps", headers=seeded.as_admin()), 400)
    member = tenant(seeded, "member", network=False)
    listed = get("/v2.1/flavors?is_public=none", headers=member.headers).json()["flavors"]
    assert "p1" not in {f["id"] for f in listed}


def test_public_flavor_access_list_is_404_and_adding_is_409_from_27(seeded: ComputeHarness) -> None:
    assert "public flavors" in fault(seeded.client.get("/v2.1/flavors/1/os-flavor-access",
                                                       headers=seeded.as_admin()), 404)
    body = {"addTenantAccess": {"tenant": "someone"}}
    assert "public flavor" in fault(seeded.client.post("/v2.1/flavors/1/action", json=body,
                                                       headers=admin(seeded, "2.7")), 409)


def test_latest_header_constant_is_within_range(seeded: ComputeHarness) -> None:
    response = seeded.client.get("/v2.1/flavors", headers={**seeded.as_admin(), **LATEST})
    assert response.status_code == 200
