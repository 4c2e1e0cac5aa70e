"""The account and container database replicator.

For each database on a local device, and each other primary of its partition: `REPLICATE` with
`{"op": "sync", ...}` creates the database on the peer if it lacks one, merges timestamps and
metadata, and answers the peer's sync point for us (the last of our ROWIDs it has merged); then our
rows after that point go over in batches (`{"op": "merge_items", ...}`), and the peer records the
new point. Rows are replaced by newer rows on merge, so every replica converges on the newest.
A database on a handoff device is removed once every primary has it.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from stratus.object.db import CONNECTIONS, AccountBroker, Broker, ContainerBroker
from stratus.object.ring.ring import Ring, RingError
from stratus.object.servers.common import REPLICATE_HEADERS
from stratus.object.utils import device_path

log = logging.getLogger("stratus.object.db_replicator")
BATCH = 1000
RECLAIM_AGE = 7 * 24 * 3600


class DatabaseReplicator:
    def __init__(self, kind: str, devices_dir: Path, ring_dir: Path, *, ips: set[str], port: int,
                 mount_check: bool = False, timeout: float = 10.0, reclaim_age: float = RECLAIM_AGE,
                 recheck_seconds: float = 300.0, client: httpx.Client | None = None) -> None:
        if kind not in ("account", "container"):
            raise ValueError(kind)
        self.kind = kind
        self.broker_class: type[Broker] = AccountBroker if kind == "account" else ContainerBroker
        self.devices_dir = Path(devices_dir)
        self.ring_dir = Path(ring_dir)
        self.ips, self.port = ips, port
        self.mount_check = mount_check
        self.reclaim_age = reclaim_age
        self.client = client or httpx.Client(timeout=timeout)
        # As the object replicator: a database the peer had in full is not offered again while it is
        # unchanged, for up to recheck_seconds (the peer may have lost it meanwhile).
        self.recheck_seconds = recheck_seconds
        self._in_sync: dict[tuple[str, int], tuple[str, float]] = {}

    def run_once(self) -> dict[str, int]:
        stats = {"databases": 0, "rows": 0, "failures": 0, "removed": 0}
        try:
            ring = Ring(self.ring_dir / f"{self.kind}.ring.gz")
        except (OSError, RingError) as exc:
            log.warning("%s replicator: no usable ring: %s", self.kind, exc)
            return stats
        for dev in ring.devs:
            if dev is None or dev["ip"] not in self.ips or dev["port"] != self.port:
                continue
            device_dir = device_path(self.devices_dir, dev["device"], self.mount_check)
            if device_dir is None:
                continue
            for db_file in sorted((device_dir / self.broker_class.kind).glob("*/*/*/*.db")):
                stats["databases"] += 1
                try:
                    self.replicate_db(ring, dev, db_file, stats)
                except Exception:
                    log.exception("replicating %s failed", db_file)
                    stats["failures"] += 1
        return stats

    def replicate_db(self, ring: Ring, dev: dict[str, Any], db_file: Path, stats: dict[str, int]) -> None:
        part = int(db_file.parent.parent.parent.name)
        broker = self.broker_class(db_file)
        broker.reclaim(self.reclaim_age)
        info = broker.info()
        if broker.is_deleted(info) and time.time() - float(info["delete_timestamp"]) > self.reclaim_age:
            CONNECTIONS.forget(str(db_file))
            shutil.rmtree(db_file.parent, ignore_errors=True)  # every replica has had time to see it
            stats["removed"] += 1
            return
        primaries = ring.get_part_nodes(part) if part < ring.partition_count else []
        is_primary = any(n["id"] == dev["id"] for n in primaries)
        all_ok = True
        for peer in primaries:
            if peer["id"] == dev["id"]:
                continue
            ok = self.sync_with(broker, info, peer, part, db_file.stem, stats)
            all_ok = all_ok and ok
            if not ok:
                stats["failures"] += 1
        if not is_primary and all_ok and primaries:
            CONNECTIONS.forget(str(db_file))
            shutil.rmtree(db_file.parent, ignore_errors=True)
            stats["removed"] += 1

    def _post(self, peer: dict[str, Any], part: int, name_hash: str, body: dict[str, Any]) -> dict[str, Any] | None:
        url = f"http://{peer['ip']}:{peer['port']}/{quote(peer['device'], safe='')}/{part}/{name_hash}"
        try:
            response = self.client.post(url, json=body, headers=REPLICATE_HEADERS)
        except httpx.HTTPError as exc:
            log.info("%s replicator: %s:%s unreachable: %s", self.kind, peer["ip"], peer["port"], exc)
            return None
        if response.status_code != 200:
            return None
        result: dict[str, Any] = response.json()
        return result

    def sync_with(self, broker: Broker, info: dict[str, Any], peer: dict[str, Any], part: int,
                  name_hash: str, stats: dict[str, int]) -> bool:
        keys = ("account", "container", "put_timestamp", "delete_timestamp", "created_at")
        # What the peer was last brought up to; unchanged since (and not too long ago): nothing to ask.
        signature = json.dumps([info["id"], info["max_row"], info["metadata"], [info[k] for k in keys]],
                               sort_keys=True)
        known = self._in_sync.get((str(broker.path), int(peer["id"])))
        if known is not None and known[0] == signature and time.monotonic() - known[1] < self.recheck_seconds:
            return True
        answer = self._post(peer, part, name_hash, {"op": "sync", "id": info["id"],
                                                     "info": {k: info[k] for k in keys},
                                                     "metadata": info["metadata"]})
        if answer is None:
            return False
        point = int(answer["point"])
        while point < info["max_row"]:
            rows = broker.rows_after(point, BATCH)
            if not rows:
                break
            last = rows[-1]["row_id"]
            items = [{k: v for k, v in row.items() if k != "row_id"} for row in rows]
            if self._post(peer, part, name_hash, {"op": "merge_items", "id": info["id"], "items": items,
                                                  "point": last}) is None:
                return False
            stats["rows"] += len(rows)
            point = last
        self._in_sync[(str(broker.path), int(peer["id"]))] = (signature, time.monotonic())
        return True

