"""The ring as the servers and the proxy read it: O(1) partition and node lookups.

File format (version 1): gzip of one JSON document
`{"format": "stratus-ring", "version": 1, "generation": n, "part_power": p, "replica_count": r,
"devs": [dev or null, ...], "replica2part2dev": [base64 of little-endian uint16 per partition, ...],
"checksum": sha256 of the rest}`. Everything is validated on load, so a truncated or edited file is
refused instead of sending requests to the wrong devices.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import sys
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stratus.object.utils import hash_path, load_hash_secret

FORMAT = "stratus-ring"
VERSION = 1
NO_DEVICE = 0xFFFF
DEV_KEYS = {"id": int, "region": int, "zone": int, "ip": str, "port": int, "device": str, "weight": float}


class RingError(Exception):
    """A ring file or a builder operation is invalid; the message says why."""


def _row_bytes(row: array) -> bytes:
    if sys.byteorder == "little":
        return row.tobytes()
    copy = array("H", row)
    copy.byteswap()
    return copy.tobytes()


def _row_from_bytes(data: bytes) -> array:
    row = array("H")
    row.frombytes(data)
    if sys.byteorder != "little":
        row.byteswap()
    return row


def _checksum(doc: dict[str, Any]) -> str:
    body = {k: v for k, v in doc.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def validate_dev(dev: Any) -> dict[str, Any]:
    if not isinstance(dev, dict):
        raise RingError(f"device {dev!r} is not an object")
    out: dict[str, Any] = {}
    for key, kind in DEV_KEYS.items():
        value = dev.get(key)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise RingError(f"device {dev.get('id')!r}: {key} must be {kind.__name__}")
        out[key] = value
    if out["weight"] < 0 or not (0 <= out["port"] <= 65535) or not out["device"] or "/" in out["device"]:
        raise RingError(f"device {out['id']}: bad weight, port or device name")
    out["meta"] = str(dev.get("meta", ""))
    return out


@dataclass
class RingData:
    part_power: int
    replica2part2dev: list[array]
    devs: list[dict[str, Any] | None]
    generation: int = 0

    @property
    def replica_count(self) -> int:
        return len(self.replica2part2dev)

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "format": FORMAT, "version": VERSION, "generation": self.generation,
            "part_power": self.part_power, "replica_count": self.replica_count, "devs": self.devs,
            "replica2part2dev": [base64.b64encode(_row_bytes(row)).decode() for row in self.replica2part2dev],
        }
        doc["checksum"] = _checksum(doc)
        return doc

    def save(self, path: Path | str) -> None:
        """Write atomically: a node reloading the ring never sees half a file."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        data = json.dumps(self.to_doc(), separators=(",", ":")).encode()
        with open(tmp, "wb") as raw:
            # mtime=0: the same ring gives the same bytes, so nodes can compare files by hash.
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
                gz.write(data)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path | str) -> RingData:
        try:
            with gzip.open(path, "rb") as gz:
                doc = json.loads(gz.read())
        except FileNotFoundError:
            raise
        except (OSError, EOFError, ValueError) as exc:
            raise RingError(f"{path}: not a readable ring file: {exc}") from exc
        return cls.from_doc(doc, str(path))

    @classmethod
    def from_doc(cls, doc: Any, where: str = "ring") -> RingData:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise RingError(f"{where}: not a {FORMAT} file")
        if doc.get("version") != VERSION:
            raise RingError(f"{where}: ring format version {doc.get('version')!r} is not supported")
        if doc.get("checksum") != _checksum(doc):
            raise RingError(f"{where}: checksum mismatch (corrupt ring file)")
        power, replicas = doc.get("part_power"), doc.get("replica_count")
        if not isinstance(power, int) or not 0 <= power <= 24:
            raise RingError(f"{where}: bad part_power")
        rows_raw = doc.get("replica2part2dev")
        if not isinstance(rows_raw, list) or not isinstance(replicas, int) or len(rows_raw) != replicas \
                or replicas < 1:
            raise RingError(f"{where}: replica count does not match the partition table")
        devs_raw = doc.get("devs")
        if not isinstance(devs_raw, list) or len(devs_raw) >= NO_DEVICE:
            raise RingError(f"{where}: bad device list")
        devs: list[dict[str, Any] | None] = []
        for index, dev in enumerate(devs_raw):
            if dev is None:
                devs.append(None)
                continue
            checked = validate_dev(dev)
            if checked["id"] != index:
                raise RingError(f"{where}: device at index {index} has id {checked['id']}")
            devs.append(checked)
        rows = []
        for raw in rows_raw:
            try:
                row = _row_from_bytes(base64.b64decode(raw, validate=True))
            except (ValueError, TypeError) as exc:
                raise RingError(f"{where}: bad partition table") from exc
            if len(row) != 2 ** power:
                raise RingError(f"{where}: partition table has {len(row)} entries, expected {2 ** power}")
            for dev_id in set(row):
                if dev_id >= len(devs) or devs[dev_id] is None:
                    raise RingError(f"{where}: partition assigned to unknown device {dev_id}")
            rows.append(row)
        generation = doc.get("generation", 0)
        return cls(power, rows, devs, generation if isinstance(generation, int) else 0)


class Ring:
    """A loaded ring. Lookups are O(1): a hash, a shift and an index into per-partition tuples."""

    def __init__(self, path: Path | str, *, hash_secret: tuple[str, str] | None = None) -> None:
        self.path = Path(path)
        data = RingData.load(self.path)
        self._secret = hash_secret if hash_secret is not None else load_hash_secret(self.path.parent)
        self.generation = data.generation
        self.part_power = data.part_power
        self.replica_count = data.replica_count
        self.partition_count = 2 ** data.part_power
        self._shift = 32 - data.part_power
        self.devs = data.devs
        live = [d for d in data.devs if d is not None]
        self._part2devs: list[tuple[dict[str, Any], ...]] = [
            tuple(live_dev for live_dev in (data.devs[row[part]] for row in data.replica2part2dev)
                  if live_dev is not None)
            for part in range(self.partition_count)
        ]
        # Handoffs come from the devices that can take data, in id order rotated per partition.
        self._handoff_devs = [d for d in live if d["weight"] > 0]

    def get_part(self, account: str, container: str | None = None, obj: str | None = None) -> int:
        digest = bytes.fromhex(hash_path(self._secret, account, container, obj))
        return int.from_bytes(digest[:4], "big") >> self._shift

    def get_part_nodes(self, part: int) -> list[dict[str, Any]]:
        return [dict(dev, index=i) for i, dev in enumerate(self._part2devs[part])]

    def get_nodes(self, account: str, container: str | None = None,
                  obj: str | None = None) -> tuple[int, list[dict[str, Any]]]:
        part = self.get_part(account, container, obj)
        return part, self.get_part_nodes(part)

    def get_more_nodes(self, part: int) -> Iterator[dict[str, Any]]:
        """Handoff devices for `part`: first in regions, then zones the primaries do not use."""
        primaries = self._part2devs[part]
        used_ids = {d["id"] for d in primaries}
        used_regions = {d["region"] for d in primaries}
        used_zones = {(d["region"], d["zone"]) for d in primaries}
        devs = self._handoff_devs
        if not devs:
            return
        start = (part * 2654435761) % len(devs)
        order = [d for d in devs[start:] + devs[:start] if d["id"] not in used_ids]
        seen: set[int] = set()
        tiers = (lambda d: d["region"] not in used_regions,
                 lambda d: (d["region"], d["zone"]) not in used_zones,
                 lambda d: True)
        index = self.replica_count
        for wanted in tiers:
            for dev in order:
                if dev["id"] not in seen and wanted(dev):
                    seen.add(dev["id"])
                    yield dict(dev, index=index)
                    index += 1

    def devices_at(self, ip: str, port: int) -> list[dict[str, Any]]:
        """The devices a node (ip, port) serves, for its replicator."""
        return [d for d in self.devs if d is not None and d["ip"] == ip and d["port"] == port]

    def parts_of(self, dev_id: int) -> list[int]:
        return [p for p, devs in enumerate(self._part2devs) if any(d["id"] == dev_id for d in devs)]
