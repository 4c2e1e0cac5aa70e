"""What the container and account servers share: finding the database, REPLICATE, parent updates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starlette.responses import Response

from stratus.object.db import Broker, DatabaseMissing, db_path, merge_metadata
from stratus.object.servers.common import HTTPError, Request, in_disk_thread, plain
from stratus.object.servers.nodeclient import NodeClient, NodeRequestError
from stratus.object.updater import node_url
from stratus.object.utils import device_path, has_room, hash_path


class DatabaseServer:
    broker_class: type[Broker] = Broker

    def __init__(self, devices_dir: Path, hash_secret: tuple[str, str], *, mount_check: bool = False,
                 reserve: int = 0, node_timeout: float = 10.0) -> None:
        self.devices_dir = Path(devices_dir)
        self.secret = hash_secret
        self.mount_check = mount_check
        self.reserve = reserve
        self.node_timeout = node_timeout
        self.client = NodeClient(node_timeout)

    def device_dir(self, device: str, writing: bool = False) -> Path:
        path = device_path(self.devices_dir, device, self.mount_check)
        if path is None:
            raise HTTPError(507, f"device {device!r} is not available")
        if writing and not has_room(path, 0, self.reserve):
            raise HTTPError(507, f"device {device!r} is full")
        return path

    def broker(self, device: str, partition: str, account: str, container: str | None = None,
               writing: bool = False) -> tuple[Broker, Path]:
        if not partition.isdigit():
            raise HTTPError(400, "Invalid partition")
        device_dir = self.device_dir(device, writing)
        name_hash = hash_path(self.secret, account, container)
        return self.broker_class(db_path(device_dir, self.broker_class.kind, partition, name_hash)), device_dir

    async def replicate(self, req: Request) -> Response:
        """`REPLICATE /dev/part/hash` with a JSON body: the receiving side of the DB replicator."""
        device, partition, name_hash = req.split(3, 3)
        if not partition.isdigit() or not all(c in "0123456789abcdef" for c in name_hash) or len(name_hash) != 32:
            raise HTTPError(400, "Invalid path")
        device_dir = self.device_dir(device, writing=True)
        try:
            body = json.loads(await req.body())
        except ValueError as exc:
            raise HTTPError(400, "Invalid JSON") from exc
        broker = self.broker_class(db_path(device_dir, self.broker_class.kind, partition, name_hash))
        try:
            result = await in_disk_thread(receive_replication, broker, body)
        except (KeyError, TypeError, ValueError) as exc:
            raise HTTPError(400, f"Invalid replication request: {exc}") from exc
        return Response(json.dumps(result).encode(), 200, media_type="application/json")

    async def update_parent(self, req: Request, prefix: str, names: list[str], method: str,
                            headers: dict[str, str]) -> bool:
        """Send a row update to the parent's server named in X-<prefix>-Host/Device/Partition."""
        host = req.headers.get(f"x-{prefix}-host")
        device = req.headers.get(f"x-{prefix}-device")
        partition = req.headers.get(f"x-{prefix}-partition")
        if not (host and device and partition):
            return False
        url = node_url(host.split(",")[0].strip(), device.split(",")[0].strip(), partition, *names)
        try:
            return (await self.client.request(method, url, headers)) // 100 == 2
        except NodeRequestError:
            return False


def receive_replication(broker: Broker, body: dict[str, Any]) -> dict[str, Any]:
    op = body["op"]
    if op == "sync":
        info = body["info"]
        broker.initialize(info["account"], info.get("container"), info["put_timestamp"])
        broker.merge_timestamps(info["put_timestamp"], info["delete_timestamp"])
        metadata = body.get("metadata") or {}
        if metadata:
            current = broker.info()["metadata"]
            if merge_metadata(current, metadata) != current:
                broker.update_metadata(metadata)
        mine = broker.info()
        return {"id": mine["id"], "point": broker.sync_point("incoming_sync", str(body["id"])),
                "max_row": mine["max_row"]}
    if op == "merge_items":
        items = body["items"]
        if not isinstance(items, list):
            raise ValueError("items must be a list")
        broker.merge_items(items)
        broker.set_sync_point("incoming_sync", str(body["id"]), int(body["point"]))
        return {"ok": True}
    raise ValueError(f"unknown op {op!r}")


def missing_or_deleted(broker: Broker) -> tuple[bool, dict[str, Any] | None]:
    try:
        info = broker.info()
    except DatabaseMissing:
        return True, None
    return broker.is_deleted(info), info


def not_found(info: dict[str, Any] | None) -> Response:
    headers = {}
    if info is not None:
        headers = {"x-backend-timestamp": max(info["put_timestamp"], info["delete_timestamp"]),
                   "x-backend-put-timestamp": info["put_timestamp"],
                   "x-backend-delete-timestamp": info["delete_timestamp"]}
    return plain(404, headers=headers)
