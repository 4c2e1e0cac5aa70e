"""A gzip-compressed cpio archive in the "newc" format, the format the kernel unpacks an initramfs from.

Written here so that building an initrd needs neither root nor the cpio tool.
"""

from __future__ import annotations

import gzip
import stat
from pathlib import Path
from typing import BinaryIO

_MAGIC = b"070701"


class CpioWriter:
    """Add directories, files and symlinks, then close() to write the trailer."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0)
        self._inode = 1
        self._written = 0

    def directory(self, name: str, mode: int = 0o755) -> None:
        self._entry(name, stat.S_IFDIR | mode, b"", nlink=2)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def file_from(self, name: str, source: Path, mode: int | None = None) -> None:
        data = source.read_bytes()
        self.file(name, data, mode if mode is not None else stat.S_IMODE(source.stat().st_mode))

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def close(self) -> None:
        self._entry("TRAILER!!!", 0, b"", inode=0)
        self._out.close()

    def _entry(self, name: str, mode: int, data: bytes, nlink: int = 1, inode: int | None = None) -> None:
        encoded = name.lstrip("/").encode() + b"\0"
        fields = [inode if inode is not None else self._inode, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0,
                  len(encoded), 0]
        self._inode += 1
        header = _MAGIC + b"".join(b"%08X" % value for value in fields)
        self._write(header + encoded)
        self._pad()
        self._write(data)
        self._pad()

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self._written += len(data)

    def _pad(self) -> None:
        if self._written % 4:
            self._write(b"\0" * (4 - self._written % 4))
