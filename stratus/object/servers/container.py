"""The container server: `/{device}/{partition}/{account}/{container}[/{object}]`.

The container's own PUT/POST/DELETE/GET/HEAD, and object rows (PUT/DELETE with an object name) that
the object servers send after each write. Every container change is passed on to the account
server named in X-Account-Host/Device/Partition; the updater reports what does not get through.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.responses import Response

from stratus.object.db import ContainerBroker
from stratus.object.servers.common import (
    HTTPError,
    Request,
    header_text,
    in_disk_thread,
    iso_date,
    listing_format,
    listing_params,
    listing_response,
    meta_from_headers,
    meta_to_headers,
    plain,
    serve,
)
from stratus.object.servers.dbserver import DatabaseServer, missing_or_deleted, not_found
from stratus.object.updater import account_update_headers


class RowBatcher:
    """Object rows for one container database merged in one transaction.

    Concurrent PUTs into one container would otherwise queue on SQLite's write lock, whose busy
    handler sleeps; here rows that arrive while a transaction runs wait in memory and go in the next.
    """

    def __init__(self) -> None:
        self._pending: dict[str, list[tuple[dict[str, Any], asyncio.Future[bool]]]] = {}
        self._writers: set[asyncio.Task[None]] = set()  # held so that they are not collected mid-run

    async def merge(self, broker: ContainerBroker, row: dict[str, Any]) -> bool:
        """True once the row is in the database; False when the container is missing or deleted."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        key = str(broker.path)
        queue = self._pending.get(key)
        if queue is None:
            self._pending[key] = [(row, future)]
            task = asyncio.create_task(self._write(broker, key))
            self._writers.add(task)
            task.add_done_callback(self._writers.discard)
        else:
            queue.append((row, future))
        return await future

    async def _write(self, broker: ContainerBroker, key: str) -> None:
        while self._pending.get(key):
            batch = self._pending[key]
            self._pending[key] = []
            try:
                stored = await in_disk_thread(_merge_if_alive, broker, [row for row, _ in batch])
            except Exception as exc:  # every waiter gets the error (a 500 for its request)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(stored)
        self._pending.pop(key, None)


def _merge_if_alive(broker: ContainerBroker, rows: list[dict[str, Any]]) -> bool:
    gone, _ = missing_or_deleted(broker)
    if gone:
        return False
    broker.merge_items(rows)
    return True


def _info_or_none(broker: ContainerBroker) -> dict[str, Any] | None:
    return missing_or_deleted(broker)[1]


class ContainerServer(DatabaseServer):
    broker_class = ContainerBroker

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rows = RowBatcher()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await serve(self.handle, scope, receive, send)

    async def handle(self, req: Request) -> Response:
        if req.is_replicate:
            return await self.replicate(req)
        if req.raw_path in ("", "/"):
            return plain(200, "stratus container server\n")
        parts = req.split(4, 5)
        if len(parts) == 5:
            return await self.object_row(req, *parts)
        device, partition, account, container = parts
        if req.method == "PUT":
            return await self.put(req, device, partition, account, container)
        if req.method in ("GET", "HEAD"):
            return await self.get(req, device, partition, account, container)
        if req.method == "DELETE":
            return await self.delete(req, device, partition, account, container)
        if req.method == "POST":
            return await self.post(req, device, partition, account, container)
        raise HTTPError(405, "Method Not Allowed")

    def _broker(self, device: str, partition: str, account: str, container: str,
                writing: bool = False) -> ContainerBroker:
        broker, _ = self.broker(device, partition, account, container, writing)
        assert isinstance(broker, ContainerBroker)
        return broker

    async def put(self, req: Request, device: str, partition: str, account: str, container: str) -> Response:
        timestamp = req.timestamp()
        broker = self._broker(device, partition, account, container, writing=True)

        def work() -> tuple[int, dict[str, Any]]:
            was_gone, _ = missing_or_deleted(broker)
            broker.initialize(account, container, timestamp)
            broker.update_put_timestamp(timestamp)
            broker.update_metadata(meta_from_headers(req.headers, "container", timestamp))
            info = broker.info()
            if broker.is_deleted(info):
                return 409, info  # a newer DELETE already happened
            return (201 if was_gone else 202), info

        status, info = await in_disk_thread(work)
        if status == 409:
            return plain(409, headers={"x-backend-timestamp": info["delete_timestamp"]})
        await self._tell_account(req, broker, info)
        return plain(status, headers={"x-backend-timestamp": info["put_timestamp"]})

    async def delete(self, req: Request, device: str, partition: str, account: str, container: str) -> Response:
        timestamp = req.timestamp()
        broker = self._broker(device, partition, account, container)
        gone, info = await in_disk_thread(missing_or_deleted, broker)
        if gone or info is None:
            return not_found(info)
        if info["object_count"]:
            return plain(409, "There was a conflict when trying to complete your request.")
        if info["put_timestamp"] >= timestamp:
            return plain(409, headers={"x-backend-timestamp": info["put_timestamp"]})
        await in_disk_thread(broker.mark_deleted, timestamp)
        info = await in_disk_thread(broker.info)
        await self._tell_account(req, broker, info)
        return plain(204, headers={"x-backend-timestamp": timestamp})

    async def post(self, req: Request, device: str, partition: str, account: str, container: str) -> Response:
        timestamp = req.timestamp()
        broker = self._broker(device, partition, account, container, writing=True)
        gone, info = await in_disk_thread(missing_or_deleted, broker)
        if gone:
            return not_found(info)
        await in_disk_thread(broker.update_metadata, meta_from_headers(req.headers, "container", timestamp))
        return plain(204)

    async def get(self, req: Request, device: str, partition: str, account: str, container: str) -> Response:
        broker = self._broker(device, partition, account, container)
        gone, info = await in_disk_thread(missing_or_deleted, broker)
        if gone or info is None:
            return not_found(info)
        headers = {**meta_to_headers(info["metadata"]),
                   "x-container-object-count": str(info["object_count"]),
                   "x-container-bytes-used": str(info["bytes_used"]),
                   "x-timestamp": info["put_timestamp"], "x-put-timestamp": info["put_timestamp"],
                   "x-backend-timestamp": info["put_timestamp"],
                   "x-backend-put-timestamp": info["put_timestamp"],
                   "x-backend-delete-timestamp": info["delete_timestamp"]}
        if req.method == "HEAD":
            return Response(b"", 204, headers)
        params = listing_params(req)
        rows = await in_disk_thread(broker.listing, ContainerBroker.columns, **params)
        items = [row if "subdir" in row else
                 {"name": row["name"], "hash": row["etag"], "bytes": row["size"],
                  "content_type": row["content_type"], "last_modified": iso_date(row["created_at"])}
                 for row in rows]
        return listing_response("container", container, items, listing_format(req), headers)

    async def object_row(self, req: Request, device: str, partition: str, account: str, container: str,
                         obj: str) -> Response:
        """An object server's report of a PUT or DELETE."""
        status, info = await self.merge_row(req.method, device, partition, account, container, obj, req.headers)
        return not_found(info) if status == 404 else plain(status)

    async def merge_row(self, method: str, device: str, partition: str, account: str, container: str, obj: str,
                        headers: dict[str, str]) -> tuple[int, dict[str, Any] | None]:
        """Merge one object row (`headers` as an object server sends them); the status, and for a 404
        the container's info (None when it does not exist). An object server in this process calls it
        directly, the others through `object_row`."""
        timestamp = Request.parse_timestamp(headers.get("x-timestamp"), "x-timestamp")
        if method not in ("PUT", "DELETE"):
            raise HTTPError(405, "Method Not Allowed")
        broker = self._broker(device, partition, account, container, writing=True)
        if method == "PUT":
            size = headers.get("x-size", "0")
            if not size.isdigit():
                raise HTTPError(400, "Invalid X-Size")
            row = {"name": obj, "created_at": timestamp, "size": int(size),
                   "content_type": header_text(headers.get("x-content-type", "application/octet-stream")),
                   "etag": headers.get("x-etag", ""), "deleted": 0}
        else:
            row = {"name": obj, "created_at": timestamp, "size": 0, "content_type": "", "etag": "", "deleted": 1}
        if not await self.rows.merge(broker, row):
            return 404, await in_disk_thread(_info_or_none, broker)
        return (201 if method == "PUT" else 204), None

    async def _tell_account(self, req: Request, broker: ContainerBroker, info: dict[str, Any]) -> None:
        names = [info["account"], info["container"]]
        if await self.update_parent(req, "account", names, "PUT", account_update_headers(info)):
            await in_disk_thread(broker.reported, info)
