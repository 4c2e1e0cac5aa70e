"""The arithmetic of os-simple-tenant-usage: hours of overlap between a server's life and a period."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stratus.compute import models
from stratus.compute.api.usage import hours_for, parse_time, server_usage, summarize
from stratus.core import errors

T0 = dt.datetime(2026, 11, 1)
START, STOP = T0, T0 + dt.timedelta(days=1)


def at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


@pytest.mark.parametrize(("launched", "stopped", "expected"), [
    (at(-5), None, 24.0),            # running all period
    (at(2), None, 22.0),             # launched inside, still running
    (at(-5), at(3.5), 3.5),          # ended inside
    (at(1.25), at(1.75), 0.5),       # wholly inside
    (at(-5), at(-1), 0.0),           # ended before
    (at(-5), at(0), 0.0),            # ended exactly at the start
    (at(24), None, 0.0),             # launched exactly at the stop
    (at(30), None, 0.0),             # launched after
    (None, None, 0.0),               # never launched
    (at(-1), at(30), 24.0),          # spans the period
])
def test_hours_for(launched: dt.datetime | None, stopped: dt.datetime | None, expected: float) -> None:
    assert hours_for(launched, stopped, START, STOP) == expected


def test_hours_are_exact_to_the_microsecond() -> None:
    launched = T0 + dt.timedelta(seconds=1, microseconds=500000)
    assert hours_for(launched, at(1), START, STOP) == (3600 - 1.5) / 3600


@given(st.integers(-10**7, 10**8), st.integers(0, 10**8), st.integers(0, 10**8), st.integers(0, 10**8))
def test_overlap_splits_additively(launch_s: int, life_s: int, split_s: int, period_s: int) -> None:
    """The hours of [a, c) are the hours of [a, b) plus those of [b, c), and never exceed either
    the period or the server's life."""
    launched = T0 + dt.timedelta(seconds=launch_s)
    stopped = launched + dt.timedelta(seconds=life_s)
    end = T0 + dt.timedelta(seconds=period_s)
    middle = T0 + dt.timedelta(seconds=min(split_s, period_s))
    whole = hours_for(launched, stopped, T0, end)
    parts = hours_for(launched, stopped, T0, middle) + hours_for(launched, stopped, middle, end)
    assert whole == pytest.approx(parts, abs=1e-9)
    assert 0 <= whole <= period_s / 3600 + 1e-9 and whole <= life_s / 3600 + 1e-9


def _instance(project: str, vcpus: int, ram: int, disk: int, ephemeral: int, launched: dt.datetime | None,
              terminated: dt.datetime | None = None, *, deleted_at: dt.datetime | None = None,
              vm_state: str = "active", name: str = "vm") -> models.Instance:
    flavor = {"name": f"f{vcpus}", "vcpus": vcpus, "ram": ram, "disk": disk, "ephemeral": ephemeral}
    return models.Instance(id=f"{project}-{name}", project_id=project, name=name, flavor=flavor, vcpus=vcpus,
                           memory_mb=ram, root_gb=disk, ephemeral_gb=ephemeral, launched_at=launched,
                           terminated_at=terminated, deleted_at=deleted_at, deleted=deleted_at is not None,
                           vm_state=vm_state)


def test_totals_are_flavor_times_hours_per_project() -> None:
    rows = [_instance("p1", 2, 2048, 20, 5, at(12), name="a"),                 # 12 h
            _instance("p1", 1, 512, 1, 0, at(-3), at(6), vm_state="deleted", name="b"),  # 6 h
            _instance("p2", 4, 8192, 40, 0, at(-1), name="c")]                 # 24 h
    found = {usage.tenant_id: usage for usage in summarize(rows, START, STOP)}
    p1 = found["p1"]
    assert p1.total_hours == 18.0
    assert p1.total_vcpus_usage == 2 * 12 + 1 * 6
    assert p1.total_memory_mb_usage == 2048 * 12 + 512 * 6
    assert p1.total_local_gb_usage == 25 * 12 + 1 * 6
    assert found["p2"].total_vcpus_usage == 96.0
    view = p1.view(at(30), detailed=True)
    a, b = view["server_usages"]
    assert a["local_gb"] == 25 and a["flavor"] == "f2" and a["state"] == "active"
    assert a["uptime"] == 18 * 3600  # running: until now
    assert b["state"] == "terminated" and b["uptime"] == 9 * 3600 and b["ended_at"] == at(6).isoformat(
        timespec="microseconds")
    assert "server_usages" not in p1.view(at(30), detailed=False)


def test_a_deleted_server_without_termination_stops_at_its_deletion() -> None:
    row = _instance("p1", 1, 512, 1, 0, at(1), deleted_at=at(4))
    usage = server_usage(row, START, STOP)
    assert usage.hours == 3.0 and usage.state == "terminated" and usage.ended_at == at(4)


def test_parse_time() -> None:
    now = T0
    assert parse_time(None, now) == now
    assert parse_time("2026-11-02T03:04:05", now) == dt.datetime(2026, 11, 2, 3, 4, 5)
    assert parse_time("2026-11-02T03:04:05.250000", now) == dt.datetime(2026, 11, 2, 3, 4, 5, 250000)
    assert parse_time("2026-11-02 03:04:05.5", now) == dt.datetime(2026, 11, 2, 3, 4, 5, 500000)
    assert parse_time("2026-11-02T05:04:05+02:00", now) == dt.datetime(2026, 11, 2, 3, 4, 5)
    assert parse_time("2026-11-02T03:04:05Z", now) == dt.datetime(2026, 11, 2, 3, 4, 5)
    with pytest.raises(errors.BadRequest):
        parse_time("yesterday", now)
