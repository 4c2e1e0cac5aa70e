"""The bus tests of tests/unit/core/test_bus.py, run against the local RabbitMQ.

The tests are imported, not copied; only `bus_url` changes. RabbitMQ not answering is a failure.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kombu import Connection, Exchange

from tests.unit.core.test_bus import *  # noqa: F403 (the whole suite, collected here once more)
from tests.unit.core.test_bus import RUN_EXCHANGE

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"

pytestmark = pytest.mark.backend


@pytest.fixture(scope="module")
def rabbitmq() -> Iterator[str]:
    try:
        with Connection(RABBITMQ_URL, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:
        pytest.fail(f"the local RabbitMQ ({RABBITMQ_URL}) is needed for this test and did not answer: {exc}")
    yield RABBITMQ_URL
    # Queues go with their connections or expire; the run's exchanges would stay: remove them.
    with Connection(RABBITMQ_URL) as connection:
        for name in (RUN_EXCHANGE, f"{RUN_EXCHANGE}.fanout"):
            Exchange(name)(connection.default_channel).delete()


@pytest.fixture
def bus_url(rabbitmq: str) -> str:
    return rabbitmq
