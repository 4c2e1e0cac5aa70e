"""The account reaper: removes the containers and objects of a deleted account.

An account DELETE only marks the account database; this daemon, on the node holding the account
partition's first primary, lists the account's containers, deletes every object of each (on every
object replica, with the container row update), then the container itself (with the account row
update). Once the account lists no container, its database is a tombstone the replicator reclaims.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import httpx

from stratus.object.db import AccountBroker
from stratus.object.ring.ring import Ring, RingError
from stratus.object.updater import node_url
from stratus.object.utils import device_path, normalize_timestamp

log = logging.getLogger("stratus.object.reaper")


def _host(node: dict[str, Any]) -> str:
    return f"{node['ip']}:{node['port']}"


class AccountReaper:
    def __init__(self, devices_dir: Path, ring_dir: Path, *, ips: set[str], port: int, mount_check: bool = False,
                 delay_reaping: float = 0, timeout: float = 10.0, client: httpx.Client | None = None) -> None:
        self.devices_dir = Path(devices_dir)
        self.ring_dir = Path(ring_dir)
        self.ips, self.port = ips, port
        self.mount_check = mount_check
        self.delay_reaping = delay_reaping
        self.client = client or httpx.Client(timeout=timeout)

    def run_once(self) -> dict[str, int]:
        stats = {"accounts": 0, "containers": 0, "objects": 0, "failures": 0}
        try:
            rings = {kind: Ring(self.ring_dir / f"{kind}.ring.gz") for kind in ("account", "container", "object")}
        except (OSError, RingError) as exc:
            log.warning("reaper: rings not usable: %s", exc)
            return stats
        for dev in rings["account"].devs:
            if dev is None or dev["ip"] not in self.ips or dev["port"] != self.port:
                continue
            device_dir = device_path(self.devices_dir, dev["device"], self.mount_check)
            if device_dir is None:
                continue
            for db_file in sorted((device_dir / "accounts").glob("*/*/*/*.db")):
                part = int(db_file.parent.parent.parent.name)
                if part >= rings["account"].partition_count:
                    continue
                primaries = rings["account"].get_part_nodes(part)
                if not primaries or primaries[0]["id"] != dev["id"]:
                    continue  # one node reaps each account
                broker = AccountBroker(db_file)
                info = broker.info()
                if info["delete_timestamp"] <= info["put_timestamp"]:
                    continue
                if time.time() - float(info["delete_timestamp"]) < self.delay_reaping:
                    continue
                stats["accounts"] += 1
                self.reap_account(broker, info["account"], part, primaries, rings, stats)
        return stats

    def reap_account(self, broker: AccountBroker, account: str, account_part: int,
                     account_nodes: list[dict[str, Any]], rings: dict[str, Ring], stats: dict[str, int]) -> None:
        marker = ""
        while True:
            rows = broker.listing(AccountBroker.columns, limit=1000, marker=marker)
            if not rows:
                return
            for row in rows:
                self.reap_container(account, row["name"], account_part, account_nodes, rings, stats)
            marker = rows[-1]["name"]

    def _list(self, nodes: list[dict[str, Any]], part: int, account: str, container: str,
              marker: str) -> list[dict[str, Any]] | None:
        for node in nodes:
            try:
                response = self.client.get(node_url(_host(node), node["device"], part, account, container),
                                           params={"format": "json", "marker": marker, "limit": "1000"})
            except httpx.HTTPError:
                continue
            if response.status_code == 200:
                items: list[dict[str, Any]] = response.json()
                return items
            if response.status_code in (204, 404):
                return []
        return None

    def reap_container(self, account: str, container: str, account_part: int, account_nodes: list[dict[str, Any]],
                       rings: dict[str, Ring], stats: dict[str, int]) -> None:
        cpart, cnodes = rings["container"].get_nodes(account, container)
        marker = ""
        for _ in range(100000):  # bounded: at most 10^8 objects per pass
            items = self._list(cnodes, cpart, account, container, marker)
            if not items:
                if items is None:
                    stats["failures"] += 1
                    return
                break
            for item in items:
                self.reap_object(account, container, item["name"], cpart, cnodes, rings["object"], stats)
            marker = items[-1]["name"]
        timestamp = normalize_timestamp(time.time())
        for i, node in enumerate(cnodes):
            anode = account_nodes[i % len(account_nodes)]
            headers = {"x-timestamp": timestamp, "x-account-host": _host(anode),
                       "x-account-device": anode["device"], "x-account-partition": str(account_part)}
            try:
                self.client.delete(node_url(_host(node), node["device"], cpart, account, container), headers=headers)
            except httpx.HTTPError:
                stats["failures"] += 1
        stats["containers"] += 1

    def reap_object(self, account: str, container: str, obj: str, cpart: int, cnodes: list[dict[str, Any]],
                    ring: Ring, stats: dict[str, int]) -> None:
        part, nodes = ring.get_nodes(account, container, obj)
        timestamp = normalize_timestamp(time.time())
        for i, node in enumerate(nodes):
            cnode = cnodes[i % len(cnodes)]
            headers = {"x-timestamp": timestamp, "x-container-host": _host(cnode),
                       "x-container-device": cnode["device"], "x-container-partition": str(cpart)}
            try:
                self.client.delete(node_url(_host(node), node["device"], part, account, container, obj),
                                   headers=headers)
            except httpx.HTTPError:
                stats["failures"] += 1
        stats["objects"] += 1
