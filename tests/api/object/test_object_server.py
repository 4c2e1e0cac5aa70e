"""The object server on its own: writes, reads, ordering, tombstones, ETag, 507, metadata, expiry."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from stratus.object.diskfile import DiskFileManager
from stratus.object.servers.object import ObjectServer
from tests.api.object.conftest import SECRET, Cluster, stamp

PATH = "/d1/3/AUTH_a/c/o"


def test_put_then_get_returns_the_bytes_and_metadata(object_client: TestClient) -> None:
    ts = stamp()
    response = object_client.put(PATH, content=b"hello", headers={
        "x-timestamp": ts, "content-type": "text/plain", "x-object-meta-color": "red",
        "x-object-sysmeta-acl": "private", "etag": hashlib.md5(b"hello").hexdigest()})
    assert response.status_code == 201
    assert response.headers["etag"] == hashlib.md5(b"hello").hexdigest()
    got = object_client.get(PATH)
    assert got.status_code == 200 and got.content == b"hello"
    assert got.headers["content-type"] == "text/plain"  # exactly as stored
    assert got.headers["x-object-meta-color"] == "red"
    assert got.headers["x-object-sysmeta-acl"] == "private"
    assert got.headers["x-timestamp"] == ts == got.headers["x-backend-timestamp"]
    assert got.headers["content-length"] == "5" and "last-modified" in got.headers
    head = object_client.head(PATH)
    assert head.status_code == 200 and head.headers["content-length"] == "5" and head.content == b""


def test_etag_mismatch_is_422_and_stores_nothing(object_client: TestClient) -> None:
    response = object_client.put(PATH, content=b"hello", headers={"x-timestamp": stamp(), "etag": "0" * 32})
    assert response.status_code == 422
    assert object_client.get(PATH).status_code == 404


@pytest.mark.parametrize("size", [300_000, 3 * 1024 * 1024 + 5], ids=["one-batch", "several-batches"])
def test_a_large_body_is_stored_whole_in_order(object_client: TestClient, size: int) -> None:
    """Bodies past the in-memory size go to disk in batches written by worker threads."""
    data = os.urandom(size)
    pieces = (data[i:i + 65536] for i in range(0, size, 65536))  # as a proxy streams it
    response = object_client.put(PATH, content=pieces, headers={"x-timestamp": stamp(), "content-length": str(size)})
    assert response.status_code == 201
    assert response.headers["etag"] == hashlib.md5(data).hexdigest()
    assert object_client.get(PATH).content == data
    wrong = object_client.put(PATH, content=data, headers={"x-timestamp": stamp(1), "etag": "0" * 32})
    assert wrong.status_code == 422
    assert object_client.get(PATH).content == data


def test_last_write_wins_by_timestamp(object_client: TestClient) -> None:
    newer, older = stamp(10), stamp()
    assert object_client.put(PATH, content=b"new", headers={"x-timestamp": newer}).status_code == 201
    late = object_client.put(PATH, content=b"old", headers={"x-timestamp": older})
    assert late.status_code == 409 and late.headers["x-backend-timestamp"] == newer
    assert object_client.get(PATH).content == b"new"
    assert object_client.delete(PATH, headers={"x-timestamp": older}).status_code == 409
    assert object_client.get(PATH).content == b"new"


def test_delete_leaves_a_tombstone_with_its_timestamp(object_client: TestClient) -> None:
    object_client.put(PATH, content=b"x", headers={"x-timestamp": stamp()})
    deleted_at = stamp(1)
    assert object_client.delete(PATH, headers={"x-timestamp": deleted_at}).status_code == 204
    gone = object_client.get(PATH)
    assert gone.status_code == 404 and gone.headers["x-backend-timestamp"] == deleted_at
    assert object_client.delete(PATH, headers={"x-timestamp": stamp(2)}).status_code == 404
    # An older PUT (say, a delayed replica write) does not bring it back.
    assert object_client.put(PATH, content=b"x", headers={"x-timestamp": stamp(0.5)}).status_code == 409
    assert object_client.put(PATH, content=b"y", headers={"x-timestamp": stamp(3)}).status_code == 201
    assert object_client.get(PATH).content == b"y"


def test_post_replaces_user_metadata_and_keeps_sysmeta(object_client: TestClient) -> None:
    object_client.put(PATH, content=b"x", headers={"x-timestamp": stamp(), "x-object-meta-a": "1",
                                                   "x-object-sysmeta-keep": "k", "content-type": "text/plain"})
    posted = stamp(1)
    response = object_client.post(PATH, headers={"x-timestamp": posted, "x-object-meta-b": "2",
                                                 "content-type": "image/png"})
    assert response.status_code == 202
    head = object_client.head(PATH)
    assert head.headers["x-timestamp"] == head.headers["x-backend-timestamp"] == posted
    assert head.headers["x-backend-data-timestamp"] < posted
    assert head.headers["x-object-meta-b"] == "2" and "x-object-meta-a" not in head.headers
    assert head.headers["x-object-sysmeta-keep"] == "k"
    assert head.headers["content-type"] == "image/png"
    assert object_client.post("/d1/3/AUTH_a/c/missing", headers={"x-timestamp": stamp()}).status_code == 404


def test_writes_need_a_valid_timestamp_and_length(object_client: TestClient) -> None:
    assert object_client.put(PATH, content=b"x").status_code == 400
    assert object_client.put(PATH, content=b"x", headers={"x-timestamp": "soon"}).status_code == 400
    assert object_client.delete(PATH).status_code == 400
    assert object_client.put("/d1/x/AUTH_a/c/o", content=b"x", headers={"x-timestamp": stamp()}).status_code == 400


def test_missing_device_is_507(object_client: TestClient) -> None:
    assert object_client.put("/sdz/3/AUTH_a/c/o", content=b"x", headers={"x-timestamp": stamp()}).status_code == 507
    assert object_client.get("/sdz/3/AUTH_a/c/o").status_code == 507


def test_full_device_is_507(devices: Path) -> None:
    server = ObjectServer(DiskFileManager(devices, hash_secret=SECRET, reserve=1 << 62))
    with TestClient(server) as client:
        response = client.put(PATH, content=b"x", headers={"x-timestamp": stamp()})
    assert response.status_code == 507


def test_expired_objects_are_not_served(object_client: TestClient) -> None:
    soon = int(time.time()) + 1
    object_client.put(PATH, content=b"x", headers={"x-timestamp": stamp(), "x-delete-at": str(soon)})
    assert object_client.get(PATH).headers["x-delete-at"] == str(soon)
    time.sleep(max(0.0, soon - time.time()) + 0.05)
    assert object_client.get(PATH).status_code == 404


def test_range_requests(object_client: TestClient) -> None:
    data = bytes(range(256)) * 4096
    object_client.put(PATH, content=data, headers={"x-timestamp": stamp()})
    assert object_client.head(PATH).headers["content-type"] == "application/octet-stream"
    part = object_client.get(PATH, headers={"range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == data[1000:2000]
    whole = object_client.get(PATH)
    assert whole.content == data and whole.headers["etag"] == hashlib.md5(data).hexdigest()


def test_replicate_reports_suffix_hashes_and_objects(object_client: TestClient) -> None:
    object_client.put(PATH, content=b"x", headers={"x-timestamp": stamp()})
    hashes = object_client.request("REPLICATE", "/d1/3").json()["hashes"]
    assert len(hashes) == 1
    suffix = next(iter(hashes))
    detail = object_client.post(f"/d1/3/{suffix}", headers={"x-backend-replicate": "true"}).json()
    assert [f.endswith(".data") for files in detail["objects"].values() for f in files] == [True]
    # Suffixes are three hex digits: nothing else reaches the file system.
    assert object_client.request("REPLICATE", "/d1/3/..").status_code == 400
    assert object_client.request("REPLICATE", "/d1/3/abc-../x").status_code == 400
    assert (object_client.app.manager.devices_dir / "d1" / "objects" / "3" / "hashes.json").exists()  # type: ignore[attr-defined]


@pytest.mark.parametrize("length", [100_000, 1_000_000], ids=["read-whole", "streamed-to-disk"])
def test_a_body_cut_short_is_never_committed(cluster: Cluster, length: int) -> None:
    """The client (a proxy) drops the connection mid-upload: nothing becomes visible, no temp file stays."""
    port = cluster.servers["object"].port
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(f"PUT /d1/3/AUTH_a/c/partial{length} HTTP/1.1\r\nHost: x\r\nX-Timestamp: {stamp()}\r\n"
                     f"Content-Length: {length}\r\n\r\n".encode() + b"x" * 1000)
        time.sleep(0.2)
    time.sleep(0.3)
    response = cluster.client.get(f"http://127.0.0.1:{port}/d1/3/AUTH_a/c/partial{length}")
    assert response.status_code == 404
    tmp = cluster.devices_dir / "d1" / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []


def test_metadata_bytes_come_back_unchanged(cluster: Cluster) -> None:
    url = f"http://127.0.0.1:{cluster.servers['object'].port}{PATH}"  # (TestClient cannot carry such headers)
    value = "café ☕".encode()
    cluster.client.put(url, content=b"x", headers={b"x-timestamp": stamp().encode(), b"x-object-meta-drink": value,
                                                   b"content-type": "text/plain; name=ü".encode()})
    raw = dict(cluster.client.head(url).headers.raw)
    assert raw[b"x-object-meta-drink"] == value
    assert raw[b"content-type"] == "text/plain; name=ü".encode()


def test_a_prefix_at_the_end_of_unicode_lists_without_error(container_client: TestClient) -> None:
    container_client.put("/d1/7/AUTH_a/c", headers={"x-timestamp": stamp()})
    top = "\U0010ffff"
    response = container_client.get("/d1/7/AUTH_a/c", params={"format": "json", "prefix": top,
                                                               "delimiter": top})
    assert response.status_code == 200 and response.json() == []
