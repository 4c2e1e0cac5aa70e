"""The agent contract tests of tests/api/network/test_agent_contract.py, over the local RabbitMQ.

The tests are imported, not copied; only the `network` fixture changes: the service, its
conductor and its agents share a bus on amqp://, with an exchange of this run's own. The database
is SQLite (the engines are covered by the contract tests themselves). RabbitMQ not answering is a
failure.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from stratus.core import config as config_mod
from stratus.core.bus import Bus
from stratus.identity.client import IdentityClient, ServiceCredentials
from stratus.network.api import create_network_app
from stratus.network.service import NetworkService
from tests.api.network.test_agent_contract import *  # noqa: F403 (the whole suite, collected here once more)
from tests.backends.rabbitmq import reachable_rabbitmq
from tests.conftest import SERVICE_PASSWORD, NetworkHarness, make_identity

RUN_EXCHANGE = f"stratus-agent-test-{uuid.uuid4().hex[:8]}"

pytestmark = pytest.mark.backend


@pytest.fixture(scope="module")
def rabbitmq() -> Iterator[str]:
    yield from reachable_rabbitmq(RUN_EXCHANGE)


@pytest.fixture
def network(rabbitmq: str, tmp_path: Path) -> Iterator[NetworkHarness]:
    """The network API (SQLite) whose agents' bus is RabbitMQ."""
    database_url = f"sqlite:///{tmp_path / 'cloud.sqlite'}"
    identity = make_identity(tmp_path / "state", database_url)
    cfg = config_mod.load(state_dir=tmp_path / "state", environ={"STRATUS_DATABASE__URL": database_url})
    bus = Bus(rabbitmq, exchange=RUN_EXCHANGE, default_timeout=20)
    svc = NetworkService(cfg, bus=bus)
    svc.setup()
    identity_http = httpx.AsyncClient(transport=httpx.ASGITransport(identity.client.app), base_url="http://identity")
    validator = IdentityClient("http://identity", ServiceCredentials("neutron", SERVICE_PASSWORD, "service"),
                               http=identity_http)
    harness = NetworkHarness(identity, svc, TestClient(create_network_app(svc, validator)), bus)
    yield harness
    harness.client.close()
    bus.close()
    svc.db.dispose()
    identity.client.close()
    identity.service.db.dispose()


def test_the_bus_under_these_tests_is_rabbitmq(network: NetworkHarness) -> None:
    assert network.bus.url.startswith("amqp://")
