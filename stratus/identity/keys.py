"""A Fernet key repository on disk: file `0` is the staged key, the highest number the primary.

Rotation promotes the staged key to primary and stages a new one, so every process that has
already read the staged key can validate tokens signed after rotation. Tokens signed by a key that
rotation (or an operator) removed no longer validate.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class KeyRepository:
    def __init__(self, path: Path, *, max_active: int = 3, recheck_interval: float = 1.0) -> None:
        self.path = path
        self.max_active = max_active
        self._recheck_interval = recheck_interval
        self._lock = threading.Lock()
        self._fernet: MultiFernet | None = None
        self._signature: tuple[tuple[str, float], ...] = ()
        self._checked_at = 0.0
        self._generation = 0

    # -- on disk ------------------------------------------------------------------------------
    def _indices(self) -> list[int]:
        return sorted(int(p.name) for p in self.path.iterdir() if p.name.isdigit())

    def _write_key(self, index: int) -> None:
        tmp = self.path / f".{index}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(Fernet.generate_key())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path / str(index))

    def setup(self) -> None:
        """Create the repository with a staged and a primary key, unless it already has keys."""
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        indices = self._indices()
        if 0 not in indices:
            self._write_key(0)
        if not [i for i in indices if i > 0]:
            self._write_key(1)

    def rotate(self) -> int:
        """Promote the staged key, stage a new one, drop the oldest beyond `max_active`; returns
        the new primary's index."""
        self.setup()
        indices = self._indices()
        primary = max(indices) + 1
        os.replace(self.path / "0", self.path / str(primary))
        self._write_key(0)
        secondaries = [i for i in self._indices() if 0 < i < primary]
        for index in secondaries[: max(0, len(secondaries) - (self.max_active - 2))]:
            (self.path / str(index)).unlink()
        self._checked_at = 0.0
        return primary

    # -- in memory ----------------------------------------------------------------------------
    def _load(self) -> MultiFernet:
        """The keys, primary first; re-read when the files change (another process rotated)."""
        now = time.monotonic()
        if self._fernet is not None and now - self._checked_at < self._recheck_interval:
            return self._fernet
        with self._lock:
            entries = sorted(
                ((p.name, p.stat().st_mtime) for p in self.path.iterdir() if p.name.isdigit()),
                key=lambda entry: int(entry[0]), reverse=True)
            signature = tuple(entries)
            if self._fernet is None or signature != self._signature:
                if not entries:
                    raise RuntimeError(f"no Fernet keys in {self.path}: run `stratus fernet setup`")
                # Highest index is the primary (encrypts); 0, the staged key, only decrypts.
                ordered = [name for name, _ in entries if name != "0"] + ["0"]
                keys = [Fernet((self.path / name).read_bytes().strip()) for name in ordered]
                self._fernet = MultiFernet(keys)
                self._signature = signature
                self._generation += 1
            self._checked_at = now
            return self._fernet

    def generation(self) -> int:
        """Changes whenever the set of keys does: what was decrypted before may no longer be."""
        self._load()
        return self._generation

    def encrypt(self, data: bytes) -> str:
        return self._load().encrypt(data).decode().rstrip("=")

    def decrypt(self, token: str) -> bytes | None:
        """The plaintext, or None when no active key made this token (or it is garbage)."""
        padded = token + "=" * (-len(token) % 4)
        try:
            return self._load().decrypt(padded.encode())
        except (InvalidToken, ValueError, TypeError):
            return None
