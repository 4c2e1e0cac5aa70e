"""The compute service's long-lived state: database, policy, the bus, and the doors to the network,
image and block storage services."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from stratus.compute.policy import DEFAULT_RULES
from stratus.core.bus import Bus
from stratus.core.config import Config
from stratus.core.db import Database
from stratus.core.policy import Enforcer

if TYPE_CHECKING:
    from stratus.image.client import ImageClient
    from stratus.network.client import NetworkClient
    from stratus.volume.client import VolumeClient

MIGRATIONS = Path(__file__).parent / "migrations"


class ComputeService:
    def __init__(self, config: Config, db: Database | None = None, bus: Bus | None = None,
                 network: NetworkClient | None = None, image: ImageClient | None = None,
                 volume: VolumeClient | None = None) -> None:
        self.config = config
        self.settings = config.compute
        self.db = db or Database(config.database_url("compute"), echo=config.database.echo)
        self.policy = Enforcer(DEFAULT_RULES, policy_file=self.settings.policy_file)
        self.bus = bus
        self.network = network
        self.image = image
        self.volume = volume

    def setup(self) -> None:
        self.db.upgrade("compute", MIGRATIONS)
