"""os-simple-tenant-usage over instance rows: periods, detail, paging, who may read what."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.api.compute.builders import SMALL, TINY, admin, make_host, make_instance, member
from tests.conftest import ComputeHarness

T0 = dt.datetime(2026, 11, 1)
PERIOD = "start=2026-11-01T00:00:00&end=2026-11-02T00:00:00"


def at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def _usage(compute: ComputeHarness, path: str, headers: dict[str, str], status: int = 200) -> dict[str, Any]:
    response = compute.client.get(f"/v2.1/os-simple-tenant-usage{path}", headers=headers)
    assert response.status_code == status, response.text
    return response.json()  # type: ignore[no-any-return]


def _cloud(compute: ComputeHarness, project: str) -> None:
    with compute.service.db.transaction() as session:
        make_host(session, "h1")
        make_instance(session, project, "h1", SMALL, name="web", launched_at=at(12))  # 12 h
        make_instance(session, project, None, TINY, name="gone", launched_at=at(-30), terminated_at=at(6),
                      deleted_at=at(6), deleted=True, vm_state="deleted")  # 6 h
        make_instance(session, project, None, TINY, name="before", launched_at=at(-30), terminated_at=at(-2),
                      deleted_at=at(-2), deleted=True, vm_state="deleted")  # outside
        make_instance(session, project, "h1", TINY, name="never", launched_at=None, vm_state="error")
        make_instance(session, "other-project", "h1", TINY, name="theirs", launched_at=at(-1))  # 24 h


def test_list_sums_per_project(compute: ComputeHarness) -> None:
    who = member(compute)
    _cloud(compute, who.project_id)
    found = {u["tenant_id"]: u for u in _usage(compute, f"?{PERIOD}", admin(compute))["tenant_usages"]}
    mine = found[who.project_id]
    assert mine["total_hours"] == 18.0
    assert mine["total_vcpus_usage"] == 2 * 12 + 6
    assert mine["total_memory_mb_usage"] == 2048 * 12 + 512 * 6
    assert mine["total_local_gb_usage"] == 25 * 12 + 6
    assert mine["start"] == "2026-11-01T00:00:00.000000" and mine["stop"] == "2026-11-02T00:00:00.000000"
    assert "server_usages" not in mine
    assert found["other-project"]["total_hours"] == 24.0
    detailed = _usage(compute, f"?{PERIOD}&detailed=1", admin(compute))["tenant_usages"]
    names = {s["name"] for u in detailed for s in u["server_usages"]}
    assert names == {"web", "gone", "theirs"}


def test_show_for_the_owner_with_server_usages(compute: ComputeHarness) -> None:
    who = member(compute)
    _cloud(compute, who.project_id)
    usage = _usage(compute, f"/{who.project_id}?{PERIOD}", who.headers)["tenant_usage"]
    servers = {s["name"]: s for s in usage["server_usages"]}
    assert set(servers) == {"web", "gone"}
    web, gone = servers["web"], servers["gone"]
    assert web["hours"] == 12.0 and web["flavor"] == "m1.small" and web["vcpus"] == 2
    assert web["memory_mb"] == 2048 and web["local_gb"] == 25 and web["state"] == "active"
    assert web["started_at"] == "2026-11-01T12:00:00.000000" and web["ended_at"] is None
    assert web["tenant_id"] == who.project_id and web["uptime"] > 0
    assert gone["state"] == "terminated" and gone["uptime"] == 36 * 3600 and gone["hours"] == 6.0
    assert set(web) == {"instance_id", "name", "hours", "flavor", "vcpus", "memory_mb", "local_gb", "started_at",
                        "ended_at", "state", "tenant_id", "uptime"}


def test_show_of_a_project_without_usage_is_empty(compute: ComputeHarness) -> None:
    assert _usage(compute, f"/nobody?{PERIOD}", admin(compute)) == {"tenant_usage": {}}


def test_period_validation(compute: ComputeHarness) -> None:
    _usage(compute, "?start=2026-11-02T00:00:00&end=2026-11-01T00:00:00", admin(compute), 400)
    _usage(compute, "?start=tuesday", admin(compute), 400)
    assert _usage(compute, "", admin(compute))["tenant_usages"] == []  # start and end default to now


def test_paging_over_servers_from_240(compute: ComputeHarness) -> None:
    who = member(compute)
    _cloud(compute, who.project_id)
    headers = admin(compute, "2.40")
    first = _usage(compute, f"?{PERIOD}&detailed=1&limit=2", headers)
    assert sum(len(u["server_usages"]) for u in first["tenant_usages"]) == 2
    link = first["tenant_usages_links"][0]
    assert link["rel"] == "next"
    query = parse_qs(urlparse(link["href"]).query)
    assert query["limit"] == ["2"] and query["start"] == ["2026-11-01T00:00:00"]
    second = _usage(compute, f"?{PERIOD}&detailed=1&limit=2&marker={query['marker'][0]}", headers)
    seen = [s["name"] for page in (first, second) for u in page["tenant_usages"] for s in u["server_usages"]]
    assert sorted(seen) == ["gone", "theirs", "web"]
    assert "tenant_usages_links" not in second
    _usage(compute, f"?{PERIOD}&marker=00000000-0000-4000-8000-000000000000", headers, 400)
    _usage(compute, f"?{PERIOD}&limit=x", headers, 400)
    # Before 2.40, no paging: everything at once.
    old = _usage(compute, f"?{PERIOD}&detailed=1&limit=1", admin(compute, "2.39"))
    assert sum(len(u["server_usages"]) for u in old["tenant_usages"]) == 3 and "tenant_usages_links" not in old
    shown = _usage(compute, f"/{who.project_id}?{PERIOD}&limit=1", headers)
    assert len(shown["tenant_usage"]["server_usages"]) == 1 and shown["tenant_usage_links"]


def test_member_lists_nothing_and_sees_only_its_own(compute: ComputeHarness) -> None:
    who = member(compute)
    _usage(compute, f"?{PERIOD}", who.headers, 403)
    _usage(compute, f"/other-project?{PERIOD}", who.headers, 403)
    _usage(compute, f"/{who.project_id}?{PERIOD}", who.headers, 200)
