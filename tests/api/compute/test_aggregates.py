"""os-aggregates: CRUD, hosts, metadata, and the availability zone rules."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.api.compute.builders import admin, make_host, make_instance, member
from tests.conftest import ComputeHarness


def _create(compute: ComputeHarness, name: str, zone: str | None = None, status: int = 200) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name}
    if zone is not None:
        body["availability_zone"] = zone
    response = compute.client.post("/v2.1/os-aggregates", json={"aggregate": body}, headers=admin(compute))
    assert response.status_code == status, response.text
    return response.json().get("aggregate", {})  # type: ignore[no-any-return]


def _action(compute: ComputeHarness, agg_id: int, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    response = compute.client.post(f"/v2.1/os-aggregates/{agg_id}/action", json=body, headers=admin(compute))
    assert response.status_code == status, response.text
    return response.json()  # type: ignore[no-any-return]


def _hosts(compute: ComputeHarness, *names: str) -> None:
    with compute.service.db.transaction() as session:
        for name in names:
            make_host(session, name)


def test_create_show_list_update_delete(compute: ComputeHarness) -> None:
    made = _create(compute, "rack1", "az1")
    assert set(made) == {"id", "uuid", "name", "availability_zone", "created_at", "updated_at", "deleted",
                         "deleted_at"}
    assert made["availability_zone"] == "az1" and made["deleted"] is False and made["updated_at"] is None
    shown = compute.client.get(f"/v2.1/os-aggregates/{made['id']}", headers=admin(compute)).json()["aggregate"]
    assert shown["hosts"] == [] and shown["metadata"] == {"availability_zone": "az1"} and shown["uuid"] == made["uuid"]
    old = compute.client.get(f"/v2.1/os-aggregates/{made['id']}", headers=admin(compute, "2.40")).json()
    assert "uuid" not in old["aggregate"]
    plain = _create(compute, "rack2")
    assert plain["availability_zone"] is None
    listed = compute.client.get("/v2.1/os-aggregates", headers=admin(compute)).json()["aggregates"]
    assert [a["name"] for a in listed] == ["rack1", "rack2"]
    renamed = compute.client.put(f"/v2.1/os-aggregates/{made['id']}",
                                 json={"aggregate": {"name": "rack1b", "availability_zone": "az9"}},
                                 headers=admin(compute))
    assert renamed.status_code == 200, renamed.text
    body = renamed.json()["aggregate"]
    assert body["name"] == "rack1b" and body["availability_zone"] == "az9"
    assert body["metadata"] == {"availability_zone": "az9"} and body["updated_at"] is not None
    gone = compute.client.delete(f"/v2.1/os-aggregates/{made['id']}", headers=admin(compute))
    assert gone.status_code == 200 and gone.content == b""
    assert compute.client.get(f"/v2.1/os-aggregates/{made['id']}", headers=admin(compute)).status_code == 404


def test_create_and_update_validation(compute: ComputeHarness) -> None:
    _create(compute, "dup")
    _create(compute, "dup", status=409)
    _create(compute, "", status=400)
    _create(compute, " padded", status=400)
    _create(compute, "x" * 256, status=400)
    _create(compute, "colon", "az:1", status=400)
    _create(compute, "internal-zone", "internal", status=400)
    _create(compute, "empty-zone", "", status=400)
    other = _create(compute, "other")
    url = f"/v2.1/os-aggregates/{other['id']}"
    headers = admin(compute)
    assert compute.client.put(url, json={"aggregate": {}}, headers=headers).status_code == 400
    assert compute.client.put(url, json={"aggregate": {"name": "dup"}}, headers=headers).status_code == 409
    assert compute.client.put(url, json={"aggregate": {"availability_zone": None}}, headers=headers).status_code == 400
    assert compute.client.put(url, json={"aggregate": {"color": "red"}}, headers=headers).status_code == 400
    assert compute.client.get("/v2.1/os-aggregates/abc", headers=headers).status_code == 400
    assert compute.client.get("/v2.1/os-aggregates/424242", headers=headers).status_code == 404


def test_hosts_join_and_leave(compute: ComputeHarness) -> None:
    _hosts(compute, "h1", "h2")
    agg = _create(compute, "pool", "az1")
    added = _action(compute, agg["id"], {"add_host": {"host": "h2"}})["aggregate"]
    added = _action(compute, agg["id"], {"add_host": {"host": "h1"}})["aggregate"]
    assert added["hosts"] == ["h1", "h2"] and added["metadata"] == {"availability_zone": "az1"}
    _action(compute, agg["id"], {"add_host": {"host": "h1"}}, 409)  # already there
    _action(compute, agg["id"], {"add_host": {"host": "ghost"}}, 404)  # no compute service
    refused = compute.client.delete(f"/v2.1/os-aggregates/{agg['id']}", headers=admin(compute))
    assert refused.status_code == 400  # not empty
    left = _action(compute, agg["id"], {"remove_host": {"host": "h1"}})["aggregate"]
    assert left["hosts"] == ["h2"]
    _action(compute, agg["id"], {"remove_host": {"host": "h1"}}, 404)  # not a member
    _action(compute, agg["id"], {"remove_host": {"host": "ghost"}}, 404)
    _action(compute, 99999, {"add_host": {"host": "h1"}}, 404)
    _action(compute, agg["id"], {"reboot": {}}, 400)
    _action(compute, agg["id"], {"add_host": {"host": "h1"}, "remove_host": {"host": "h2"}}, 400)
    _action(compute, agg["id"], {"add_host": {}}, 400)


def test_a_host_is_in_one_zone(compute: ComputeHarness) -> None:
    _hosts(compute, "h1", "h2")
    az1 = _create(compute, "a1", "az1")
    az1_again = _create(compute, "a1-bis", "az1")
    az2 = _create(compute, "a2", "az2")
    plain = _create(compute, "no-zone")
    _action(compute, az1["id"], {"add_host": {"host": "h1"}})
    _action(compute, az1_again["id"], {"add_host": {"host": "h1"}})  # the same zone: fine
    _action(compute, plain["id"], {"add_host": {"host": "h1"}})  # no zone: fine
    conflict = compute.client.post(f"/v2.1/os-aggregates/{az2['id']}/action", json={"add_host": {"host": "h1"}},
                                   headers=admin(compute))
    assert conflict.status_code == 409 and "az1" in conflict.json()["conflictingRequest"]["message"]
    # Giving the zone-less aggregate (which holds h1) another zone is refused too.
    _action(compute, plain["id"], {"set_metadata": {"metadata": {"availability_zone": "az3"}}}, 400)
    refused = compute.client.put(f"/v2.1/os-aggregates/{plain['id']}",
                                 json={"aggregate": {"availability_zone": "az3"}}, headers=admin(compute))
    assert refused.status_code == 400
    same = _action(compute, plain["id"], {"set_metadata": {"metadata": {"availability_zone": "az1"}}})
    assert same["aggregate"]["availability_zone"] == "az1"


def test_set_metadata_merges_and_null_deletes(compute: ComputeHarness) -> None:
    agg = _create(compute, "meta", "az1")
    first = _action(compute, agg["id"], {"set_metadata": {"metadata": {"ssd": "true", "gpu": "no"}}})["aggregate"]
    assert first["metadata"] == {"availability_zone": "az1", "ssd": "true", "gpu": "no"}
    second = _action(compute, agg["id"], {"set_metadata": {"metadata": {"ssd": None, "gpu": "yes",
                                                                        "missing": None}}})["aggregate"]
    assert second["metadata"] == {"availability_zone": "az1", "gpu": "yes"}
    _action(compute, agg["id"], {"set_metadata": {"metadata": {"availability_zone": None}}}, 400)
    _action(compute, agg["id"], {"set_metadata": {"metadata": {"bad/key": "x"}}}, 400)
    _action(compute, agg["id"], {"set_metadata": {"metadata": {"k": "v" * 256}}}, 400)
    _action(compute, agg["id"], {"set_metadata": {"metadata": {"k": 5}}}, 400)
    moved = _action(compute, agg["id"], {"set_metadata": {"metadata": {"availability_zone": "az7"}}})["aggregate"]
    assert moved["availability_zone"] == "az7"


def test_zone_of_hosts_with_servers_cannot_change(compute: ComputeHarness) -> None:
    with compute.service.db.transaction() as session:
        make_host(session, "busy")
        make_instance(session, "p1", "busy")
    agg = _create(compute, "busy-pool")
    _action(compute, agg["id"], {"add_host": {"host": "busy"}})
    _action(compute, agg["id"], {"set_metadata": {"metadata": {"availability_zone": "az5"}}}, 400)
    _action(compute, agg["id"], {"set_metadata": {"metadata": {"other": "fine"}}})


def test_member_is_forbidden(compute: ComputeHarness) -> None:
    agg = _create(compute, "secret")
    who = member(compute)
    url = f"/v2.1/os-aggregates/{agg['id']}"
    assert compute.client.get("/v2.1/os-aggregates", headers=who.headers).status_code == 403
    assert compute.client.post("/v2.1/os-aggregates", json={"aggregate": {"name": "x"}},
                               headers=who.headers).status_code == 403
    assert compute.client.get(url, headers=who.headers).status_code == 403
    assert compute.client.put(url, json={"aggregate": {"name": "y"}}, headers=who.headers).status_code == 403
    assert compute.client.delete(url, headers=who.headers).status_code == 403
    assert compute.client.post(f"{url}/action", json={"add_host": {"host": "h"}},
                               headers=who.headers).status_code == 403


def test_concurrent_joins_to_two_zones_let_one_through(compute: ComputeHarness, database_url: str) -> None:
    """Two operators put one host into aggregates of different zones at the same moment: the row
    lock on the host's service lets exactly one of them through (PostgreSQL and MariaDB)."""
    if database_url.startswith("sqlite"):
        pytest.skip("row locks are what this checks; SQLite has none")
    rounds = 4
    _hosts(compute, *(f"race{i}" for i in range(rounds)))
    az1, az2 = _create(compute, "race-a", "az1"), _create(compute, "race-b", "az2")
    headers = admin(compute)

    def join(agg_id: int, host: str, barrier: threading.Barrier) -> int:
        barrier.wait()
        response = compute.client.post(f"/v2.1/os-aggregates/{agg_id}/action", json={"add_host": {"host": host}},
                                       headers=headers)
        return response.status_code

    with ThreadPoolExecutor(max_workers=2) as pool:
        for i in range(rounds):
            barrier = threading.Barrier(2)
            futures = [pool.submit(join, agg["id"], f"race{i}", barrier) for agg in (az1, az2)]
            codes = sorted(future.result() for future in futures)
            assert codes == [200, 409], codes
    zones_of: dict[str, str] = {}
    for agg in (az1, az2):
        shown = compute.client.get(f"/v2.1/os-aggregates/{agg['id']}", headers=headers).json()["aggregate"]
        for host in shown["hosts"]:
            assert host not in zones_of
            zones_of[host] = shown["availability_zone"]
    assert len(zones_of) == rounds
