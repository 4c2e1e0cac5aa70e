"""Interoperable import with glance-direct: stage the data, then import it into the store."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests.api.image.test_data import member, new_image, payload, put, qcow2_file, store_files, stored
from tests.conftest import ImageHarness


@pytest.fixture
def alice(image: ImageHarness) -> tuple[dict[str, str], str]:
    return member(image)


def start_import(image: ImageHarness, headers: dict[str, str], image_id: str, method: str = "glance-direct") -> Any:
    return image.client.post(f"/v2/images/{image_id}/import", json={"method": {"name": method}}, headers=headers)


def test_import_discovery_lists_glance_direct_and_the_store(image: ImageHarness, alice: Any) -> None:
    headers, _ = alice
    info = image.client.get("/v2/info/import", headers=headers)
    assert info.status_code == 200
    assert info.json()["import-methods"]["value"] == ["glance-direct"]
    assert info.json()["import-methods"]["type"] == "array"
    stores = image.client.get("/v2/info/stores", headers=headers).json()["stores"]
    assert [(s["id"], s["default"]) for s in stores] == [("file", True)]


def test_glance_direct_stages_then_imports_into_the_store(image: ImageHarness, alice: Any) -> None:
    headers, project = alice
    data = payload(2 * 1024 * 1024 + 5)
    image_id = new_image(image, project)
    assert put(image, headers, image_id, data, kind="stage").status_code == 204
    staged = stored(image, image_id)
    assert (staged.status, staged.size, staged.location) == ("uploading", len(data), None)
    assert store_files(image) == [image_id]  # under staging/
    # The import answers 202 and finishes in the background (TestClient waits for it).
    assert start_import(image, headers, image_id).status_code == 202
    row = stored(image, image_id)
    assert (row.status, row.size, row.virtual_size) == ("active", len(data), len(data))
    assert row.checksum == hashlib.md5(data).hexdigest()
    assert row.os_hash_value == hashlib.sha512(data).hexdigest()
    assert image.client.get(f"/v2/images/{image_id}/file", headers=headers).content == data
    root: Path = image.service.store.root  # type: ignore[attr-defined]
    assert [p.name for p in root.iterdir() if p.is_file()] == [image_id]
    assert list((root / "staging").iterdir()) == []


def test_import_needs_staged_data_and_a_known_method(image: ImageHarness, alice: Any) -> None:
    headers, project = alice
    image_id = new_image(image, project)
    assert start_import(image, headers, image_id).status_code == 409
    put(image, headers, image_id, b"staged", kind="stage")
    unknown = start_import(image, headers, image_id, method="web-download")
    assert unknown.status_code == 400 and unknown.json()["code"] == 400
    assert image.client.post(f"/v2/images/{image_id}/import", json={}, headers=headers).status_code == 400
    assert stored(image, image_id).status == "uploading"
    assert put(image, headers, image_id, b"again", kind="stage").status_code == 409


def test_only_the_owner_stages_or_imports(image: ImageHarness, alice: Any) -> None:
    headers, project = alice
    mallory, _ = member(image, "mallory", "mallory-project")
    image_id = new_image(image, project)
    assert put(image, mallory, image_id, b"evil", kind="stage").status_code == 404
    put(image, headers, image_id, b"staged", kind="stage")
    assert start_import(image, mallory, image_id).status_code == 404
    assert stored(image, image_id).status == "uploading"


def test_a_failed_import_requeues_the_image_and_removes_the_staged_data(
        image: ImageHarness, alice: Any, tmp_path: Path) -> None:
    headers, project = alice
    image_id = new_image(image, project, disk_format="raw")
    assert put(image, headers, image_id, qcow2_file(tmp_path), kind="stage").status_code == 204
    assert start_import(image, headers, image_id).status_code == 202
    row = stored(image, image_id)
    assert (row.status, row.size, row.checksum, row.location) == ("queued", None, None, None)
    assert store_files(image) == []
