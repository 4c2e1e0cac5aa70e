"""The in-process transport wakes only the consumers of the queue a message was put on.

With one wake-up for all, every message woke every consumer of the process (hundreds of simulated
compute hosts), which is what made booting on many fake hosts slow.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from stratus.core import bus as bus_module
from stratus.core.bus import Bus


class Adder:
    def add(self, a: int, b: int) -> int:
        return a + b


@pytest.fixture
def bus() -> Iterator[Bus]:
    bus = Bus("memory://", default_timeout=5.0, exchange=f"stratus-test-{uuid.uuid4().hex[:8]}")
    yield bus
    bus.close()


def _wake_counts() -> dict[object, int]:
    listeners = bus_module._LISTENERS
    with listeners._lock:
        return {arrivals: arrivals.count for counts in listeners._by_queue.values() for arrivals in counts}


def test_calls_to_one_topic_do_not_wake_the_servers_of_others(bus: Bus) -> None:
    topics = [f"idle-{uuid.uuid4().hex[:8]}" for _ in range(20)]
    for topic in topics:
        bus.serve(topic, Adder())
    busy = f"busy-{uuid.uuid4().hex[:8]}"
    bus.serve(busy, Adder())
    bus.call(busy, "add", a=0, b=0)
    before = _wake_counts()
    for n in range(50):
        assert bus.call(busy, "add", a=n, b=1) == n + 1
    after = _wake_counts()
    woken = [arrivals for arrivals, count in after.items() if count != before.get(arrivals, count)]
    # The busy server's connection and the caller's reply consumer; never the 20 idle servers.
    assert 1 <= len(woken) <= 2
