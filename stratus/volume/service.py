"""The block storage service's long-lived state: database, policy, the bus, the image service."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from stratus.core.bus import Bus
from stratus.core.config import Config
from stratus.core.db import Database
from stratus.core.policy import Enforcer
from stratus.volume.policy import DEFAULT_RULES

if TYPE_CHECKING:
    from stratus.image.client import ImageClient

MIGRATIONS = Path(__file__).parent / "migrations"


class VolumeService:
    def __init__(self, config: Config, db: Database | None = None, bus: Bus | None = None,
                 image: ImageClient | None = None) -> None:
        self.config = config
        self.settings = config.volume
        self.db = db or Database(config.database_url("volume"), echo=config.database.echo)
        self.policy = Enforcer(DEFAULT_RULES, policy_file=self.settings.policy_file)
        self.bus = bus
        self.image = image

    def setup(self) -> None:
        self.db.upgrade("volume", MIGRATIONS)
        self.seed_default_type()

    def seed_default_type(self) -> None:
        """The type volumes get when none is asked for (Cinder's `__DEFAULT__`)."""
        import sqlalchemy as sa

        from stratus.volume import models

        name = self.settings.default_volume_type
        with self.db.transaction() as session:
            if session.scalar(sa.select(models.VolumeType.id).where(models.VolumeType.name == name)) is None:
                session.add(models.VolumeType(name=name, description="Default Volume Type", is_public=True))

    def storage_dir(self) -> Path:
        return self.settings.storage_dir or self.config.server.state_dir / "volumes"
