"""Compute quota logic: limits and overrides, what usage counts, Nova's over-quota message, and the
project lock that keeps concurrent boots of one project within its limit (on every engine)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from stratus.compute import models, quotas
from stratus.core import errors
from stratus.core.config import ComputeConfig
from stratus.core.db import Database
from tests.unit.compute.test_claims import compute_database


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    yield from compute_database(database_url)


def instance(project_id: str, *, vcpus: int = 1, ram: int = 512, **fields: Any) -> models.Instance:
    return models.Instance(id=str(uuid.uuid4()), project_id=project_id, user_id="u", name="vm", flavor={},
                           flavor_id="1", vcpus=vcpus, memory_mb=ram, **fields)


def test_limits_are_the_defaults_overridden_per_project(db: Database) -> None:
    settings = ComputeConfig(quota_instances=4, quota_cores=-1)
    with db.transaction() as session:
        session.add(models.Quota(project_id="p", resource="instances", hard_limit=7))
        session.add(models.Quota(project_id="other", resource="cores", hard_limit=1))
    with db.transaction() as session:
        limits = quotas.limits(session, "p", settings)
    assert set(limits) == set(quotas.RESOURCES)
    assert limits["instances"] == 7 and limits["cores"] == -1 and limits["ram"] == settings.quota_ram
    assert quotas.defaults(settings)["instances"] == 4


def test_usage_skips_deleted_instances_and_builds_that_failed_everywhere(db: Database) -> None:
    with db.transaction() as session:
        session.add(instance("p", vcpus=2, ram=1024, vm_state="active", host="h1"))
        session.add(instance("p", vcpus=4, ram=2048, vm_state="building"))
        session.add(instance("p", vcpus=8, ram=4096, vm_state="error", host="h2"))  # failed on a host: held
        session.add(instance("p", vcpus=16, ram=8192, vm_state="error"))  # failed everywhere: freed
        session.add(instance("p", vcpus=32, ram=16384, vm_state="deleted", deleted=True))
        session.add(instance("q", vcpus=64, ram=32768, vm_state="active"))
        session.add(models.ServerGroup(name="g", project_id="p", user_id="u", policy="affinity"))
    with db.transaction() as session:
        used = quotas.usage(session, "p")
        empty = quotas.usage(session, "nobody")
    assert (used["instances"], used["cores"], used["ram"], used["server_groups"]) == (3, 14, 7168, 1)
    assert set(empty) == set(quotas.RESOURCES) and not any(empty.values())


def test_check_message_is_novas(db: Database) -> None:
    settings = ComputeConfig(quota_instances=2, quota_cores=3)
    with db.transaction() as session:
        session.add(instance("p", vcpus=1))
        session.add(instance("p", vcpus=1))
    with db.transaction() as session:
        quotas.lock_project(session, "p")
        with pytest.raises(errors.OverLimit) as raised:
            quotas.check(session, "p", settings, {"instances": 1, "cores": 1, "ram": 512})
        assert raised.value.status == 403
        assert raised.value.message == "Quota exceeded for instances: Requested 1, but already used 2 of 2 instances"
        with pytest.raises(errors.OverLimit) as both:
            quotas.check(session, "p", settings, {"instances": 1, "cores": 2})
        assert both.value.message == ("Quota exceeded for cores, instances: Requested 2, 1, but already used "
                                      "2, 2 of 3, 2 cores, instances")
        quotas.check(session, "p", settings, {"cores": 1})  # exactly at the limit is allowed
        quotas.check(session, "p", settings, {"instances": 0, "cores": -4})  # nothing asked: nothing refused


def test_unlimited_is_never_exceeded(db: Database) -> None:
    with db.transaction() as session:
        quotas.lock_project(session, "p")
        quotas.check(session, "p", ComputeConfig(quota_instances=-1), {"instances": 10**6})


def test_lock_project_is_idempotent_in_one_transaction_and_across(db: Database) -> None:
    with db.transaction() as session:
        quotas.lock_project(session, "p")
        quotas.lock_project(session, "p")
    with db.transaction() as session:
        quotas.lock_project(session, "p")
        assert session.get(models.ProjectLock, "p") is not None


@pytest.mark.parametrize("read_first", [False, True], ids=["lock-first", "read-first"])
def test_concurrent_boots_of_one_project_never_pass_its_limit(db: Database, read_first: bool) -> None:
    """Twelve threads race to boot into a fresh project allowed three instances: exactly three win,
    the others get the quota error, none fails otherwise (no deadlock on the first lock row).
    read-first: the transaction reads before it locks (as a resize does), which on MariaDB fixes its
    snapshot early; the check must still count what was committed meanwhile."""
    settings = ComputeConfig(quota_instances=3)
    project = f"p-{uuid.uuid4().hex[:8]}"
    barrier = threading.Barrier(12)
    barrier_read = threading.Barrier(12)
    outcomes: list[str] = []
    guard = threading.Lock()

    def boot() -> None:
        barrier.wait()
        try:
            with db.transaction() as session:
                if read_first:
                    session.scalar(sa.select(sa.func.count()).select_from(models.Instance))
                    barrier_read.wait()
                quotas.lock_project(session, project)
                quotas.check(session, project, settings, {"instances": 1, "cores": 1, "ram": 512})
                session.add(instance(project))
            result = "ok"
        except errors.OverLimit:
            result = "over"
        except Exception as exc:  # noqa: BLE001 (what else went wrong is the finding)
            result = f"error: {exc!r}"
        with guard:
            outcomes.append(result)

    threads = [threading.Thread(target=boot) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["ok"] * 3 + ["over"] * 9, outcomes
    with db.transaction() as session:
        assert quotas.usage(session, project)["instances"] == 3
