"""bcrypt password hashes. Unknown users get the same work as wrong passwords (no timing oracle)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import bcrypt

# bcrypt reads at most 72 bytes and the library refuses longer input; longer secrets are
# pre-hashed so that every byte still counts.
_BCRYPT_MAX = 72


def _prepare(secret: str) -> bytes:
    raw = secret.encode()
    if len(raw) > _BCRYPT_MAX:
        raw = base64.b64encode(hashlib.sha256(raw).digest())
    return raw


def hash_secret(secret: str, rounds: int) -> str:
    return bcrypt.hashpw(_prepare(secret), bcrypt.gensalt(rounds)).decode()


def verify_secret(secret: str, hashed: str | None, rounds: int) -> bool:
    """True when `secret` matches `hashed`; with no hash, burns the same time and says False."""
    if not hashed:
        bcrypt.hashpw(_prepare(secret), _dummy_salt(rounds))
        return False
    try:
        return bcrypt.checkpw(_prepare(secret), hashed.encode())
    except ValueError:
        return False


_dummy_salts: dict[int, bytes] = {}


def _dummy_salt(rounds: int) -> bytes:
    if rounds not in _dummy_salts:
        _dummy_salts[rounds] = bcrypt.gensalt(rounds)
    return _dummy_salts[rounds]


def constant_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
