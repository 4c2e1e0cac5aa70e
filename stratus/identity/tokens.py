"""Token contents and their Fernet encoding. A token carries who, what scope, when and how;
everything else (names, roles, catalog) is looked up when it is validated."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from dataclasses import dataclass, field

from stratus.identity.keys import KeyRepository

_VERSION = 1


def new_audit_id() -> str:
    return base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")


@dataclass(frozen=True)
class TokenPayload:
    user_id: str
    methods: tuple[str, ...]
    expires_at: dt.datetime
    issued_at: dt.datetime
    # The first audit id is the token's own; the second, if any, that of the token it came from.
    audit_ids: tuple[str, ...]
    project_id: str | None = None
    domain_id: str | None = None
    system: bool = False
    app_cred_id: str | None = None
    extras: dict[str, str] = field(default_factory=dict)

    @property
    def scope(self) -> str:
        if self.project_id:
            return "project"
        if self.domain_id:
            return "domain"
        return "system" if self.system else "unscoped"

    @property
    def audit_chain_id(self) -> str:
        return self.audit_ids[-1]


def _ts(value: dt.datetime) -> int:
    """Microseconds since the epoch (naive UTC in, exact integer out)."""
    return round(value.replace(tzinfo=dt.UTC).timestamp() * 1_000_000)


def _from_ts(micros: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(micros / 1_000_000, dt.UTC).replace(tzinfo=None)


class TokenFormatter:
    def __init__(self, keys: KeyRepository) -> None:
        self.keys = keys

    def encode(self, p: TokenPayload) -> str:
        fields = [_VERSION, p.user_id, list(p.methods), _ts(p.expires_at), _ts(p.issued_at),
                  list(p.audit_ids), p.project_id, p.domain_id, int(p.system), p.app_cred_id, p.extras]
        return self.keys.encrypt(json.dumps(fields, separators=(",", ":")).encode())

    def decode(self, token: str) -> TokenPayload | None:
        """The payload of a token made by one of our active keys, else None (expiry not checked)."""
        if not token or len(token) > 2048:
            return None
        raw = self.keys.decrypt(token)
        if raw is None:
            return None
        try:
            version, user_id, methods, exp, iat, audit_ids, project_id, domain_id, system, app_cred, extras = (
                json.loads(raw))
        except (ValueError, TypeError):
            return None
        if version != _VERSION:
            return None
        return TokenPayload(user_id=user_id, methods=tuple(methods), expires_at=_from_ts(exp),
                            issued_at=_from_ts(iat), audit_ids=tuple(audit_ids), project_id=project_id,
                            domain_id=domain_id, system=bool(system), app_cred_id=app_cred,
                            extras=extras or {})
