"""The typed client compute uses: the attach flow and create from the service user's side."""

from __future__ import annotations

from stratus.core.service_client import ServiceAuth
from stratus.volume.client import VolumeClient
from tests.api.volume.helpers import create_volume, member_headers, wait_status
from tests.conftest import SERVICE_PASSWORD, VolumeHarness


def test_compute_attaches_and_detaches_a_members_volume_with_its_service_user(volume: VolumeHarness) -> None:
    headers = member_headers(volume)
    volume_id = create_volume(volume, headers, size=1)["id"]
    wait_status(volume, headers, f"/v3/volumes/{volume_id}", "available")
    auth = ServiceAuth("http://identity", "nova", SERVICE_PASSWORD, http=volume.identity.client)
    client = VolumeClient("http://volume", auth, http=volume.client)
    assert client.get_volume(volume_id)["status"] == "available"
    attachment = client.reserve_attachment(volume_id, "5b0c4a52-0d0e-4d7b-8a8e-1f1b0e6a9c33")
    connected = client.connect_attachment(attachment["id"], {"host": "storage-1"})
    assert connected["connection_info"]["driver_volume_type"] == "local"
    client.complete_attachment(attachment["id"])
    assert client.get_volume(volume_id)["status"] == "in-use"
    client.delete_attachment(attachment["id"])
    assert client.get_volume(volume_id)["status"] == "available"
