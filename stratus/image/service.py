"""The image service's long-lived state: database, store, policy."""

from __future__ import annotations

from pathlib import Path

from stratus.core.config import Config
from stratus.core.db import Database
from stratus.core.policy import Enforcer
from stratus.image.policy import DEFAULT_RULES
from stratus.image.stores.base import Store
from stratus.image.stores.file import FileStore

MIGRATIONS = Path(__file__).parent / "migrations"


class ImageService:
    def __init__(self, config: Config, db: Database | None = None) -> None:
        self.config = config
        self.settings = config.image
        self.db = db or Database(config.database_url("image"), echo=config.database.echo)
        root = self.settings.file_store_dir or config.server.state_dir / "images"
        self.store: Store = FileStore(root)
        # Staged data of interoperable imports (glance-direct) waits here until imported.
        self.staging: Store = FileStore(root / "staging")
        self.policy = Enforcer(DEFAULT_RULES, policy_file=self.settings.policy_file)

    def setup(self) -> None:
        self.db.upgrade("image", MIGRATIONS)
