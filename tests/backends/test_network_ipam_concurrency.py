"""Parallel port creates on one small subnet, on PostgreSQL and MariaDB, through the network API.

Each thread creates ports over HTTP (the in-process API, so the same code path as production):
no address is ever given twice, every created port holds one, and once the pool is used up the
extra creates get 409 IpAddressGenerationFailure, never a 500.
"""

from __future__ import annotations

import ipaddress
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.api.network.helpers import create, member_headers
from tests.conftest import NetworkHarness, _fresh_database

pytestmark = pytest.mark.backend

THREADS = 10


@pytest.fixture(params=["postgresql", "mariadb"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Overrides the shared fixture: these tests only mean something on a server database."""
    yield from _fresh_database(request.param)


def _warm(network: NetworkHarness, headers: dict[str, str]) -> None:
    """One port elsewhere first: the token is validated and cached, the project's default group exists."""
    net = create(network, "network", headers, name="warm-up")
    create(network, "subnet", headers, network_id=net["id"], cidr="192.168.99.0/24", ip_version=4, enable_dhcp=False)
    assert create(network, "port", headers, network_id=net["id"])["security_groups"]


def _in_parallel(network: NetworkHarness, bodies: list[dict[str, Any]],
                 headers: dict[str, str]) -> list[tuple[int, dict[str, Any]]]:
    """POST every body to /v2.0/ports from THREADS threads, released together; (status, body) each."""
    start = threading.Barrier(THREADS)
    chunks = [bodies[i::THREADS] for i in range(THREADS)]

    def run(chunk: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
        start.wait()
        results = []
        for body in chunk:
            response = network.client.post("/v2.0/ports", json={"port": body}, headers=headers)
            results.append((response.status_code, response.json()))
        return results

    with ThreadPoolExecutor(THREADS) as pool:
        return [result for chunk in pool.map(run, chunks) for result in chunk]


def test_parallel_creates_never_share_an_address_and_overflow_gets_409(network: NetworkHarness) -> None:
    alice = member_headers(network)
    net = create(network, "network", alice, name="busy")
    # A /26 without DHCP: .2-.62 in the pool, 61 addresses for 70 requests.
    subnet = create(network, "subnet", alice, network_id=net["id"], cidr="10.20.30.0/26", ip_version=4,
                    enable_dhcp=False)
    _warm(network, alice)
    results = _in_parallel(network, [{"network_id": net["id"]}] * 70, alice)

    statuses = Counter(status for status, _ in results)
    assert statuses == {201: 61, 409: 9}, statuses
    errors = {body["NeutronError"]["type"] for status, body in results if status == 409}
    assert errors == {"IpAddressGenerationFailure"}
    addresses = [ip["ip_address"] for status, body in results if status == 201 for ip in body["port"]["fixed_ips"]]
    assert len(addresses) == 61 and len(set(addresses)) == 61
    pool = {str(ipaddress.ip_address(v)) for v in range(int(ipaddress.ip_address("10.20.30.2")),
                                                          int(ipaddress.ip_address("10.20.30.62")) + 1)}
    assert set(addresses) == pool
    # What the database holds agrees with what the API answered.
    listed = network.client.get(f"/v2.0/ports?fixed_ips=subnet_id%3D{subnet['id']}", headers=alice).json()["ports"]
    assert sorted(ip["ip_address"] for p in listed for ip in p["fixed_ips"]) == sorted(addresses)


def test_parallel_requests_for_one_address_have_exactly_one_winner(network: NetworkHarness) -> None:
    alice = member_headers(network)
    net = create(network, "network", alice, name="contested")
    create(network, "subnet", alice, network_id=net["id"], cidr="10.40.0.0/24", ip_version=4, enable_dhcp=False)
    _warm(network, alice)
    bodies = [{"network_id": net["id"], "fixed_ips": [{"ip_address": "10.40.0.99"}]}] * THREADS
    results = _in_parallel(network, bodies, alice)
    statuses = Counter(status for status, _ in results)
    assert statuses == {201: 1, 409: THREADS - 1}, statuses
    assert {body["NeutronError"]["type"] for status, body in results if status == 409} == {"IpAddressInUse"}
    # Mixed with automatic creates, nobody else gets that address either.
    results = _in_parallel(network, [{"network_id": net["id"]}] * 40, alice)
    assert {status for status, _ in results} == {201}
    addresses = [body["port"]["fixed_ips"][0]["ip_address"] for _, body in results]
    assert len(set(addresses)) == 40 and "10.40.0.99" not in addresses
