"""The identity service's long-lived state: database, keys, revocations, policy and caches."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from sqlalchemy.orm import Session

from stratus.core.config import Config
from stratus.core.db import Database
from stratus.core.policy import Enforcer
from stratus.identity.keys import KeyRepository
from stratus.identity.policy import DEFAULT_RULES
from stratus.identity.revocation import RevocationList
from stratus.identity.tokens import TokenFormatter

MIGRATIONS = Path(__file__).parent / "migrations"


class IdentityService:
    def __init__(self, config: Config, db: Database | None = None) -> None:
        self.config = config
        self.settings = config.identity
        self.db = db or Database(config.database_url("identity"), echo=config.database.echo)
        state = config.server.state_dir
        self.keys = KeyRepository(state / "fernet-keys", max_active=self.settings.fernet_max_active_keys)
        # EC2 and other credential blobs are encrypted at rest with keys of their own.
        self.credential_keys = KeyRepository(state / "credential-keys", max_active=3)
        self.tokens = TokenFormatter(self.keys)
        self.revocations = RevocationList(self.db, refresh=self.settings.revocation_refresh,
                                          token_lifetime=self.settings.token_expiration)
        self.policy = Enforcer(DEFAULT_RULES, policy_file=self.settings.policy_file)
        # Bumped after every committed write: cached token bodies and catalogs of an older
        # generation are rebuilt. Other processes' writes reach us through revocations.
        self.generation = 0
        self._generation_lock = threading.Lock()

    def setup(self) -> None:
        """Create keys and tables when missing; safe to run on every start."""
        self.config.server.state_dir.mkdir(parents=True, exist_ok=True)
        self.keys.setup()
        self.credential_keys.setup()
        self.db.upgrade("identity", MIGRATIONS)
        self.revocations.load()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that changes identity data; caches are invalidated once it commits."""
        try:
            with self.db.transaction() as session:
                yield session
            self.revocations.announce()
        finally:
            # Also on failure: a revocation may have been recorded in memory before a rollback.
            with self._generation_lock:
                self.generation += 1

    def read(self) -> AbstractContextManager[Session]:
        """A transaction that only reads."""
        return self.db.transaction()
