"""Updates the servers owe each other, retried until they land.

Objects: when a container server did not take an object's row during the PUT/DELETE, the object
server leaves an "async pending" record under DEVICES/<device>/async_pending/; this daemon sends it
again and removes it once the container server accepts it.

Containers: a container's object count and bytes change with every object row, so instead of an
account update per object, this daemon reports each container whose totals changed since it last
reported to the account servers (as Swift's container-updater does).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from stratus.object.db import ContainerBroker, DatabaseMissing
from stratus.object.ring.ring import Ring

log = logging.getLogger("stratus.object.updater")
PENDING_DIR = "async_pending"


def node_url(host: str, device: str, partition: int | str, *names: str) -> str:
    path = "/".join(quote(n.encode("utf-8"), safe="") for n in (device, str(partition), *names))
    return f"http://{host}/{path}"


def wire(headers: dict[str, str]) -> dict[bytes, bytes]:
    """Header values as the servers keep them (latin-1 text of the bytes received) back to bytes."""
    return {name.encode("latin-1"): value.encode("latin-1", "replace") for name, value in headers.items()}


def save_pending(device_dir: Path, record: dict[str, Any]) -> Path:
    """Durably keep an update for later (temp file + rename, like any object write)."""
    pending = device_dir / PENDING_DIR
    pending.mkdir(parents=True, exist_ok=True)
    path = pending / f"{record['headers']['x-timestamp']}-{uuid.uuid4().hex}"
    tmp = device_dir / "tmp" / f"pending-{uuid.uuid4().hex}"
    tmp.parent.mkdir(exist_ok=True)
    with open(tmp, "w") as out:
        json.dump(record, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    return path


def container_update_request(record: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    url = node_url(record["host"], record["device"], record["partition"], record["account"],
                   record["container"], record["obj"])
    return record["op"], url, record["headers"]


class Updater:
    def __init__(self, devices_dir: Path, ring_dir: Path, *, timeout: float = 10.0,
                 client: httpx.Client | None = None) -> None:
        self.devices_dir = Path(devices_dir)
        self.ring_dir = Path(ring_dir)
        self.client = client or httpx.Client(timeout=timeout)

    def run_once(self, max_items: int = 100000) -> dict[str, int]:
        stats = {"sent": 0, "failed": 0, "reported": 0}
        for device_dir in sorted(self.devices_dir.glob("*")):
            if not device_dir.is_dir():
                continue
            self._pending(device_dir, stats, max_items)
            self._report_containers(device_dir, stats)
        return stats

    def _pending(self, device_dir: Path, stats: dict[str, int], max_items: int) -> None:
        pending = device_dir / PENDING_DIR
        try:
            names = sorted(os.listdir(pending))[:max_items]
        except FileNotFoundError:
            return
        for name in names:
            path = pending / name
            try:
                record = json.loads(path.read_text())
                method, url, headers = container_update_request(record)
            except (OSError, ValueError, KeyError):
                log.warning("dropping unreadable async pending %s", path)
                path.unlink(missing_ok=True)
                continue
            try:
                response = self.client.request(method, url, headers=wire(headers))
                ok = response.status_code // 100 == 2 or response.status_code == 404 and method == "DELETE"
            except httpx.HTTPError:
                ok = False
            if ok:
                path.unlink(missing_ok=True)
                stats["sent"] += 1
            else:
                stats["failed"] += 1

    def _report_containers(self, device_dir: Path, stats: dict[str, int]) -> None:
        """Send changed container totals to the account servers."""
        ring: Ring | None = None
        for db_file in sorted((device_dir / "containers").glob("*/*/*/*.db")):
            broker = ContainerBroker(db_file)
            try:
                info = broker.info()
            except (DatabaseMissing, OSError, ValueError):
                continue
            if (info["reported_put_timestamp"], info["reported_delete_timestamp"], info["reported_object_count"],
                    info["reported_bytes_used"]) == (info["put_timestamp"], info["delete_timestamp"],
                                                     info["object_count"], info["bytes_used"]):
                continue
            if ring is None:
                try:
                    ring = Ring(self.ring_dir / "account.ring.gz")
                except (OSError, ValueError):
                    return
            part, nodes = ring.get_nodes(info["account"])
            headers = account_update_headers(info)
            successes = 0
            for node in nodes:
                url = node_url(f"{node['ip']}:{node['port']}", node["device"], part, info["account"],
                               info["container"])
                try:
                    successes += self.client.put(url, headers=headers).status_code // 100 == 2
                except httpx.HTTPError:
                    pass
            if successes * 2 > len(nodes):
                broker.reported(info)
                stats["reported"] += 1


def account_update_headers(info: dict[str, Any]) -> dict[str, str]:
    return {"x-put-timestamp": info["put_timestamp"], "x-delete-timestamp": info["delete_timestamp"],
            "x-object-count": str(info["object_count"]), "x-bytes-used": str(info["bytes_used"]),
            "x-timestamp": info["put_timestamp"]}
