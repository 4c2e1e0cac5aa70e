"""What every controller shares: the rings, quorum writes with handoffs, reads that fall back to other
replicas, and the short-lived account/container info cache."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from stratus.object.proxy import local
from stratus.object.proxy.backend import BackendError, NodeResponse, Pool, Upload, names_path, node_path
from stratus.object.proxy.local import LocalNodes
from stratus.object.proxy.request import Body, ClientDisconnected, SwiftError, SwiftResponse, now_timestamp

log = logging.getLogger("stratus.object.proxy")
RING_CHECK_SECONDS = 5.0
# Object bodies up to this size are sent to the nodes in one piece (and held in memory meanwhile).
SMALL_BODY = 64 * 1024


def quorum(replicas: int) -> int:
    return replicas // 2 + 1


def best_status(statuses: list[int], replicas: int) -> int:
    """The answer a quorum agrees on (by class: 2xx, 4xx, 5xx), as Swift's proxy decides; else 503."""
    need = quorum(replicas)
    for low in (200, 400, 500):
        same = [s for s in statuses if low <= s < low + 100]
        if len(same) >= need:
            return max(set(same), key=same.count)
    return 503


class Rings:
    """The three rings, loaded on first use and reloaded when their file changes on disk."""

    def __init__(self, ring_dir: Path) -> None:
        self.ring_dir = Path(ring_dir)
        self._rings: dict[str, tuple[float, Any]] = {}
        self._checked: dict[str, float] = {}

    def get(self, kind: str) -> Any:
        from stratus.object.ring.ring import Ring

        now = time.monotonic()
        loaded = self._rings.get(kind)
        if loaded is not None and now - self._checked.get(kind, 0) < RING_CHECK_SECONDS:
            return loaded[1]
        path = self.ring_dir / f"{kind}.ring.gz"
        self._checked[kind] = now
        try:
            mtime = os.stat(path).st_mtime
        except OSError as exc:
            if loaded is not None:
                return loaded[1]
            raise SwiftError(503, f"no {kind} ring") from exc
        if loaded is None or loaded[0] != mtime:
            loaded = (mtime, Ring(str(path)))
            self._rings[kind] = loaded
        return loaded[1]


class InfoCache:
    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._items: dict[tuple[str, ...], tuple[float, dict[str, Any]]] = {}

    def get(self, key: tuple[str, ...]) -> dict[str, Any] | None:
        item = self._items.get(key)
        if item is None or time.monotonic() - item[0] > self.ttl:
            return None
        return item[1]

    def put(self, key: tuple[str, ...], value: dict[str, Any]) -> None:
        if len(self._items) > 50000:
            self._items.clear()
        self._items[key] = (time.monotonic(), value)

    def forget(self, key: tuple[str, ...]) -> None:
        self._items.pop(key, None)


def _addr(node: dict[str, Any]) -> str:
    return f"{node['ip']}:{node['port']}"


class Cluster:
    """The storage nodes as the proxy sees them."""

    def __init__(self, ring_dir: Path, *, connect_timeout: float = 1.0, node_timeout: float = 10.0,
                 info_ttl: float = 3.0) -> None:
        self.rings = Rings(ring_dir)
        self.pool = Pool(connect_timeout, node_timeout)
        self.local = LocalNodes()  # storage servers in this process (stratus up)
        self.info = InfoCache(info_ttl)

    # -- placement -------------------------------------------------------------------------------
    def nodes(self, kind: str, account: str, container: str | None = None,
              obj: str | None = None) -> tuple[int, list[dict[str, Any]], Iterator[dict[str, Any]]]:
        ring = self.rings.get(kind)
        part, primaries = ring.get_nodes(account, container, obj)
        return part, list(primaries), iter(ring.get_more_nodes(part))

    def replicas(self, kind: str) -> int:
        return int(self.rings.get(kind).replica_count)

    def update_targets(self, kind: str, account: str, container: str | None) -> list[dict[str, str]]:
        """Per replica index, the headers telling a node which parent listing to update."""
        prefix = "x-container-" if kind == "container" else "x-account-"
        part, nodes, _ = self.nodes(kind, account, container)
        return [{prefix + "host": _addr(n), prefix + "device": str(n["device"]), prefix + "partition": str(part)}
                for n in nodes]

    async def _request(self, node: dict[str, Any], method: str, path: str, headers: dict[str, str],
                       body: bytes = b"", query: dict[str, str] | None = None) -> NodeResponse:
        """One request with its body in memory: to a server of this process directly, else over HTTP."""
        app = self.local.app_for(node, method)
        if app is not None:
            return await local.call(app, node, method, path, headers, body, query)
        return await self.pool.request(node, method, path, headers, body, query=query)

    # -- writes ----------------------------------------------------------------------------------
    async def write(self, kind: str, method: str, names: tuple[str, str | None, str | None],
                    headers: dict[str, str], body: bytes = b"") -> SwiftResponse:
        """PUT/POST/DELETE on every primary (a handoff standing in for one that fails); the quorum's answer."""
        account, container, obj = names
        part, primaries, handoffs = self.nodes(kind, account, container, obj)
        quoted = names_path(*names)
        parent = {"object": "container", "container": "account"}.get(kind)
        targets = self.update_targets(parent, account, container if kind == "object" else None) \
            if parent and method in ("PUT", "DELETE") else []
        headers = {**headers, "x-timestamp": headers.get("x-timestamp") or now_timestamp()}

        async def one(index: int, node: dict[str, Any]) -> NodeResponse | None:
            node_headers = {**headers, **(targets[index] if index < len(targets) else {})}
            while True:
                try:
                    response = await self._request(node, method, node_path(node, part, quoted=quoted),
                                                   node_headers, body)
                    await response.read()
                    if response.status != 507 and response.status < 500:
                        return response
                except BackendError as exc:
                    log.info("%s %s: %s", method, kind, exc)
                node = next(handoffs, None)  # type: ignore[arg-type]
                if node is None:
                    return None

        results = await asyncio.gather(*(one(i, n) for i, n in enumerate(primaries)))
        statuses = [r.status if r is not None else 503 for r in results]
        status = best_status(statuses, len(primaries))
        chosen = next((r for r in results if r is not None and r.status == status), None)
        out = dict(chosen.headers) if chosen is not None else {}
        for hop in ("content-length", "transfer-encoding", "connection", "date", "server"):
            out.pop(hop, None)
        return SwiftResponse(status, out)

    async def put_object(self, names: tuple[str, str, str], headers: dict[str, str], body: Body,
                         length: int | None) -> tuple[int, dict[str, str]]:
        """Stream `body` to every primary (or a handoff); returns the quorum's status and headers.

        A node that fails mid-body is dropped; the upload goes on while a quorum remains. If the client
        leaves, every node connection is dropped before the body ends, so no node commits anything.
        """
        if length is not None and length <= SMALL_BODY:
            # A small body is read first and sent whole with its headers: no 100-continue round trip.
            data = b"".join([chunk async for chunk in body])
            answer = await self.write("object", "PUT", names, headers, data)
            return answer.status, answer.headers
        account, container, obj = names
        part, primaries, handoffs = self.nodes("object", account, container, obj)
        quoted = names_path(*names)
        need = quorum(len(primaries))
        targets = self.update_targets("container", account, container)
        headers = {**headers, "x-timestamp": headers.get("x-timestamp") or now_timestamp()}

        async def open_one(index: int, node: dict[str, Any]) -> Upload | None:
            node_headers = {**headers, **(targets[index] if index < len(targets) else {})}
            while node is not None:
                upload = Upload(self.pool, node, node_path(node, part, quoted=quoted), node_headers, length)
                if await upload.start():
                    return upload
                node = next(handoffs, None)  # type: ignore[arg-type,assignment]
            return None

        opened = await asyncio.gather(*(open_one(i, n) for i, n in enumerate(primaries)))
        uploads = [u for u in opened if u is not None]
        if len(uploads) < need:
            for upload in uploads:
                upload.abort()
            raise SwiftError(503, "Not enough storage nodes are available for this object.")
        try:
            async for chunk in body:
                if not chunk:
                    continue
                full = [u for u in uploads if u.write(chunk)]
                if full:
                    # Backpressure: wait for the slow nodes (a node silent for node_timeout is dropped).
                    try:
                        async with asyncio.timeout(self.pool.node_timeout):
                            await asyncio.gather(*(u.drain() for u in full))
                    except TimeoutError:
                        for upload in full:
                            if upload.conn is not None and upload.conn.writer.transport.get_write_buffer_size():
                                upload.abort()
                if sum(not u.failed for u in uploads) < need:
                    raise SwiftError(503, "Too many storage nodes failed during the upload.")
        except BaseException:
            # A client that left (or any failure) must leave no partial object behind.
            for upload in uploads:
                upload.abort()
            raise
        responses = await asyncio.gather(*(u.finish() for u in uploads))
        statuses = [r.status if r is not None else 503 for r in responses]
        statuses += [503] * (len(primaries) - len(statuses))
        status = best_status(statuses, len(primaries))
        chosen = next((r for r in responses if r is not None and r.status == status), None)
        return status, dict(chosen.headers) if chosen is not None else {}

    # -- reads -----------------------------------------------------------------------------------
    async def read(self, kind: str, method: str, names: tuple[str, str | None, str | None],
                   headers: dict[str, str] | None = None, query: dict[str, str] | None = None,
                   newest: bool = False, exclude: list[tuple[str, int]] | None = None) -> NodeResponse | None:
        """GET/HEAD from the first replica that has it, falling back to the others (then handoffs).

        A 404 tombstone newer than the copy found wins. With `newest`, every primary is asked and the
        one with the latest X-Backend-Timestamp answers. None: no node answered at all.
        """
        account, container, obj = names
        part, primaries, handoffs = self.nodes(kind, account, container, obj)
        quoted = names_path(*names)
        candidates = [n for n in primaries + list(islice(handoffs, len(primaries)))
                      if (n["ip"], int(n["port"])) not in (exclude or [])]
        headers = headers or {}
        if newest:
            return await self._read_newest(candidates[:len(primaries)], part, method, names, headers, query)
        missing: NodeResponse | None = None
        for node in candidates:
            try:
                response = await self._request(node, method, node_path(node, part, quoted=quoted), headers,
                                               query=query)
            except BackendError as exc:
                log.info("%s %s: %s", method, kind, exc)
                continue
            if response.status == 404:
                await response.read()
                if missing is None or response.timestamp > missing.timestamp:
                    missing = response
                continue
            if response.status >= 500 or response.status == 507:
                response.close()
                continue
            if missing is not None and missing.timestamp > response.timestamp and response.status < 300:
                response.close()  # deleted after this copy was written
                return missing
            return response
        return missing

    async def _read_newest(self, nodes: list[dict[str, Any]], part: int, method: str,
                           names: tuple[str, str | None, str | None], headers: dict[str, str],
                           query: dict[str, str] | None) -> NodeResponse | None:
        quoted = names_path(*names)

        async def one(node: dict[str, Any]) -> NodeResponse | None:
            try:
                return await self._request(node, method, node_path(node, part, quoted=quoted), headers,
                                           query=query)
            except BackendError:
                return None

        answers = [r for r in await asyncio.gather(*(one(n) for n in nodes)) if r is not None]
        usable = [r for r in answers if r.status < 500]
        best = max(usable, key=lambda r: (r.timestamp, r.status < 300), default=None)
        for response in answers:
            if response is not best:
                response.close()
        return best

    # -- info ------------------------------------------------------------------------------------
    async def account_info(self, account: str) -> dict[str, Any]:
        key = ("account", account)
        cached = self.info.get(key)
        if cached is not None:
            return cached
        response = await self.read("account", "HEAD", (account, None, None))
        info = _info_from(response)
        self.info.put(key, info)
        return info

    async def container_info(self, account: str, container: str) -> dict[str, Any]:
        key = ("container", account, container)
        cached = self.info.get(key)
        if cached is not None:
            return cached
        response = await self.read("container", "HEAD", (account, container, None))
        info = _info_from(response)
        self.info.put(key, info)
        return info

    def forget(self, account: str, container: str | None = None) -> None:
        self.info.forget(("account", account))
        if container is not None:
            self.info.forget(("container", account, container))


def _info_from(response: NodeResponse | None) -> dict[str, Any]:
    if response is None:
        return {"status": 503, "headers": {}}
    response.close()
    return {"status": response.status, "headers": dict(response.headers)}


async def drain(body: Body) -> None:
    """Read a request body to its end (for requests that must not carry one)."""
    try:
        async for _ in body:
            pass
    except ClientDisconnected:
        pass


_HIDDEN = ("x-backend-", "connection", "transfer-encoding", "date", "server", "keep-alive")
_SYSMETA = ("x-account-sysmeta-", "x-container-sysmeta-", "x-object-sysmeta-", "x-object-transient-sysmeta-")


def client_headers(backend: dict[str, str]) -> dict[str, str]:
    """A node's answer headers as the client may see them (no sysmeta, no backend internals)."""
    return {k: v for k, v in backend.items() if not k.startswith(_HIDDEN) and not k.startswith(_SYSMETA)}


def removals(headers: dict[str, str], kind: str) -> dict[str, str]:
    """`X-Remove-<Kind>-Meta-Foo` becomes `X-<Kind>-Meta-Foo: ""` (an empty value deletes the item)."""
    out = {}
    prefix = f"x-remove-{kind}-meta-"
    for name, value in headers.items():
        if name.startswith(prefix):
            out[f"x-{kind}-meta-{name[len(prefix):]}"] = ""
        elif not name.startswith("x-remove-"):
            out[name] = value
    return out
