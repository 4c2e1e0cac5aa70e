"""The typed client other services (compute) use to reach the image API."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from stratus.core.service_client import ServiceClient


class ImageClient(ServiceClient):
    def get_image(self, image_id: str, token: str | None = None) -> dict[str, Any]:
        """The image as `token`'s owner sees it (404 when it may not), or as the service sees it."""
        return self.json("GET", f"/v2/images/{image_id}", token=token)  # type: ignore[no-any-return]

    def create_image(self, fields: dict[str, Any], token: str | None = None) -> dict[str, Any]:
        return self.json("POST", "/v2/images", json=fields, token=token)  # type: ignore[no-any-return]

    def set_formats(self, image_id: str, disk_format: str, container_format: str, token: str | None = None) -> None:
        """Name the formats of a queued image before its data is uploaded."""
        patch = [{"op": "replace", "path": "/disk_format", "value": disk_format},
                 {"op": "replace", "path": "/container_format", "value": container_format}]
        self.request("PATCH", f"/v2/images/{image_id}", token=token, json=patch,
                     headers={"Content-Type": "application/openstack-images-v2.1-json-patch"})

    def upload(self, image_id: str, chunks: Iterable[bytes], token: str | None = None) -> None:
        self.request("PUT", f"/v2/images/{image_id}/file", token=token, content=chunks,
                     headers={"Content-Type": "application/octet-stream"})

    def download(self, image_id: str, token: str | None = None) -> Iterable[bytes]:
        with self.http.stream("GET", f"{self.url}/v2/images/{image_id}/file",
                              headers={"X-Auth-Token": token or self.auth.token()}) as response:
            response.raise_for_status()
            yield from response.iter_bytes()

    def delete_image(self, image_id: str, token: str | None = None) -> None:
        self.request("DELETE", f"/v2/images/{image_id}", token=token)
