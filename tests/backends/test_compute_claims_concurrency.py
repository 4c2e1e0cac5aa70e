"""Parallel resource claims on PostgreSQL and MariaDB: hosts never go past their allocation ratios,
exactly as many claims win as fit, and server group policies hold when members are scheduled at once.

Each test releases its threads together (a barrier) against a few small hosts; what the database
holds afterwards is the judge, not what the threads believed.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa

from stratus.compute import claims, models
from stratus.compute.scheduler import NoValidHost, RequestSpec, Scheduler
from stratus.core.config import ComputeConfig
from stratus.core.db import Database
from tests.conftest import _fresh_database
from tests.unit.compute.test_claims import add_host, compute_database

pytestmark = pytest.mark.backend

THREADS = 16


@pytest.fixture(params=["postgresql", "mariadb"])
def db(request: pytest.FixtureRequest) -> Iterator[Database]:
    for url in _fresh_database(request.param):
        yield from compute_database(url)


def _in_parallel(work: Callable[[int], Any], count: int) -> list[Any]:
    """work(0..count-1) from THREADS threads released together; each result or the NoValidHost raised."""
    start = threading.Barrier(THREADS)
    chunks = [list(range(count))[i::THREADS] for i in range(THREADS)]

    def run(chunk: list[int]) -> list[Any]:
        start.wait()
        results: list[Any] = []
        for item in chunk:
            try:
                results.append(work(item))
            except NoValidHost as exc:
                results.append(exc)
        return results

    with ThreadPoolExecutor(THREADS) as pool:
        return [result for chunk in pool.map(run, chunks) for result in chunk]


def _totals(db: Database) -> dict[str, tuple[int, int, int, int]]:
    with db.transaction() as session:
        return {host: (v, m, d, n) for host, v, m, d, n in session.execute(sa.select(
            models.ComputeNode.host, models.ComputeNode.vcpus_used, models.ComputeNode.memory_mb_used,
            models.ComputeNode.local_gb_used, models.ComputeNode.running_vms))}


def _allocated(db: Database) -> dict[str, tuple[int, int, int, int]]:
    """Per host, the sums of its allocation rows (must equal the node's totals)."""
    a = models.Allocation
    with db.transaction() as session:
        return {host: (int(v), int(m), int(d), int(n)) for host, v, m, d, n in session.execute(
            sa.select(a.host, sa.func.sum(a.vcpus), sa.func.sum(a.memory_mb), sa.func.sum(a.disk_gb),
                      sa.func.count()).group_by(a.host))}


def _assert_within_ratios(db: Database) -> None:
    n = models.ComputeNode
    with db.transaction() as session:
        over = session.scalar(sa.select(sa.func.count()).select_from(n).where(sa.or_(
            n.vcpus_used > n.vcpus * n.cpu_allocation_ratio, n.memory_mb_used > n.memory_mb * n.ram_allocation_ratio,
            n.local_gb_used > n.local_gb * n.disk_allocation_ratio)))
    assert over == 0


def test_parallel_claims_win_exactly_as_many_as_fit(db: Database) -> None:
    # Three hosts with room for 4 of these claims each, each limited by another resource and ratio
    # (2 vCPUs x 2.0, 2048 MiB x 2.0, 20 GB x 2.0); 48 attempts from 16 threads, each trying every host.
    add_host(db, "cpu-bound", vcpus=2, memory_mb=8192, local_gb=100, cpu_ratio=2.0)
    add_host(db, "ram-bound", vcpus=16, memory_mb=2048, local_gb=100, ram_ratio=2.0)
    add_host(db, "disk-bound", vcpus=16, memory_mb=8192, local_gb=20, disk_ratio=2.0)
    hosts = ["cpu-bound", "ram-bound", "disk-bound"]

    def attempt(item: int) -> str | None:
        instance = f"i-{item}"
        for offset in range(len(hosts)):
            host = hosts[(item + offset) % len(hosts)]
            if claims.in_transaction(db, lambda s, h=host: claims.claim(s, instance, h, 1, 1024, 10)):
                return host
        return None

    results = _in_parallel(attempt, 48)
    assert Counter(r for r in results if r is not None) == {"cpu-bound": 4, "ram-bound": 4, "disk-bound": 4}
    _assert_within_ratios(db)
    totals = _totals(db)
    assert totals == {"cpu-bound": (4, 4096, 40, 4), "ram-bound": (4, 4096, 40, 4), "disk-bound": (4, 4096, 40, 4)}
    assert _allocated(db) == totals


def test_parallel_releases_give_back_once(db: Database) -> None:
    add_host(db, "h1", vcpus=8, memory_mb=8192, local_gb=100)
    with db.transaction() as session:
        for n in range(4):
            assert claims.claim(session, f"i-{n}", "h1", 2, 2048, 25)
    released = _in_parallel(lambda item: claims.in_transaction(
        db, lambda s: claims.release(s, f"i-{item % 4}")), 32)
    assert sum(released) == 4
    assert _totals(db) == {"h1": (0, 0, 0, 0)} and _allocated(db) == {}


def _spec(instance_id: str | None = None, **fields: Any) -> RequestSpec:
    return RequestSpec(instance_id=instance_id or str(uuid.uuid4()), project_id="p", vcpus=1, memory_mb=1024,
                       disk_gb=10, **fields)


def test_parallel_scheduling_never_overcommits(db: Database) -> None:
    for n in range(4):
        add_host(db, f"h{n}", vcpus=2, memory_mb=4096, local_gb=100, cpu_ratio=2.0)  # 4 claims each
    # Three schedulers (as three processes), each with its own view of the hosts.
    schedulers = [Scheduler(db, ComputeConfig()) for _ in range(3)]
    results = _in_parallel(lambda item: schedulers[item % 3].select_destination(_spec()), 24)
    placed = [r for r in results if isinstance(r, str)]
    assert len(placed) == 16 and sum(isinstance(r, NoValidHost) for r in results) == 8
    assert Counter(placed) == {f"h{n}": 4 for n in range(4)}
    _assert_within_ratios(db)
    assert _allocated(db) == _totals(db)


@pytest.mark.parametrize("policy", ["anti-affinity", "affinity"])
def test_group_members_scheduled_at_once_keep_the_policy(db: Database, policy: str) -> None:
    for n in range(4):
        add_host(db, f"h{n}", vcpus=16, memory_mb=16384, local_gb=200)
    members = [str(uuid.uuid4()) for _ in range(THREADS)]
    with db.transaction() as session:
        group = models.ServerGroup(name="g", project_id="p", user_id="u", policy=policy, rules={})
        session.add(group)
        session.flush()
        session.add_all([models.ServerGroupMember(group_id=group.id, instance_id=m) for m in members])
        spec_group = {"id": group.id, "policy": policy, "rules": {}}
    schedulers = [Scheduler(db, ComputeConfig()) for _ in range(2)]
    results = _in_parallel(lambda item: schedulers[item % 2].select_destination(
        _spec(members[item], group=spec_group)), THREADS)
    placed = [r for r in results if isinstance(r, str)]
    if policy == "anti-affinity":
        assert sorted(placed) == ["h0", "h1", "h2", "h3"]
        assert all("ServerGroupAntiAffinityFilter" in r.message for r in results if isinstance(r, NoValidHost))
    else:
        assert len(placed) == THREADS and len(set(placed)) == 1
    _assert_within_ratios(db)
