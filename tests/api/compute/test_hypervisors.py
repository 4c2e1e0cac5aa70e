"""os-hypervisors: list, detail, show, statistics, search and servers; ids and options by version."""

from __future__ import annotations

import datetime as dt
import json
import re

import sqlalchemy as sa

from stratus.compute import models
from stratus.core.db import utcnow
from tests.api.compute.builders import SMALL, admin, make_host, make_instance, member
from tests.conftest import ComputeHarness


def _cloud(compute: ComputeHarness) -> dict[str, tuple[int, str]]:
    """Three hosts: one busy, one disabled, one silent; {host: (node id, node uuid)}."""
    with compute.service.db.transaction() as session:
        _, busy = make_host(session, "cmp1", vcpus=8, memory_mb=8192, local_gb=100, vcpus_used=3,
                            memory_mb_used=2560, local_gb_used=26, running_vms=2)
        _, off = make_host(session, "cmp2", disabled=True, disabled_reason="repair")
        _, silent = make_host(session, "other3", last_seen_up=utcnow() - dt.timedelta(minutes=5))
        make_instance(session, "p1", "cmp1", name="web")
        make_instance(session, "p1", "cmp1", SMALL, name="db", task_state="resize_prep")
        make_instance(session, "p1", "cmp1", name="old", deleted=True)
        return {n.host: (n.id, n.uuid) for n in (busy, off, silent)}


def _get(compute: ComputeHarness, path: str, version: str | None = "2.53", status: int = 200) -> dict:
    response = compute.client.get(f"/v2.1/os-hypervisors{path}", headers=admin(compute, version))
    assert response.status_code == status, response.text
    return response.json()  # type: ignore[no-any-return]


def test_list_has_state_and_status_and_versioned_ids(compute: ComputeHarness) -> None:
    ids = _cloud(compute)
    latest = {h["hypervisor_hostname"]: h for h in _get(compute, "")["hypervisors"]}
    assert latest["cmp1.example.org"] == {"id": ids["cmp1"][1], "hypervisor_hostname": "cmp1.example.org",
                                          "state": "up", "status": "enabled"}
    assert latest["cmp2.example.org"]["status"] == "disabled"
    assert latest["other3.example.org"]["state"] == "down"
    old = _get(compute, "", None)["hypervisors"]
    assert [h["id"] for h in old] == sorted(i for i, _ in ids.values())


def test_detail_fields(compute: ComputeHarness) -> None:
    ids = _cloud(compute)
    detail = {h["hypervisor_hostname"]: h for h in _get(compute, "/detail")["hypervisors"]}
    busy = detail["cmp1.example.org"]
    assert busy["vcpus"] == 8 and busy["vcpus_used"] == 3 and busy["memory_mb_used"] == 2560
    assert busy["free_ram_mb"] == 8192 - 2560 and busy["free_disk_gb"] == 100 - 26
    assert busy["disk_available_least"] == 74 and busy["running_vms"] == 2
    assert busy["current_workload"] == 1  # the server in resize_prep
    assert busy["hypervisor_type"] == "fake" and busy["host_ip"] == "192.0.2.10"
    assert busy["cpu_info"] == {"arch": "x86_64", "model": "fake"}
    assert busy["service"]["host"] == "cmp1" and busy["service"]["disabled_reason"] is None
    assert detail["cmp2.example.org"]["service"]["disabled_reason"] == "repair"
    old = {h["hypervisor_hostname"]: h for h in _get(compute, "/detail", "2.27")["hypervisors"]}
    assert json.loads(old["cmp1.example.org"]["cpu_info"]) == {"arch": "x86_64", "model": "fake"}
    assert isinstance(old["cmp1.example.org"]["service"]["id"], int)
    shown = _get(compute, f"/{ids['cmp1'][1]}")["hypervisor"]
    assert shown == busy
    assert _get(compute, f"/{ids['cmp1'][0]}", "2.52")["hypervisor"]["id"] == ids["cmp1"][0]


def test_show_errors(compute: ComputeHarness) -> None:
    _cloud(compute)
    _get(compute, "/99999", "2.52", 404)
    _get(compute, "/abc", "2.52", 404)
    _get(compute, "/abc", "2.53", 400)
    _get(compute, "/00000000-0000-4000-8000-000000000000", "2.53", 404)


def test_statistics_sum_over_all_hypervisors(compute: ComputeHarness) -> None:
    _cloud(compute)
    stats = _get(compute, "/statistics")["hypervisor_statistics"]
    assert stats == {"count": 3, "vcpus": 8 + 16 + 16, "memory_mb": 8192 + 2 * 32768, "local_gb": 100 + 2 * 500,
                     "vcpus_used": 3, "memory_mb_used": 2560, "local_gb_used": 26, "running_vms": 2,
                     "free_ram_mb": 8192 + 2 * 32768 - 2560, "free_disk_gb": 1100 - 26,
                     "disk_available_least": 1100 - 26, "current_workload": 1}


def test_statistics_of_an_empty_cloud(compute: ComputeHarness) -> None:
    stats = _get(compute, "/statistics")["hypervisor_statistics"]
    assert stats["count"] == 0 and stats["vcpus"] == 0 and stats["free_ram_mb"] == 0


def test_search_and_servers_below_253(compute: ComputeHarness) -> None:
    _cloud(compute)
    found = _get(compute, "/cmp/search", "2.52")["hypervisors"]
    assert sorted(h["hypervisor_hostname"] for h in found) == ["cmp1.example.org", "cmp2.example.org"]
    assert "servers" not in found[0]
    with_servers = {h["hypervisor_hostname"]: h for h in _get(compute, "/cmp/servers", "2.52")["hypervisors"]}
    assert sorted(s["name"] for s in with_servers["cmp1.example.org"]["servers"]) == ["db", "web"]
    assert "servers" not in with_servers["cmp2.example.org"]
    _get(compute, "/nothing/search", "2.52", 404)
    _get(compute, "/nothing/servers", "2.52", 404)
    _get(compute, "/cmp/search", "2.53", 404)  # replaced by the query parameters


def test_pattern_and_with_servers_at_253(compute: ComputeHarness) -> None:
    ids = _cloud(compute)
    found = _get(compute, "?hypervisor_hostname_pattern=other")["hypervisors"]
    assert [h["id"] for h in found] == [ids["other3"][1]]
    detailed = _get(compute, "/detail?hypervisor_hostname_pattern=cmp1&with_servers=true")["hypervisors"]
    assert len(detailed) == 1 and {s["name"] for s in detailed[0]["servers"]} == {"web", "db"}
    shown = _get(compute, f"/{ids['cmp1'][1]}?with_servers=1")["hypervisor"]
    assert len(shown["servers"]) == 2 and set(shown["servers"][0]) == {"name", "uuid"}
    _get(compute, "?hypervisor_hostname_pattern=zzz", status=404)
    _get(compute, "?hypervisor_hostname_pattern=cmp&limit=1", status=400)
    _get(compute, "?with_servers=perhaps", status=400)
    _get(compute, "?color=red", status=400)
    # A pattern is a substring, not a LIKE expression.
    _get(compute, "?hypervisor_hostname_pattern=%25", status=404)


def test_paging_from_233(compute: ComputeHarness) -> None:
    ids = _cloud(compute)
    first = _get(compute, "?limit=2")
    assert len(first["hypervisors"]) == 2
    link = first["hypervisors_links"][0]
    assert link["rel"] == "next" and f"marker={first['hypervisors'][-1]['id']}" in link["href"]
    rest = _get(compute, f"?limit=2&marker={first['hypervisors'][-1]['id']}")
    assert [h["id"] for h in rest["hypervisors"]] == [ids["other3"][1]] and "hypervisors_links" not in rest
    old = _get(compute, f"/detail?limit=5&marker={ids['cmp1'][0]}", "2.33")["hypervisors"]
    assert [h["id"] for h in old] == [ids["cmp2"][0], ids["other3"][0]]
    _get(compute, "?marker=00000000-0000-4000-8000-000000000000", status=400)
    _get(compute, "?limit=-1", status=400)
    # Before 2.33 there is no paging: the parameters are ignored.
    assert len(_get(compute, "?limit=1", "2.32")["hypervisors"]) == 3


def test_member_is_forbidden(compute: ComputeHarness) -> None:
    ids = _cloud(compute)
    who = member(compute)
    for path in ("", "/detail", "/statistics", f"/{ids['cmp1'][1]}"):
        assert compute.client.get(f"/v2.1/os-hypervisors{path}", headers=who.headers).status_code == 403, path
    old = {**who.headers, "OpenStack-API-Version": "compute 2.52"}
    for path in ("/cmp/search", "/cmp/servers"):
        assert compute.client.get(f"/v2.1/os-hypervisors{path}", headers=old).status_code == 403, path


def test_uptime_reads_like_the_uptime_command(compute: ComputeHarness) -> None:
    ids = _cloud(compute)
    with compute.service.db.transaction() as session:
        session.execute(sa.update(models.Service).where(models.Service.host == "cmp1").values(
            created_at=utcnow() - dt.timedelta(days=3, hours=2, minutes=5)))
    shown = _get(compute, f"/{ids['cmp1'][1]}/uptime")["hypervisor"]
    assert shown["id"] == ids["cmp1"][1] and shown["state"] == "up"
    assert re.match(r"^ \d\d:\d\d:\d\d up 3 days,  2:0[56],  0 users,  load average: 0\.00, 0\.00, 0\.00$",
                    shown["uptime"]), shown["uptime"]
    _get(compute, "/00000000-0000-4000-8000-000000000000/uptime", status=404)
