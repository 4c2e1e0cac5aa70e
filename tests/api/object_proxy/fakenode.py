"""A stand-in for the storage nodes, to test the proxy alone: Swift's backend protocol (account,
container and object servers in one ASGI app, data in memory) and a hash ring over such nodes.

Each fake node runs under uvicorn on its own loopback port, so the proxy talks real HTTP to it and a
test can stop one node (or make its device "full") to see what the proxy does.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from tests.servers import Served

REGISTRY: dict[str, FakeNode] = {}


@dataclass
class Stored:
    timestamp: float
    meta: dict[str, str]
    data: bytes = b""
    deleted: bool = False


@dataclass
class FakeNode:
    port: int
    device: str = "sda"
    full: bool = False
    objects: dict[tuple[str, ...], Stored] = field(default_factory=dict)
    containers: dict[tuple[str, ...], dict[str, Any]] = field(default_factory=dict)
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    puts: int = 0
    # When set, object GETs send this many body bytes and then drop the connection.
    truncate_gets: int | None = None
    server: Served | None = None

    # -- running ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.server = Served(self.app, self.port).start()
        REGISTRY[f"127.0.0.1:{self.port}"] = self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.server = None

    # -- container/account updates the real servers send each other ---------------------------------
    def container_update(self, account: str, container: str, name: str, stored: Stored) -> None:
        listing = self.containers.get((account, container))
        if listing is None or listing["deleted"]:
            return
        old = listing["objects"].get(name)
        if old is not None and old["timestamp"] > stored.timestamp:
            return
        listing["objects"][name] = {"timestamp": stored.timestamp, "deleted": stored.deleted,
                                    "bytes": len(stored.data), "hash": stored.meta.get("etag", ""),
                                    "content_type": stored.meta.get("content-type", "")}

    # -- ASGI -------------------------------------------------------------------------------------
    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode().lower(): v.decode("utf-8", "replace") for k, v in scope["headers"]}
        parts = scope["path"].lstrip("/").split("/", 4)
        query = dict(parse_qsl(scope["query_string"].decode(), keep_blank_values=True))
        device, names = parts[0], parts[2:]
        method = scope["method"]
        if method == "PUT" and self.full and len(names) == 3:
            await _reply(send, 507, {}, b"")
            return
        body = b""
        if method in ("PUT", "POST"):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return  # a partial upload is never committed
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            length = headers.get("content-length")
            if length is not None and len(body) != int(length):
                return
        del device
        if len(names) == 3:
            await self._object(send, method, tuple(names), headers, body)
        elif len(names) == 2:
            await self._container(send, method, tuple(names), headers, query)
        else:
            await self._account(send, method, names[0], headers, query)

    async def _object(self, send: Any, method: str, key: tuple[str, ...], headers: dict[str, str],
                      body: bytes) -> None:
        ts = float(headers.get("x-timestamp", "0") or 0)
        current = self.objects.get(key)
        if method == "PUT":
            etag = hashlib.md5(body).hexdigest()
            if headers.get("etag") and headers["etag"] != etag:
                await _reply(send, 422, {}, b"")
                return
            meta = {k: v for k, v in headers.items() if k.startswith(("x-object-meta-", "x-object-sysmeta-"))
                    or k in ("content-type", "x-delete-at")}
            meta.update({"etag": etag, "x-timestamp": headers.get("x-timestamp", "")})
            stored = Stored(ts, meta, body)
            if current is None or current.timestamp < ts:
                self.objects[key] = stored
                self.puts += 1
            self._update_parent(headers, key, stored)
            await _reply(send, 201, {"etag": etag}, b"")
            return
        if method == "DELETE":
            stored = Stored(ts, {"x-timestamp": headers.get("x-timestamp", "")}, deleted=True)
            status = 404 if current is None or current.deleted else 204
            if current is None or current.timestamp < ts:
                self.objects[key] = stored
            self._update_parent(headers, key, stored)
            await _reply(send, status, {"x-backend-timestamp": str(ts)}, b"")
            return
        if current is None or current.deleted:
            out = {"x-backend-timestamp": str(current.timestamp)} if current else {}
            await _reply(send, 404, out, b"")
            return
        if method == "POST":
            keep = {k: v for k, v in current.meta.items() if not k.startswith("x-object-meta-")}
            keep.update({k: v for k, v in headers.items() if k.startswith("x-object-meta-")
                         or k in ("content-type", "x-delete-at")})
            current.meta = keep
            await _reply(send, 202, {}, b"")
            return
        out = {**current.meta, "x-backend-timestamp": str(current.timestamp),
               "content-length": str(len(current.data))}
        if method == "GET" and self.truncate_gets is not None:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(k.encode(), v.encode()) for k, v in out.items()]})
            await send({"type": "http.response.body", "body": current.data[:self.truncate_gets], "more_body": True})
            raise ConnectionAbortedError("fake node: dropping the connection mid-body")
        await _reply(send, 200, out, current.data if method == "GET" else b"", head=method == "HEAD")

    def _update_parent(self, headers: dict[str, str], key: tuple[str, ...], stored: Stored) -> None:
        host = headers.get("x-container-host")
        node = REGISTRY.get(host or "")
        if node is not None and node.server is not None:
            node.container_update(key[0], key[1], key[2], Stored(stored.timestamp, stored.meta, stored.data,
                                                                 stored.deleted))

    async def _container(self, send: Any, method: str, key: tuple[str, ...], headers: dict[str, str],
                         query: dict[str, str]) -> None:
        ts = float(headers.get("x-timestamp", "0") or 0)
        listing = self.containers.get(key)
        alive = listing is not None and not listing["deleted"]
        if method == "PUT":
            if listing is None or listing["deleted"]:
                self.containers[key] = {"deleted": False, "objects": {}, "meta": {}, "timestamp": ts}
                self._set_meta(self.containers[key]["meta"], headers, "container")
                await _reply(send, 201, {}, b"")
            else:
                self._set_meta(listing["meta"], headers, "container")
                await _reply(send, 202, {}, b"")
            return
        if not alive or listing is None:
            await _reply(send, 404, {}, b"")
            return
        live = {n: o for n, o in listing["objects"].items() if not o["deleted"]}
        if method == "DELETE":
            if live:
                await _reply(send, 409, {}, b"")
                return
            listing["deleted"] = True
            await _reply(send, 204, {}, b"")
            return
        if method == "POST":
            self._set_meta(listing["meta"], headers, "container")
            await _reply(send, 204, {}, b"")
            return
        out = {**listing["meta"], "x-container-object-count": str(len(live)),
               "x-container-bytes-used": str(sum(o["bytes"] for o in live.values())),
               "x-backend-timestamp": str(listing["timestamp"]), "x-timestamp": str(listing["timestamp"])}
        if method == "HEAD":
            await _reply(send, 204, out, b"")
            return
        items = [{"name": n, "hash": o["hash"], "bytes": o["bytes"], "content_type": o["content_type"],
                  "last_modified": "2026-01-01T00:00:00.000000"} for n, o in sorted(live.items())]
        body = json.dumps(_filter(items, query)).encode()
        await _reply(send, 200, {**out, "content-type": "application/json"}, body)

    async def _account(self, send: Any, method: str, account: str, headers: dict[str, str],
                       query: dict[str, str]) -> None:
        info = self.accounts.get(account)
        if method == "PUT":
            if info is None:
                self.accounts[account] = {"meta": {}}
            await _reply(send, 201, {}, b"")
            return
        if info is None:
            await _reply(send, 404, {}, b"")
            return
        if method == "POST":
            self._set_meta(info["meta"], headers, "account")
            await _reply(send, 204, {}, b"")
            return
        # Stats come from every fake node's containers of this account (the real ones are updated).
        containers = sorted({c for node in REGISTRY.values() for (a, c), v in node.containers.items()
                             if a == account and not v["deleted"]})
        out = {**info["meta"], "x-account-container-count": str(len(containers)),
               "x-account-object-count": "0", "x-account-bytes-used": "0"}
        if method == "HEAD":
            await _reply(send, 204, out, b"")
            return
        items = [{"name": c, "count": 0, "bytes": 0, "last_modified": "2026-01-01T00:00:00.000000"}
                 for c in containers]
        await _reply(send, 200, {**out, "content-type": "application/json"},
                     json.dumps(_filter(items, query)).encode())

    @staticmethod
    def _set_meta(meta: dict[str, str], headers: dict[str, str], kind: str) -> None:
        for name, value in headers.items():
            if name.startswith((f"x-{kind}-meta-", f"x-{kind}-sysmeta-")):
                if value:
                    meta[name] = value
                else:
                    meta.pop(name, None)


def _filter(items: list[dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
    prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
    marker, end_marker = query.get("marker", ""), query.get("end_marker", "")
    reverse = query.get("reverse", "").lower() in ("true", "1", "yes", "on")
    if reverse:
        items = items[::-1]
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for item in items:
        name = item["name"]
        if not name.startswith(prefix):
            continue
        if marker and ((name <= marker) if not reverse else (name >= marker)):
            continue
        if end_marker and ((name >= end_marker) if not reverse else (name <= end_marker)):
            continue
        if delimiter:
            cut = name.find(delimiter, len(prefix))
            if cut >= 0:
                sub = name[:cut + 1]
                if sub not in seen and sub != marker:  # as Swift's broker: the marker's own subdir is past
                    seen.add(sub)
                    out.append({"subdir": sub})
                continue
        out.append(item)
    limit = int(query.get("limit", "10000") or 10000)
    return out[:limit]


async def _reply(send: Any, status: int, headers: dict[str, str], body: bytes, head: bool = False) -> None:
    out = [(k.encode(), v.encode()) for k, v in headers.items() if k != "content-length"]
    out.append((b"content-length", headers.get("content-length", str(len(body))).encode()))
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": b"" if head else body})


class FakeRing:
    """Consistent hashing over the fake nodes: `replicas` distinct primaries, the rest handoffs."""

    def __init__(self, nodes: list[FakeNode], replicas: int, part_power: int = 6) -> None:
        self.replica_count = replicas
        self.devs = [{"id": i, "region": 1, "zone": i, "ip": "127.0.0.1", "port": n.port, "device": n.device,
                      "weight": 1.0} for i, n in enumerate(nodes)]
        self.part_power = part_power

    def _part(self, *names: str | None) -> int:
        key = "/" + "/".join(n for n in names if n is not None)
        return int.from_bytes(hashlib.md5(key.encode()).digest()[:4], "big") >> (32 - self.part_power)

    def get_part_nodes(self, part: int) -> list[dict[str, Any]]:
        start = part % len(self.devs)
        order = self.devs[start:] + self.devs[:start]
        return order[:self.replica_count]

    def get_nodes(self, account: str, container: str | None = None,
                  obj: str | None = None) -> tuple[int, list[dict[str, Any]]]:
        part = self._part(account, container, obj)
        return part, self.get_part_nodes(part)

    def get_more_nodes(self, part: int) -> Any:
        start = part % len(self.devs)
        order = self.devs[start:] + self.devs[:start]
        return iter(order[self.replica_count:])


class FakeRings:
    def __init__(self, ring: FakeRing) -> None:
        self.ring = ring

    def get(self, kind: str) -> FakeRing:
        return self.ring

