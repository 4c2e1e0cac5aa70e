"""Ring builder: devices with weights, and a rebalance that places every partition's replicas.

Placement goals, in order: a partition's replicas on distinct devices (always); each device holding
its weight's share of the replicas (within one partition); replicas spread across regions, then
zones, as far as the devices that still have room allow; and on rebalance, as few partitions moved
as possible, at most one replica of a partition per rebalance, and none that moved less than
`min_part_hours` ago (except off removed devices, whose data would otherwise be unreachable).

The builder is saved as JSON next to the rings (`object.builder`) and is the operator's source of
truth; `RingData` is what the nodes load.
"""

from __future__ import annotations

import json
import math
import os
import time
from array import array
from pathlib import Path
from typing import Any

from stratus.object.ring.ring import NO_DEVICE, RingData, RingError, validate_dev

BUILDER_FORMAT = "stratus-ring-builder"
BUILDER_VERSION = 1


class RingBuilder:
    def __init__(self, part_power: int, replicas: int, min_part_hours: int = 1) -> None:
        if not 1 <= part_power <= 24:
            raise RingError("part_power must be between 1 and 24")
        if not 1 <= replicas <= 16:
            raise RingError("replicas must be between 1 and 16")
        if min_part_hours < 0:
            raise RingError("min_part_hours must be >= 0")
        self.part_power = part_power
        self.replicas = replicas
        self.min_part_hours = min_part_hours
        self.devs: list[dict[str, Any] | None] = []
        self.to_remove: set[int] = set()
        self.replica2part2dev: list[array] | None = None
        # Per partition, the hour (since the epoch) it last had a replica moved.
        self.last_part_moves = array("I", [0] * self.parts)
        self.generation = 0
        self.dirty = False

    @property
    def parts(self) -> int:
        return 2 ** self.part_power

    # -- devices ---------------------------------------------------------------------------------
    def add_dev(self, dev: dict[str, Any]) -> int:
        dev = dict(dev)
        dev.setdefault("id", next((i for i, d in enumerate(self.devs) if d is None), len(self.devs)))
        dev.setdefault("region", 1)
        dev["weight"] = float(dev.get("weight", 0))
        checked = validate_dev(dev)
        dev_id = checked["id"]
        if dev_id >= NO_DEVICE - 1:
            raise RingError("too many devices")
        if dev_id < len(self.devs) and self.devs[dev_id] is not None:
            raise RingError(f"device id {dev_id} is in use")
        for other in self.devs:
            if other and (other["ip"], other["port"], other["device"]) == \
                    (checked["ip"], checked["port"], checked["device"]):
                raise RingError(f"device {checked['ip']}:{checked['port']}/{checked['device']} is already "
                                f"in the ring as id {other['id']}")
        while len(self.devs) <= dev_id:
            self.devs.append(None)
        self.devs[dev_id] = checked
        self.dirty = True
        return dev_id

    def _dev(self, dev_id: int) -> dict[str, Any]:
        if not 0 <= dev_id < len(self.devs) or self.devs[dev_id] is None:
            raise RingError(f"no device with id {dev_id}")
        dev = self.devs[dev_id]
        assert dev is not None
        return dev

    def set_dev_weight(self, dev_id: int, weight: float) -> None:
        if weight < 0:
            raise RingError("weight must be >= 0")
        self._dev(dev_id)["weight"] = float(weight)
        self.dirty = True

    def remove_dev(self, dev_id: int) -> None:
        """Mark for removal: the next rebalance moves its partitions away, then forgets it."""
        self._dev(dev_id)
        self.to_remove.add(dev_id)
        self.dirty = True

    def search(self, value: str) -> list[dict[str, Any]]:
        """Devices by id (`d3`), `ip:port`, `ip:port/device` or device name."""
        out = []
        for dev in self.devs:
            if dev is None:
                continue
            names = {f"d{dev['id']}", f"{dev['ip']}:{dev['port']}", f"{dev['ip']}:{dev['port']}/{dev['device']}",
                     dev["device"], str(dev["id"])}
            if value in names:
                out.append(dev)
        return out

    # -- placement -------------------------------------------------------------------------------
    def _active(self) -> list[dict[str, Any]]:
        return [d for d in self.devs if d is not None and d["weight"] > 0 and d["id"] not in self.to_remove]

    def desired_parts(self) -> dict[int, float]:
        active = self._active()
        total = sum(d["weight"] for d in active)
        return {d["id"]: d["weight"] / total * self.parts * self.replicas for d in active} if total else {}

    def assigned_parts(self) -> dict[int, int]:
        counts = {d["id"]: 0 for d in self.devs if d is not None}
        for row in self.replica2part2dev or []:
            for dev_id in row:
                if dev_id != NO_DEVICE:
                    counts[dev_id] = counts.get(dev_id, 0) + 1
        return counts

    def balance(self) -> float:
        """The worst device's distance from its share, in percent of that share."""
        desired, assigned = self.desired_parts(), self.assigned_parts()
        return max((abs(assigned.get(i, 0) - want) / want * 100 for i, want in desired.items()), default=0.0)

    def rebalance(self, now: float | None = None) -> int:
        """Place every replica; returns how many (partition, replica) assignments changed."""
        hour = int((time.time() if now is None else now) // 3600)
        active = self._active()
        if len(active) < self.replicas:
            raise RingError(f"{self.replicas} replicas need at least {self.replicas} devices with weight > 0 "
                            f"(have {len(active)})")
        if self.replica2part2dev is None:
            self.replica2part2dev = [array("H", [NO_DEVICE] * self.parts) for _ in range(self.replicas)]
        rows = self.replica2part2dev
        desired = self.desired_parts()
        assigned = {d["id"]: 0 for d in active}
        holdings: dict[int, list[tuple[int, int]]] = {d["id"]: [] for d in active}
        loose: list[tuple[int, int]] = []
        moved: set[int] = set()
        origin: dict[tuple[int, int], int] = {}
        for r, row in enumerate(rows):
            for part, dev_id in enumerate(row):
                if dev_id in assigned:
                    assigned[dev_id] += 1
                    holdings[dev_id].append((part, r))
                else:  # never placed, or on a removed / zero-weight device: it must move now
                    row[part] = NO_DEVICE
                    loose.append((part, r))
                    moved.add(part)
        by_id = {d["id"]: d for d in active}
        # Overloaded devices give back what is above their share, preferring partitions whose other
        # replicas share their zone (so the move also improves dispersion).
        for dev_id in sorted(assigned, key=lambda i: desired[i] - assigned[i]):
            excess = assigned[dev_id] - math.ceil(desired[dev_id])
            if excess <= 0:
                continue
            dev = by_id[dev_id]

            def crowding(item: tuple[int, int], dev: dict[str, Any] = dev) -> int:
                part, r = item
                return -sum(1 for other in range(self.replicas) if other != r and rows[other][part] != NO_DEVICE
                            and _zone(by_id.get(rows[other][part])) == _zone(dev))

            for part, r in sorted(holdings[dev_id], key=crowding):
                if excess <= 0:
                    break
                if part in moved or hour - self.last_part_moves[part] < self.min_part_hours:
                    continue
                rows[r][part] = NO_DEVICE
                assigned[dev_id] -= 1
                origin[(part, r)] = dev_id
                loose.append((part, r))
                moved.add(part)
                excess -= 1
        loose.sort()
        changes = 0
        for part, r in loose:
            target = self._pick(part, rows, active, desired, assigned, by_id)
            rows[r][part] = target
            assigned[target] += 1
            if origin.get((part, r)) == target:
                moved.discard(part)  # it went back where it was: nothing to move
            else:
                changes += 1
        for part in moved:
            self.last_part_moves[part] = hour
        for dev_id in self.to_remove:
            self.devs[dev_id] = None
        self.to_remove.clear()
        while self.devs and self.devs[-1] is None:
            self.devs.pop()
        self.generation += 1
        self.dirty = False
        return changes

    def _pick(self, part: int, rows: list[array], active: list[dict[str, Any]], desired: dict[int, float],
              assigned: dict[int, int], by_id: dict[int, dict[str, Any]]) -> int:
        holders = [by_id[row[part]] for row in rows if row[part] != NO_DEVICE]
        held = {d["id"] for d in holders}
        regions = [d["region"] for d in holders]
        zones = [_zone(d) for d in holders]
        zone_want: dict[tuple[int, int] | None, float] = {}
        for dev in active:
            zone = _zone(dev)
            zone_want[zone] = zone_want.get(zone, 0.0) + desired[dev["id"]] - assigned[dev["id"]]
        best, best_key = -1, None
        for dev in active:
            dev_id = dev["id"]
            if dev_id in held:
                continue
            # The least crowded region, then zone; among those the zone, then the device, that wants
            # the most. Picking the zones that want the most keeps every zone able to take one replica
            # of each remaining partition, so dispersion and balance hold together when they can.
            key = (regions.count(dev["region"]), zones.count(_zone(dev)), -zone_want[_zone(dev)],
                   -(desired[dev_id] - assigned[dev_id]), dev_id)
            if best_key is None or key < best_key:
                best, best_key = dev_id, key
        if best < 0:
            raise RingError("no device can take a replica")  # unreachable: replicas <= active devices
        return best

    # -- files -----------------------------------------------------------------------------------
    def get_ring(self) -> RingData:
        if self.replica2part2dev is None or self.dirty and self.to_remove:
            raise RingError("the builder has changes that need a rebalance first")
        devs = [None if d is None else dict(d) for d in self.devs]
        return RingData(self.part_power, [array("H", row) for row in self.replica2part2dev], devs,
                        self.generation)

    def to_doc(self) -> dict[str, Any]:
        return {
            "format": BUILDER_FORMAT, "version": BUILDER_VERSION, "part_power": self.part_power,
            "replicas": self.replicas, "min_part_hours": self.min_part_hours, "devs": self.devs,
            "to_remove": sorted(self.to_remove), "generation": self.generation, "dirty": self.dirty,
            "replica2part2dev": None if self.replica2part2dev is None
            else [list(row) for row in self.replica2part2dev],
            "last_part_moves": list(self.last_part_moves),
        }

    def save(self, path: Path | str) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_doc(), separators=(",", ":")))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path | str) -> RingBuilder:
        try:
            doc = json.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise RingError(f"{path}: no such builder file (run `stratus ring create` first)") from exc
        except (OSError, ValueError) as exc:
            raise RingError(f"{path}: unreadable builder file: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("format") != BUILDER_FORMAT:
            raise RingError(f"{path}: not a {BUILDER_FORMAT} file")
        if doc.get("version") != BUILDER_VERSION:
            raise RingError(f"{path}: builder format version {doc.get('version')!r} is not supported")
        try:
            builder = cls(int(doc["part_power"]), int(doc["replicas"]), int(doc["min_part_hours"]))
            builder.devs = [None if d is None else validate_dev(d) for d in doc["devs"]]
            builder.to_remove = {int(i) for i in doc.get("to_remove", [])}
            rows = doc.get("replica2part2dev")
            if rows is not None:
                builder.replica2part2dev = [array("H", row) for row in rows]
                if len(rows) != builder.replicas or any(len(r) != builder.parts for r in rows):
                    raise RingError(f"{path}: partition table does not match part_power/replicas")
            builder.last_part_moves = array("I", doc.get("last_part_moves") or [0] * builder.parts)
            builder.generation = int(doc.get("generation", 0))
            builder.dirty = bool(doc.get("dirty", False))
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise RingError(f"{path}: invalid builder file: {exc}") from exc
        if len(builder.last_part_moves) != builder.parts:
            raise RingError(f"{path}: last_part_moves does not match part_power")
        return builder


def _zone(dev: dict[str, Any] | None) -> tuple[int, int] | None:
    return None if dev is None else (dev["region"], dev["zone"])
