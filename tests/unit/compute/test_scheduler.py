"""The scheduler end to end on SQLite: choice, spread and stack, claims and their retries, the view's
refresh, zones, server groups (also under concurrent scheduling), hints, the bus, NoValidHost."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from stratus.compute import claims, models
from stratus.compute.scheduler import BaseWeigher, HostState, NoValidHost, RequestSpec, Scheduler
from stratus.core.bus import Bus
from stratus.core.config import ComputeConfig
from stratus.core.db import Database, utcnow
from tests.unit.compute.test_claims import add_host, allocations, compute_database, node


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    yield from compute_database(f"sqlite:///{tmp_path / 'compute.sqlite'}")


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def scheduler(db: Database, clock: Clock | None = None, **settings: Any) -> Scheduler:
    return Scheduler(db, ComputeConfig(**settings), **({"clock": clock} if clock else {}))


def req(vcpus: int = 1, memory_mb: int = 512, disk_gb: int = 1, **fields: Any) -> RequestSpec:
    return RequestSpec(instance_id=fields.pop("instance_id", str(uuid.uuid4())), project_id="p", vcpus=vcpus,
                       memory_mb=memory_mb, disk_gb=disk_gb, **fields)


def add_group(db: Database, policy: str, members: list[str], rules: dict[str, Any] | None = None) -> dict[str, Any]:
    with db.transaction() as session:
        group = models.ServerGroup(name="g", project_id="p", user_id="u", policy=policy, rules=rules or {})
        session.add(group)
        session.flush()
        session.add_all([models.ServerGroupMember(group_id=group.id, instance_id=m) for m in members])
        return {"id": group.id, "policy": policy, "rules": rules or {}}


def test_spreads_over_equal_hosts_and_updates_its_view_after_each_claim(db: Database) -> None:
    for name in ("h1", "h2", "h3"):
        add_host(db, name)
    s = scheduler(db)
    chosen = [s.select_destination(req()) for _ in range(6)]
    assert Counter(chosen) == {"h1": 2, "h2": 2, "h3": 2}
    assert all(node(db, h)["running_vms"] == 2 for h in ("h1", "h2", "h3"))
    assert s.states.by_name["h1"].num_instances == 2  # without reading the database again


def test_negative_multipliers_stack(db: Database) -> None:
    for name in ("h1", "h2"):
        add_host(db, name, vcpus=4, memory_mb=2048)
    s = scheduler(db, ram_weight_multiplier=-1.0, cpu_weight_multiplier=-1.0, disk_weight_multiplier=-1.0)
    chosen = [s.select_destination(req(memory_mb=512)) for _ in range(6)]
    assert chosen[:4] == [chosen[0]] * 4 and set(chosen[4:]) == {"h1", "h2"} - {chosen[0]}


def test_weights_are_normalized_across_the_candidates(db: Database) -> None:
    # h1 has a little more free RAM than h2, h2 far more free CPU: each weigher counts 0..1 across
    # the candidates, so RAM's larger numbers do not drown the CPU difference (raw sums would pick h1).
    add_host(db, "h1", vcpus=2, memory_mb=8192)
    add_host(db, "h2", vcpus=32, memory_mb=8000)
    add_host(db, "h3", vcpus=30, memory_mb=4096)
    s = scheduler(db, disk_weight_multiplier=0.0)
    assert s.select_destination(req()) == "h2"
    s = scheduler(db, cpu_weight_multiplier=0.0, disk_weight_multiplier=0.0)
    assert s.select_destination(req()) == "h1"


def test_num_instances_weigher_prefers_fewer_instances_with_a_negative_multiplier(db: Database) -> None:
    add_host(db, "busy", memory_mb=65536)
    add_host(db, "quiet", memory_mb=1024)
    for n in range(3):  # the busy host already runs three small instances
        with db.transaction() as session:
            claims.claim(session, f"old-{n}", "busy", 0, 1, 0)
    s = scheduler(db, ram_weight_multiplier=0.0, cpu_weight_multiplier=0.0, disk_weight_multiplier=0.0,
                  num_instances_weight_multiplier=-1.0)
    assert s.select_destination(req()) == "quiet"
    s = scheduler(db, ram_weight_multiplier=0.0, cpu_weight_multiplier=0.0, disk_weight_multiplier=0.0,
                  num_instances_weight_multiplier=1.0)
    assert s.select_destination(req()) == "busy"


def test_a_lost_claim_moves_on_to_the_next_best_host(db: Database) -> None:
    add_host(db, "big", memory_mb=8192)
    add_host(db, "small", memory_mb=4096)
    clock = Clock()
    s = scheduler(db, clock)
    s.states.refresh()
    with db.transaction() as session:  # another scheduler fills `big` behind this one's back
        assert claims.claim(session, "other", "big", 4, 8192, 40)
    request = req(memory_mb=1024)
    assert s.select_destination(request) == "small"
    assert allocations(db, request.instance_id) == {"small": {"vcpus": 1, "memory_mb": 1024, "disk_gb": 1}}
    assert node(db, "big")["memory_mb_used"] == 8192  # never over
    assert s.states.by_name["big"].ram_free == 0  # the refused host was read again


def test_when_every_claim_is_lost_the_answer_is_no_valid_host(db: Database) -> None:
    add_host(db, "h1")
    add_host(db, "h2")
    clock = Clock()
    s = scheduler(db, clock)
    s.states.refresh()
    with db.transaction() as session:
        session.execute(sa.update(models.ComputeNode).values(memory_mb_used=4096))
    with pytest.raises(NoValidHost) as caught:
        s.select_destination(req())
    # After the lost claims the view was read again in full, and the filters said why.
    assert caught.value.message == ("No valid host was found. There are not enough hosts available. "
                                    "Filter RamFilter removed the last 2 hosts.")


def test_no_valid_host_names_the_filter_that_removed_the_last_hosts(db: Database) -> None:
    s = scheduler(db)
    with pytest.raises(NoValidHost, match="No compute host has reported yet"):
        s.select_destination(req())
    for name in ("h1", "h2", "h3"):
        add_host(db, name)
    s = scheduler(db)
    with pytest.raises(NoValidHost) as caught:
        s.select_destination(req(memory_mb=8192))
    assert caught.value.message.startswith("No valid host was found. There are not enough hosts available.")
    assert "Filter RamFilter removed the last 3 hosts" in caught.value.message
    with pytest.raises(NoValidHost, match="Every host was tried already"):
        s.select_destination(req(ignore_hosts=["h1", "h2", "h3"]))
    assert allocations(db, "i-none") == {}


def test_ignore_hosts_and_force_host(db: Database) -> None:
    for name in ("h1", "h2", "h3"):
        add_host(db, name, disabled=name == "h3")
    s = scheduler(db)
    assert s.select_destination(req(ignore_hosts=["h1"])) == "h2"
    # A forced host skips the filters (even a disabled one), as an operator asked; the claim still checks room.
    assert s.select_destination(req(force_host="nova:h3")) == "h3"
    assert s.select_destination(req(force_host="h3")) == "h3"
    with pytest.raises(NoValidHost, match="not a known compute host"):
        s.select_destination(req(force_host="nova:nowhere"))
    with pytest.raises(NoValidHost, match="claims on the 1 best host were refused"):
        s.select_destination(req(force_host="nova:h1", memory_mb=100000))


def test_hosts_that_stop_reporting_get_nothing_until_they_report_again(db: Database) -> None:
    add_host(db, "h1", memory_mb=8192)
    add_host(db, "h2")
    clock = Clock()
    s = scheduler(db, clock, service_down_time=60.0)
    assert s.select_destination(req()) == "h1"
    with db.transaction() as session:  # h2 goes on beating, h1 is silent
        session.execute(sa.update(models.Service).where(models.Service.host == "h2")
                        .values(last_seen_up=utcnow() + dt.timedelta(seconds=120)))
    clock.advance(90)
    assert s.select_destination(req()) == "h2"
    with pytest.raises(NoValidHost, match="ComputeFilter"):
        s.select_destination(req(ignore_hosts=["h2"]))


def test_the_view_picks_up_new_hosts_disabled_services_and_zones(db: Database) -> None:
    add_host(db, "h1")
    clock = Clock()
    s = scheduler(db, clock)
    assert s.select_destination(req()) == "h1"
    add_host(db, "h2", memory_mb=65536)
    assert s.select_destination(req()) == "h1"  # within the refresh interval: the old view
    clock.advance(1.5)
    assert s.select_destination(req()) == "h2"
    with db.transaction() as session:
        session.execute(sa.update(models.Service).where(models.Service.host == "h2").values(disabled=True))
        aggregate = models.Aggregate(name="agg")
        session.add(aggregate)
        session.flush()
        session.add(models.AggregateHost(aggregate_id=aggregate.id, host="h1"))
        session.add(models.AggregateMetadata(aggregate_id=aggregate.id, key="availability_zone", value="az2"))
    clock.advance(1.5)
    assert s.select_destination(req()) == "h1"
    assert s.select_destination(req(availability_zone="az2")) == "h1"
    with pytest.raises(NoValidHost, match="AvailabilityZoneFilter removed the last 1 host"):
        s.select_destination(req(availability_zone="nova"))


def test_a_zone_set_just_now_is_found_by_the_full_reload_before_no_valid_host(db: Database) -> None:
    add_host(db, "h1")
    s = scheduler(db)
    s.select_destination(req())
    with db.transaction() as session:
        aggregate = models.Aggregate(name="agg")
        session.add(aggregate)
        session.flush()
        session.add(models.AggregateHost(aggregate_id=aggregate.id, host="h1"))
        session.add(models.AggregateMetadata(aggregate_id=aggregate.id, key="availability_zone", value="az9"))
    s.states.loaded_at -= 5  # the last full read was a while ago
    assert s.select_destination(req(availability_zone="az9")) == "h1"


def test_aggregate_extra_specs_and_image_properties_select_hosts(db: Database) -> None:
    add_host(db, "plain", memory_mb=65536)
    add_host(db, "fast")
    with db.transaction() as session:
        aggregate = models.Aggregate(name="ssd")
        session.add(aggregate)
        session.flush()
        session.add(models.AggregateHost(aggregate_id=aggregate.id, host="fast"))
        session.add(models.AggregateMetadata(aggregate_id=aggregate.id, key="ssd", value="true"))
    s = scheduler(db)
    assert s.select_destination(req(flavor_extra_specs={"aggregate_instance_extra_specs:ssd": "true"})) == "fast"
    assert s.select_destination(req(image_properties={"hw_architecture": "x86_64", "img_hv_type": "qemu"})) == "plain"
    with pytest.raises(NoValidHost, match="ImagePropertiesFilter"):
        s.select_destination(req(image_properties={"hw_architecture": "aarch64"}))
    assert s.select_destination(req(hints={"query": '["<", "$free_ram_mb", 8192]'})) == "fast"


def test_same_host_and_different_host_hints(db: Database) -> None:
    for name in ("h1", "h2", "h3"):
        add_host(db, name, memory_mb=8192 if name == "h1" else 4096)
    with db.transaction() as session:
        claims.claim(session, "claimed", "h2", 1, 1, 1)  # building: known by its allocation
        session.add(models.Instance(id=str(uuid.uuid4()), project_id="p", user_id="u", name="vm", flavor={},
                                    flavor_id="1", host="h3"))
        placed = session.scalar(sa.select(models.Instance.id).where(models.Instance.host == "h3"))
    s = scheduler(db)
    assert s.select_destination(req(hints={"same_host": "claimed"})) == "h2"
    assert s.select_destination(req(hints={"same_host": [placed, "claimed"]})) in {"h2", "h3"}
    assert s.select_destination(req(hints={"different_host": ["claimed", placed]})) == "h1"
    with pytest.raises(NoValidHost, match="SameHostFilter"):
        s.select_destination(req(hints={"same_host": str(uuid.uuid4())}))


def test_anti_affinity_places_each_member_on_its_own_host(db: Database) -> None:
    for name in ("h1", "h2", "h3"):
        add_host(db, name, memory_mb=16384)
    members = [str(uuid.uuid4()) for _ in range(4)]
    group = add_group(db, "anti-affinity", members)
    s = scheduler(db, ram_weight_multiplier=-1.0)  # stacking weighers must not win over the policy
    hosts = [s.select_destination(req(instance_id=m, group=group)) for m in members[:3]]
    assert sorted(hosts) == ["h1", "h2", "h3"]
    with pytest.raises(NoValidHost, match="ServerGroupAntiAffinityFilter removed the last 3 hosts"):
        s.select_destination(req(instance_id=members[3], group=group))
    # A member being rescheduled does not count against itself.
    assert s.select_destination(req(instance_id=members[0], group=group)) == hosts[0]


def test_anti_affinity_max_server_per_host(db: Database) -> None:
    for name in ("h1", "h2"):
        add_host(db, name, memory_mb=16384)
    members = [str(uuid.uuid4()) for _ in range(5)]
    group = add_group(db, "anti-affinity", members, {"max_server_per_host": 2})
    s = scheduler(db, ram_weight_multiplier=-1.0)
    hosts = [s.select_destination(req(instance_id=m, group=group)) for m in members[:4]]
    assert Counter(hosts) == {"h1": 2, "h2": 2}
    with pytest.raises(NoValidHost):
        s.select_destination(req(instance_id=members[4], group=group))


def _in_parallel(work: Any, items: list[Any]) -> list[Any]:
    start = threading.Barrier(len(items))

    def run(item: Any) -> Any:
        start.wait()
        try:
            return work(item)
        except NoValidHost as exc:
            return exc

    with ThreadPoolExecutor(len(items)) as pool:
        return list(pool.map(run, items))


def test_concurrent_anti_affinity_members_never_share_a_host(db: Database) -> None:
    for n in range(4):
        add_host(db, f"h{n}", memory_mb=16384)
    members = [str(uuid.uuid4()) for _ in range(8)]
    group = add_group(db, "anti-affinity", members)
    # Two schedulers, as two scheduler processes would be: only the database lock keeps them apart.
    schedulers = [scheduler(db), scheduler(db)]
    results = _in_parallel(lambda i: schedulers[i % 2].select_destination(req(instance_id=members[i], group=group)),
                           list(range(8)))
    hosts = [r for r in results if isinstance(r, str)]
    assert sorted(hosts) == ["h0", "h1", "h2", "h3"]
    assert sum(isinstance(r, NoValidHost) for r in results) == 4


def test_concurrent_affinity_members_share_one_host(db: Database) -> None:
    for n in range(4):
        add_host(db, f"h{n}", vcpus=8, memory_mb=16384)
    members = [str(uuid.uuid4()) for _ in range(6)]
    group = add_group(db, "affinity", members)
    schedulers = [scheduler(db), scheduler(db)]
    results = _in_parallel(lambda i: schedulers[i % 2].select_destination(req(instance_id=members[i], group=group)),
                           list(range(6)))
    assert len(set(results)) == 1 and isinstance(results[0], str)


def test_soft_policies_weigh_instead_of_filtering(db: Database) -> None:
    for name in ("h1", "h2"):
        add_host(db, name, memory_mb=16384)
    members = [str(uuid.uuid4()) for _ in range(3)]
    spread = add_group(db, "soft-anti-affinity", members)
    # The RAM weigher would stack; the soft-anti-affinity weigher (not even listed) spreads.
    s = scheduler(db, ram_weight_multiplier=-1.0, cpu_weight_multiplier=0.0, disk_weight_multiplier=0.0,
                  soft_anti_affinity_weight_multiplier=10.0)
    hosts = [s.select_destination(req(instance_id=m, group=spread)) for m in members]
    assert Counter(hosts) == {"h1": 2, "h2": 1} or Counter(hosts) == {"h1": 1, "h2": 2}
    together = add_group(db, "soft-affinity", (others := [str(uuid.uuid4()) for _ in range(3)]))
    s = scheduler(db, cpu_weight_multiplier=0.0, disk_weight_multiplier=0.0,  # RAM spreads, less than:
                  soft_affinity_weight_multiplier=10.0)
    hosts = [s.select_destination(req(instance_id=m, group=together)) for m in others]
    assert len(set(hosts)) == 1


def test_concurrent_claims_never_overcommit(db: Database) -> None:
    for n in range(3):
        add_host(db, f"h{n}", vcpus=2, memory_mb=2048, local_gb=20, cpu_ratio=4.0)  # room for 4 x 512 MiB
    schedulers = [scheduler(db, cpu_allocation_ratio=16.0), scheduler(db)]
    results = _in_parallel(lambda i: schedulers[i % 2].select_destination(req(memory_mb=512, disk_gb=1)),
                           list(range(16)))
    assert sum(isinstance(r, str) for r in results) == 12
    assert all(node(db, f"h{n}")["memory_mb_used"] == 2048 for n in range(3))


def test_custom_weighers_register_by_class_name(db: Database) -> None:
    class PreferHostTwoWeigher(BaseWeigher):
        def weigh(self, host: HostState, spec: RequestSpec) -> float:
            return 1.0 if host.host == "h2" else 0.0

    for name in ("h1", "h2", "h3"):
        add_host(db, name)
    s = scheduler(db, scheduler_weighers=["PreferHostTwoWeigher"])
    assert [s.select_destination(req()) for _ in range(3)] == ["h2"] * 3
    with pytest.raises(ValueError, match="unknown scheduler weigher"):
        scheduler(db, scheduler_weighers=["NoSuchWeigher"])


def test_the_bus_api_takes_the_spec_as_a_dict_and_passes_no_valid_host_back(db: Database) -> None:
    add_host(db, "h1")
    bus = Bus("memory://")
    server = scheduler(db).serve(bus)
    try:
        request = req()
        assert RequestSpec.from_dict(request.to_dict()) == request
        assert bus.call("compute-scheduler", "select_destination", spec=request.to_dict()) == "h1"
        with pytest.raises(NoValidHost, match="Filter RamFilter removed the last 1 host"):
            bus.call("compute-scheduler", "select_destination", spec=req(memory_mb=10**6).to_dict())
    finally:
        server.stop()
        bus.close()


def test_request_spec_round_trips_and_ignores_unknown_keys() -> None:
    spec = req(availability_zone="az", flavor_extra_specs={"a": "b"}, image_properties={"hw_architecture": "x86_64"},
               group={"id": "g", "policy": "affinity", "rules": {}}, hints={"same_host": ["x"]},
               ignore_hosts=["h"], force_host="az:h1")
    data = spec.to_dict()
    assert "context" not in data
    assert RequestSpec.from_dict({**data, "added_later": 1}) == spec
    assert spec.forced_host == "h1" and spec.policy == "affinity"
    assert RequestSpec.from_dict({**data, "hints": None, "ignore_hosts": None}).hints == {}


def test_deleted_hosts_leave_the_view(db: Database) -> None:
    for name in ("h1", "h2", "h3"):
        add_host(db, name, memory_mb=8192 if name == "h1" else 4096)
    clock = Clock()
    s = scheduler(db, clock)
    s.states.refresh()
    with db.transaction() as session:
        session.execute(sa.delete(models.ComputeNode).where(models.ComputeNode.host.in_(["h1", "h3"])))
    assert s.select_destination(req()) == "h2"  # the claim on h1 failed: h1 was read again, and is gone
    assert sorted(s.states.by_name) == ["h2", "h3"]
    s.states.refresh(full=True)
    assert sorted(s.states.by_name) == ["h2"]
    assert [h.pos for h in s.states.hosts] == [0] and s.states.columns["ram_free"] == [4096 - 512]
