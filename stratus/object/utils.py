"""Small pieces every storage node module shares: timestamps, hash paths, device checks."""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

HASH_SECRET_FILE = "hash_path_secret"


class BadTimestamp(ValueError):
    pass


def normalize_timestamp(value: str | float) -> str:
    """Swift's normal form: ten integer digits, a dot and five decimals (sorts as text)."""
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise BadTimestamp(f"bad timestamp {value!r}") from exc
    if not (0 <= number < 1e10) or number != number:
        raise BadTimestamp(f"bad timestamp {value!r}")
    return f"{number:016.5f}"


def now_timestamp() -> str:
    return normalize_timestamp(time.time())


def load_hash_secret(ring_dir: Path) -> tuple[str, str]:
    """The cluster's hash path prefix and suffix, kept beside the rings so every node agrees."""
    path = Path(ring_dir) / HASH_SECRET_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return "", ""
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable hash path secret: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(data.get(k, ""), str) for k in ("prefix", "suffix")):
        raise ValueError(f"{path}: the hash path secret must be {{\"prefix\": str, \"suffix\": str}}")
    return data.get("prefix", ""), data.get("suffix", "")


def ensure_hash_secret(ring_dir: Path) -> tuple[str, str]:
    """Make the secret once (a cluster must never change it: every object would move)."""
    path = Path(ring_dir) / HASH_SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"prefix": "", "suffix": secrets.token_hex(16)}))
        os.replace(tmp, path)
    return load_hash_secret(ring_dir)


def hash_path(secret: tuple[str, str], account: str, container: str | None = None,
              obj: str | None = None) -> str:
    if obj is not None and container is None:
        raise ValueError("an object needs a container")
    names = [account] + [n for n in (container, obj) if n is not None]
    key = (secret[0] + "/" + "/".join(names) + secret[1]).encode("utf-8")
    return hashlib.md5(key, usedforsecurity=False).hexdigest()


def split_path(raw_path: str, minimum: int, maximum: int) -> list[str]:
    """`/a/b/c...` into at most `maximum` segments (the last keeps its slashes); ValueError if too few.

    `raw_path` is the percent-encoded path; segments come back decoded, so a `/` inside an object
    name that the client encoded stays in the object name.
    """
    parts = raw_path.lstrip("/").split("/", maximum - 1)
    out = [unquote(p) for p in parts]
    if len(out) < minimum or any(not p for p in out[:minimum]) or any(not p for p in out[:-1]):
        raise ValueError(f"bad path {raw_path!r}")
    if out and not out[-1]:
        out.pop()
        if len(out) < minimum:
            raise ValueError(f"bad path {raw_path!r}")
    if any(p in (".", "..") for p in out[:2]) or "/" in out[0]:
        raise ValueError(f"bad path {raw_path!r}")
    return out


def device_path(devices_dir: Path, device: str, mount_check: bool) -> Path | None:
    """The device's directory, or None when it is missing or (with mount_check) not mounted."""
    if not device or "/" in device or device in (".", ".."):
        return None
    path = Path(devices_dir) / device
    if mount_check:
        return path if os.path.ismount(path) else None
    return path if path.is_dir() else None


def has_room(path: Path, needed: int, reserve: int) -> bool:
    """Whether `needed` bytes fit on the file system of `path` and leave `reserve` bytes free."""
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize - max(needed, 0) >= reserve


def libc_function(name: str, argtypes: tuple[type, ...]) -> Callable[..., int] | None:
    """The C library's `name` (returning int, setting errno), or None where there is none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        call = getattr(libc, name)
    except (OSError, AttributeError):
        return None
    call.argtypes = argtypes
    call.restype = ctypes.c_int
    return call  # type: ignore[no-any-return]
