"""openstacksdk's image proxy against a running `stratus up`: upload and download round trips."""

from __future__ import annotations

import hashlib
from pathlib import Path

import openstack
import pytest
from openstack.connection import Connection

from tests.clients.conftest import unique
from tests.clients.test_image_cli import VIRTUAL_SIZE, make_qcow2

pytestmark = [pytest.mark.filterwarnings("ignore::openstack.warnings._RemovedInSDKWarning"),
              pytest.mark.filterwarnings("ignore::openstack.warnings.OpenStackDeprecationWarning")]


def test_sdk_create_image_uploads_and_download_image_round_trips(conn: Connection, tmp_path: Path) -> None:
    path = make_qcow2(tmp_path / "sdk.qcow2")
    data = path.read_bytes()
    name = unique("sdk-img")
    # validate_checksum: the SDK reads the image back and compares the server's checksum with its own md5.
    image = conn.image.create_image(name=name, filename=str(path), disk_format="qcow2", container_format="bare",
                                    validate_checksum=True)
    fetched = conn.image.get_image(image.id)
    assert fetched.name == name and fetched.status == "active"
    assert fetched.size == len(data) and fetched.virtual_size == VIRTUAL_SIZE
    assert fetched.checksum == hashlib.md5(data).hexdigest()
    assert fetched.hash_algo == "sha512" and fetched.hash_value == hashlib.sha512(data).hexdigest()
    # The SDK keeps its own hashes as properties; they come back as given.
    assert fetched.properties["owner_specified.openstack.sha256"] == hashlib.sha256(data).hexdigest()

    out = tmp_path / "out.qcow2"
    conn.image.download_image(image.id, output=str(out))  # the SDK checks Content-MD5 against the bytes
    assert out.read_bytes() == data
    streamed = conn.image.download_image(image.id, stream=True)
    assert b"".join(streamed.iter_content(chunk_size=65536)) == data

    conn.image.delete_image(image.id)
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.image.get_image(image.id)
