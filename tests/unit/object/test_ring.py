"""Ring builder placement and rebalance, ring file validation, and ring lookups."""

from __future__ import annotations

import gzip
import json
import math
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stratus.object.ring.builder import RingBuilder
from stratus.object.ring.ring import NO_DEVICE, Ring, RingData, RingError
from stratus.object.utils import ensure_hash_secret, hash_path

NOW = 1_800_000_000.0
HOUR = 3600.0


def make_builder(zones: list[int], weights: list[float] | None = None, part_power: int = 8, replicas: int = 3,
                 min_part_hours: int = 1) -> RingBuilder:
    builder = RingBuilder(part_power, replicas, min_part_hours)
    for i, zone in enumerate(zones):
        builder.add_dev({"region": 1, "zone": zone, "ip": "10.0.0.1", "port": 6200 + i, "device": f"sd{i}",
                         "weight": (weights or [100.0] * len(zones))[i]})
    return builder


def placements(builder: RingBuilder) -> list[list[int]]:
    assert builder.replica2part2dev is not None
    return [[row[p] for row in builder.replica2part2dev] for p in range(builder.parts)]


def zone_of(builder: RingBuilder, dev_id: int) -> int:
    dev = builder.devs[dev_id]
    assert dev is not None
    return int(dev["zone"])


def test_first_rebalance_places_every_replica_on_distinct_zones_and_balances() -> None:
    builder = make_builder([1, 2, 3, 4], part_power=8)
    moved = builder.rebalance(now=NOW)
    assert moved == 256 * 3
    for devs in placements(builder):
        assert NO_DEVICE not in devs
        assert len({zone_of(builder, d) for d in devs}) == 3
    assert builder.assigned_parts() == {0: 192, 1: 192, 2: 192, 3: 192}
    assert builder.balance() == 0.0


def test_weights_set_the_shares() -> None:
    builder = make_builder([1, 2, 3, 4, 5], weights=[200, 100, 100, 100, 100], part_power=9)
    builder.rebalance(now=NOW)
    assigned, desired = builder.assigned_parts(), builder.desired_parts()
    assert assigned[0] == pytest.approx(2 * assigned[1], abs=2)
    assert all(abs(assigned[i] - desired[i]) <= 1 for i in desired)


def test_adding_a_device_moves_only_its_share_and_one_replica_per_partition() -> None:
    builder = make_builder([1, 2, 3])
    builder.rebalance(now=NOW)
    before = placements(builder)
    builder.add_dev({"zone": 4, "ip": "10.0.0.2", "port": 6200, "device": "sdx", "weight": 100})
    moved = builder.rebalance(now=NOW + 2 * HOUR)
    after = placements(builder)
    desired_new = builder.desired_parts()[3]
    assert desired_new - 1 <= moved <= math.ceil(desired_new)
    changed = [sum(1 for a, b in zip(x, y, strict=True) if a != b) for x, y in zip(before, after, strict=True)]
    assert max(changed) <= 1
    assert sum(changed) == moved
    assert builder.assigned_parts()[3] == moved
    assert builder.balance() < 1.0


def test_min_part_hours_holds_partitions_that_just_moved() -> None:
    builder = make_builder([1, 2, 3], min_part_hours=1)
    builder.rebalance(now=NOW)
    builder.add_dev({"zone": 4, "ip": "10.0.0.2", "port": 6200, "device": "sdx", "weight": 100})
    assert builder.rebalance(now=NOW + 60) == 0  # everything moved less than an hour ago
    assert builder.assigned_parts()[3] == 0
    assert builder.rebalance(now=NOW + 2 * HOUR) > 0
    assert builder.assigned_parts()[3] > 0


def test_removing_a_device_moves_its_partitions_at_once() -> None:
    builder = make_builder([1, 2, 3, 4], min_part_hours=24)
    builder.rebalance(now=NOW)
    held = builder.assigned_parts()[2]
    builder.remove_dev(2)
    moved = builder.rebalance(now=NOW + 60)  # min_part_hours does not keep data on a removed device
    assert moved == held
    assert builder.devs[2] is None
    for devs in placements(builder):
        assert 2 not in devs and len(set(devs)) == 3


def test_too_few_devices_is_refused() -> None:
    builder = make_builder([1, 2])
    with pytest.raises(RingError, match="at least 3 devices"):
        builder.rebalance(now=NOW)


def test_duplicate_device_is_refused() -> None:
    builder = make_builder([1, 2, 3])
    with pytest.raises(RingError, match="already"):
        builder.add_dev({"zone": 1, "ip": "10.0.0.1", "port": 6200, "device": "sd0", "weight": 1})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(zones=st.lists(st.integers(1, 5), min_size=3, max_size=9),
       weights=st.lists(st.sampled_from([50.0, 100.0, 150.0]), min_size=9, max_size=9),
       part_power=st.integers(6, 8))
def test_property_replicas_on_distinct_devices_and_zones_when_possible(zones: list[int], weights: list[float],
                                                                       part_power: int) -> None:
    builder = make_builder(zones, weights[:len(zones)], part_power=part_power)
    builder.rebalance(now=NOW)
    zone_weights = Counter[int]()
    for i, zone in enumerate(zones):
        zone_weights[zone] += weights[i]
    total = sum(zone_weights.values())
    # Zones can each hold one replica of every partition when none needs more than 1/replicas of the data.
    zones_suffice = len(zone_weights) >= 3 and max(zone_weights.values()) / total <= 1 / 3 + 1e-9
    for devs in placements(builder):
        assert len(set(devs)) == 3
        if zones_suffice:
            assert len({zone_of(builder, d) for d in devs}) == 3
    if zones_suffice:  # and then each device also holds its weight's share
        assigned = builder.assigned_parts()
        for dev_id, want in builder.desired_parts().items():
            assert abs(assigned[dev_id] - want) <= max(1.0, 0.01 * want)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count=st.integers(3, 8), weights=st.lists(st.sampled_from([50.0, 100.0, 200.0]), min_size=9, max_size=9))
def test_property_each_device_share_within_one_percent(count: int, weights: list[float]) -> None:
    builder = make_builder(list(range(1, count + 1)), weights[:count], part_power=10)
    builder.rebalance(now=NOW)
    desired = builder.desired_parts()
    if max(desired.values()) > builder.parts:
        return  # one device would need two replicas of some partition: the layout does not allow it
    assigned = builder.assigned_parts()
    for dev_id, want in desired.items():
        assert abs(assigned[dev_id] - want) <= max(1.0, 0.01 * want)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count=st.integers(3, 7))
def test_property_adding_a_device_moves_at_most_the_minimum(count: int) -> None:
    builder = make_builder(list(range(1, count + 1)), part_power=8)
    builder.rebalance(now=NOW)
    builder.add_dev({"zone": count + 1, "ip": "10.0.0.9", "port": 6200, "device": "new", "weight": 100})
    moved = builder.rebalance(now=NOW + 2 * HOUR)
    assert moved <= math.ceil(builder.desired_parts()[count])
    for devs in placements(builder):
        assert len(set(devs)) == 3


def test_builder_file_round_trip(tmp_path: Path) -> None:
    builder = make_builder([1, 2, 3])
    builder.rebalance(now=NOW)
    builder.save(tmp_path / "object.builder")
    loaded = RingBuilder.load(tmp_path / "object.builder")
    assert placements(loaded) == placements(builder)
    assert loaded.devs == builder.devs and loaded.generation == builder.generation


# -- ring file ------------------------------------------------------------------------------------
@pytest.fixture
def ring_file(tmp_path: Path) -> Path:
    ensure_hash_secret(tmp_path)
    builder = make_builder([1, 2, 3, 4], part_power=6)
    builder.rebalance(now=NOW)
    path = tmp_path / "object.ring.gz"
    builder.get_ring().save(path)
    return path


def rewrite(path: Path, change: object) -> None:
    doc = json.loads(gzip.decompress(path.read_bytes()))
    change(doc)  # type: ignore[operator]
    path.write_bytes(gzip.compress(json.dumps(doc).encode()))


def test_ring_lookups_match_the_hash_path(ring_file: Path) -> None:
    ring = Ring(ring_file)
    assert ring.replica_count == 3 and ring.partition_count == 64
    secret = json.loads((ring_file.parent / "hash_path_secret").read_text())
    part, nodes = ring.get_nodes("AUTH_a", "c", "o")
    expected = int(hash_path((secret["prefix"], secret["suffix"]), "AUTH_a", "c", "o")[:8], 16) >> 26
    assert part == expected
    assert len({n["id"] for n in nodes}) == 3
    assert set(nodes[0]) >= {"id", "region", "zone", "ip", "port", "device", "weight"}
    assert ring.get_part_nodes(part) == nodes
    assert ring.get_nodes("AUTH_a")[0] == ring.get_part("AUTH_a")


def test_handoffs_are_the_other_devices_other_zones_first(ring_file: Path) -> None:
    ring = Ring(ring_file)
    for part in range(ring.partition_count):
        primaries = {n["id"] for n in ring.get_part_nodes(part)}
        handoffs = list(ring.get_more_nodes(part))
        assert {n["id"] for n in handoffs} == {0, 1, 2, 3} - primaries
        assert len(handoffs) == 1


def test_a_different_secret_gives_a_different_placement(ring_file: Path) -> None:
    a = Ring(ring_file, hash_secret=("", "one"))
    b = Ring(ring_file, hash_secret=("", "two"))
    names = [f"o{i}" for i in range(50)]
    assert [a.get_part("acct", "c", n) for n in names] != [b.get_part("acct", "c", n) for n in names]


@pytest.mark.parametrize("change", [
    lambda doc: doc.update(version=2),
    lambda doc: doc.update(part_power=7),
    lambda doc: doc["devs"].pop(),
    lambda doc: doc["replica2part2dev"].pop(),
    lambda doc: doc.update(format="other"),
])
def test_edited_ring_files_are_refused(ring_file: Path, change: object) -> None:
    rewrite(ring_file, change)
    with pytest.raises(RingError):
        Ring(ring_file)


def test_edited_ring_file_with_a_matching_checksum_still_checks_devices(ring_file: Path) -> None:
    from stratus.object.ring.ring import _checksum

    def drop_device(doc: dict[str, object]) -> None:
        devs = doc["devs"]
        assert isinstance(devs, list)
        devs.pop()
        doc["checksum"] = _checksum(doc)

    rewrite(ring_file, drop_device)
    with pytest.raises(RingError, match="unknown device"):
        Ring(ring_file)


def test_truncated_ring_file_is_refused(ring_file: Path) -> None:
    data = ring_file.read_bytes()
    ring_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(RingError):
        Ring(ring_file)


def test_ring_data_round_trip(ring_file: Path) -> None:
    data = RingData.load(ring_file)
    assert data.replica_count == 3 and len(data.replica2part2dev[0]) == 64


def test_lookup_is_fast(ring_file: Path) -> None:
    ring = Ring(ring_file)
    started = time.perf_counter()
    for i in range(20000):
        ring.get_nodes("AUTH_test", "c", f"object-{i}")
    assert (time.perf_counter() - started) / 20000 < 100e-6


def test_replicas_spread_over_regions_first() -> None:
    builder = RingBuilder(8, 3, 1)
    for i in range(6):
        builder.add_dev({"region": 1 + i // 3, "zone": 1 + i % 3, "ip": f"10.0.{i // 3}.1", "port": 6200,
                         "device": f"sd{i}", "weight": 100})
    builder.rebalance(now=NOW)
    for devs in placements(builder):
        regions = {builder.devs[d]["region"] for d in devs}  # type: ignore[index]
        assert regions == {1, 2}
        assert len({(builder.devs[d]["region"], builder.devs[d]["zone"]) for d in devs}) == 3  # type: ignore[index]
    assert builder.balance() < 1.0
