"""Accounts, containers and objects through the proxy: create, read, list, metadata, copy, delete."""

from __future__ import annotations

import hashlib
import json
import os
import time
from xml.etree import ElementTree

from tests.api.object_proxy.conftest import ProxyHarness, unique


def test_object_round_trip_with_metadata(proxy: ProxyHarness) -> None:
    alpha = proxy.users["alpha"]
    base = proxy.account_url(alpha)
    container = unique("c")
    with proxy.client(alpha) as http:
        assert http.put(f"{base}/{container}").status_code == 201
        assert http.put(f"{base}/{container}").status_code == 202
        data = os.urandom(200_000)
        put = http.put(f"{base}/{container}/dir/obj.bin", content=data,
                       headers={"X-Object-Meta-Color": "blue", "Content-Type": "application/x-test"})
        assert put.status_code == 201, put.text
        assert put.headers["etag"] == hashlib.md5(data).hexdigest()
        got = http.get(f"{base}/{container}/dir/obj.bin")
        assert got.status_code == 200
        assert got.content == data
        assert got.headers["x-object-meta-color"] == "blue"
        assert got.headers["content-type"] == "application/x-test"
        assert "last-modified" in got.headers
        head = http.head(f"{base}/{container}/dir/obj.bin")
        assert head.status_code == 200 and head.headers["content-length"] == str(len(data))
        post = http.post(f"{base}/{container}/dir/obj.bin", headers={"X-Object-Meta-Shape": "round"})
        assert post.status_code == 202
        head = http.head(f"{base}/{container}/dir/obj.bin")
        assert head.headers["x-object-meta-shape"] == "round"
        assert "x-object-meta-color" not in head.headers  # POST replaces user metadata
        assert http.delete(f"{base}/{container}/dir/obj.bin").status_code == 204
        assert http.get(f"{base}/{container}/dir/obj.bin").status_code == 404
        assert http.delete(f"{base}/{container}/dir/obj.bin").status_code == 404


def test_object_is_stored_on_three_nodes(proxy: ProxyHarness) -> None:
    alpha = proxy.users["alpha"]
    container = unique("c")
    with proxy.client(alpha) as http:
        http.put(f"{proxy.account_url(alpha)}/{container}")
        assert http.put(f"{proxy.account_url(alpha)}/{container}/o", content=b"abc").status_code == 201
    assert proxy.stored_copies(alpha.account, container, "o") == 3


def test_in_process_nodes_take_requests_without_http(in_process_proxy: ProxyHarness) -> None:
    """`stratus up`'s wiring: a small object's PUT, GET and DELETE (and the container checks they
    make) reach the storage servers directly; the object is stored (and then deleted) on three
    devices just the same."""
    proxy = in_process_proxy
    alpha = proxy.users["alpha"]
    container = unique("c")
    cluster = proxy.app.proxy.cluster
    over_http: list[str] = []
    request = cluster.pool.request

    async def counting(node: dict, method: str, *args: object, **kwargs: object) -> object:
        over_http.append(method)
        return await request(node, method, *args, **kwargs)  # type: ignore[arg-type]

    cluster.pool.request = counting  # type: ignore[method-assign]
    try:
        with proxy.client(alpha) as http:
            assert http.put(f"{proxy.account_url(alpha)}/{container}").status_code == 201
            response = http.put(f"{proxy.account_url(alpha)}/{container}/o", content=b"abc",
                                headers={"X-Object-Meta-Colour": "blue"})
            assert response.status_code == 201
            assert response.headers["etag"] == "900150983cd24fb0d6963f7d28e17f72"
            assert proxy.stored_copies(alpha.account, container, "o") == 3
            got = http.get(f"{proxy.account_url(alpha)}/{container}/o")
            assert got.content == b"abc" and got.headers["x-object-meta-colour"] == "blue"
            assert http.get(f"{proxy.account_url(alpha)}/{container}/o",
                            headers={"Range": "bytes=1-"}).content == b"bc"
            assert http.delete(f"{proxy.account_url(alpha)}/{container}/o").status_code == 204
            assert proxy.stored_copies(alpha.account, container, "o") == 0
            assert http.get(f"{proxy.account_url(alpha)}/{container}/o").status_code == 404
        assert over_http == []
    finally:
        cluster.pool.request = request  # type: ignore[method-assign]


def test_put_checks_etag_and_stores_nothing_on_mismatch(proxy: ProxyHarness) -> None:
    alpha = proxy.users["alpha"]
    base = f"{proxy.account_url(alpha)}/{unique('c')}"
    with proxy.client(alpha) as http:
        http.put(base)
        bad = http.put(f"{base}/o", content=b"hello", headers={"ETag": hashlib.md5(b"other").hexdigest()})
        assert bad.status_code == 422
        assert http.head(f"{base}/o").status_code == 404
        good = http.put(f"{base}/o", content=b"hello", headers={"ETag": hashlib.md5(b"hello").hexdigest()})
        assert good.status_code == 201


def test_chunked_upload(proxy: ProxyHarness) -> None:
    alpha = proxy.users["alpha"]
    base = f"{proxy.account_url(alpha)}/{unique('c')}"
    parts = [os.urandom(70_000) for _ in range(5)]
    with proxy.client(alpha) as http:
        http.put(base)
        response = http.put(f"{base}/chunked", content=iter(parts))
        assert response.status_code == 201, response.text
        assert http.get(f"{base}/chunked").content == b"".join(parts)


def test_put_needs_an_existing_container_and_a_length(proxy: ProxyHarness) -> None:
    alpha = proxy.users["alpha"]
    with proxy.client(alpha) as http:
        assert http.put(f"{proxy.account_url(alpha)}/{unique('missing')}/o", content=b"x").status_code == 404


def test_listings_with_prefix_delimiter_markers_limit_reverse(proxy: ProxyHarness) -> None:
    alpha = proxy.users["alpha"]
    base = f"{proxy.account_url(alpha)}/{unique('c')}"
    names = ["a/1", "a/2", "b/1", "c", "d"]
    with proxy.client(alpha) as http:
        http.put(base)
        for name in names:
            assert http.put(f"{base}/{name}", content=name.encode()).status_code == 201
        assert http.get(base).text.split() == names
        listing = http.get(base, params={"format": "json"}).json()
        assert [item["name"] for item in listing] == names
        assert listing[0]["bytes"] == 3 and listing[0]["hash"] == hashlib.md5(b"a/1").hexdigest()
        assert http.get(base, params={"prefix": "a/"}).text.split() == ["a/1", "a/2"]
        assert http.get(base, params={"delimiter": "/"}).text.split() == ["a/", "b/", "c", "d"]
        subdirs = http.get(base, params={"delimiter": "/", "format": "json"}).json()
        assert {"subdir": "a/"} in subdirs
        assert http.get(base, params={"marker": "b/1"}).text.split() == ["c", "d"]
        assert http.get(base, params={"end_marker": "b/1"}).text.split() == ["a/1", "a/2"]
        assert http.get(base, params={"limit": "2"}).text.split() == ["a/1", "a/2"]
        assert http.get(base, params={"reverse": "true"}).text.split() == names[::-1]
        xml = ElementTree.fromstring(http.get(base, params={"format": "xml"}).content)
        assert xml.tag == "container" and [e.findtext("name") for e in xml.findall("object")] == names
        assert http.get(base, params={"format": "yaml"}).status_code == 400
        assert http.get(base, params={"limit": "10001"}).status_code == 412
        empty = f"{proxy.account_url(alpha)}/{unique('empty')}"
        http.put(empty)
        assert http.get(empty).status_code == 204
        assert http.get(empty, params={"format": "json"}).json() == []


def test_account_listing_and_metadata(proxy: ProxyHarness) -> None:
    alpha = proxy.users["alpha"]
    base = proxy.account_url(alpha)
    name = unique("listed")
    with proxy.client(alpha) as http:
        assert http.put(f"{base}/{name}", headers={"X-Container-Meta-Owner": "me"}).status_code == 201
        assert name in http.get(base).text.split()
        assert name in [c["name"] for c in http.get(base, params={"format": "json"}).json()]
        head = http.head(base)
        assert head.status_code == 204 and int(head.headers["x-account-container-count"]) >= 1
        assert http.post(base, headers={"X-Account-Meta-Team": "blue"}).status_code == 204
        assert http.head(base).headers["x-account-meta-team"] == "blue"
        assert http.post(base, headers={"X-Remove-Account-Meta-Team": "x"}).status_code == 204
        assert "x-account-meta-team" not in http.head(base).headers
        assert http.head(f"{base}/{name}").headers["x-container-meta-owner"] == "me"


def test_container_delete_refuses_a_non_empty_container(proxy: ProxyHarness) -> None:
    alpha = proxy.users["alpha"]
    base = f"{proxy.account_url(alpha)}/{unique('c')}"
    with proxy.client(alpha) as http:
        http.put(base)
        http.put(f"{base}/o", content=b"x")
        assert http.delete(base).status_code == 409
        http.delete(f"{base}/o")
        assert http.delete(base).status_code == 204
        assert http.head(base).status_code == 404


def test_metadata_limits(proxy: ProxyHarness) -> None:
    alpha = proxy.users["alpha"]
    base = f"{proxy.account_url(alpha)}/{unique('c')}"
    with proxy.client(alpha) as http:
        http.put(base)
        too_long = http.put(f"{base}/o", content=b"x", headers={"X-Object-Meta-K": "v" * 257})
        assert too_long.status_code == 400


def test_copy_and_copy_from(proxy: ProxyHarness) -> None:
    alpha = proxy.users["alpha"]
    base = f"{proxy.account_url(alpha)}/{unique('c')}"
    other = f"{proxy.account_url(alpha)}/{unique('d')}"
    with proxy.client(alpha) as http:
        http.put(base)
        http.put(other)
        http.put(f"{base}/src", content=b"payload", headers={"X-Object-Meta-A": "1"})
        copied = http.request("COPY", f"{base}/src", headers={"Destination": f"{other.rsplit('/', 1)[1]}/dst"})
        assert copied.status_code == 201, copied.text
        assert copied.headers["x-copied-from"].endswith("/src")
        got = http.get(f"{other}/dst")
        assert got.content == b"payload" and got.headers["x-object-meta-a"] == "1"
        fresh = http.put(f"{base}/dst2", headers={"X-Copy-From": f"{base.rsplit('/', 1)[1]}/src",
                                                  "X-Fresh-Metadata": "true", "X-Object-Meta-B": "2",
                                                  "Content-Length": "0"})
        assert fresh.status_code == 201
        head = http.head(f"{base}/dst2")
        assert head.headers["x-object-meta-b"] == "2" and "x-object-meta-a" not in head.headers
        missing = http.put(f"{base}/dst3", headers={"X-Copy-From": f"{base.rsplit('/', 1)[1]}/nothing",
                                                    "Content-Length": "0"})
        assert missing.status_code == 404


def test_range_requests(proxy: ProxyHarness) -> None:
    alpha = proxy.users["alpha"]
    base = f"{proxy.account_url(alpha)}/{unique('c')}"
    data = bytes(range(256)) * 40
    with proxy.client(alpha) as http:
        http.put(base)
        http.put(f"{base}/o", content=data)
        one = http.get(f"{base}/o", headers={"Range": "bytes=10-19"})
        assert one.status_code == 206 and one.content == data[10:20]
        assert one.headers["content-range"] == f"bytes 10-19/{len(data)}"
        assert http.get(f"{base}/o", headers={"Range": "bytes=-5"}).content == data[-5:]
        assert http.get(f"{base}/o", headers={"Range": "bytes=10000-"}).content == data[10000:]
        many = http.get(f"{base}/o", headers={"Range": "bytes=0-1,100-102"})
        assert many.status_code == 206
        assert many.headers["content-type"].startswith("multipart/byteranges")
        assert int(many.headers["content-length"]) == len(many.content)
        assert b"Content-Range: bytes 0-1/10240\r\n\r\n" + data[0:2] in many.content
        assert b"Content-Range: bytes 100-102/10240\r\n\r\n" + data[100:103] in many.content
        assert http.get(f"{base}/o", headers={"Range": "bytes=20000-"}).status_code == 416


def test_conditional_requests(proxy: ProxyHarness) -> None:
    alpha = proxy.users["alpha"]
    base = f"{proxy.account_url(alpha)}/{unique('c')}"
    with proxy.client(alpha) as http:
        http.put(base)
        etag = http.put(f"{base}/o", content=b"x").headers["etag"]
        assert http.get(f"{base}/o", headers={"If-None-Match": f'"{etag}"'}).status_code == 304
        assert http.get(f"{base}/o", headers={"If-Match": '"nope"'}).status_code == 412
        assert http.get(f"{base}/o", headers={"If-Match": etag}).status_code == 200
        modified = http.head(f"{base}/o").headers["last-modified"]
        assert http.get(f"{base}/o", headers={"If-Modified-Since": modified}).status_code == 304
        assert http.get(f"{base}/o", headers={"If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}
                        ).status_code == 412


def test_delete_after_hides_the_object(proxy: ProxyHarness) -> None:
    alpha = proxy.users["alpha"]
    base = f"{proxy.account_url(alpha)}/{unique('c')}"
    with proxy.client(alpha) as http:
        http.put(base)
        assert http.put(f"{base}/o", content=b"x", headers={"X-Delete-After": "3"}).status_code == 201
        assert "x-delete-at" in http.head(f"{base}/o").headers
        assert http.put(f"{base}/p", content=b"x", headers={"X-Delete-At": "1000"}).status_code == 400
        time.sleep(4.1)
        assert http.get(f"{base}/o").status_code == 404


def test_info_lists_capabilities(proxy: ProxyHarness) -> None:
    with proxy.client() as http:
        info = http.get("/info").json()
    for section in ("swift", "slo", "tempurl", "bulk_delete", "object_versioning", "tempauth"):
        assert section in info
    assert json.dumps(info)


def test_paging_with_the_last_subdir_as_marker_moves_on(proxy: ProxyHarness) -> None:
    alpha = proxy.users["alpha"]
    base = f"{proxy.account_url(alpha)}/{unique('c')}"
    with proxy.client(alpha) as http:
        http.put(base)
        for name in ("d/a", "d/sub/b", "d/z"):
            http.put(f"{base}/{name}", content=b"x")
        params = {"prefix": "d/", "delimiter": "/", "format": "json"}
        assert http.get(base, params={**params, "marker": "d/sub/"}).json()[0]["name"] == "d/z"
