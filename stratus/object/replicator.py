"""The object replicator: keeps every partition's replicas the same on its primary devices.

For each partition on a local device it asks each other primary for its suffix hashes
(`REPLICATE /dev/part`, sent as a POST with `X-Backend-Replicate`), and for the suffixes that
differ, for the files it holds (`REPLICATE /dev/part/abc-def`, which also makes the peer recompute
them). Whatever the peer lacks or
holds an older version of is pushed with ordinary object requests marked `X-Backend-Replication`
(so they do not touch the container listings): the `.data` as a PUT of the file with its metadata,
a tombstone as a DELETE, a `.meta` as a POST, each with its original X-Timestamp. A peer never loses
a newer write: the object server refuses older timestamps.

A partition on a device that is not one of its primaries (a handoff) is pushed to all primaries and
removed once every one of them took it.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from stratus.object.diskfile import Corrupt, DeviceUnavailable, DiskFileManager, read_meta, split_name
from stratus.object.ring.ring import Ring, RingError
from stratus.object.servers.common import REPLICATE_HEADERS
from stratus.object.updater import node_url, wire

log = logging.getLogger("stratus.object.replicator")


def local_devices(ring: Ring, manager: DiskFileManager, ips: set[str], port: int) -> list[dict[str, Any]]:
    """This node's devices in the ring that are present (a missing device is skipped, not emptied)."""
    present = set(manager.devices())
    return [d for d in ring.devs if d is not None and d["ip"] in ips and d["port"] == port
            and d["device"] in present]


def _state(files: list[str]) -> tuple[str | None, str | None, str | None]:
    """(timestamp of the .data/.ts, its extension, timestamp of a newer .meta)."""
    base_ts = base_ext = meta_ts = None
    for name in files:
        stamp, ext = split_name(name)
        if ext == ".meta" and meta_ts is None and base_ts is None:
            meta_ts = stamp
        elif ext in (".data", ".ts") and base_ts is None:
            base_ts, base_ext = stamp, ext
    return base_ts, base_ext, meta_ts


class ObjectReplicator:
    def __init__(self, manager: DiskFileManager, ring_dir: Path, *, ips: set[str], port: int,
                 timeout: float = 10.0, recheck_seconds: float = 300.0, client: httpx.Client | None = None) -> None:
        self.manager = manager
        self.ring_dir = Path(ring_dir)
        self.ips, self.port = ips, port
        self.client = client or httpx.Client(timeout=timeout)
        # A partition found in sync with a peer is not asked about again while its local hashes stay
        # the same, for up to recheck_seconds (the peer may have lost data meanwhile): most passes
        # then cost no request at all.
        self.recheck_seconds = recheck_seconds
        self._in_sync: dict[tuple[str, int, int], tuple[dict[str, str], float]] = {}

    def run_once(self) -> dict[str, int]:
        stats = {"partitions": 0, "pushed": 0, "failures": 0, "reverted": 0}
        try:
            ring = Ring(self.ring_dir / "object.ring.gz")
        except (OSError, RingError) as exc:
            log.warning("object replicator: no usable ring: %s", exc)
            return stats
        for dev in local_devices(ring, self.manager, self.ips, self.port):
            for partition in self.manager.partitions(dev["device"]):
                part = int(partition)
                if part >= ring.partition_count:
                    continue
                stats["partitions"] += 1
                try:
                    self.replicate_partition(ring, dev, part, stats)
                except DeviceUnavailable:
                    break
                except Exception:  # one bad partition must not stop the pass
                    log.exception("replicating %s partition %s failed", dev["device"], part)
                    stats["failures"] += 1
        return stats

    def replicate_partition(self, ring: Ring, dev: dict[str, Any], part: int, stats: dict[str, int]) -> None:
        primaries = ring.get_part_nodes(part)
        is_primary = any(n["id"] == dev["id"] for n in primaries)
        peers = [n for n in primaries if n["id"] != dev["id"]]
        all_ok = True
        for peer in peers:
            ok = self.sync_with(dev["device"], part, peer, stats, everything=not is_primary)
            all_ok = all_ok and ok
            if not ok:
                stats["failures"] += 1
        if not is_primary and all_ok and peers:
            shutil.rmtree(self.manager.device(dev["device"]) / "objects" / str(part), ignore_errors=True)
            stats["reverted"] += 1

    def _replicate(self, peer: dict[str, Any], part: int, suffixes: list[str]) -> dict[str, Any] | None:
        url = node_url(f"{peer['ip']}:{peer['port']}", peer["device"], part)
        if suffixes:
            url += "/" + "-".join(suffixes)
        try:
            response = self.client.post(url, headers=REPLICATE_HEADERS)
        except httpx.HTTPError as exc:
            log.info("replicator: %s:%s unreachable: %s", peer["ip"], peer["port"], exc)
            return None
        if response.status_code != 200:
            return None
        result: dict[str, Any] = response.json()
        return result

    def sync_with(self, device: str, part: int, peer: dict[str, Any], stats: dict[str, int],
                  everything: bool = False) -> bool:
        key = (device, part, int(peer["id"]))
        local = self.manager.get_hashes(device, part)
        known = self._in_sync.get(key)
        if not everything and known is not None and known[0] == local \
                and time.monotonic() - known[1] < self.recheck_seconds:
            return True
        remote = self._replicate(peer, part, [])
        if remote is None:
            return False
        differ = sorted(s for s, h in local.items() if everything or remote["hashes"].get(s) != h)
        if not differ:
            self._in_sync[key] = (local, time.monotonic())
            return True
        self._in_sync.pop(key, None)
        # Both sides recompute those suffixes before anything moves (the caches may be stale).
        local = self.manager.get_hashes(device, part, recalculate=differ)
        remote = self._replicate(peer, part, differ)
        if remote is None:
            return False
        differ = [s for s in differ if s in local and (everything or remote["hashes"].get(s) != local[s])]
        remote_objects: dict[str, list[str]] = remote.get("objects", {})
        ok = True
        for name_hash, files in self.manager.suffix_files(device, part, differ):
            mine = _state(files)
            theirs = _state(remote_objects.get(name_hash, []))
            for request in self._pushes(device, part, name_hash, mine, theirs):
                if self._send(peer, part, *request):
                    stats["pushed"] += 1
                else:
                    ok = False
        return ok

    def _pushes(self, device: str, part: int, name_hash: str, mine: tuple[str | None, ...],
                theirs: tuple[str | None, ...]) -> Iterator[tuple[str, str, dict[str, str], Path | None]]:
        """The requests that bring the peer up to our version of one object."""
        base_ts, base_ext, meta_ts = mine
        df = self.manager.by_hash(device, part, name_hash)
        if base_ts is None:
            return
        path = df.path / f"{base_ts}{base_ext}"
        if theirs[0] is None or theirs[0] < base_ts:
            if base_ext == ".ts":
                name = self._name_of(df.path)
                if name is not None:
                    yield "DELETE", name, {"x-timestamp": base_ts}, None
                return
            meta = read_meta(path)
            headers = {k: v for k, v in meta.items() if k[:1].islower() and k != "name"}
            headers.update({"x-timestamp": base_ts, "content-length": meta["Content-Length"],
                            "etag": meta["ETag"], "content-type": meta.get("Content-Type", "")})
            if meta.get("X-Delete-At"):
                headers["x-delete-at"] = meta["X-Delete-At"]
            yield "PUT", meta["name"], headers, path
            theirs = (base_ts, base_ext, None)
        if meta_ts is not None and base_ext == ".data" and (theirs[2] is None or theirs[2] < meta_ts):
            meta = read_meta(df.path / f"{meta_ts}.meta")
            name = read_meta(path)["name"]
            headers = {k: v for k, v in meta.items() if k[:1].islower()}
            headers["x-timestamp"] = meta_ts
            if meta.get("Content-Type"):
                headers["content-type"] = meta["Content-Type"]
            if meta.get("X-Delete-At"):
                headers["x-delete-at"] = meta["X-Delete-At"]
            yield "POST", name, headers, None

    @staticmethod
    def _name_of(hash_dir: Path) -> str | None:
        """The object's name, from the newest file that has one (tombstones carry it too)."""
        for path in sorted(hash_dir.iterdir(), reverse=True):
            try:
                name = read_meta(path).get("name")
            except (OSError, Corrupt):
                continue
            if name:
                return name
        return None

    def _send(self, peer: dict[str, Any], part: int, method: str, name: str, headers: dict[str, str],
              path: Path | None) -> bool:
        account, container, obj = name.lstrip("/").split("/", 2)
        url = node_url(f"{peer['ip']}:{peer['port']}", peer["device"], part, account, container, obj)
        headers = {**headers, "x-backend-replication": "true"}
        try:
            if path is not None:
                with open(path, "rb") as body:
                    response = self.client.request(method, url, headers=wire(headers), content=_chunks(body))
            else:
                response = self.client.request(method, url, headers=wire(headers))
        except (httpx.HTTPError, OSError) as exc:
            log.info("replicator: push to %s:%s failed: %s", peer["ip"], peer["port"], exc)
            return False
        # 409: the peer already has this version or a newer one; 404: DELETE of something never seen.
        return response.status_code // 100 == 2 or response.status_code in (404, 409)


def _chunks(body: Any, size: int = 1024 * 1024) -> Iterator[bytes]:
    while chunk := body.read(size):
        yield chunk
