"""The object auditor: reads every object back and quarantines what no longer matches its metadata.

A `.data` whose size differs from Content-Length, whose MD5 differs from its ETag, or whose metadata
cannot be read is moved to DEVICES/<device>/quarantined/objects/; its suffix is invalidated, so the
next replication pass finds the partition different from its peers and brings a good copy back.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sqlite3
import time
from pathlib import Path

from stratus.object.db import CONNECTIONS
from stratus.object.diskfile import Corrupt, DiskFileManager
from stratus.object.utils import device_path

log = logging.getLogger("stratus.object.auditor")
CHUNK = 1024 * 1024


class ObjectAuditor:
    def __init__(self, manager: DiskFileManager, *, bytes_per_second: float = 0) -> None:
        self.manager = manager
        self.bytes_per_second = bytes_per_second  # 0: as fast as the disk goes

    def run_once(self) -> dict[str, int]:
        stats = {"checked": 0, "quarantined": 0}
        started, read = time.monotonic(), 0
        for device in self.manager.devices():
            for partition in self.manager.partitions(device):
                part_dir = self.manager.devices_dir / device / "objects" / partition
                for suffix in sorted(os.listdir(part_dir)):
                    if len(suffix) != 3 or not (part_dir / suffix).is_dir():
                        continue
                    for name_hash in sorted(os.listdir(part_dir / suffix)):
                        read += self.audit(device, partition, name_hash, stats)
                        if self.bytes_per_second:
                            ahead = read / self.bytes_per_second - (time.monotonic() - started)
                            if ahead > 0:
                                time.sleep(min(ahead, 1.0))
        return stats

    def audit(self, device: str, partition: str, name_hash: str, stats: dict[str, int]) -> int:
        """Check one object; returns the bytes read."""
        df = self.manager.by_hash(device, partition, name_hash)
        try:
            df.open()
            if df.data_file is None:
                return 0
            stats["checked"] += 1
            md5 = hashlib.md5(usedforsecurity=False)
            size = 0
            with open(df.data_file, "rb") as data:
                while chunk := data.read(CHUNK):
                    md5.update(chunk)
                    size += len(chunk)
            if size != df.size() or md5.hexdigest() != df.metadata.get("ETag"):
                raise Corrupt(f"{df.data_file}: size {size} md5 {md5.hexdigest()} do not match the metadata")
            return size
        except FileNotFoundError:
            return 0  # replaced while we read
        except Corrupt as exc:
            log.warning("quarantining %s: %s", df.path, exc)
            try:
                self.manager.quarantine(df)
            except FileNotFoundError:
                return 0
            stats["quarantined"] += 1
            return 0


class DatabaseAuditor:
    """Checks every account and container database (SQLite's own quick_check); a broken one is moved
    to DEVICES/<device>/quarantined/<accounts|containers>/, and the database replicator, finding it
    missing here, rebuilds it from the other replicas."""

    def __init__(self, devices_dir: Path, *, mount_check: bool = False) -> None:
        self.devices_dir = Path(devices_dir)
        self.mount_check = mount_check

    def run_once(self) -> dict[str, int]:
        stats = {"checked": 0, "quarantined": 0}
        for device in sorted(os.listdir(self.devices_dir)) if self.devices_dir.is_dir() else []:
            device_dir = device_path(self.devices_dir, device, self.mount_check)
            if device_dir is None:
                continue
            for kind in ("accounts", "containers"):
                for db_file in sorted((device_dir / kind).glob("*/*/*/*.db")):
                    stats["checked"] += 1
                    if not self.healthy(db_file):
                        log.warning("quarantining database %s", db_file)
                        target = device_dir / "quarantined" / kind / db_file.parent.name
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.rmtree(target, ignore_errors=True)
                        CONNECTIONS.forget(str(db_file))
                        os.rename(db_file.parent, target)
                        stats["quarantined"] += 1
        return stats

    @staticmethod
    def healthy(db_file: Path) -> bool:
        try:
            connection = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=25)
            try:
                result = connection.execute("PRAGMA quick_check").fetchone()
                connection.execute("SELECT id FROM info").fetchone()
            finally:
                connection.close()
        except sqlite3.Error:
            return False
        return result is not None and result[0] == "ok"
