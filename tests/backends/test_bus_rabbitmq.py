"""The bus tests of tests/unit/core/test_bus.py, run against the local RabbitMQ.

The tests are imported, not copied; only `bus_url` changes. RabbitMQ not answering is a failure.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.backends.rabbitmq import reachable_rabbitmq
from tests.unit.core.test_bus import *  # noqa: F403 (the whole suite, collected here once more)
from tests.unit.core.test_bus import RUN_EXCHANGE

pytestmark = pytest.mark.backend


@pytest.fixture(scope="module")
def rabbitmq() -> Iterator[str]:
    yield from reachable_rabbitmq(RUN_EXCHANGE)


@pytest.fixture
def bus_url(rabbitmq: str) -> str:
    return rabbitmq
