"""The object server: `/{device}/{partition}/{account}/{container}/{object}`.

PUT streams the body into a temp file on the device (checking room before reading a byte, so a
proxy sending `Expect: 100-continue` can pick another device), verifies the MD5 against `ETag`,
and renames the file into place only when the whole body arrived. The newest X-Timestamp wins;
DELETE writes a tombstone. After a write the container listing is updated (an async pending is
left for the updater when that fails). REPLICATE answers the replicator's suffix hash questions.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.responses import FileResponse, Response

from stratus.object.diskfile import (
    Conflict,
    Corrupt,
    DeviceUnavailable,
    DiskFile,
    DiskFileManager,
    DiskFileWriter,
)
from stratus.object.servers.common import HTTPError, Request, http_date, in_disk_thread, plain, serve
from stratus.object.servers.nodeclient import NodeClient, NodeRequestError
from stratus.object.updater import node_url, save_pending

if TYPE_CHECKING:
    from stratus.object.servers.container import ContainerServer

# Headers stored with the object and given back on GET/HEAD (besides X-Object-Meta-*/Sysmeta-*).
KEPT_HEADERS = ("content-encoding", "content-disposition", "x-object-manifest", "x-static-large-object",
                "cache-control", "content-language", "expires")
SMALL_BODY = 256 * 1024  # bodies up to this size are read and sent in one piece
WRITE_BATCH = 1024 * 1024  # a larger body goes to disk in pieces of about this size


class ThreadedWrites:
    """A streamed body written and hashed by worker threads, WRITE_BATCH bytes at a time, while the
    event loop receives the next bytes: MD5 and write() release the GIL, so for a large object they
    run beside the loop (on another core) instead of inside it. One batch in flight keeps the order."""

    def __init__(self, writer: DiskFileWriter) -> None:
        self.writer = writer
        self.parts: list[bytes] = []
        self.size = 0
        self.task: asyncio.Future[None] | None = None

    async def add(self, chunk: bytes) -> None:
        self.parts.append(chunk)
        self.size += len(chunk)
        if self.size >= WRITE_BATCH:
            await self._flush()

    async def _flush(self) -> None:
        if self.task is not None:
            await self.task
            self.task = None
        if self.parts:
            data = self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)
            self.parts, self.size = [], 0
            self.task = asyncio.ensure_future(in_disk_thread(self.writer.write, data))

    async def finish(self) -> None:
        await self._flush()
        await self.settle()

    async def settle(self, check: bool = True) -> None:
        """Wait for the batch in flight; its error is raised when `check` (else: already failing)."""
        task, self.task = self.task, None
        if task is not None:
            await asyncio.wait([task])
            if check:
                task.result()
            elif not task.cancelled():
                task.exception()  # retrieved: the request already fails for another reason


class ObjectFileResponse(FileResponse):
    chunk_size = 1024 * 1024


class ObjectServer:
    def __init__(self, manager: DiskFileManager, *, node_timeout: float = 10.0) -> None:
        self.manager = manager
        self.node_timeout = node_timeout
        self.client = NodeClient(node_timeout)
        # Container servers running in this process, by the "ip:port" the rings give them.
        self.local_containers: dict[str, ContainerServer] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await serve(self.handle, scope, receive, send)

    async def handle(self, req: Request) -> Response:
        if req.is_replicate:
            return await self.replicate(req)
        if req.raw_path in ("", "/"):
            return plain(200, "stratus object server\n")
        device, partition, account, container, obj = req.split(5, 5)
        if not partition.isdigit():
            raise HTTPError(400, "Invalid partition")
        try:
            df = self.manager.get(device, partition, account, container, obj)
        except DeviceUnavailable as exc:
            raise HTTPError(507, str(exc)) from exc
        name = f"/{account}/{container}/{obj}"
        if req.method == "PUT":
            return await self.put(req, df, name)
        if req.method in ("GET", "HEAD"):
            return await self.get(req, df)
        if req.method == "DELETE":
            return await self.delete(req, df, name)
        if req.method == "POST":
            return await self.post(req, df)
        raise HTTPError(405, "Method Not Allowed")

    # -- reads -----------------------------------------------------------------------------------
    def _open(self, df: DiskFile) -> DiskFile:
        try:
            return df.open()
        except Corrupt:
            self.manager.quarantine(df)
            return DiskFile(df.manager, df.device_dir, df.part_dir, df.name_hash)

    async def get(self, req: Request, df: DiskFile) -> Response:
        df = self._open(df)
        if df.timestamp is None:
            return plain(404)
        if df.deleted:
            return plain(404, headers={"x-backend-timestamp": df.timestamp})
        meta = df.metadata
        delete_at = meta.get("X-Delete-At", "")
        if delete_at.isdigit() and int(delete_at) <= time.time():
            return plain(404, headers={"x-backend-timestamp": df.timestamp, "x-delete-at": delete_at})
        headers = response_headers(meta)
        assert df.data_file is not None
        try:
            stat = os.stat(df.data_file)
        except FileNotFoundError:
            return plain(404)  # replaced or quarantined while we looked
        if stat.st_size != df.size():
            self.manager.quarantine(df)
            return plain(404)
        # Given as a header, not media_type: Starlette would add "; charset=utf-8" to text types.
        headers["content-type"] = meta.get("Content-Type", "application/octet-stream")
        if req.method == "GET" and stat.st_size <= SMALL_BODY and "range" not in req.headers:
            try:
                with open(df.data_file, "rb") as data:
                    body = data.read()
            except FileNotFoundError:
                return plain(404)
            return Response(body, 200, headers)
        if req.method == "HEAD":
            return Response(b"", 200, headers)
        return ObjectFileResponse(df.data_file, headers=headers, stat_result=stat)

    # -- writes ----------------------------------------------------------------------------------
    async def put(self, req: Request, df: DiskFile, name: str) -> Response:
        timestamp = req.timestamp()
        length = req.content_length()
        delete_at = req.headers.get("x-delete-at", "")
        if delete_at and not delete_at.isdigit():
            raise HTTPError(400, "Invalid X-Delete-At")
        meta = {"name": name, "X-Timestamp": timestamp,
                "Content-Type": req.headers.get("content-type", "application/octet-stream")}
        if delete_at:
            meta["X-Delete-At"] = delete_at
        meta.update(stored_headers(req.headers))
        expected = req.headers.get("etag", "").strip('"').lower()
        current = self._open(DiskFile(df.manager, df.device_dir, df.part_dir, df.name_hash))
        if current.timestamp is not None and current.timestamp >= timestamp:
            return plain(409, headers={"x-backend-timestamp": current.timestamp})
        if length is not None and length <= SMALL_BODY:
            response = await self._put_small(req, df, length, meta, expected)
        else:
            response = await self._put_streamed(req, df, length, meta, expected)
        if response.status_code == 201:
            await self.update_container(req, df, "PUT", {
                "x-timestamp": timestamp, "x-size": meta["Content-Length"], "x-etag": meta["ETag"],
                "x-content-type": meta["Content-Type"]})
        return response

    async def _put_small(self, req: Request, df: DiskFile, length: int, meta: dict[str, str],
                         expected: str) -> Response:
        """A body that fits in memory: read first, then written from the event loop. Its few file
        system calls on the page cache cost less than handing them to a thread: under a burst of
        small PUTs, threads running this Python code spent more time passing the GIL between them
        than writing. The syncs run on the group committer's thread either way."""
        body = b"".join([chunk async for chunk in req.chunks(length)])
        timestamp = meta["X-Timestamp"]
        try:
            with df.create(len(body)) as writer:
                writer.write(body)
                etag = writer.md5.hexdigest()
                if expected and expected != etag:
                    return plain(422, "ETag mismatch")
                meta.update({"Content-Length": str(writer.bytes_written), "ETag": etag})
                await writer.put_async(meta)
        except DeviceUnavailable as exc:
            return plain(507, str(exc))
        except Conflict as exc:
            return plain(409, headers={"x-backend-timestamp": str(exc)})
        return plain(201, headers={"etag": etag, "x-timestamp": timestamp})

    async def _put_streamed(self, req: Request, df: DiskFile, length: int | None, meta: dict[str, str],
                            expected: str) -> Response:
        timestamp = meta["X-Timestamp"]
        try:
            with df.create(length) as writer:
                writes = ThreadedWrites(writer)
                try:
                    async for chunk in req.chunks(length):
                        await writes.add(chunk)
                    await writes.finish()
                finally:
                    await writes.settle(check=False)  # no thread may still write when the file closes
                etag = writer.md5.hexdigest()
                if expected and expected != etag:
                    return plain(422, "ETag mismatch")
                meta.update({"Content-Length": str(writer.bytes_written), "ETag": etag})
                await in_disk_thread(writer.put, meta)
        except DeviceUnavailable as exc:
            raise HTTPError(507, str(exc)) from exc
        except Conflict as exc:
            return plain(409, headers={"x-backend-timestamp": str(exc)})
        return plain(201, headers={"etag": etag, "x-timestamp": timestamp})

    async def delete(self, req: Request, df: DiskFile, name: str) -> Response:
        timestamp = req.timestamp()
        current = self._open(df)
        if_delete_at = req.headers.get("x-if-delete-at")
        if if_delete_at is not None and current.metadata.get("X-Delete-At") != if_delete_at:
            return plain(412, "X-If-Delete-At mismatch")
        if current.timestamp is not None and current.timestamp >= timestamp:
            return plain(409, headers={"x-backend-timestamp": current.timestamp})
        status = 404 if current.timestamp is None or current.deleted else 204
        try:
            await in_disk_thread(current.write_tombstone, timestamp, name)
        except DeviceUnavailable as exc:
            raise HTTPError(507, str(exc)) from exc
        except Conflict as exc:
            return plain(409, headers={"x-backend-timestamp": str(exc)})
        await self.update_container(req, df, "DELETE", {"x-timestamp": timestamp})
        return plain(status, headers={"x-backend-timestamp": timestamp})

    async def post(self, req: Request, df: DiskFile) -> Response:
        timestamp = req.timestamp()
        delete_at = req.headers.get("x-delete-at", "")
        if delete_at and not delete_at.isdigit():
            raise HTTPError(400, "Invalid X-Delete-At")
        current = self._open(df)
        if current.timestamp is None or current.deleted:
            return plain(404, headers={"x-backend-timestamp": current.timestamp} if current.timestamp else {})
        if (current.newest or "") >= timestamp:
            return plain(409, headers={"x-backend-timestamp": current.newest or ""})
        meta = {k: v for k, v in stored_headers(req.headers).items() if not k.startswith("x-object-sysmeta-")}
        if "content-type" in req.headers:
            meta["Content-Type"] = req.headers["content-type"]
        if delete_at:
            meta["X-Delete-At"] = delete_at
        try:
            await in_disk_thread(current.write_metadata, timestamp, meta)
        except DeviceUnavailable as exc:
            raise HTTPError(507, str(exc)) from exc
        except Conflict:
            return plain(404)
        return plain(202, headers={"x-backend-timestamp": timestamp})

    async def update_container(self, req: Request, df: DiskFile, op: str, headers: dict[str, str]) -> None:
        """Tell the container server about the new row; keep it for the updater if that fails."""
        host = req.headers.get("x-container-host")
        device = req.headers.get("x-container-device")
        partition = req.headers.get("x-container-partition")
        if not (host and device and partition) or req.headers.get("x-backend-replication"):
            return
        _dev, _part, account, container, obj = req.split(5, 5)
        host, device = host.split(",")[0].strip(), device.split(",")[0].strip()
        record = {"op": op, "host": host, "device": device, "partition": partition, "account": account,
                  "container": container, "obj": obj, "headers": headers}
        local = self.local_containers.get(host)
        if local is not None:
            # The container server in this process: the row is merged without an HTTP round trip.
            try:
                status, _ = await local.merge_row(op, device, partition, account, container, obj, headers)
            except HTTPError as exc:
                status = exc.status
            if status // 100 == 2:
                return
        else:
            url = node_url(host, device, partition, account, container, obj)
            try:
                if (await self.client.request(op, url, headers)) // 100 == 2:
                    return
            except NodeRequestError:
                pass
        await in_disk_thread(save_pending, df.device_dir, record)

    # -- replication -----------------------------------------------------------------------------
    async def replicate(self, req: Request) -> Response:
        """`REPLICATE /dev/part[/suf-suf]`: suffix hashes (recomputing the named suffixes), and for
        the named suffixes also every object's current files, as JSON."""
        parts = req.split(2, 3)
        device, partition = parts[0], parts[1]
        if not partition.isdigit():
            raise HTTPError(400, "Invalid partition")
        suffixes = [s for s in parts[2].split("-") if s] if len(parts) > 2 else []
        if not all(len(s) == 3 and all(c in "0123456789abcdef" for c in s) for s in suffixes):
            raise HTTPError(400, "Invalid suffixes")
        try:
            hashes = await in_disk_thread(self.manager.get_hashes, device, partition, suffixes)
            objects = await in_disk_thread(self.manager.suffix_files, device, partition, suffixes) \
                if suffixes else []
        except DeviceUnavailable as exc:
            raise HTTPError(507, str(exc)) from exc
        body = {"hashes": hashes, "objects": dict(objects)}
        return Response(json.dumps(body).encode(), 200, media_type="application/json")


def stored_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items()
            if k.startswith(("x-object-meta-", "x-object-sysmeta-")) or k in KEPT_HEADERS}


def response_headers(meta: dict[str, str]) -> dict[str, str]:
    headers = {k: v for k, v in meta.items() if k.startswith(("x-object-meta-", "x-object-sysmeta-"))
               or k in KEPT_HEADERS}
    # After a POST the object's timestamp is the POST's (as Swift answers); the data's is kept apart.
    data_timestamp = meta.get("X-Timestamp", "")
    timestamp = meta.get("X-Meta-Timestamp") or data_timestamp
    headers.update({"etag": meta.get("ETag", ""), "content-length": meta.get("Content-Length", "0"),
                    "x-timestamp": timestamp, "x-backend-timestamp": timestamp,
                    "x-backend-data-timestamp": data_timestamp, "last-modified": http_date(timestamp or 0)})
    if meta.get("X-Delete-At"):
        headers["x-delete-at"] = meta["X-Delete-At"]
    return headers


def app(devices_dir: Path, hash_secret: tuple[str, str], **options: Any) -> ObjectServer:
    node_timeout = options.pop("node_timeout", 10.0)
    return ObjectServer(DiskFileManager(devices_dir, hash_secret=hash_secret, **options), node_timeout=node_timeout)

