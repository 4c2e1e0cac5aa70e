"""Static and dynamic large objects, bulk delete, versioning and quotas."""

from __future__ import annotations

import hashlib
import json
import os

from tests.api.object_proxy.conftest import ProxyHarness, unique


def _segments(http, base: str, count: int, size: int) -> list[bytes]:  # type: ignore[no-untyped-def]
    parts = [os.urandom(size) for _ in range(count)]
    for index, part in enumerate(parts):
        assert http.put(f"{base}/seg/{index:04d}", content=part).status_code == 201
    return parts


def test_slo_put_get_range_head_manifest_and_delete(proxy: ProxyHarness) -> None:
    alpha = proxy.users["alpha"]
    name = unique("slo")
    base = f"{proxy.account_url(alpha)}/{name}"
    with proxy.client(alpha) as http:
        http.put(base)
        parts = _segments(http, base, 3, 1000)
        manifest = [{"path": f"/{name}/seg/{i:04d}", "etag": hashlib.md5(p).hexdigest(), "size_bytes": len(p)}
                    for i, p in enumerate(parts)]
        put = http.put(f"{base}/big", params={"multipart-manifest": "put"}, content=json.dumps(manifest))
        assert put.status_code == 201, put.text
        expected_etag = hashlib.md5("".join(m["etag"] for m in manifest).encode()).hexdigest()
        assert put.headers["etag"].strip('"') == expected_etag
        got = http.get(f"{base}/big")
        assert got.content == b"".join(parts)
        assert got.headers["x-static-large-object"] == "True"
        head = http.head(f"{base}/big")
        assert head.headers["content-length"] == "3000" and head.headers["etag"] == f'"{expected_etag}"'
        ranged = http.get(f"{base}/big", headers={"Range": "bytes=990-2010"})
        assert ranged.status_code == 206 and ranged.content == b"".join(parts)[990:2011]
        raw = http.get(f"{base}/big", params={"multipart-manifest": "get"}).json()
        assert [item["name"] for item in raw] == [m["path"] for m in manifest]
        put_form = http.get(f"{base}/big", params={"multipart-manifest": "get", "format": "raw"}).json()
        assert put_form[0]["path"] == manifest[0]["path"] and put_form[0]["size_bytes"] == 1000
        gone = http.delete(f"{base}/big", params={"multipart-manifest": "delete"},
                           headers={"Accept": "application/json"})
        assert gone.status_code == 200 and gone.json()["Number Deleted"] == 4
        assert http.get(f"{base}/seg/0000").status_code == 404
        assert http.get(f"{base}/big").status_code == 404


def test_slo_refuses_bad_segments(proxy: ProxyHarness) -> None:
    alpha = proxy.users["alpha"]
    name = unique("slo")
    base = f"{proxy.account_url(alpha)}/{name}"
    with proxy.client(alpha) as http:
        http.put(base)
        _segments(http, base, 1, 100)
        wrong_etag = [{"path": f"/{name}/seg/0000", "etag": "0" * 32, "size_bytes": 100}]
        assert http.put(f"{base}/m", params={"multipart-manifest": "put"}, content=json.dumps(wrong_etag)
                        ).status_code == 400
        wrong_size = [{"path": f"/{name}/seg/0000", "size_bytes": 99}]
        assert http.put(f"{base}/m", params={"multipart-manifest": "put"}, content=json.dumps(wrong_size)
                        ).status_code == 400
        missing = [{"path": f"/{name}/seg/9999"}]
        assert http.put(f"{base}/m", params={"multipart-manifest": "put"}, content=json.dumps(missing)
                        ).status_code == 400
        assert http.put(f"{base}/m", params={"multipart-manifest": "put"}, content=b"not json").status_code == 400
        assert http.head(f"{base}/m").status_code == 404


def test_slo_segment_ranges_and_copy(proxy: ProxyHarness) -> None:
    alpha = proxy.users["alpha"]
    name = unique("slo")
    base = f"{proxy.account_url(alpha)}/{name}"
    with proxy.client(alpha) as http:
        http.put(base)
        parts = _segments(http, base, 2, 100)
        manifest = [{"path": f"/{name}/seg/0000", "range": "10-19"}, {"path": f"/{name}/seg/0001", "range": "-5"}]
        assert http.put(f"{base}/m", params={"multipart-manifest": "put"}, content=json.dumps(manifest)
                        ).status_code == 201
        assert http.get(f"{base}/m").content == parts[0][10:20] + parts[1][-5:]
        copied = http.put(f"{base}/flat", headers={"X-Copy-From": f"{name}/m", "Content-Length": "0"})
        assert copied.status_code == 201
        flat = http.get(f"{base}/flat")
        assert flat.content == parts[0][10:20] + parts[1][-5:] and "x-static-large-object" not in flat.headers


def test_dlo_concatenates_segments_by_prefix(proxy: ProxyHarness) -> None:
    alpha = proxy.users["alpha"]
    name = unique("dlo")
    base = f"{proxy.account_url(alpha)}/{name}"
    with proxy.client(alpha) as http:
        http.put(base)
        parts = _segments(http, base, 3, 500)
        assert http.put(f"{base}/manifest", content=b"", headers={"X-Object-Manifest": f"{name}/seg/"}
                        ).status_code == 201
        got = http.get(f"{base}/manifest")
        assert got.content == b"".join(parts)
        assert got.headers["x-object-manifest"] == f"{name}/seg/"
        expected = hashlib.md5("".join(hashlib.md5(p).hexdigest() for p in parts).encode()).hexdigest()
        assert got.headers["etag"] == f'"{expected}"'
        assert http.get(f"{base}/manifest", headers={"Range": "bytes=499-500"}).content == parts[0][-1:] + parts[1][:1]
        assert http.head(f"{base}/manifest").headers["content-length"] == "1500"
        _segments(http, base, 4, 500)  # a segment added later shows up
        assert int(http.head(f"{base}/manifest").headers["content-length"]) == 2000


def test_bulk_delete(proxy: ProxyHarness) -> None:
    alpha = proxy.users["alpha"]
    name = unique("bulk")
    base = f"{proxy.account_url(alpha)}/{name}"
    with proxy.client(alpha) as http:
        http.put(base)
        for obj in ("a", "b c"):
            http.put(f"{base}/{obj}", content=b"x")
        body = f"/{name}/a\n/{name}/b%20c\n/{name}/missing\n/{name}\n"
        result = http.post(proxy.account_url(alpha), params={"bulk-delete": ""}, content=body,
                           headers={"Accept": "application/json", "Content-Type": "text/plain"})
        assert result.status_code == 200
        doc = result.json()
        assert doc["Number Deleted"] == 3 and doc["Number Not Found"] == 1 and doc["Errors"] == []
        assert http.head(base).status_code == 404


def test_versioning_keeps_old_versions(proxy: ProxyHarness) -> None:
    alpha = proxy.users["alpha"]
    name = unique("ver")
    base = f"{proxy.account_url(alpha)}/{name}"
    with proxy.client(alpha) as http:
        assert http.put(base, headers={"X-Versions-Enabled": "true"}).status_code == 201
        assert http.head(base).headers["x-versions-enabled"] == "True"
        first = http.put(f"{base}/doc", content=b"one").headers["x-object-version-id"]
        second = http.put(f"{base}/doc", content=b"two").headers["x-object-version-id"]
        assert first != second
        assert http.get(f"{base}/doc").content == b"two"
        assert http.get(f"{base}/doc", params={"version_id": first}).content == b"one"
        versions = http.get(base, params={"versions": "", "format": "json"}).json()
        assert [(v["version_id"], v["is_latest"]) for v in versions] == [(second, True), (first, False)]
        assert http.delete(f"{base}/doc").status_code == 204
        assert http.get(f"{base}/doc").status_code == 404
        assert http.get(f"{base}/doc", params={"version_id": second}).content == b"two"
        assert len(http.get(base, params={"versions": "", "format": "json"}).json()) == 3
        marker = http.get(base, params={"versions": "", "format": "json"}).json()[0]["version_id"]
        assert http.delete(f"{base}/doc", params={"version_id": marker}).status_code == 204
        assert http.get(f"{base}/doc").content == b"two"  # the newest remaining version is current again
        assert http.delete(f"{base}/doc", params={"version_id": second}).status_code == 204
        assert http.get(f"{base}/doc").content == b"one"


def test_container_and_account_quotas(proxy: ProxyHarness) -> None:
    alpha = proxy.users["alpha"]
    base = f"{proxy.account_url(alpha)}/{unique('quota')}"
    cache = proxy.app.proxy.cluster.info
    ttl, cache.ttl = cache.ttl, 60.0  # with cached container info, as `stratus up` runs, each write still counts
    try:
        with proxy.client(alpha) as http:
            http.put(base, headers={"X-Container-Meta-Quota-Bytes": "10", "X-Container-Meta-Quota-Count": "2"})
            assert http.put(f"{base}/a", content=b"12345").status_code == 201
            assert http.put(f"{base}/b", content=b"123456").status_code == 413
            assert http.put(f"{base}/b", content=iter([b"123", b"456"])).status_code == 413  # chunked
            assert http.put(f"{base}/b", content=b"1").status_code == 201
            assert http.put(f"{base}/c", content=b"1").status_code == 413
            # only a reseller admin sets account quotas
            assert http.post(proxy.account_url(alpha), headers={"X-Account-Meta-Quota-Bytes": "1"}).status_code == 403
    finally:
        cache.ttl = ttl


def test_versions_containers_stay_out_of_the_account_listing(proxy: ProxyHarness) -> None:
    alpha = proxy.users["alpha"]
    name = unique("hidden")
    with proxy.client(alpha) as http:
        assert http.put(f"{proxy.account_url(alpha)}/{name}", headers={"X-Versions-Enabled": "true"}
                        ).status_code == 201
        listed = http.get(proxy.account_url(alpha)).text.split()
        assert name in listed and f".versions-{name}" not in listed
        assert http.put(f"{proxy.account_url(alpha)}/.versions-mine").status_code == 400
