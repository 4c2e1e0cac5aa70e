"""The typed client compute uses to reach the block storage API (the attach flow, boot from volume).

Compute's part, still to do: `server add volume` = `reserve_attachment` (no connector) ->
`connect_attachment` with its connector (`{"host": <compute host>}`) -> hot-plug the
`connection_info["data"]["device_path"]` (driver_volume_type `local`) with QMP blockdev-add +
device_add -> `complete_attachment`; `server remove volume` = device_del -> `delete_attachment`.
Boot from volume: `create_volume(imageRef=..., size=...)`, wait for `available`, then the same.
"""

from __future__ import annotations

from typing import Any

from stratus.core.service_client import ServiceClient

# The attachments API and its os-complete action need these microversions.
ATTACHMENTS_VERSION = "volume 3.44"


class VolumeClient(ServiceClient):
    def _versioned(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"OpenStack-API-Version": ATTACHMENTS_VERSION, **(kwargs.pop("headers", None) or {})}
        return self.json(method, path, headers=headers, **kwargs)

    def get_volume(self, volume_id: str, token: str | None = None) -> dict[str, Any]:
        return self._versioned("GET", f"/v3/volumes/{volume_id}", token=token)["volume"]  # type: ignore[no-any-return]

    def create_volume(self, fields: dict[str, Any], token: str | None = None) -> dict[str, Any]:
        return self._versioned("POST", "/v3/volumes", json={"volume": fields},  # type: ignore[no-any-return]
                               token=token)["volume"]

    def delete_volume(self, volume_id: str, token: str | None = None) -> None:
        self.request("DELETE", f"/v3/volumes/{volume_id}", token=token)

    def reserve_attachment(self, volume_id: str, instance_uuid: str, token: str | None = None) -> dict[str, Any]:
        body = {"attachment": {"volume_uuid": volume_id, "instance_uuid": instance_uuid}}
        return self._versioned("POST", "/v3/attachments", json=body,  # type: ignore[no-any-return]
                               token=token)["attachment"]

    def connect_attachment(self, attachment_id: str, connector: dict[str, Any],
                           token: str | None = None) -> dict[str, Any]:
        """The attachment with its `connection_info` for the compute host named in `connector`."""
        return self._versioned("PUT", f"/v3/attachments/{attachment_id}",  # type: ignore[no-any-return]
                               json={"attachment": {"connector": connector}}, token=token)["attachment"]

    def complete_attachment(self, attachment_id: str, token: str | None = None) -> None:
        self._versioned("POST", f"/v3/attachments/{attachment_id}/action", json={"os-complete": {}}, token=token)

    def delete_attachment(self, attachment_id: str, token: str | None = None) -> None:
        self._versioned("DELETE", f"/v3/attachments/{attachment_id}", token=token)
