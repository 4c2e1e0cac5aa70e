"""The object expirer: deletes objects whose X-Delete-At has passed.

Every object server keeps an index of the objects it stores with an X-Delete-At
(DEVICES/<device>/expiring/<delete_at>-<partition>-<hash>, written with the object). This daemon
walks the index in time order and, for each entry that is due and still describes the stored object
(a later PUT or POST may have changed or removed X-Delete-At), writes a tombstone and removes the
row from the container listing. Each replica's node expires its own copy; replication agrees.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import httpx

from stratus.object.diskfile import Conflict, Corrupt, DiskFileManager
from stratus.object.ring.ring import Ring, RingError
from stratus.object.updater import node_url, save_pending
from stratus.object.utils import normalize_timestamp

log = logging.getLogger("stratus.object.expirer")


class ObjectExpirer:
    def __init__(self, manager: DiskFileManager, ring_dir: Path, *, timeout: float = 10.0,
                 client: httpx.Client | None = None) -> None:
        self.manager = manager
        self.ring_dir = Path(ring_dir)
        self.client = client or httpx.Client(timeout=timeout)

    def run_once(self, now: float | None = None) -> dict[str, int]:
        now = time.time() if now is None else now
        stats = {"expired": 0, "skipped": 0}
        ring: Ring | None = None
        for device in self.manager.devices():
            index = self.manager.devices_dir / device / "expiring"
            try:
                entries = sorted(os.listdir(index))
            except FileNotFoundError:
                continue
            for entry in entries:
                try:
                    delete_at, partition, name_hash = entry.split("-", 2)
                    due = int(delete_at)
                except ValueError:
                    (index / entry).unlink(missing_ok=True)
                    continue
                if due > now:
                    break  # sorted by time: the rest are not due yet
                if ring is None:
                    try:
                        ring = Ring(self.ring_dir / "container.ring.gz")
                    except (OSError, RingError) as exc:
                        log.warning("expirer: no container ring: %s", exc)
                        return stats
                if self.expire(device, partition, name_hash, due, now, ring):
                    stats["expired"] += 1
                else:
                    stats["skipped"] += 1
                (index / entry).unlink(missing_ok=True)
        return stats

    def expire(self, device: str, partition: str, name_hash: str, due: int, now: float, ring: Ring) -> bool:
        df = self.manager.by_hash(device, partition, name_hash)
        try:
            df.open()
        except Corrupt:
            return False  # the auditor's business
        meta = df.metadata
        if df.data_file is None or not meta.get("X-Delete-At", "").isdigit() or int(meta["X-Delete-At"]) != due:
            return False
        timestamp = normalize_timestamp(max(now, float(df.newest or 0) + 0.00002))
        name = meta["name"]
        try:
            df.write_tombstone(timestamp, name)
        except Conflict:
            return False
        account, container, obj = name.lstrip("/").split("/", 2)
        part, nodes = ring.get_nodes(account, container)
        headers = {"x-timestamp": timestamp}
        for node in nodes:
            host = f"{node['ip']}:{node['port']}"
            try:
                if self.client.delete(node_url(host, node["device"], part, account, container, obj),
                                      headers=headers).status_code // 100 == 2:
                    continue
            except httpx.HTTPError:
                pass
            save_pending(df.device_dir, {"op": "DELETE", "host": host, "device": node["device"],
                                         "partition": part, "account": account, "container": container,
                                         "obj": obj, "headers": headers})
        return True
