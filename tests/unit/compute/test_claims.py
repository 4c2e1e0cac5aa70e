"""Resource claims on SQLite: the guarded UPDATE, allocations, release, and the resize helpers.
(`add_host` and `node` are shared with the scheduler tests and the backend concurrency test.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stratus.compute import claims, models
from stratus.compute.service import MIGRATIONS
from stratus.core.db import Database, utcnow


def compute_database(url: str) -> Iterator[Database]:
    database = Database(url)
    database.upgrade("compute", MIGRATIONS)
    yield database
    database.dispose()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    yield from compute_database(f"sqlite:///{tmp_path / 'compute.sqlite'}")


def add_host(db: Database, host: str, *, vcpus: int = 4, memory_mb: int = 4096, local_gb: int = 40,
             cpu_ratio: float = 1.0, ram_ratio: float = 1.0, disk_ratio: float = 1.0, up: bool = True,
             disabled: bool = False, hypervisor_type: str = "fake", **node: Any) -> None:
    """A compute node and its nova-compute service (seen now when `up`)."""
    with db.transaction() as session:
        session.add(models.Service(host=host, binary="nova-compute", topic="compute", disabled=disabled,
                                   last_seen_up=utcnow() if up else None))
        session.add(models.ComputeNode(host=host, hypervisor_hostname=host, hypervisor_type=hypervisor_type,
                                       vcpus=vcpus, memory_mb=memory_mb, local_gb=local_gb, vcpus_used=0,
                                       memory_mb_used=0, local_gb_used=0, running_vms=0,
                                       cpu_allocation_ratio=cpu_ratio, ram_allocation_ratio=ram_ratio,
                                       disk_allocation_ratio=disk_ratio, cpu_info={"arch": "x86_64"}, **node))


def node(db: Database, host: str) -> dict[str, Any]:
    with db.transaction() as session:
        row = session.scalar(sa.select(models.ComputeNode).where(models.ComputeNode.host == host))
        assert row is not None
        return {"vcpus_used": row.vcpus_used, "memory_mb_used": row.memory_mb_used,
                "local_gb_used": row.local_gb_used, "running_vms": row.running_vms}


def allocations(db: Database, instance_id: str) -> dict[str, dict[str, int]]:
    with db.transaction() as session:
        return claims.allocations(session, instance_id)


def claim(db: Database, instance_id: str, host: str, vcpus: int = 1, memory_mb: int = 1024, disk_gb: int = 10) -> bool:
    with db.transaction() as session:
        return claims.claim(session, instance_id, host, vcpus, memory_mb, disk_gb)


def test_a_claim_raises_the_totals_and_records_an_allocation(db: Database) -> None:
    add_host(db, "h1")
    assert claim(db, "i-1", "h1", 2, 1024, 10)
    assert node(db, "h1") == {"vcpus_used": 2, "memory_mb_used": 1024, "local_gb_used": 10, "running_vms": 1}
    assert allocations(db, "i-1") == {"h1": {"vcpus": 2, "memory_mb": 1024, "disk_gb": 10}}


def test_a_claim_that_does_not_fit_changes_nothing(db: Database) -> None:
    add_host(db, "h1", vcpus=4, memory_mb=4096, local_gb=40)
    assert claim(db, "i-1", "h1", 3, 3000, 30)
    assert not claim(db, "i-2", "h1", 2, 100, 1)  # vCPUs
    assert not claim(db, "i-3", "h1", 1, 1200, 1)  # RAM
    assert not claim(db, "i-4", "h1", 1, 100, 11)  # disk
    assert claim(db, "i-5", "h1", 1, 1096, 10)  # exactly full
    assert node(db, "h1") == {"vcpus_used": 4, "memory_mb_used": 4096, "local_gb_used": 40, "running_vms": 2}
    assert allocations(db, "i-2") == allocations(db, "i-3") == allocations(db, "i-4") == {}


def test_claims_honour_the_allocation_ratios(db: Database) -> None:
    add_host(db, "h1", vcpus=2, memory_mb=1000, local_gb=10, cpu_ratio=4.0, ram_ratio=1.5, disk_ratio=2.0)
    won = [claim(db, f"i-{n}", "h1", 1, 100, 1) for n in range(10)]
    assert won == [True] * 8 + [False] * 2  # 2 vCPUs * 4.0
    assert node(db, "h1")["vcpus_used"] == 8
    assert claim(db, "big", "h1", 0, 700, 12)  # 800 + 700 = 1.5 * 1000; 8 + 12 = 2.0 * 10
    assert not claim(db, "more", "h1", 0, 1, 0)


def test_a_claim_on_an_unknown_host_fails(db: Database) -> None:
    assert not claim(db, "i-1", "nowhere")
    assert allocations(db, "i-1") == {}


def test_claiming_twice_on_one_host_is_idempotent(db: Database) -> None:
    add_host(db, "h1")
    assert claim(db, "i-1", "h1", 2, 1024, 10)
    assert claim(db, "i-1", "h1", 2, 1024, 10)
    assert node(db, "h1")["vcpus_used"] == 2 and node(db, "h1")["running_vms"] == 1


def test_release_gives_back_everything_and_is_safe_to_repeat(db: Database) -> None:
    add_host(db, "h1")
    add_host(db, "h2")
    claim(db, "i-1", "h1", 2, 1024, 10)
    claim(db, "i-2", "h1", 1, 512, 5)
    with db.transaction() as session:
        assert claims.release(session, "i-1") == 1
    assert node(db, "h1") == {"vcpus_used": 1, "memory_mb_used": 512, "local_gb_used": 5, "running_vms": 1}
    with db.transaction() as session:
        assert claims.release(session, "i-1") == 0
        assert claims.release(session, "i-2", "h2") == 0  # nothing held there
    assert node(db, "h1")["vcpus_used"] == 1


def test_release_never_takes_the_totals_below_zero(db: Database) -> None:
    add_host(db, "h1")
    claim(db, "i-1", "h1", 2, 1024, 10)
    with db.transaction() as session:  # an operator (or a bug) lowered the totals meanwhile
        session.execute(sa.update(models.ComputeNode).values(vcpus_used=1, memory_mb_used=0, local_gb_used=3,
                                                             running_vms=0))
    with db.transaction() as session:
        claims.release(session, "i-1")
    assert node(db, "h1") == {"vcpus_used": 0, "memory_mb_used": 0, "local_gb_used": 0, "running_vms": 0}


def test_a_resize_holds_both_hosts_until_one_is_dropped(db: Database) -> None:
    add_host(db, "src")
    add_host(db, "dst")
    claim(db, "i-1", "src", 1, 1024, 10)
    with db.transaction() as session:
        assert claims.move(session, "i-1", "dst", 2, 2048, 20)
    assert set(allocations(db, "i-1")) == {"src", "dst"}
    assert node(db, "src")["running_vms"] == node(db, "dst")["running_vms"] == 1
    # confirm: the destination stays
    with db.transaction() as session:
        assert claims.keep_only(session, "i-1", "dst") == 1
    assert allocations(db, "i-1") == {"dst": {"vcpus": 2, "memory_mb": 2048, "disk_gb": 20}}
    assert node(db, "src") == {"vcpus_used": 0, "memory_mb_used": 0, "local_gb_used": 0, "running_vms": 0}
    # a revert of another resize: the source stays
    with db.transaction() as session:
        assert claims.move(session, "i-1", "src", 1, 512, 5)
        assert claims.keep_only(session, "i-1", "dst") == 1
    assert node(db, "src")["running_vms"] == 0 and node(db, "dst")["vcpus_used"] == 2


def test_a_refused_resize_claim_keeps_the_source_allocation(db: Database) -> None:
    add_host(db, "src")
    add_host(db, "dst", vcpus=1)
    claim(db, "i-1", "src", 1, 1024, 10)
    with db.transaction() as session:
        assert not claims.move(session, "i-1", "dst", 2, 1024, 10)
    assert set(allocations(db, "i-1")) == {"src"}


def test_retryable_errors_are_recognised() -> None:
    class Orig(Exception):
        sqlstate = "40P01"

    assert claims.is_retryable(sa.exc.OperationalError("x", {}, Orig()))
    assert claims.is_retryable(sa.exc.OperationalError("x", {}, Exception(1213, "Deadlock found")))
    assert claims.is_retryable(sa.exc.OperationalError("x", {}, Exception("database is locked")))
    assert not claims.is_retryable(sa.exc.IntegrityError("x", {}, Exception(1062, "Duplicate")))
    assert not claims.is_retryable(ValueError("no"))


@given(steps=st.lists(st.tuples(st.sampled_from(["claim", "release", "release-one", "move", "keep"]),
                                st.integers(0, 5), st.sampled_from(["h1", "h2"]),
                                st.tuples(st.integers(0, 3), st.integers(0, 3000), st.integers(0, 30))),
                      max_size=30))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_totals_always_equal_the_allocations_and_stay_within_the_ratios(
        db: Database, steps: list[tuple[str, int, str, tuple[int, int, int]]]) -> None:
    with db.transaction() as session:
        session.execute(sa.delete(models.Allocation))
        session.execute(sa.delete(models.ComputeNode))
        session.execute(sa.delete(models.Service))
    add_host(db, "h1", vcpus=4, memory_mb=4096, local_gb=40, cpu_ratio=2.0)
    add_host(db, "h2", vcpus=2, memory_mb=2048, local_gb=20, ram_ratio=1.5)
    capacity = {"h1": (8, 4096, 40), "h2": (2, 3072, 20)}
    for action, number, host, (vcpus, memory_mb, disk_gb) in steps:
        instance = f"i-{number}"
        with db.transaction() as session:
            if action in ("claim", "move"):
                claims.claim(session, instance, host, vcpus, memory_mb, disk_gb)
            elif action == "release":
                claims.release(session, instance)
            elif action == "release-one":
                claims.release(session, instance, host)
            else:
                claims.keep_only(session, instance, host)
        for name in ("h1", "h2"):  # after every step: totals = what the allocations add up to <= capacity
            held = [a[name] for a in (allocations(db, f"i-{n}") for n in range(6)) if name in a]
            sums = (sum(a["vcpus"] for a in held), sum(a["memory_mb"] for a in held), sum(a["disk_gb"] for a in held))
            totals = node(db, name)
            assert (totals["vcpus_used"], totals["memory_mb_used"], totals["local_gb_used"]) == sums
            assert totals["running_vms"] == len(held)
            assert all(used <= cap for used, cap in zip(sums, capacity[name], strict=True))
