"""os-migrations: the operator's list of migrations, filters and versioned fields."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from stratus.compute import flavors, models
from stratus.core.db import utcnow
from tests.api.compute.builders import admin, make_host, make_instance, make_migration, member
from tests.conftest import ComputeHarness


def _migrations(compute: ComputeHarness, query: str = "", version: str | None = "2.53") -> list[dict[str, Any]]:
    response = compute.client.get(f"/v2.1/os-migrations{query}", headers=admin(compute, version))
    assert response.status_code == 200, response.text
    return response.json()["migrations"]  # type: ignore[no-any-return]


def _cloud(compute: ComputeHarness) -> dict[str, Any]:
    with compute.service.db.transaction() as session:
        flavors.seed_default_flavors(session)
        make_host(session, "src", host_ip="192.0.2.1")
        make_host(session, "dst", host_ip="192.0.2.2")
        make_host(session, "third", host_ip="192.0.2.3")
        vm1 = make_instance(session, "p1", "dst", name="one")
        vm2 = make_instance(session, "p1", "third", name="two")
        now = utcnow()
        old = make_migration(session, vm1.id, source="src", dest="dst", status="confirmed",
                             created_at=now - dt.timedelta(hours=2))
        new = make_migration(session, vm2.id, source="dst", dest="third", status="finished",
                             migration_type="migration", old_flavor="1", new_flavor="1",
                             created_at=now - dt.timedelta(hours=1))
        live = make_migration(session, vm2.id, source="third", dest="src", status="running",
                              migration_type="live-migration", created_at=now)
        known = {flavor.flavorid: flavor.id for flavor in session.scalars(sa.select(models.Flavor))}
        return {"vm1": vm1.id, "vm2": vm2.id, "old": old.id, "new": new.id, "live": live.id, "flavors": known}


def test_list_newest_first_with_fields(compute: ComputeHarness) -> None:
    ids = _cloud(compute)
    listed = _migrations(compute)
    assert [m["id"] for m in listed] == [ids["live"], ids["new"], ids["old"]]
    resize = listed[2]
    assert resize["instance_uuid"] == ids["vm1"] and resize["status"] == "confirmed"
    assert resize["source_compute"] == "src" and resize["dest_compute"] == "dst" and resize["dest_host"] == "192.0.2.2"
    assert resize["old_instance_type_id"] == ids["flavors"]["1"]
    assert resize["new_instance_type_id"] == ids["flavors"]["2"]
    assert resize["migration_type"] == "resize" and "links" not in resize
    assert resize["created_at"].count(".") == 1 and not resize["created_at"].endswith("Z")
    assert set(resize) == {"id", "instance_uuid", "status", "source_compute", "source_node", "dest_compute",
                           "dest_node", "dest_host", "old_instance_type_id", "new_instance_type_id", "created_at",
                           "updated_at", "migration_type"}
    live = listed[0]
    assert live["links"][0]["href"].endswith(f"/servers/{ids['vm2']}/migrations/{ids['live']}")


def test_filters(compute: ComputeHarness) -> None:
    ids = _cloud(compute)
    assert {m["id"] for m in _migrations(compute, "?host=dst")} == {ids["old"], ids["new"]}
    assert [m["id"] for m in _migrations(compute, "?source_compute=src")] == [ids["old"]]
    assert [m["id"] for m in _migrations(compute, "?status=finished")] == [ids["new"]]
    assert [m["id"] for m in _migrations(compute, f"?instance_uuid={ids['vm1']}")] == [ids["old"]]
    assert [m["id"] for m in _migrations(compute, "?migration_type=migration")] == [ids["new"]]
    assert _migrations(compute, "?host=nowhere") == []


def test_before_223_no_type_no_links_no_live_migrations(compute: ComputeHarness) -> None:
    ids = _cloud(compute)
    listed = _migrations(compute, version="2.22")
    assert [m["id"] for m in listed] == [ids["new"], ids["old"]]
    assert all("migration_type" not in m and "links" not in m for m in listed)


def test_member_is_forbidden(compute: ComputeHarness) -> None:
    who = member(compute)
    assert compute.client.get("/v2.1/os-migrations", headers=who.headers).status_code == 403
