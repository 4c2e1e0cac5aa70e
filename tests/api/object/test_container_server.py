"""The container server: the container's life, object rows, and listings with every parameter."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from starlette.testclient import TestClient

from tests.api.object.conftest import stamp

C = "/d1/7/AUTH_a/photos"
NAMES = ["a.txt", "b/1.jpg", "b/2.jpg", "b/c/3.jpg", "c.txt", "d/4.jpg", "e.txt"]


@pytest.fixture
def filled(container_client: TestClient) -> TestClient:
    assert container_client.put(C, headers={"x-timestamp": stamp()}).status_code == 201
    for i, name in enumerate(NAMES):
        response = container_client.put(f"{C}/{name}", headers={
            "x-timestamp": stamp(), "x-size": str(10 * (i + 1)), "x-etag": f"etag{i}",
            "x-content-type": "image/jpeg"})
        assert response.status_code == 201
    return container_client


def names(client: TestClient, **params: str) -> list[str]:
    response = client.get(C, params={"format": "json", **params})
    assert response.status_code == 200, response.text
    return [item.get("name", item.get("subdir")) for item in response.json()]


def test_create_is_201_then_202_and_head_has_the_totals(filled: TestClient) -> None:
    assert filled.put(C, headers={"x-timestamp": stamp()}).status_code == 202
    head = filled.head(C)
    assert head.status_code == 204
    assert head.headers["x-container-object-count"] == str(len(NAMES))
    assert head.headers["x-container-bytes-used"] == str(sum(10 * (i + 1) for i in range(len(NAMES))))
    assert "x-backend-timestamp" in head.headers and "x-put-timestamp" in head.headers


def test_json_entries_have_the_swift_fields(filled: TestClient) -> None:
    first = filled.get(C, params={"format": "json", "limit": "1"}).json()[0]
    assert set(first) == {"name", "hash", "bytes", "content_type", "last_modified"}
    assert first == {**first, "name": "a.txt", "hash": "etag0", "bytes": 10, "content_type": "image/jpeg"}
    assert first["last_modified"][:2] == "20" and "T" in first["last_modified"]


def test_prefix_marker_end_marker_limit_reverse(filled: TestClient) -> None:
    assert names(filled) == NAMES
    assert names(filled, prefix="b/") == ["b/1.jpg", "b/2.jpg", "b/c/3.jpg"]
    assert names(filled, marker="b/2.jpg") == ["b/c/3.jpg", "c.txt", "d/4.jpg", "e.txt"]
    assert names(filled, end_marker="b/2.jpg") == ["a.txt", "b/1.jpg"]
    assert names(filled, limit="2") == ["a.txt", "b/1.jpg"]
    assert names(filled, reverse="true") == NAMES[::-1]
    assert names(filled, reverse="true", marker="c.txt", limit="2") == ["b/c/3.jpg", "b/2.jpg"]
    assert names(filled, reverse="true", end_marker="c.txt") == ["e.txt", "d/4.jpg"]


def test_delimiter_folds_names_into_subdirs(filled: TestClient) -> None:
    assert names(filled, delimiter="/") == ["a.txt", "b/", "c.txt", "d/", "e.txt"]
    assert names(filled, delimiter="/", prefix="b/") == ["b/1.jpg", "b/2.jpg", "b/c/"]
    assert names(filled, delimiter="/", reverse="true") == ["e.txt", "d/", "c.txt", "b/", "a.txt"]
    # Paging with the last subdir as marker does not list it again.
    assert names(filled, delimiter="/", marker="b/") == ["c.txt", "d/", "e.txt"]
    assert names(filled, delimiter="/", limit="2") == ["a.txt", "b/"]
    subdir = filled.get(C, params={"format": "json", "delimiter": "/", "prefix": "d"}).json()
    assert subdir == [{"subdir": "d/"}]


def test_plain_and_xml_formats(filled: TestClient) -> None:
    plain = filled.get(C)
    assert plain.status_code == 200 and plain.text.splitlines() == NAMES
    assert plain.headers["content-type"].startswith("text/plain")
    xml = filled.get(C, params={"format": "xml", "delimiter": "/"})
    assert xml.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(xml.content)
    assert root.tag == "container" and root.get("name") == "photos"
    assert [o.findtext("name") for o in root.iter("object")] == ["a.txt", "c.txt", "e.txt"]
    assert [s.get("name") for s in root.iter("subdir")] == ["b/", "d/"]
    assert filled.get(C, params={"prefix": "zzz"}).status_code == 204
    assert json.loads(filled.get(C, params={"prefix": "zzz", "format": "json"}).content) == []


def test_object_rows_follow_timestamps(filled: TestClient) -> None:
    newer = stamp(10)
    filled.put(f"{C}/a.txt", headers={"x-timestamp": newer, "x-size": "999", "x-etag": "new",
                                      "x-content-type": "text/plain"})
    filled.put(f"{C}/a.txt", headers={"x-timestamp": stamp(5), "x-size": "1", "x-etag": "old",
                                      "x-content-type": "text/plain"})
    assert filled.get(C, params={"format": "json", "limit": "1"}).json()[0]["bytes"] == 999
    assert filled.delete(f"{C}/a.txt", headers={"x-timestamp": stamp(20)}).status_code == 204
    assert "a.txt" not in names(filled)
    assert filled.head(C).headers["x-container-object-count"] == str(len(NAMES) - 1)


def test_delete_needs_an_empty_container(filled: TestClient) -> None:
    assert filled.delete(C, headers={"x-timestamp": stamp(1)}).status_code == 409
    for name in NAMES:
        filled.delete(f"{C}/{name}", headers={"x-timestamp": stamp(1)})
    deleted_at = stamp(2)
    assert filled.delete(C, headers={"x-timestamp": deleted_at}).status_code == 204
    gone = filled.get(C)
    assert gone.status_code == 404 and gone.headers["x-backend-timestamp"] == deleted_at
    assert filled.put(f"{C}/late", headers={"x-timestamp": stamp(3), "x-size": "1"}).status_code == 404
    assert filled.put(C, headers={"x-timestamp": stamp(4)}).status_code == 201  # made again


def test_metadata_sysmeta_and_acls(container_client: TestClient) -> None:
    container_client.put(C, headers={"x-timestamp": stamp(), "x-container-meta-color": "red",
                                     "x-container-read": ".r:*", "x-container-sysmeta-quota": "10"})
    container_client.post(C, headers={"x-timestamp": stamp(1), "x-container-meta-size": "big",
                                      "x-container-meta-color": ""})
    head = container_client.head(C).headers
    assert head["x-container-meta-size"] == "big" and "x-container-meta-color" not in head
    assert head["x-container-read"] == ".r:*" and head["x-container-sysmeta-quota"] == "10"


def test_missing_container_and_bad_parameters(container_client: TestClient) -> None:
    assert container_client.get(C).status_code == 404
    assert container_client.post(C, headers={"x-timestamp": stamp()}).status_code == 404
    assert container_client.put("/nodev/1/a/c", headers={"x-timestamp": stamp()}).status_code == 507
    container_client.put(C, headers={"x-timestamp": stamp()})
    assert container_client.get(C, params={"limit": "10001"}).status_code == 412
    assert container_client.get(C, params={"delimiter": "ab"}).status_code == 412


def test_a_directory_marker_object_is_listed_as_an_object(container_client: TestClient) -> None:
    container_client.put(C, headers={"x-timestamp": stamp()})
    for name in ("photos/", "photos/a.jpg", "z"):
        container_client.put(f"{C}/{name}", headers={"x-timestamp": stamp(), "x-size": "0"})
    items = container_client.get(C, params={"format": "json", "delimiter": "/"}).json()
    assert [i.get("name", i.get("subdir")) for i in items] == ["photos/", "photos/", "z"]
    assert "name" in items[0] and "subdir" in items[1]
