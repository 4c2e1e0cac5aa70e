"""Image data: upload and download stream through the store, hashed, inspected, limited, and an
upload that fails for any reason leaves the image queued with nothing kept."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

from stratus.image.models import Image
from tests.api.identity.helpers import MEMBER_PASSWORD, add_member
from tests.conftest import ImageHarness, make_image

OCTETS = {"Content-Type": "application/octet-stream"}


def payload(size: int) -> bytes:
    """Deterministic bytes no format inspector mistakes for anything but raw."""
    return (bytes(range(1, 256)) * (size // 255 + 1))[:size]


def member(image: ImageHarness, name: str = "alice", project: str = "alpha") -> tuple[dict[str, str], str]:
    """Headers of a non-admin member of a new project, and that project's id."""
    _, project_id = add_member(image.identity, name, project)
    return {"X-Auth-Token": image.identity.token(name, MEMBER_PASSWORD, project)}, project_id


def new_image(image: ImageHarness, owner: str, **fields: Any) -> str:
    """A queued private image inserted directly (the images API is tested elsewhere)."""
    fields = {"disk_format": "raw", "container_format": "bare", "status": "queued", "visibility": "private",
              **fields}
    with image.service.db.transaction() as session:
        row = Image(owner=owner, **fields)
        session.add(row)
        session.flush()
        return row.id


def stored(image: ImageHarness, image_id: str) -> Image:
    with image.service.db.transaction() as session:
        row = session.get(Image, image_id)
        assert row is not None
        return row


def store_files(image: ImageHarness) -> list[str]:
    """Every file in the store and staging directories, temporary ones included."""
    root: Path = image.service.store.root  # type: ignore[attr-defined]
    return sorted(p.name for p in root.rglob("*") if p.is_file())


def put(image: ImageHarness, headers: dict[str, str], image_id: str, data: bytes, kind: str = "file") -> Any:
    return image.client.put(f"/v2/images/{image_id}/{kind}", content=data, headers={**headers, **OCTETS})


def qcow2_file(tmp_path: Path) -> bytes:
    path = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "1M"], check=True)
    return path.read_bytes()


@pytest.fixture
def alice(image: ImageHarness) -> tuple[dict[str, str], str]:
    return member(image)


def test_upload_then_download_is_byte_identical_with_correct_hashes(image: ImageHarness, alice: Any) -> None:
    headers, project = alice
    data = payload(3 * 1024 * 1024 + 17)
    image_id = new_image(image, project)
    assert put(image, headers, image_id, data).status_code == 204
    row = stored(image, image_id)
    assert (row.status, row.size, row.virtual_size) == ("active", len(data), len(data))
    assert row.checksum == hashlib.md5(data).hexdigest()
    assert (row.os_hash_algo, row.os_hash_value) == ("sha512", hashlib.sha512(data).hexdigest())
    got = image.client.get(f"/v2/images/{image_id}/file", headers=headers)
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["content-md5"] == row.checksum
    assert got.headers["content-length"] == str(len(data))
    assert got.headers["content-type"] == "application/octet-stream"
    assert store_files(image) == [image_id]


def test_single_ranges_answer_206_and_impossible_ones_416(image: ImageHarness, alice: Any) -> None:
    headers, project = alice
    data = payload(5000)
    image_id = new_image(image, project)
    put(image, headers, image_id, data)
    url = f"/v2/images/{image_id}/file"
    for spec, expected in (("bytes=10-19", data[10:20]), ("bytes=4990-", data[4990:]),
                           ("bytes=-7", data[-7:]), ("bytes=4995-9999", data[4995:]), ("bytes=-99999", data)):
        got = image.client.get(url, headers={**headers, "Range": spec})
        assert got.status_code == 206, spec
        assert got.content == expected, spec
        start = len(data) - len(expected) if spec.startswith("bytes=-") else int(spec[6:].split("-")[0])
        assert got.headers["content-range"] == f"bytes {start}-{start + len(expected) - 1}/5000"
    for spec in ("bytes=5000-", "bytes=-0", "bytes=20-10", "bytes=0-1,5-6"):
        got = image.client.get(url, headers={**headers, "Range": spec})
        assert got.status_code == 416, spec
        assert got.json()["code"] == 416
    assert image.client.get(url, headers={**headers, "Range": "items=0-1"}).content == data


def test_download_before_any_data_is_204(image: ImageHarness, alice: Any) -> None:
    headers, project = alice
    image_id = new_image(image, project)
    got = image.client.get(f"/v2/images/{image_id}/file", headers=headers)
    assert got.status_code == 204 and got.content == b""


def test_a_second_upload_is_409_and_keeps_the_first(image: ImageHarness, alice: Any) -> None:
    headers, project = alice
    image_id = new_image(image, project)
    put(image, headers, image_id, b"first")
    again = put(image, headers, image_id, b"second")
    assert again.status_code == 409
    assert again.json()["code"] == 409
    assert image.client.get(f"/v2/images/{image_id}/file", headers=headers).content == b"first"


def test_another_project_can_neither_upload_nor_download(image: ImageHarness, alice: Any) -> None:
    headers, project = alice
    mallory, _ = member(image, "mallory", "mallory-project")
    image_id = new_image(image, project)
    refused = put(image, mallory, image_id, b"evil")
    assert refused.status_code == 404
    assert refused.json()["message"] == f"No image found with ID {image_id}"
    assert stored(image, image_id).status == "queued"
    put(image, headers, image_id, b"good")
    assert image.client.get(f"/v2/images/{image_id}/file", headers=mallory).status_code == 404


def test_public_image_of_another_project_is_readable_but_not_writable(image: ImageHarness, alice: Any) -> None:
    headers, _ = alice
    admin_image = new_image(image, "some-admin-project", visibility="public")
    assert put(image, headers, admin_image, b"x").status_code == 403
    assert put(image, image.as_admin(), admin_image, b"public data").status_code == 204
    assert image.client.get(f"/v2/images/{admin_image}/file", headers=headers).content == b"public data"


def test_upload_needs_formats_and_octet_stream(image: ImageHarness, alice: Any) -> None:
    headers, project = alice
    no_format = new_image(image, project, disk_format=None)
    assert put(image, headers, no_format, b"data").status_code == 400
    assert stored(image, no_format).status == "queued"
    image_id = new_image(image, project)
    wrong_type = image.client.put(f"/v2/images/{image_id}/file", content=b"{}",
                                  headers={**headers, "Content-Type": "application/json"})
    assert wrong_type.status_code == 415
    assert stored(image, image_id).status == "queued"


def test_deactivated_image_downloads_for_admins_only(image: ImageHarness, alice: Any) -> None:
    headers, project = alice
    image_id = new_image(image, project)
    put(image, headers, image_id, b"data")
    with image.service.db.transaction() as session:
        row = session.get(Image, image_id)
        assert row is not None
        row.status = "deactivated"
    assert image.client.get(f"/v2/images/{image_id}/file", headers=headers).status_code == 403
    assert image.client.get(f"/v2/images/{image_id}/file", headers=image.as_admin()).content == b"data"


def test_qcow2_declared_raw_is_400_and_nothing_is_kept(image: ImageHarness, alice: Any, tmp_path: Path) -> None:
    headers, project = alice
    image_id = new_image(image, project, disk_format="raw")
    refused = put(image, headers, image_id, qcow2_file(tmp_path))
    assert refused.status_code == 400, refused.text
    row = stored(image, image_id)
    assert (row.status, row.size, row.checksum, row.location) == ("queued", None, None, None)
    assert store_files(image) == []
    # The real format is accepted once declared.
    qcow2 = new_image(image, project, disk_format="qcow2")
    assert put(image, headers, qcow2, qcow2_file(tmp_path)).status_code == 204
    assert stored(image, qcow2).virtual_size == 1024 * 1024


@pytest.fixture
def limited(image: ImageHarness, database_url: str) -> Any:
    """The image API with a 10 000-byte project quota and 6 000-byte images at most."""
    harness = make_image(image.identity, database_url, quota_bytes=10_000, max_image_size=6_000)
    yield harness
    harness.client.close()
    harness.service.db.dispose()


def test_uploads_past_the_quota_or_the_size_limit_are_413_and_nothing_is_kept(limited: ImageHarness) -> None:
    headers, project = member(limited)
    first = new_image(limited, project)
    assert put(limited, headers, first, payload(6_000)).status_code == 204
    too_big = new_image(limited, project)
    assert put(limited, headers, too_big, payload(6_001)).status_code == 413
    # 6 000 used: 4 001 more crosses the 10 000-byte quota, 4 000 fits.
    refused = put(limited, headers, too_big, payload(4_001))
    assert refused.status_code == 413 and refused.json()["code"] == 413
    assert stored(limited, too_big).status == "queued"
    assert store_files(limited) == [first]
    assert put(limited, headers, too_big, payload(4_000)).status_code == 204


def test_chunked_upload_past_the_limit_is_cut_off(limited: ImageHarness) -> None:
    headers, project = member(limited)
    image_id = new_image(limited, project)

    def chunks() -> Any:
        for _ in range(10):
            yield payload(1000)

    refused = limited.client.put(f"/v2/images/{image_id}/file", content=chunks(), headers={**headers, **OCTETS})
    assert refused.status_code == 413
    assert stored(limited, image_id).status == "queued"
    assert store_files(limited) == []


def send_then_vanish(image: ImageHarness, headers: dict[str, str], path: str, chunks: list[bytes]) -> list[Any]:
    """Drive the ASGI app as a server would for a client that sends `chunks` and then disconnects."""
    messages = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "PUT", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in {**headers, **OCTETS}.items()]
             + [(b"host", b"testserver"), (b"transfer-encoding", b"chunked")],
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}
    anyio.run(image.client.app, scope, receive, send)
    return sent


@pytest.mark.parametrize("kind", ["file", "stage"])
def test_a_client_leaving_mid_upload_leaves_the_image_queued_and_nothing_kept(
        image: ImageHarness, alice: Any, kind: str) -> None:
    headers, project = alice
    image_id = new_image(image, project)
    sent = send_then_vanish(image, headers, f"/v2/images/{image_id}/{kind}", [payload(700_000)] * 3)
    assert sent[0]["status"] == 400
    row = stored(image, image_id)
    assert (row.status, row.size, row.location) == ("queued", None, None)
    assert store_files(image) == []
    # The image takes a complete upload afterwards.
    assert put(image, headers, image_id, b"complete").status_code == 204


def _malicious_images(tmp_path: Path) -> dict[str, tuple[str, bytes]]:
    """Known attacks on clouds, each with the disk_format it is declared as."""
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "1M"], check=True)
    child = tmp_path / "child.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(child)],
                   check=True)
    external = tmp_path / "external.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o",
                    f"data_file={tmp_path / 'data.raw'},data_file_raw=on", str(external), "1M"], check=True)
    flat_extent = (b'# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n'
                   b'createType="monolithicFlat"\nRW 2048 FLAT "/etc/shadow" 0\n')
    return {"backing file": ("qcow2", child.read_bytes()), "external data file": ("qcow2", external.read_bytes()),
            "vmdk extent on another file": ("vmdk", flat_extent)}


def test_malicious_images_are_400_and_leave_nothing(image: ImageHarness, alice: Any, tmp_path: Path) -> None:
    headers, project = alice
    for attack, (disk_format, data) in _malicious_images(tmp_path).items():
        image_id = new_image(image, project, disk_format=disk_format)
        refused = put(image, headers, image_id, data)
        assert refused.status_code == 400, (attack, refused.text)
        assert stored(image, image_id).status == "queued", attack
        assert store_files(image) == [], attack
