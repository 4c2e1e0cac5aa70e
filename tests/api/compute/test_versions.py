"""Compute version discovery and microversion negotiation."""

from __future__ import annotations

from tests.conftest import ComputeHarness


def test_root_lists_v21_with_min_and_max(compute: ComputeHarness) -> None:
    response = compute.client.get("/")
    assert response.status_code == 200
    (version,) = response.json()["versions"]
    assert version["id"] == "v2.1" and version["min_version"] == "2.1"
    assert tuple(int(p) for p in version["version"].split(".")) >= (2, 53)


def test_latest_is_served_at_the_maximum_and_named_in_both_headers(compute: ComputeHarness) -> None:
    response = compute.client.get("/v2.1/flavors", headers={**compute.as_admin(),
                                                             "OpenStack-API-Version": "compute latest"})
    maximum = compute.client.get("/").json()["versions"][0]["version"]
    assert response.headers["OpenStack-API-Version"] == f"compute {maximum}"
    assert response.headers["X-OpenStack-Nova-API-Version"] == maximum


def test_no_header_is_served_at_21(compute: ComputeHarness) -> None:
    response = compute.client.get("/v2.1/flavors", headers=compute.as_admin())
    assert response.headers["OpenStack-API-Version"] == "compute 2.1"


def test_out_of_range_is_406_and_garbage_400(compute: ComputeHarness) -> None:
    too_new = compute.client.get("/v2.1/flavors",
                                 headers={**compute.as_admin(), "OpenStack-API-Version": "compute 2.999"})
    assert too_new.status_code == 406
    old = compute.client.get("/v2.1/flavors", headers={**compute.as_admin(), "X-OpenStack-Nova-API-Version": "2.0"})
    assert old.status_code == 406
    bad = compute.client.get("/v2.1/flavors", headers={**compute.as_admin(), "OpenStack-API-Version": "compute two"})
    assert bad.status_code == 400 and "badRequest" in bad.json()


def test_token_is_required_except_for_discovery(compute: ComputeHarness) -> None:
    assert compute.client.get("/v2.1/servers").status_code == 401
    assert compute.client.get("/v2.1/").status_code == 200
