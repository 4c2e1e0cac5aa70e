"""The conductor's plain-statement writes (heartbeats, action events, the build's instance updates)
on SQLite, PostgreSQL and MariaDB: rows made on first use, then changed in place."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from stratus.compute import conductor as conductor_module
from stratus.compute import instance_actions, models
from stratus.compute.conductor import Conductor, _update_wanted
from stratus.core.config import ComputeConfig
from stratus.core.db import Database
from tests.unit.compute.test_claims import compute_database

RESOURCES = {"vcpus": 4, "memory_mb": 4096, "local_gb": 40, "hypervisor_type": "fake", "hypervisor_version": 1000,
             "hypervisor_hostname": "h1.example", "host_ip": "192.0.2.1", "cpu_info": {"arch": "x86_64"}}


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    yield from compute_database(database_url)


def _conductor(db: Database) -> Conductor:
    return Conductor(SimpleNamespace(db=db, settings=ComputeConfig()), bus=None)  # type: ignore[arg-type]


def _row(db: Database, model: Any, **where: Any) -> Any:
    with db.transaction() as session:
        return session.scalars(sa.select(model).filter_by(**where)).one()


def test_first_heartbeat_makes_the_rows_later_ones_refresh_them(db: Database) -> None:
    conductor = _conductor(db)
    assert conductor.report_state("h1", "nova-compute", RESOURCES) == {"disabled": False}
    service, node = _row(db, models.Service, host="h1"), _row(db, models.ComputeNode, host="h1")
    assert (service.topic, service.report_count, len(service.uuid)) == ("compute", 1, 36)
    assert (node.hypervisor_hostname, node.vcpus, node.cpu_info, node.vcpus_used) == ("h1.example", 4,
                                                                                     {"arch": "x86_64"}, 0)
    with db.transaction() as session:  # a claim the heartbeat must leave alone
        session.execute(sa.update(models.ComputeNode).values(vcpus_used=3))
        session.execute(sa.update(models.Service).values(disabled=True))
    assert conductor.report_state("h1", "nova-compute", {**RESOURCES, "vcpus": 8}) == {"disabled": True}
    again, node = _row(db, models.Service, host="h1"), _row(db, models.ComputeNode, host="h1")
    assert (again.id, again.report_count, node.vcpus, node.vcpus_used) == (service.id, 2, 8, 3)
    assert again.last_seen_up >= service.last_seen_up and node.updated_at >= service.last_seen_up
    assert conductor.report_state("h1", "nova-scheduler") == {"disabled": False}
    assert _row(db, models.Service, host="h1", binary="nova-scheduler").topic == "scheduler"
    with db.transaction() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(models.ComputeNode)) == 1


def test_a_heartbeat_with_the_same_figures_leaves_the_node_alone_for_a_while(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    conductor, clock = _conductor(db), [1000.0]
    monkeypatch.setattr(conductor_module.time, "monotonic", lambda: clock[0])
    conductor.report_state("h1", "nova-compute", RESOURCES)
    with db.transaction() as session:  # what another conductor might have written since
        session.execute(sa.update(models.ComputeNode).values(memory_mb=1024))
    clock[0] += 10
    conductor.report_state("h1", "nova-compute", RESOURCES)
    node, service = _row(db, models.ComputeNode, host="h1"), _row(db, models.Service, host="h1")
    assert (node.memory_mb, service.report_count) == (1024, 2)  # seen up, node left alone
    clock[0] += conductor_module.NODE_REWRITE_INTERVAL
    conductor.report_state("h1", "nova-compute", RESOURCES)
    assert _row(db, models.ComputeNode, host="h1").memory_mb == 4096  # trusted for a while only
    with db.transaction() as session:
        session.execute(sa.update(models.ComputeNode).values(memory_mb=1024))
    conductor.report_state("h1", "nova-compute", {**RESOURCES, "local_gb": 80})  # other figures: written
    node = _row(db, models.ComputeNode, host="h1")
    assert (node.memory_mb, node.local_gb) == (4096, 80)


def _instance_with_action(db: Database, request_id: str) -> str:
    instance_id = str(uuid.uuid4())
    with db.transaction() as session:
        session.add(models.Instance(id=instance_id, project_id="p", user_id="u", name="vm", flavor={},
                                    flavor_id="1", vm_state="building", task_state="scheduling"))
        session.flush()
        instance_actions.start(session, instance_id, "create", request_id, "p", "u")
    return instance_id


def test_action_events_begin_and_finish(db: Database) -> None:
    instance_id = _instance_with_action(db, "req-1")
    with db.transaction() as session:
        first = instance_actions.begin(session, instance_id, "req-1", "schedule")
        second = instance_actions.begin(session, instance_id, "req-1", "build", "h1",
                                        action_id=instance_actions.action_of(session, first))
        assert instance_actions.begin(session, instance_id, "no-such-request", "x") is None
    with db.transaction() as session:
        instance_actions.finish(session, second, instance_id, "req-1", RuntimeError("the disk is on fire"))
        instance_actions.finish(session, first, instance_id, "req-1")
    build = _row(db, models.InstanceActionEvent, id=second)
    assert (build.event, build.host, build.result) == ("build", "h1", "Error")
    assert "the disk is on fire" in build.traceback and build.finish_time is not None
    assert _row(db, models.InstanceActionEvent, id=first).result == "Success"
    action = _row(db, models.InstanceAction, instance_id=instance_id)
    assert action.message == "Error" and action.finish_time is not None


def test_build_updates_skip_an_instance_being_deleted(db: Database) -> None:
    kept, going = _instance_with_action(db, "req-a"), _instance_with_action(db, "req-b")
    with db.transaction() as session:
        session.execute(sa.update(models.Instance).where(models.Instance.id == going).values(task_state="deleting"))
    with db.transaction() as session:
        assert _update_wanted(session, kept, vm_state="active", task_state=None)
        assert not _update_wanted(session, going, vm_state="active", task_state=None)
        assert not _update_wanted(session, str(uuid.uuid4()), vm_state="active")
    assert (_row(db, models.Instance, id=kept).vm_state, _row(db, models.Instance, id=going).vm_state) == \
        ("active", "building")
