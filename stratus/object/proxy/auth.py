"""Who the caller is: a Keystone token (project -> account `AUTH_<project_id>`) or a TempAuth token.

Keystone: a role among the operator roles (admin, member by default) makes the caller an owner of
its project's account; the reseller admin role owns every account. TempAuth (`/auth/v1.0`) reads
users from the configuration as `account:user:key[:group group...]`; the `.admin` group owns the
account, `.reseller_admin` every account. TempAuth tokens are HMAC-signed, so any proxy process
with the same secret accepts them and nothing is stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from stratus.object.proxy.request import Caller, SwiftError, SwiftResponse, error_response

TEMPAUTH_PREFIX = "AUTH_tk"


class Validator(Protocol):
    async def validate(self, token: str) -> dict[str, Any] | None: ...


@dataclass
class AuthSettings:
    reseller_prefix: str = "AUTH_"
    operator_roles: tuple[str, ...] = ("admin", "member")
    reseller_admin_role: str = "ResellerAdmin"
    # "account:user:key[:group group]" entries (groups separated by spaces, as Swift's tempauth has them).
    tempauth_users: list[str] = field(default_factory=list)
    tempauth_secret: str = ""
    token_life: int = 86400


@dataclass
class TempAuthUser:
    account: str
    user: str
    key: str
    groups: list[str]


def parse_tempauth_users(entries: list[str]) -> dict[str, TempAuthUser]:
    users = {}
    for entry in entries:
        parts = entry.split(":")
        if len(parts) < 3 or not all(parts[:3]):
            raise ValueError(f"tempauth user {entry!r} is not account:user:key[:groups]")
        groups = parts[3].split() if len(parts) > 3 else []
        users[f"{parts[0]}:{parts[1]}"] = TempAuthUser(parts[0], parts[1], parts[2], groups)
    return users


class Authenticator:
    def __init__(self, validator: Validator | None, settings: AuthSettings) -> None:
        self.validator = validator
        self.settings = settings
        self.users = parse_tempauth_users(settings.tempauth_users)
        self._secret = (settings.tempauth_secret or secrets.token_hex(32)).encode()

    def account_for(self, project_id: str) -> str:
        return f"{self.settings.reseller_prefix}{project_id}"

    # -- Keystone ---------------------------------------------------------------------------------
    def from_keystone(self, body: dict[str, Any]) -> Caller:
        user = body.get("user") or {}
        project = body.get("project") or {}
        roles = [r.get("name", "") for r in body.get("roles", [])]
        lowered = {r.lower() for r in roles}
        caller = Caller(user_id=user.get("id", ""), user_name=user.get("name", ""),
                        project_id=project.get("id", ""), project_name=project.get("name", ""),
                        roles=roles, method="keystone")
        if caller.project_id and lowered & {r.lower() for r in self.settings.operator_roles}:
            caller.owned_accounts.add(self.account_for(caller.project_id))
        caller.reseller_admin = self.settings.reseller_admin_role.lower() in lowered
        names = {"*:*"}
        for project_name in filter(None, (caller.project_id, caller.project_name)):
            names.add(f"{project_name}:*")
            for user_name in filter(None, (caller.user_id, caller.user_name)):
                names.add(f"{project_name}:{user_name}")
        for user_name in filter(None, (caller.user_id, caller.user_name)):
            names.add(f"*:{user_name}")
        caller.acl_names = names | set(roles)
        return caller

    # -- TempAuth ---------------------------------------------------------------------------------
    def _sign(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self, user: TempAuthUser) -> tuple[str, int]:
        expires = int(time.time()) + self.settings.token_life
        payload = f"{user.account}:{user.user}:{expires}"
        encoded = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        return f"{TEMPAUTH_PREFIX}{encoded}.{self._sign(payload)}", expires

    def from_tempauth(self, token: str) -> Caller | None:
        encoded, _, signature = token[len(TEMPAUTH_PREFIX):].partition(".")
        try:
            payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            account, user_name, expires = payload.rsplit(":", 2)
            expiry = int(expires)
        except (ValueError, UnicodeDecodeError):
            return None
        if not hmac.compare_digest(self._sign(payload), signature) or expiry < time.time():
            return None
        user = self.users.get(f"{account}:{user_name}")
        if user is None:
            return None
        caller = Caller(user_id=f"{account}:{user_name}", user_name=user_name, project_id=account,
                        project_name=account, roles=list(user.groups), method="tempauth")
        if ".admin" in user.groups:
            caller.owned_accounts.add(self.account_for(account))
        caller.reseller_admin = ".reseller_admin" in user.groups
        caller.acl_names = {f"{account}:{user_name}", account, "*:*", f"*:{user_name}", f"{account}:*"}
        return caller

    def login(self, headers: dict[str, str], base_url: str) -> SwiftResponse:
        """`GET /auth/v1.0` with X-Auth-User (account:user) and X-Auth-Key."""
        name = headers.get("x-auth-user") or headers.get("x-storage-user") or ""
        key = headers.get("x-auth-key") or headers.get("x-storage-pass") or ""
        user = self.users.get(name)
        if user is None or not hmac.compare_digest(user.key.encode(), key.encode()):
            return error_response(401, "Unauthorized", {"www-authenticate": 'Swift realm="stratus"'})
        token, expires = self.issue(user)
        storage_url = f"{base_url}/v1/{self.account_for(user.account)}"
        return SwiftResponse(200, {"x-auth-token": token, "x-storage-token": token, "x-storage-url": storage_url,
                                   "x-auth-token-expires": str(max(0, expires - int(time.time()))),
                                   "content-length": "0"})

    # -- either -----------------------------------------------------------------------------------
    async def caller(self, token: str | None) -> Caller:
        """The caller for an X-Auth-Token (anonymous without one); 401 for a token nobody issued."""
        if not token:
            return Caller()
        if token.startswith(TEMPAUTH_PREFIX):
            caller = self.from_tempauth(token)
        elif self.validator is not None:
            body = await self.validator.validate(token)
            caller = self.from_keystone(body) if body is not None else None
        else:
            caller = None
        if caller is None:
            raise SwiftError(401, "Unauthorized", {"www-authenticate": 'Swift realm="stratus"'})
        return caller
