"""What the image service needs from a place that keeps image data."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol


class StoreWriter(Protocol):
    def write(self, chunk: bytes) -> None: ...

    def commit(self) -> str:
        """Make the data durable and visible; returns its location."""
        ...

    def abort(self) -> None:
        """Forget everything written; nothing stays behind."""
        ...


class Store(Protocol):
    def writer(self, image_id: str) -> StoreWriter: ...

    def read(self, location: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]: ...

    def delete(self, location: str) -> None: ...
