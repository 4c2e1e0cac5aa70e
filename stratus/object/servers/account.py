"""The account server: `/{device}/{partition}/{account}[/{container}]`.

The account's own PUT/POST/DELETE/GET/HEAD, and container rows (PUT with a container name) that the
container servers and the updater send with the container's timestamps and totals.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from stratus.object.db import AccountBroker
from stratus.object.servers.common import (
    HTTPError,
    Request,
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
from stratus.object.utils import BadTimestamp, normalize_timestamp


class AccountServer(DatabaseServer):
    broker_class = AccountBroker

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await serve(self.handle, scope, receive, send)

    async def handle(self, req: Request) -> Response:
        if req.is_replicate:
            return await self.replicate(req)
        if req.raw_path in ("", "/"):
            return plain(200, "stratus account server\n")
        parts = req.split(3, 4)
        if len(parts) == 4:
            return await self.container_row(req, *parts)
        device, partition, account = parts
        broker = self._broker(device, partition, account, writing=req.method in ("PUT", "POST"))
        if req.method == "PUT":
            return await self.put(req, broker, account)
        if req.method in ("GET", "HEAD"):
            return await self.get(req, broker, account)
        if req.method == "DELETE":
            return await self.delete(req, broker)
        if req.method == "POST":
            timestamp = req.timestamp()
            gone, info = await in_disk_thread(missing_or_deleted, broker)
            if gone:
                return not_found(info)
            await in_disk_thread(broker.update_metadata, meta_from_headers(req.headers, "account", timestamp))
            return plain(204)
        raise HTTPError(405, "Method Not Allowed")

    def _broker(self, device: str, partition: str, account: str, writing: bool = False) -> AccountBroker:
        broker, _ = self.broker(device, partition, account, None, writing)
        assert isinstance(broker, AccountBroker)
        return broker

    async def put(self, req: Request, broker: AccountBroker, account: str) -> Response:
        timestamp = req.timestamp()

        def work() -> int:
            _gone, info = missing_or_deleted(broker)
            if info is not None and info["delete_timestamp"] > info["put_timestamp"]:
                return 403  # a deleted account stays deleted until the reaper is done with it
            created = broker.initialize(account, None, timestamp)
            broker.update_put_timestamp(timestamp)
            broker.update_metadata(meta_from_headers(req.headers, "account", timestamp))
            return 201 if created else 202

        status = await in_disk_thread(work)
        return plain(status, "Recently deleted" if status == 403 else "")

    async def delete(self, req: Request, broker: AccountBroker) -> Response:
        timestamp = req.timestamp()
        gone, info = await in_disk_thread(missing_or_deleted, broker)
        if gone or info is None:
            return not_found(info)
        await in_disk_thread(broker.mark_deleted, timestamp)
        return plain(204, headers={"x-backend-timestamp": timestamp})

    async def get(self, req: Request, broker: AccountBroker, account: str) -> Response:
        gone, info = await in_disk_thread(missing_or_deleted, broker)
        if info is not None and info["delete_timestamp"] > info["put_timestamp"]:
            gone = True  # unlike a container, a deleted account is gone while its containers are reaped
        if gone or info is None:
            response = not_found(info)
            if info is not None:
                response.headers["x-account-status"] = "Deleted"
            return response
        headers = {**meta_to_headers(info["metadata"]),
                   "x-account-container-count": str(info["container_count"]),
                   "x-account-object-count": str(info["object_count"]),
                   "x-account-bytes-used": str(info["bytes_used"]),
                   "x-timestamp": info["created_at"], "x-put-timestamp": info["put_timestamp"],
                   "x-backend-timestamp": info["put_timestamp"]}
        if req.method == "HEAD":
            return Response(b"", 204, headers)
        params = listing_params(req)
        rows = await in_disk_thread(broker.listing, AccountBroker.columns, **params)
        items = [row if "subdir" in row else
                 {"name": row["name"], "count": row["object_count"], "bytes": row["bytes_used"],
                  "last_modified": iso_date(row["put_timestamp"])}
                 for row in rows]
        return listing_response("account", account, items, listing_format(req), headers)

    async def container_row(self, req: Request, device: str, partition: str, account: str,
                            container: str) -> Response:
        """A container server's report: its timestamps and totals."""
        if req.method not in ("PUT",):
            raise HTTPError(405, "Method Not Allowed")
        try:
            put_ts = normalize_timestamp(req.headers.get("x-put-timestamp", "0"))
            delete_ts = normalize_timestamp(req.headers.get("x-delete-timestamp", "0"))
        except BadTimestamp as exc:
            raise HTTPError(400, "Invalid timestamps") from exc
        count, used = req.headers.get("x-object-count", "0"), req.headers.get("x-bytes-used", "0")
        if not (count.isdigit() and used.isdigit()):
            raise HTTPError(400, "Invalid totals")
        broker = self._broker(device, partition, account, writing=True)
        _gone, info = await in_disk_thread(missing_or_deleted, broker)
        if info is None:
            return not_found(None)
        await in_disk_thread(broker.put_container, container, put_ts, delete_ts, int(count), int(used))
        return plain(204 if delete_ts > put_ts else 201)
