"""os-services: list with state and zone, enable/disable/force-down by host+binary below 2.53 and by
uuid from 2.53, delete refused while a compute host carries instances."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from stratus.compute import models
from stratus.core.db import utcnow
from tests.api.compute.builders import admin, make_host, make_instance, make_service, member
from tests.conftest import ComputeHarness


def _services(compute: ComputeHarness, version: str | None = "2.53", query: str = "") -> list[dict]:
    response = compute.client.get(f"/v2.1/os-services{query}", headers=admin(compute, version))
    assert response.status_code == 200, response.text
    return response.json()["services"]  # type: ignore[no-any-return]


def test_list_shows_state_zone_and_ids_by_version(compute: ComputeHarness) -> None:
    with compute.service.db.transaction() as session:
        up, _ = make_host(session, "cmp-up")
        stale, _ = make_host(session, "cmp-stale", last_seen_up=utcnow() - dt.timedelta(seconds=120))
        forced, _ = make_host(session, "cmp-forced", forced_down=True)
        make_service(session, "ctl", "nova-scheduler")
        ids = {"cmp-up": (up.id, up.uuid), "cmp-stale": (stale.id, stale.uuid)}
    latest = {s["host"]: s for s in _services(compute)}
    assert latest["cmp-up"]["state"] == "up" and latest["cmp-up"]["status"] == "enabled"
    assert latest["cmp-stale"]["state"] == "down"  # silent longer than service_down_time (60 s)
    assert latest["cmp-forced"]["state"] == "down" and latest["cmp-forced"]["forced_down"] is True
    assert latest["cmp-up"]["zone"] == "nova" and latest["ctl"]["zone"] == "internal"
    assert latest["cmp-up"]["id"] == ids["cmp-up"][1]
    assert set(latest["cmp-up"]) == {"id", "binary", "host", "zone", "status", "state", "updated_at",
                                     "disabled_reason", "forced_down"}
    old = {s["host"]: s for s in _services(compute, None)}
    assert old["cmp-stale"]["id"] == ids["cmp-stale"][0] and "forced_down" not in old["cmp-stale"]
    assert "forced_down" in _services(compute, "2.11")[0]


def test_filters_by_host_and_binary(compute: ComputeHarness) -> None:
    with compute.service.db.transaction() as session:
        make_host(session, "a")
        make_host(session, "b")
        make_service(session, "a", "nova-conductor")
    assert [s["binary"] for s in _services(compute, query="?host=a&binary=nova-conductor")] == ["nova-conductor"]
    assert {s["host"] for s in _services(compute, query="?binary=nova-compute")} == {"a", "b"}
    assert _services(compute, query="?host=nowhere") == []


def test_zone_follows_aggregate(compute: ComputeHarness) -> None:
    with compute.service.db.transaction() as session:
        make_host(session, "z1")
    headers = admin(compute)
    agg = compute.client.post("/v2.1/os-aggregates", json={"aggregate": {"name": "a", "availability_zone": "az2"}},
                              headers=headers).json()["aggregate"]
    compute.client.post(f"/v2.1/os-aggregates/{agg['id']}/action", json={"add_host": {"host": "z1"}}, headers=headers)
    assert _services(compute)[0]["zone"] == "az2"


def test_legacy_enable_disable_with_reason_and_force_down(compute: ComputeHarness) -> None:
    with compute.service.db.transaction() as session:
        make_host(session, "h1")
    headers = admin(compute, "2.11")
    body = {"host": "h1", "binary": "nova-compute"}
    disabled = compute.client.put("/v2.1/os-services/disable", json=body, headers=headers)
    assert disabled.status_code == 200, disabled.text
    assert disabled.json() == {"service": {"host": "h1", "binary": "nova-compute", "status": "disabled"}}
    logged = compute.client.put("/v2.1/os-services/disable-log-reason",
                                json={**body, "disabled_reason": "maintenance"}, headers=headers)
    assert logged.json()["service"]["disabled_reason"] == "maintenance"
    listed = _services(compute, "2.11")[0]
    assert listed["status"] == "disabled" and listed["disabled_reason"] == "maintenance"
    missing = compute.client.put("/v2.1/os-services/disable-log-reason", json=body, headers=headers)
    assert missing.status_code == 400
    down = compute.client.put("/v2.1/os-services/force-down", json={**body, "forced_down": True}, headers=headers)
    assert down.json() == {"service": {"host": "h1", "binary": "nova-compute", "forced_down": True}}
    assert _services(compute, "2.11")[0]["state"] == "down"
    enabled = compute.client.put("/v2.1/os-services/enable", json=body, headers=headers)
    assert enabled.json()["service"]["status"] == "enabled"
    assert _services(compute, "2.11")[0]["disabled_reason"] is None
    # force-down does not exist before 2.11; an unknown host is 404; a bad body 400.
    assert compute.client.put("/v2.1/os-services/force-down", json={**body, "forced_down": True},
                              headers=admin(compute, "2.10")).status_code == 404
    assert compute.client.put("/v2.1/os-services/disable", json={"host": "nope", "binary": "nova-compute"},
                              headers=headers).status_code == 404
    assert compute.client.put("/v2.1/os-services/disable", json={"host": "h1"}, headers=headers).status_code == 400
    assert compute.client.put("/v2.1/os-services/reboot", json=body, headers=headers).status_code == 404
    # A reason sent with a plain disable is admitted by the schema but not recorded.
    plain = compute.client.put("/v2.1/os-services/disable", json={**body, "disabled_reason": "ignored"},
                               headers=headers)
    assert plain.status_code == 200 and "disabled_reason" not in plain.json()["service"]
    assert _services(compute, "2.11")[0]["disabled_reason"] is None


def test_update_by_uuid_at_253(compute: ComputeHarness) -> None:
    with compute.service.db.transaction() as session:
        svc, _ = make_host(session, "h2")
        other = make_service(session, "ctl", "nova-conductor")
        svc_uuid, other_uuid = svc.uuid, other.uuid
    headers = admin(compute)
    done = compute.client.put(f"/v2.1/os-services/{svc_uuid}",
                              json={"status": "disabled", "disabled_reason": "bad disk"}, headers=headers)
    assert done.status_code == 200, done.text
    view = done.json()["service"]
    assert view["id"] == svc_uuid and view["status"] == "disabled" and view["disabled_reason"] == "bad disk"
    assert view["zone"] == "nova" and view["state"] == "up"
    forced = compute.client.put(f"/v2.1/os-services/{svc_uuid}", json={"forced_down": True}, headers=headers)
    assert forced.json()["service"]["state"] == "down" and forced.json()["service"]["forced_down"] is True
    enabled = compute.client.put(f"/v2.1/os-services/{svc_uuid}", json={"status": "enabled"}, headers=headers)
    assert enabled.json()["service"]["disabled_reason"] is None
    for bad in ({}, {"status": "enabled", "disabled_reason": "x"}, {"status": "maybe"}, {"forced_down": "yes"},
                {"status": "disabled", "extra": 1}):
        assert compute.client.put(f"/v2.1/os-services/{svc_uuid}", json=bad, headers=headers).status_code == 400, bad
    assert compute.client.put(f"/v2.1/os-services/{other_uuid}", json={"status": "disabled"},
                              headers=headers).status_code == 400  # only nova-compute
    assert compute.client.put("/v2.1/os-services/not-a-uuid", json={"status": "disabled"},
                              headers=headers).status_code == 400
    assert compute.client.put("/v2.1/os-services/00000000-0000-4000-8000-000000000000", json={"status": "disabled"},
                              headers=headers).status_code == 404


def test_delete_refused_while_hosting_then_removes_node_and_memberships(compute: ComputeHarness) -> None:
    with compute.service.db.transaction() as session:
        svc, _ = make_host(session, "h3")
        instance = make_instance(session, "p1", "h3")
        svc_id, svc_uuid, instance_id = svc.id, svc.uuid, instance.id
    headers = admin(compute)
    agg = compute.client.post("/v2.1/os-aggregates", json={"aggregate": {"name": "g"}}, headers=headers).json()
    compute.client.post(f"/v2.1/os-aggregates/{agg['aggregate']['id']}/action", json={"add_host": {"host": "h3"}},
                        headers=headers)
    refused = compute.client.delete(f"/v2.1/os-services/{svc_uuid}", headers=headers)
    assert refused.status_code == 409, refused.text
    assert compute.client.delete(f"/v2.1/os-services/{svc_id}", headers=admin(compute, None)).status_code == 409
    with compute.service.db.transaction() as session:
        row = session.get(models.Instance, instance_id)
        assert row is not None
        row.deleted = True
    assert compute.client.delete("/v2.1/os-services/x", headers=admin(compute, None)).status_code == 400
    assert compute.client.delete("/v2.1/os-services/x", headers=headers).status_code == 400
    gone = compute.client.delete(f"/v2.1/os-services/{svc_id}", headers=admin(compute, None))
    assert gone.status_code == 204, gone.text
    with compute.service.db.transaction() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(models.ComputeNode)) == 0
        assert session.scalar(sa.select(sa.func.count()).select_from(models.AggregateHost)) == 0
    assert compute.client.delete(f"/v2.1/os-services/{svc_uuid}", headers=headers).status_code == 404


def test_member_is_forbidden(compute: ComputeHarness) -> None:
    who = member(compute)
    assert compute.client.get("/v2.1/os-services", headers=who.headers).status_code == 403
    assert compute.client.put("/v2.1/os-services/00000000-0000-4000-8000-000000000000", json={"status": "disabled"},
                              headers=who.headers).status_code == 403
    assert compute.client.delete("/v2.1/os-services/00000000-0000-4000-8000-000000000000",
                                 headers=who.headers).status_code == 403
