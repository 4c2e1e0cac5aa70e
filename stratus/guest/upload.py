"""`upload()`: the guest image into the image service (Glance v2) as `stratus-guest`, once per recipe."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from stratus.core.errors import StratusError
from stratus.guest.image import GuestImage

IMAGE_NAME = "stratus-guest"
# The custom property that tells which recipe an uploaded guest was built from.
RECIPE_PROPERTY = "stratus_guest_recipe"
_CHUNK = 1024 * 1024


class GuestUploadError(StratusError):
    """The image service refused the guest image."""


def upload(image_api_url: str, token: str, guest: GuestImage, *, visibility: str = "public",
           http: httpx.Client | None = None) -> str:
    """The id of the `stratus-guest` image for this recipe, uploading kernel, ramdisk and disk if needed.

    The kernel goes up as an `aki` image and the initrd as an `ari` image; the disk (qcow2/bare)
    names them in `kernel_id` and `ramdisk_id`, with the command line and machine type the guest
    boots with, the way a driver that does direct kernel boot reads them.
    """
    client = http or httpx.Client(timeout=300)
    base = image_api_url.rstrip("/")
    headers = {"X-Auth-Token": token}
    try:
        existing = _find(client, base, headers, guest.recipe_hash)
        if existing is not None:
            return existing
        made: list[str] = []
        try:
            common = {"visibility": visibility, RECIPE_PROPERTY: guest.recipe_hash}
            kernel = _create(client, base, headers, made, guest.kernel, {
                "name": f"{IMAGE_NAME}-kernel", "disk_format": "aki", "container_format": "aki", **common})
            ramdisk = _create(client, base, headers, made, guest.initrd, {
                "name": f"{IMAGE_NAME}-ramdisk", "disk_format": "ari", "container_format": "ari", **common})
            return _create(client, base, headers, made, guest.disk, {
                "name": IMAGE_NAME, "disk_format": "qcow2", "container_format": "bare", "kernel_id": kernel,
                "ramdisk_id": ramdisk, "os_command_line": guest.cmdline, "hw_machine_type": guest.machine,
                "hw_rng_model": "virtio", "os_distro": "stratus-guest", **common})
        except BaseException:
            for image_id in made:  # no half-uploaded guest is left behind
                client.delete(f"{base}/v2/images/{image_id}", headers=headers)
            raise
    finally:
        if http is None:
            client.close()


def _find(client: httpx.Client, base: str, headers: dict[str, str], recipe: str) -> str | None:
    response = client.get(f"{base}/v2/images", params={"name": IMAGE_NAME}, headers=headers)
    _check(response, "list images")
    for image in response.json().get("images", []):
        if image.get(RECIPE_PROPERTY) == recipe and image.get("status") == "active":
            return str(image["id"])
    return None


def _create(client: httpx.Client, base: str, headers: dict[str, str], made: list[str], path: Path,
            fields: dict[str, Any]) -> str:
    response = client.post(f"{base}/v2/images", json=fields, headers=headers)
    _check(response, f"create image {fields['name']}")
    image_id = str(response.json()["id"])
    made.append(image_id)
    response = client.put(f"{base}/v2/images/{image_id}/file", content=_chunks(path),
                          headers={**headers, "Content-Type": "application/octet-stream"})
    _check(response, f"upload {path.name}")
    return image_id


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk


def _check(response: httpx.Response, what: str) -> None:
    if response.status_code >= 400:
        raise GuestUploadError(f"the image service refused to {what}: {response.status_code} {response.text[:300]}")
