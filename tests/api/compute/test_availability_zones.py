"""os-availability-zone: zones from the compute hosts and their aggregates, and the detail view."""

from __future__ import annotations

import datetime as dt
from typing import Any

from stratus.core.db import utcnow
from tests.api.compute.builders import admin, make_host, make_service, member
from tests.conftest import ComputeHarness


def _zones(compute: ComputeHarness, headers: dict[str, str], detail: bool = False) -> list[dict[str, Any]]:
    response = compute.client.get("/v2.1/os-availability-zone" + ("/detail" if detail else ""), headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["availabilityZoneInfo"]  # type: ignore[no-any-return]


def _into_zone(compute: ComputeHarness, name: str, zone: str, *hosts: str) -> None:
    headers = admin(compute)
    agg = compute.client.post("/v2.1/os-aggregates", json={"aggregate": {"name": name, "availability_zone": zone}},
                              headers=headers).json()["aggregate"]
    for host in hosts:
        added = compute.client.post(f"/v2.1/os-aggregates/{agg['id']}/action", json={"add_host": {"host": host}},
                                    headers=headers)
        assert added.status_code == 200, added.text


def test_no_services_no_zones(compute: ComputeHarness) -> None:
    assert _zones(compute, admin(compute)) == []


def test_member_sees_zones_without_hosts(compute: ComputeHarness) -> None:
    with compute.service.db.transaction() as session:
        make_host(session, "h1")
        make_host(session, "h2")
        make_service(session, "ctl", "nova-conductor")
    _into_zone(compute, "a", "az2", "h2")
    _into_zone(compute, "empty", "az-empty")  # a zone with no host is not listed
    who = member(compute)
    assert _zones(compute, who.headers) == [
        {"zoneName": "az2", "zoneState": {"available": True}, "hosts": None},
        {"zoneName": "nova", "zoneState": {"available": True}, "hosts": None}]


def test_zone_with_only_disabled_services_is_unavailable(compute: ComputeHarness) -> None:
    with compute.service.db.transaction() as session:
        make_host(session, "h1")
        make_host(session, "h2", disabled=True)
    _into_zone(compute, "a", "az-off", "h2")
    listed = {z["zoneName"]: z for z in _zones(compute, admin(compute))}
    assert listed["az-off"]["zoneState"] == {"available": False}
    assert listed["nova"]["zoneState"] == {"available": True}


def test_detail_lists_hosts_and_services_with_internal_zone(compute: ComputeHarness) -> None:
    with compute.service.db.transaction() as session:
        make_host(session, "h1")
        make_host(session, "h2", last_seen_up=utcnow() - dt.timedelta(minutes=10))
        make_host(session, "h3", disabled=True)
        make_service(session, "ctl", "nova-conductor")
        make_service(session, "ctl", "nova-scheduler")
    _into_zone(compute, "a", "az2", "h2")
    detail = {z["zoneName"]: z for z in _zones(compute, admin(compute), detail=True)}
    assert set(detail) == {"az2", "internal", "nova"}
    internal = detail["internal"]["hosts"]
    assert set(internal["ctl"]) == {"nova-conductor", "nova-scheduler"}
    conductor = internal["ctl"]["nova-conductor"]
    assert conductor["available"] is True and conductor["active"] is True and conductor["updated_at"]
    assert detail["az2"]["hosts"]["h2"]["nova-compute"]["available"] is False  # silent for 10 minutes
    assert set(detail["nova"]["hosts"]) == {"h1"}  # disabled services are left out


def test_detail_is_the_operators(compute: ComputeHarness) -> None:
    who = member(compute)
    assert compute.client.get("/v2.1/os-availability-zone/detail", headers=who.headers).status_code == 403
