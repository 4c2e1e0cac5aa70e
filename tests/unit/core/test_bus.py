"""The message bus: cast, call, fanout, host routing and notifications.

Written once for every transport: the `bus_url` fixture picks it. Here it is the in-process
`memory://`; tests/backends/test_bus_rabbitmq.py runs these same tests against RabbitMQ.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from stratus.core.bus import Bus
from stratus.core.errors import BusTimeout, NotFound, RemoteError

# One exchange per test run, one topic per test: parallel runs and tests never see each other.
RUN_EXCHANGE = f"stratus-test-{uuid.uuid4().hex[:8]}"


class Endpoint:
    """What a server exposes: each test calls a few of these."""

    def __init__(self, name: str = "server") -> None:
        self.name = name
        self.received: queue.Queue[tuple[str, Any]] = queue.Queue()

    def add(self, a: int, b: int) -> int:
        return a + b

    def echo(self, value: Any) -> Any:
        return value

    def whoami(self) -> str:
        return self.name

    def record(self, item: Any) -> None:
        self.received.put((self.name, item))

    def find(self, key: str) -> None:
        raise NotFound(f"no thing {key}")

    def explode(self) -> None:
        raise ValueError("the flux capacitor broke")

    def opaque(self) -> object:
        return object()

    def sleep(self, seconds: float) -> str:
        time.sleep(seconds)
        return "woke"

    def _secret(self) -> str:
        return "should never be reachable"


@pytest.fixture(params=["memory://"])
def bus_url(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def bus(bus_url: str) -> Iterator[Bus]:
    bus = Bus(bus_url, default_timeout=5.0, exchange=RUN_EXCHANGE)
    yield bus
    bus.close()


@pytest.fixture
def topic() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def _next(received: queue.Queue[tuple[str, Any]]) -> tuple[str, Any]:
    return received.get(timeout=5)


def test_cast_runs_the_method_on_the_server(bus: Bus, topic: str) -> None:
    endpoint = Endpoint()
    bus.serve(topic, endpoint)
    bus.cast(topic, "record", item={"n": 1})
    assert _next(endpoint.received) == ("server", {"n": 1})


def test_call_returns_the_result(bus: Bus, topic: str) -> None:
    bus.serve(topic, Endpoint())
    assert bus.call(topic, "add", a=2, b=40) == 42
    assert bus.call(topic, "echo", value={"list": [1, "two", None]}) == {"list": [1, "two", None]}


def test_call_reraises_a_stratus_error_as_itself(bus: Bus, topic: str) -> None:
    bus.serve(topic, Endpoint())
    with pytest.raises(NotFound) as caught:
        bus.call(topic, "find", key="k1")
    assert caught.value.message == "no thing k1"
    assert caught.type is NotFound


def test_call_reraises_other_errors_as_remote_error(bus: Bus, topic: str) -> None:
    bus.serve(topic, Endpoint())
    with pytest.raises(RemoteError) as caught:
        bus.call(topic, "explode")
    assert caught.value.exc_type == "ValueError"
    assert caught.value.remote_message == "the flux capacitor broke"


@pytest.mark.parametrize("method", ["no_such_method", "_secret", "__init__"])
def test_calling_a_missing_or_private_method_is_refused_and_the_server_lives_on(
        bus: Bus, topic: str, method: str) -> None:
    bus.serve(topic, Endpoint())
    with pytest.raises(RemoteError) as caught:
        bus.call(topic, method)
    assert caught.value.exc_type == "UnknownMethod"
    assert bus.call(topic, "add", a=1, b=1) == 2


def test_call_with_bad_arguments_is_a_remote_type_error(bus: Bus, topic: str) -> None:
    bus.serve(topic, Endpoint())
    with pytest.raises(RemoteError) as caught:
        bus.call(topic, "add", a=1)
    assert caught.value.exc_type == "TypeError"


def test_a_result_that_is_not_json_is_a_remote_error(bus: Bus, topic: str) -> None:
    bus.serve(topic, Endpoint())
    with pytest.raises(RemoteError) as caught:
        bus.call(topic, "opaque", timeout=2)
    assert caught.value.exc_type == "EncodeError"


def test_call_to_a_topic_nobody_serves_times_out(bus: Bus, topic: str) -> None:
    started = time.monotonic()
    with pytest.raises(BusTimeout):
        bus.call(topic, "add", timeout=0.5, a=1, b=2)
    assert 0.5 <= time.monotonic() - started < 1.0


def test_call_to_a_slow_server_times_out_and_its_late_answer_is_dropped(bus: Bus, topic: str) -> None:
    bus.serve(topic, Endpoint())
    started = time.monotonic()
    with pytest.raises(BusTimeout):
        bus.call(topic, "sleep", timeout=0.3, seconds=0.6)
    assert 0.3 <= time.monotonic() - started < 0.6
    # The late "woke" must not be taken for the answer to a later call.
    assert bus.call(topic, "sleep", seconds=0) == "woke"
    time.sleep(0.4)
    assert bus.call(topic, "add", a=1, b=2) == 3


def test_topic_dot_host_reaches_only_that_host(bus: Bus, topic: str) -> None:
    bus.serve(topic, Endpoint("A"), host="hostA")
    bus.serve(topic, Endpoint("B"), host="hostB")
    assert {bus.call(f"{topic}.hostB", "whoami") for _ in range(10)} == {"B"}
    assert {bus.call(f"{topic}.hostA", "whoami") for _ in range(10)} == {"A"}


def test_the_topic_itself_reaches_one_server_per_message(bus: Bus, topic: str) -> None:
    a, b = Endpoint("A"), Endpoint("B")
    bus.serve(topic, a, host="hostA")
    bus.serve(topic, b, host="hostB")
    for n in range(10):
        bus.cast(topic, "record", item=n)
    assert sorted(_either(a, b)[1] for _ in range(10)) == list(range(10))
    assert bus.call(f"{topic}.hostA", "whoami") + bus.call(f"{topic}.hostB", "whoami") == "AB"
    assert a.received.empty() and b.received.empty()  # no cast was taken twice


def _either(a: Endpoint, b: Endpoint) -> tuple[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for endpoint in (a, b):
            try:
                return endpoint.received.get_nowait()
            except queue.Empty:
                pass
        time.sleep(0.005)
    raise AssertionError("a cast was lost")


def test_fanout_reaches_every_server_of_the_topic(bus: Bus, topic: str) -> None:
    a, b, other = Endpoint("A"), Endpoint("B"), Endpoint("other")
    bus.serve(topic, a, host="hostA")
    bus.serve(topic, b)
    bus.serve(f"{topic}-other", other)
    bus.fanout(topic, "record", item="to all")
    assert _next(a.received) == ("A", "to all")
    assert _next(b.received) == ("B", "to all")
    assert bus.call(f"{topic}-other", "add", a=0, b=0) == 0  # had it arrived, it would be there by now
    assert other.received.empty()


def test_a_fanout_reaches_a_waiting_server_at_once(bus: Bus, topic: str) -> None:
    server = Endpoint("A")
    bus.serve(topic, server)
    assert bus.call(topic, "whoami") == "A"  # the server is consuming and now idle
    started = time.monotonic()
    bus.fanout(topic, "record", item="now")
    assert _next(server.received) == ("A", "now")
    assert time.monotonic() - started < 0.25


def test_a_stopped_server_gets_nothing_more(bus: Bus, topic: str) -> None:
    stopped, live = Endpoint("stopped"), Endpoint("live")
    bus.serve(topic, stopped).stop()
    bus.serve(topic, live)
    bus.fanout(topic, "record", item=1)
    assert bus.call(topic, "whoami") == "live"
    assert _next(live.received) == ("live", 1)
    assert stopped.received.empty()


def test_notify_reaches_listeners_of_that_event_type(bus: Bus) -> None:
    wanted = f"compute.instance.create.end.{uuid.uuid4().hex[:6]}"
    everything: queue.Queue[dict[str, Any]] = queue.Queue()
    filtered: queue.Queue[dict[str, Any]] = queue.Queue()
    bus.listen_notifications(everything.put)
    bus.listen_notifications(filtered.put, event_types=[wanted])
    bus.notify("compute.instance.delete.end", {"id": "x"})
    bus.notify(wanted, {"id": "y"}, publisher_id="compute.host1")
    got = filtered.get(timeout=5)
    assert (got["event_type"], got["payload"], got["publisher_id"]) == (wanted, {"id": "y"}, "compute.host1")
    assert got["priority"] == "INFO" and got["timestamp"].endswith("Z") and got["message_id"]
    # Notifications arrive in order: the unwanted one came first and was left out.
    assert filtered.empty()
    in_order = [everything.get(timeout=5)["event_type"] for _ in range(2)]
    assert in_order == ["compute.instance.delete.end", wanted]


def test_concurrent_calls_each_get_their_own_answer(bus: Bus, topic: str) -> None:
    bus.serve(topic, Endpoint())
    answers: dict[int, list[Any]] = {}

    def caller(n: int) -> None:
        answers[n] = [bus.call(topic, "echo", value=f"{n}-{i}") for i in range(25)]

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert answers == {n: [f"{n}-{i}" for i in range(25)] for n in range(8)}


def test_a_call_round_trip_takes_milliseconds(bus: Bus, topic: str) -> None:
    bus.serve(topic, Endpoint())
    bus.call(topic, "add", a=0, b=0)  # connections are set up on first use
    started = time.monotonic()
    for n in range(100):
        assert bus.call(topic, "add", a=n, b=1) == n + 1
    assert (time.monotonic() - started) / 100 < 0.02


def test_close_stops_servers_and_leaves_no_threads(bus_url: str, topic: str) -> None:
    before = set(threading.enumerate())
    bus = Bus(bus_url, exchange=RUN_EXCHANGE)
    bus.serve(topic, Endpoint(), host="h")
    bus.listen_notifications(lambda notification: None)
    assert bus.call(topic, "add", a=1, b=1) == 2
    bus.close()
    assert set(threading.enumerate()) - before == set()
