"""The local RabbitMQ the backend tests use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kombu import Connection, Exchange

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"


def reachable_rabbitmq(exchange: str) -> Iterator[str]:
    """Yields the broker's URL (a test failure when it does not answer); then removes the run's
    exchanges `exchange` and `exchange.fanout` (queues go with their connections or expire)."""
    try:
        with Connection(RABBITMQ_URL, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:
        pytest.fail(f"the local RabbitMQ ({RABBITMQ_URL}) is needed for this test and did not answer: {exc}")
    yield RABBITMQ_URL
    with Connection(RABBITMQ_URL) as connection:
        for name in (exchange, f"{exchange}.fanout"):
            Exchange(name)(connection.default_channel).delete()
