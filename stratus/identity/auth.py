"""Authentication (password, token, application credential) and token validation.

Validation is the hot path: a token seen before is answered from memory (its decoded payload and
rendered body), checked only against its expiry and the in-memory revocation list.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.core.db import utcnow
from stratus.identity import assignments, passwords
from stratus.identity.catalog import CatalogCache, for_project
from stratus.identity.models import ApplicationCredential, Domain, Project, User
from stratus.identity.service import IdentityService
from stratus.identity.tokens import TokenPayload, new_audit_id

AUTH_FAILED = "The request you have made requires authentication."
TOKEN_NOT_FOUND = "Could not find token."
_CACHE_LIMIT = 20000


def iso(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Cached:
    payload: TokenPayload
    generation: int
    created: float
    bodies: dict[bool, bytes]
    keys_generation: int
    context: RequestContext | None = None


class Authenticator:
    def __init__(self, service: IdentityService) -> None:
        self.svc = service
        self.catalog = CatalogCache()
        self._cache: dict[str, _Cached] = {}
        self._refresh_lock = threading.Lock()

    # -- identifying the user -------------------------------------------------------------------
    def _find_domain(self, session: Session, ref: dict[str, Any]) -> Domain:
        if not isinstance(ref, dict):
            raise errors.BadRequest("domain must be an object")
        if ref.get("id"):
            domain = session.get(Domain, str(ref["id"]))
        elif ref.get("name"):
            domain = session.scalar(sa.select(Domain).where(Domain.name == str(ref["name"])))
        else:
            raise errors.BadRequest("domain needs an id or a name")
        if domain is None:
            raise errors.Unauthorized(AUTH_FAILED)
        return domain

    def _find_user(self, session: Session, ref: Any) -> User | None:
        if not isinstance(ref, dict):
            raise errors.BadRequest("user must be an object")
        if ref.get("id"):
            return session.get(User, str(ref["id"]))
        if not ref.get("name") or "domain" not in ref:
            raise errors.BadRequest("user needs an id, or a name and a domain")
        domain = self._find_domain(session, ref["domain"])
        return session.scalar(sa.select(User).where(User.domain_id == domain.id, User.name == str(ref["name"])))

    def _check_password(self, session: Session, data: Any) -> User:
        if not isinstance(data, dict) or not isinstance(data.get("user"), dict):
            raise errors.BadRequest("password authentication needs a user")
        secret = data["user"].get("password")
        if not isinstance(secret, str):
            raise errors.BadRequest("password must be a string")
        user = self._find_user(session, data["user"])
        settings = self.svc.settings
        if user is not None and self._locked_out(user):
            passwords.verify_secret(secret, None, settings.bcrypt_rounds)
            raise errors.Unauthorized(AUTH_FAILED)
        if not passwords.verify_secret(secret, user.password_hash if user else None, settings.bcrypt_rounds):
            if user is not None and settings.lockout_failure_attempts:
                self._record_failure(user.id)
            raise errors.Unauthorized(AUTH_FAILED)
        assert user is not None
        if user.failed_auth_count:
            user.failed_auth_count = 0
        self._check_user_usable(session, user)
        return user

    def _record_failure(self, user_id: str) -> None:
        """Count a failed attempt in a transaction of its own: the request's is rolled back."""
        with self.svc.db.transaction() as session:
            session.execute(sa.update(User).where(User.id == user_id).values(
                failed_auth_count=User.failed_auth_count + 1, failed_auth_at=utcnow()))

    def _locked_out(self, user: User) -> bool:
        settings = self.svc.settings
        if not settings.lockout_failure_attempts or user.failed_auth_count < settings.lockout_failure_attempts:
            return False
        assert user.failed_auth_at is not None
        return utcnow() - user.failed_auth_at < dt.timedelta(seconds=settings.lockout_duration)

    def _check_user_usable(self, session: Session, user: User) -> None:
        domain = session.get(Domain, user.domain_id)
        if not user.enabled or domain is None or not domain.enabled:
            raise errors.Unauthorized(AUTH_FAILED)
        if user.password_expires_at and user.password_expires_at < utcnow():
            raise errors.Unauthorized("The password is expired and needs to be changed for user: "
                                      f"{user.id}.")

    def _check_app_cred(self, session: Session, data: Any) -> tuple[User, ApplicationCredential]:
        if not isinstance(data, dict) or not isinstance(data.get("secret"), str):
            raise errors.BadRequest("application_credential needs a secret")
        cred: ApplicationCredential | None
        if data.get("id"):
            cred = session.get(ApplicationCredential, str(data["id"]))
        elif data.get("name") and "user" in data:
            user = self._find_user(session, data["user"])
            cred = None if user is None else session.scalar(sa.select(ApplicationCredential).where(
                ApplicationCredential.user_id == user.id, ApplicationCredential.name == str(data["name"])))
        else:
            raise errors.BadRequest("application_credential needs an id, or a name and a user")
        rounds = self.svc.settings.bcrypt_rounds
        if not passwords.verify_secret(data["secret"], cred.secret_hash if cred else None, rounds):
            raise errors.Unauthorized(AUTH_FAILED)
        assert cred is not None
        if cred.expires_at and cred.expires_at < utcnow():
            raise errors.Unauthorized(AUTH_FAILED)
        user = session.get(User, cred.user_id)
        if user is None:
            raise errors.Unauthorized(AUTH_FAILED)
        self._check_user_usable(session, user)
        return user, cred

    # -- issuing --------------------------------------------------------------------------------
    def issue(self, body: Any) -> tuple[str, bytes]:
        """Handle `POST /v3/auth/tokens`; returns the token and its rendered JSON body."""
        auth = body.get("auth") if isinstance(body, dict) else None
        if not isinstance(auth, dict) or not isinstance(auth.get("identity"), dict):
            raise errors.BadRequest("Expecting to find identity in auth.")
        identity = auth["identity"]
        methods = identity.get("methods")
        if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
            raise errors.BadRequest("identity.methods must be a non-empty list")
        for method in methods:
            if method not in ("password", "token", "application_credential"):
                raise errors.Unauthorized(f"Attempted to authenticate with an unsupported method: {method}.")
            if method not in identity:
                raise errors.BadRequest(f"Expecting to find {method} in identity.")
        scope = auth.get("scope")
        generation = self.svc.generation
        with self.svc.write() as session:
            payload = self._authenticate(session, identity, methods, scope)
            token = self.svc.tokens.encode(payload)
            rendered = self._render(session, payload, generation)
        return token, rendered[True]

    def _authenticate(self, session: Session, identity: dict[str, Any], methods: list[str],
                      scope: Any) -> TokenPayload:
        now = utcnow()
        expires_at = now + dt.timedelta(seconds=self.svc.settings.token_expiration)
        audit_ids: tuple[str, ...] = (new_audit_id(),)
        app_cred: ApplicationCredential | None = None
        user: User | None = None
        if "application_credential" in methods:
            if scope is not None:
                raise errors.Unauthorized("Application credentials cannot request a scope.")
            user, app_cred = self._check_app_cred(session, identity["application_credential"])
        if "password" in methods:
            pw_user = self._check_password(session, identity["password"])
            if user is not None and pw_user.id != user.id:
                raise errors.Unauthorized(AUTH_FAILED)
            user = pw_user
        if "token" in methods:
            original = self._payload_for_rescope(identity["token"])
            if user is not None and original.user_id != user.id:
                raise errors.Unauthorized(AUTH_FAILED)
            user = session.get(User, original.user_id)
            if user is None:
                raise errors.Unauthorized(AUTH_FAILED)
            self._check_user_usable(session, user)
            # A rescoped token lives no longer than the one it came from, and shares its chain.
            expires_at = original.expires_at
            audit_ids = (audit_ids[0], original.audit_chain_id)
            methods = sorted(set(methods) | set(original.methods))
            if original.app_cred_id:
                raise errors.Forbidden("Application credential tokens cannot be rescoped.")
        assert user is not None
        if app_cred is not None:
            scope = {"project": {"id": app_cred.project_id}}
        elif scope is None and user.default_project_id:
            project = session.get(Project, user.default_project_id)
            if project is not None and project.enabled and assignments.effective_role_ids(
                    session, user.id, project=project):
                scope = {"project": {"id": project.id}}
        if app_cred is not None and app_cred.expires_at:
            expires_at = min(expires_at, app_cred.expires_at)
        fields = self._scope(session, user, scope)
        payload = TokenPayload(user_id=user.id, methods=tuple(methods), expires_at=expires_at,
                               issued_at=now, audit_ids=audit_ids,
                               app_cred_id=app_cred.id if app_cred else None, **fields)
        if not self._roles(session, payload):
            if payload.scope != "unscoped":
                raise errors.Unauthorized(f"User {user.id} has no access to the requested scope.")
        return payload

    def issue_for(self, user_id: str, project_id: str, methods: tuple[str, ...],
                  app_cred_id: str | None = None) -> tuple[str, bytes]:
        """A project-scoped token for a user the caller has authenticated by other means (an EC2
        signature); with `app_cred_id`, limited to that application credential as if it had been
        used. Returns the token and its rendered JSON body."""
        generation = self.svc.generation
        with self.svc.read() as session:
            user = session.get(User, user_id)
            if user is None:
                raise errors.Unauthorized(AUTH_FAILED)
            self._check_user_usable(session, user)
            now = utcnow()
            expires_at = now + dt.timedelta(seconds=self.svc.settings.token_expiration)
            if app_cred_id is not None:
                cred = session.get(ApplicationCredential, app_cred_id)
                if cred is None or cred.user_id != user_id or cred.project_id != project_id or \
                        (cred.expires_at and cred.expires_at < now):
                    raise errors.Unauthorized(AUTH_FAILED)
                expires_at = min(expires_at, cred.expires_at or expires_at)
            scope = self._scope(session, user, {"project": {"id": project_id}})
            payload = TokenPayload(user_id=user_id, methods=methods, expires_at=expires_at, issued_at=now,
                                   audit_ids=(new_audit_id(),), app_cred_id=app_cred_id, **scope)
            if not self._roles(session, payload):
                raise errors.Unauthorized(f"User {user_id} has no access to the requested scope.")
            return self.svc.tokens.encode(payload), self._render(session, payload, generation)[True]

    def _payload_for_rescope(self, data: Any) -> TokenPayload:
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise errors.BadRequest("token needs an id")
        payload = self.svc.tokens.decode(data["id"])
        if payload is None or payload.expires_at <= utcnow() or self._revoked(payload):
            raise errors.Unauthorized(AUTH_FAILED)
        return payload

    def _scope(self, session: Session, user: User, scope: Any) -> dict[str, Any]:
        if scope is None or scope == "unscoped":
            return {}
        if not isinstance(scope, dict) or len(scope) != 1:
            raise errors.BadRequest("scope must name exactly one of project, domain or system")
        if "project" in scope:
            ref = scope["project"]
            if not isinstance(ref, dict):
                raise errors.BadRequest("project scope must be an object")
            if ref.get("id"):
                project = session.get(Project, str(ref["id"]))
            elif ref.get("name") and "domain" in ref:
                domain = self._find_domain(session, ref["domain"])
                project = session.scalar(sa.select(Project).where(Project.domain_id == domain.id,
                                                                  Project.name == str(ref["name"])))
            else:
                raise errors.BadRequest("project scope needs an id, or a name and a domain")
            if project is None or not self._project_enabled(session, project):
                raise errors.Unauthorized(AUTH_FAILED)
            return {"project_id": project.id}
        if "domain" in scope:
            domain = self._find_domain(session, scope["domain"])
            if not domain.enabled:
                raise errors.Unauthorized(AUTH_FAILED)
            return {"domain_id": domain.id}
        if "system" in scope:
            if not isinstance(scope["system"], dict) or scope["system"].get("all") is not True:
                raise errors.BadRequest("system scope must be {\"all\": true}")
            return {"system": True}
        raise errors.BadRequest("scope must name exactly one of project, domain or system")

    @staticmethod
    def _project_enabled(session: Session, project: Project) -> bool:
        domain = session.get(Domain, project.domain_id)
        return project.enabled and domain is not None and domain.enabled

    def _roles(self, session: Session, p: TokenPayload) -> set[str]:
        if p.scope == "unscoped":
            return set()
        project = session.get(Project, p.project_id) if p.project_id else None
        roles = assignments.effective_role_ids(session, p.user_id, project=project, domain_id=p.domain_id,
                                               system=p.system)
        if p.app_cred_id:
            cred = session.get(ApplicationCredential, p.app_cred_id)
            # An application credential carries at most the roles it was given, and loses any
            # the user no longer has.
            roles = roles & assignments.implied_closure(session, set(cred.role_ids)) if cred else set()
        return roles

    # -- rendering and validation ---------------------------------------------------------------
    def _render(self, session: Session, p: TokenPayload, generation: int) -> dict[bool, bytes]:
        """The token document, with and without the catalog (keys True/False).

        `generation` must be read before `session` began: a catalog built from an older snapshot
        is then never cached under a newer generation.
        """
        user = session.get(User, p.user_id)
        if user is None or not user.enabled:
            raise errors.NotFound(TOKEN_NOT_FOUND)
        user_domain = session.get(Domain, user.domain_id)
        body: dict[str, Any] = {
            "methods": list(p.methods),
            "user": {"id": user.id, "name": user.name,
                     "domain": {"id": user.domain_id, "name": user_domain.name if user_domain else ""},
                     "password_expires_at": iso(user.password_expires_at) if user.password_expires_at
                     else None},
            "audit_ids": list(p.audit_ids), "expires_at": iso(p.expires_at), "issued_at": iso(p.issued_at),
        }
        if p.project_id:
            project = session.get(Project, p.project_id)
            if project is None or not self._project_enabled(session, project):
                raise errors.NotFound(TOKEN_NOT_FOUND)
            domain = session.get(Domain, project.domain_id)
            body["project"] = {"id": project.id, "name": project.name,
                               "domain": {"id": project.domain_id, "name": domain.name if domain else ""}}
            body["is_domain"] = False
        elif p.domain_id:
            domain = session.get(Domain, p.domain_id)
            if domain is None or not domain.enabled:
                raise errors.NotFound(TOKEN_NOT_FOUND)
            body["domain"] = {"id": domain.id, "name": domain.name}
        elif p.system:
            body["system"] = {"all": True}
        if p.scope != "unscoped":
            roles = assignments.role_refs(session, self._roles(session, p))
            if not roles:
                raise errors.NotFound(TOKEN_NOT_FOUND)
            body["roles"] = roles
        if p.app_cred_id:
            cred = session.get(ApplicationCredential, p.app_cred_id)
            if cred is None:
                raise errors.NotFound(TOKEN_NOT_FOUND)
            body["application_credential"] = {"id": cred.id, "name": cred.name,
                                              "restricted": not cred.unrestricted}
        without = json.dumps({"token": body}).encode()
        if p.scope != "unscoped":
            body["catalog"] = for_project(self.catalog.get(session, generation), p.project_id)
        return {True: json.dumps({"token": body}).encode(), False: without}

    def _revoked(self, payload: TokenPayload) -> bool:
        if self.svc.revocations.needs_refresh() and self._refresh_lock.acquire(blocking=False):
            try:
                self.svc.revocations.load()
            finally:
                self._refresh_lock.release()
        return self.svc.revocations.is_revoked(payload)

    def cached(self, token: str) -> _Cached | None:
        """The token's cache entry if it is still usable, without touching the database; raises
        NotFound when the token is known to be invalid (expired, revoked)."""
        entry = self._cache.get(token)
        if entry is None:
            return None
        if entry.generation != self.svc.generation or \
                time.monotonic() - entry.created > self.svc.settings.token_cache_ttl or \
                entry.keys_generation != self.svc.keys.generation():
            self._cache.pop(token, None)
            return None
        self._check_live(entry.payload)
        return entry

    def _check_live(self, payload: TokenPayload) -> None:
        if payload.expires_at <= utcnow() or self._revoked(payload):
            raise errors.NotFound(TOKEN_NOT_FOUND)

    def load(self, token: str) -> _Cached:
        """Decode, check and render a token not in the cache (database reads: call from a thread)."""
        payload = self.svc.tokens.decode(token)
        if payload is None:
            raise errors.NotFound(TOKEN_NOT_FOUND)
        self._check_live(payload)
        generation, keys_generation = self.svc.generation, self.svc.keys.generation()
        with self.svc.read() as session:
            bodies = self._render(session, payload, generation)
        entry = _Cached(payload, generation, time.monotonic(), bodies, keys_generation)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[token] = entry
        return entry

    async def resolve(self, token: str) -> _Cached:
        """The token's entry: from memory when cached, else loaded in a worker thread."""
        entry = self.cached(token)
        if entry is None:
            entry = await run_in_threadpool(self.load, token)
        return entry

    def context(self, entry: _Cached, token: str) -> RequestContext:
        if entry.context is None:
            entry.context = RequestContext.from_token_body(json.loads(entry.bodies[False])["token"], token)
        return entry.context

    def revoke_token(self, payload: TokenPayload) -> None:
        with self.svc.write() as session:
            self.svc.revocations.revoke(session, audit_id=payload.audit_ids[0])
