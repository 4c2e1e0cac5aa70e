"""bcrypt password hashes. Unknown users get the same work as wrong passwords (no timing oracle)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor

import bcrypt

# bcrypt reads at most 72 bytes and the library refuses longer input; longer secrets are
# pre-hashed so that every byte still counts.
_BCRYPT_MAX = 72


def _prepare(secret: str) -> bytes:
    raw = secret.encode()
    if len(raw) > _BCRYPT_MAX:
        raw = base64.b64encode(hashlib.sha256(raw).digest())
    return raw


# The bcrypt library holds the GIL while it hashes, so threads cannot use a second core: costly
# hashes go to a pool of processes instead. Cheap ones (tests) stay here, where IPC would dominate.
_POOL_MIN_ROUNDS = 8
_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ProcessPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            # forkserver: forking a process that runs threads and an event loop is not safe.
            _pool = ProcessPoolExecutor(max_workers=os.cpu_count() or 2,
                                        mp_context=multiprocessing.get_context("forkserver"))
        return _pool


def _hashpw(secret: bytes, salt: bytes) -> bytes:
    return bcrypt.hashpw(secret, salt)


def _checkpw(secret: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(secret, hashed)
    except ValueError:
        return False


def _run(rounds: int, fn, *args):  # type: ignore[no-untyped-def]
    if rounds < _POOL_MIN_ROUNDS:
        return fn(*args)
    return _executor().submit(fn, *args).result()


def hash_secret(secret: str, rounds: int) -> str:
    return _run(rounds, _hashpw, _prepare(secret), bcrypt.gensalt(rounds)).decode()  # type: ignore[no-any-return]


def verify_secret(secret: str, hashed: str | None, rounds: int) -> bool:
    """True when `secret` matches `hashed`; with no hash, burns the same time and says False."""
    if not hashed:
        _run(rounds, _hashpw, _prepare(secret), _dummy_salt(rounds))
        return False
    return bool(_run(rounds, _checkpw, _prepare(secret), hashed.encode()))


_dummy_salts: dict[int, bytes] = {}


def _dummy_salt(rounds: int) -> bytes:
    if rounds not in _dummy_salts:
        _dummy_salts[rounds] = bcrypt.gensalt(rounds)
    return _dummy_salts[rounds]


def constant_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
