"""What the proxy does when storage nodes fail: quorum writes with handoffs, reads from other replicas,
the newest copy on request, full devices, and clients that leave mid-upload."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.api.object_proxy.conftest import ProxyHarness, unique
from tests.api.object_proxy.fakenode import FakeRing


def ring_of(proxy: ProxyHarness) -> FakeRing:
    assert proxy.ring is not None
    return proxy.ring


@pytest.fixture
def proxy(fake_proxy: ProxyHarness) -> ProxyHarness:
    """These tests stop nodes and fill devices: fake nodes only."""
    return fake_proxy


@pytest.fixture
def stopped_node(proxy: ProxyHarness) -> Iterator[int]:
    """Node 0 stopped for the test, started again afterwards."""
    proxy.nodes[0].stop()
    try:
        yield 0
    finally:
        proxy.nodes[0].start()


def test_writes_and_reads_succeed_with_a_node_down(proxy: ProxyHarness, stopped_node: int) -> None:
    alpha = proxy.users["alpha"]
    name = unique("durable")
    base = f"{proxy.account_url(alpha)}/{name}"
    down = proxy.nodes[stopped_node]
    with proxy.client(alpha) as http:
        assert http.put(base).status_code == 201
        for index in range(30):
            assert http.put(f"{base}/o{index}", content=f"data {index}".encode()).status_code == 201
        for index in range(30):
            assert http.get(f"{base}/o{index}").content == f"data {index}".encode()
        listing = http.get(base).text.split()
        assert len(listing) == 30
    # Every object still has three copies: a handoff stood in for the stopped primary.
    for index in range(30):
        holders = proxy.object_copies(alpha.account, name, f"o{index}")
        assert len(holders) == 3 and down not in holders


def test_get_falls_back_and_x_newest_picks_the_latest(proxy: ProxyHarness) -> None:
    alpha = proxy.users["alpha"]
    name = unique("newest")
    base = f"{proxy.account_url(alpha)}/{name}"
    with proxy.client(alpha) as http:
        http.put(base)
        http.put(f"{base}/o", content=b"old")
        _, primaries = ring_of(proxy).get_nodes(alpha.account, name, "o")
        first = next(n for n in proxy.nodes if n.port == primaries[0]["port"])
        first.stop()
        try:
            assert http.get(f"{base}/o").content == b"old"  # the next replica answers
            assert http.put(f"{base}/o", content=b"new").status_code == 201
        finally:
            first.start()
        # the restarted node still holds the old copy; X-Newest asks every replica
        assert http.get(f"{base}/o", headers={"X-Newest": "true"}).content == b"new"


@pytest.mark.parametrize("size", [1000, 200_000])  # sent whole, and streamed after 100-continue
def test_a_full_device_is_replaced_by_a_handoff(proxy: ProxyHarness, size: int) -> None:
    alpha = proxy.users["alpha"]
    name = unique("full")
    base = f"{proxy.account_url(alpha)}/{name}"
    full = proxy.nodes[1]
    with proxy.client(alpha) as http:
        http.put(base)
        full.full = True
        try:
            for index in range(10):
                assert http.put(f"{base}/o{index}", content=b"x" * size).status_code == 201
        finally:
            full.full = False
    for index in range(10):
        holders = proxy.object_copies(alpha.account, name, f"o{index}")
        assert len(holders) == 3 and full not in holders


def test_writes_fail_without_a_quorum(proxy: ProxyHarness) -> None:
    alpha = proxy.users["alpha"]
    name = unique("quorum")
    base = f"{proxy.account_url(alpha)}/{name}"
    with proxy.client(alpha) as http:
        http.put(base)
        for node in proxy.nodes[1:]:
            node.full = True
        try:
            assert http.put(f"{base}/o", content=b"x").status_code == 503
        finally:
            for node in proxy.nodes[1:]:
                node.full = False


def test_client_leaving_mid_upload_leaves_nothing(proxy: ProxyHarness) -> None:
    alpha = proxy.users["alpha"]
    name = unique("partial")
    base = f"{proxy.account_url(alpha)}/{name}"
    with proxy.client(alpha) as http:
        http.put(base)
    url = urlsplit(proxy.url)
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall((f"PUT {base}/half HTTP/1.1\r\nHost: {url.netloc}\r\nX-Auth-Token: {alpha.token}\r\n"
                      f"Content-Length: 1000000\r\n\r\n").encode() + b"y" * 300_000)
        time.sleep(0.5)
    time.sleep(0.5)
    with proxy.client(alpha) as http:
        assert http.head(f"{base}/half").status_code == 404
        assert http.get(base).status_code == 204
    assert proxy.object_copies(alpha.account, name, "half") == []


def test_a_node_failing_mid_body_is_replaced_by_another_replica(proxy: ProxyHarness) -> None:
    alpha = proxy.users["alpha"]
    name = unique("resume")
    base = f"{proxy.account_url(alpha)}/{name}"
    data = os.urandom(3_000_000)
    with proxy.client(alpha) as http:
        http.put(base)
        assert http.put(f"{base}/o", content=data).status_code == 201
        _, primaries = ring_of(proxy).get_nodes(alpha.account, name, "o")
        first = next(n for n in proxy.nodes if n.port == primaries[0]["port"])
        first.truncate_gets = 1_000_000
        try:
            got = http.get(f"{base}/o")
        finally:
            first.truncate_gets = None
    assert got.status_code == 200 and got.content == data
