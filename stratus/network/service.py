"""The networking service's long-lived state: database, policy, and the door to the node agents."""

from __future__ import annotations

from pathlib import Path

from stratus.core.bus import Bus
from stratus.core.config import Config
from stratus.core.db import Database
from stratus.core.policy import Enforcer
from stratus.network.notify import AgentNotifier
from stratus.network.policy import DEFAULT_RULES

MIGRATIONS = Path(__file__).parent / "migrations"


class NetworkService:
    def __init__(self, config: Config, db: Database | None = None, bus: Bus | None = None) -> None:
        self.config = config
        self.settings = config.network
        self.db = db or Database(config.database_url("network"), echo=config.database.echo)
        self.policy = Enforcer(DEFAULT_RULES, policy_file=self.settings.policy_file)
        # Without a bus (some unit tests) changes are still collected but go nowhere.
        self.agents = AgentNotifier(self.db, bus)

    def setup(self) -> None:
        self.db.upgrade("network", MIGRATIONS)
