"""Image API discovery is public; everything else needs a valid token."""

from __future__ import annotations

from tests.conftest import ImageHarness


def test_versions_are_public_and_list_v2(image: ImageHarness) -> None:
    root = image.client.get("/")
    assert root.status_code == 300
    ids = [v["id"] for v in root.json()["versions"]]
    assert ids[0] == "v2.16" and "v2.0" in ids
    assert image.client.get("/versions").status_code == 200


def test_requests_without_a_valid_token_are_401(image: ImageHarness) -> None:
    assert image.client.get("/v2/images").status_code == 401
    assert image.client.get("/v2/images", headers={"X-Auth-Token": "bogus"}).status_code == 401
    assert image.client.get("/v2/images", headers=image.as_admin()).status_code == 200
