"""Image bytes on their way into a store: streamed, hashed, inspected, limited, and either committed
whole or forgotten whole.

The same path serves a direct upload (`PUT .../file`: queued -> saving -> active), staging for an
interoperable import (`PUT .../stage`: queued -> uploading) and the import itself (staged data copied
into the store: importing -> active). Every step that blocks (hashing, disk writes, the database)
runs in a worker thread; the event loop only moves request chunks.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import anyio
import sqlalchemy as sa
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.image import formats
from stratus.image.models import Image
from stratus.image.service import ImageService
from stratus.image.stores.base import Store, StoreWriter
from stratus.image.visibility import visible_image

log = logging.getLogger("stratus.image.upload")

# Request chunks are gathered into batches of this size before a worker thread writes them:
# one thread hop per MiB, never the whole image in memory.
BATCH = 1024 * 1024
HASH_ALGO = "sha512"


@dataclass(frozen=True)
class Transfer:
    """One upload in progress: which store it goes to and the states it moves between."""

    image_id: str
    disk_format: str
    # Bytes the image may still take: the smaller of max_image_size and what the quota leaves.
    limit: int
    busy: str  # the status while the bytes stream in
    staged: bool


@dataclass(frozen=True)
class Digest:
    size: int
    checksum: str
    os_hash_value: str
    inspection: formats.Inspection


@contextmanager
def _format_errors() -> Iterator[None]:
    """The inspector's objections are the client's fault: 400 with its message."""
    try:
        yield
    except formats.FormatError as exc:
        raise errors.BadRequest(str(exc)) from exc


class Sink:
    """Everything the bytes pass through: md5 (`checksum`), sha512 (`os_hash_value`), the format
    inspector and the store writer. Called from worker threads, one batch at a time."""

    def __init__(self, writer: StoreWriter) -> None:
        self.writer = writer
        self.size = 0
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha512 = hashlib.sha512()
        self._inspector = formats.Inspector()

    def write(self, data: bytes) -> None:
        self._md5.update(data)
        self._sha512.update(data)
        with _format_errors():
            self._inspector.feed(data)
        self.writer.write(data)
        self.size += len(data)

    def digest(self, disk_format: str | None) -> Digest:
        """The hashes and the inspection; with a `disk_format`, the data must really be in it."""
        with _format_errors():
            inspection = self._inspector.result()
            if disk_format is not None:
                formats.check(inspection, disk_format)
        return Digest(self.size, self._md5.hexdigest(), self._sha512.hexdigest(), inspection)


def _bytes_used(session: Session, owner: str | None, image_id: str) -> int:
    total = session.scalar(sa.select(sa.func.coalesce(sa.func.sum(Image.size), 0))
                           .where(Image.owner == owner, Image.id != image_id))
    return int(total or 0)


def _limit(service: ImageService, session: Session, image: Image) -> int:
    settings = service.settings
    if not settings.quota_bytes:
        return settings.max_image_size
    return min(settings.max_image_size, settings.quota_bytes - _bytes_used(session, image.owner, image.id))


def _set_status(service: ImageService, image_id: str, old: str, new: str) -> bool:
    """Move the image from `old` to `new` only if nobody moved it meanwhile. A queued image has no
    data, so going back to queued forgets the size that staging recorded."""
    values: dict[str, object] = {"status": new, **({"size": None} if new == "queued" else {})}
    with service.db.transaction() as session:
        result = session.execute(sa.update(Image).where(Image.id == image_id, Image.status == old).values(values))
        return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def begin(service: ImageService, ctx: RequestContext, image_id: str, *, staged: bool,
          declared_length: int | None) -> Transfer:
    """Check the caller may put data into a queued image and claim it (status saving/uploading)."""
    with service.db.transaction() as session:
        image = visible_image(session, ctx, image_id)
        service.policy.enforce("image:upload_image", ctx.policy_credentials(), {"owner": image.owner})
        busy = "uploading" if staged else "saving"
        if image.status != "queued":
            raise errors.Conflict(f"Image status transition from {image.status} to {busy} is not allowed")
        if not image.disk_format or not image.container_format:
            raise errors.BadRequest("Properties disk_format and container_format must be set prior to "
                                    "uploading image data.")
        transfer = Transfer(image_id, image.disk_format, _limit(service, session, image), busy, staged)
    if declared_length is not None and declared_length > transfer.limit:
        raise _too_large(transfer)
    if not _set_status(service, image_id, "queued", transfer.busy):
        raise errors.Conflict("Image data is already being uploaded.")
    return transfer


def _too_large(transfer: Transfer) -> errors.PayloadTooLarge:
    return errors.PayloadTooLarge(f"Image exceeds the storage quota or the maximum image size: at most "
                                  f"{max(transfer.limit, 0)} more bytes may be stored for this image.")


async def _pump(chunks: AsyncIterator[bytes], sink: Sink, transfer: Transfer) -> None:
    """Feed the request body to the sink in batches; cut it off the moment it crosses the limit.

    One batch is hashed and written in a worker thread while the next one is received, so the
    network and the disk work side by side (at most two batches are held).
    """
    pending: list[bytes] = []
    buffered = received = 0
    in_flight: asyncio.Future[None] | None = None
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > transfer.limit:
                raise _too_large(transfer)
            pending.append(chunk)
            buffered += len(chunk)
            if buffered >= BATCH:
                if in_flight is not None:
                    await in_flight
                in_flight = asyncio.ensure_future(run_in_threadpool(sink.write, b"".join(pending)))
                pending, buffered = [], 0
        if in_flight is not None:
            await in_flight
        if pending:
            await run_in_threadpool(sink.write, b"".join(pending))
    finally:
        # Never leave a write running behind an abort of the same writer.
        if in_flight is not None and not in_flight.done():
            await asyncio.wait([in_flight])


def _abandon(service: ImageService, writer: StoreWriter, transfer: Transfer) -> None:
    """Forget the partial data and give the image back its queued state."""
    writer.abort()
    _set_status(service, transfer.image_id, transfer.busy, "queued")


async def receive(service: ImageService, transfer: Transfer, chunks: AsyncIterator[bytes]) -> None:
    """Stream `chunks` into the store (or staging) for a transfer that `begin` claimed; the image is
    active (or staged) when this returns, and queued with nothing kept when it raises."""
    store = service.staging if transfer.staged else service.store
    try:
        writer = await run_in_threadpool(store.writer, transfer.image_id)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(_set_status, service, transfer.image_id, transfer.busy, "queued")
        raise
    try:
        sink = Sink(writer)
        await _pump(chunks, sink, transfer)
        # Staged data is inspected when it is imported.
        digest = await run_in_threadpool(sink.digest, None if transfer.staged else transfer.disk_format)
        location = await run_in_threadpool(writer.commit)
    except BaseException:
        # A disconnect, a cut-off, a bad format or a cancellation: nothing may stay behind, even
        # while the request's task is being cancelled.
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(_abandon, service, writer, transfer)
        raise
    await run_in_threadpool(_settle, service, store, transfer, digest, location)


def _settle(service: ImageService, store: Store, transfer: Transfer, digest: Digest, location: str) -> None:
    """Record committed data on the image; if that fails, the data goes."""
    try:
        _record(service, transfer, digest, location)
    except BaseException:
        store.delete(location)
        _set_status(service, transfer.image_id, transfer.busy, "queued")
        raise


def _record(service: ImageService, transfer: Transfer, digest: Digest, location: str) -> None:
    with service.db.transaction() as session:
        image = session.scalar(sa.select(Image).where(Image.id == transfer.image_id).with_for_update())
        if image is None or image.status != transfer.busy:
            raise errors.Gone("Image was deleted or changed while its data was being uploaded.")
        # Another image of the same project may have grown meanwhile: the quota holds at the end too.
        if digest.size > _limit(service, session, image):
            raise _too_large(transfer)
        image.size = digest.size
        if transfer.staged:
            return  # staged data is hashed again when it is imported
        image.status = "active"
        image.virtual_size = digest.inspection.virtual_size
        image.checksum = digest.checksum
        image.os_hash_algo = HASH_ALGO
        image.os_hash_value = digest.os_hash_value
        image.location = location


# -- interoperable import (glance-direct) --------------------------------------------------------
def staged_location(image_id: str) -> str:
    """Where the staging store keeps an image's staged data: a FileStore names it by the image id."""
    return image_id


def begin_import(service: ImageService, ctx: RequestContext, image_id: str) -> Transfer:
    """Check the caller may import this image's staged data and claim it (status importing)."""
    with service.db.transaction() as session:
        image = visible_image(session, ctx, image_id)
        service.policy.enforce("image:upload_image", ctx.policy_credentials(), {"owner": image.owner})
        if image.status != "uploading":
            raise errors.Conflict(f"Image {image_id} is not in 'uploading' state (it is '{image.status}'): "
                                  "stage its data before importing it.")
        transfer = Transfer(image_id, image.disk_format or "", _limit(service, session, image), "importing",
                            staged=False)
    if not _set_status(service, image_id, "uploading", "importing"):
        raise errors.Conflict("Image data is already being imported.")
    return transfer


def _copy(chunks: Iterable[bytes], sink: Sink) -> None:
    for chunk in chunks:
        sink.write(chunk)


def run_import(service: ImageService, transfer: Transfer) -> None:
    """Move staged data into the store, hashing and inspecting it; on any failure the image goes back
    to queued and the staged data is removed. Runs after the 202 answer, in a worker thread."""
    staged = staged_location(transfer.image_id)
    writer = service.store.writer(transfer.image_id)
    try:
        sink = Sink(writer)
        _copy(service.staging.read(staged), sink)
        digest = sink.digest(transfer.disk_format)
        location = writer.commit()
    except Exception as exc:
        log.warning("import of image %s failed: %s", transfer.image_id, exc)
        _abandon(service, writer, transfer)
        service.staging.delete(staged)
        return
    try:
        _settle(service, service.store, transfer, digest, location)
    except Exception as exc:
        log.warning("import of image %s failed: %s", transfer.image_id, exc)
    service.staging.delete(staged)
