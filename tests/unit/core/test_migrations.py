"""Each service's migrations build exactly the tables its models describe."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from stratus.core.db import Database
from stratus.identity import models as identity_models
from stratus.identity.service import MIGRATIONS as IDENTITY_MIGRATIONS
from stratus.image import models as image_models
from stratus.image.service import MIGRATIONS as IMAGE_MIGRATIONS
from stratus.network import models as network_models
from stratus.network.service import MIGRATIONS as NETWORK_MIGRATIONS

SERVICES = {"identity": (IDENTITY_MIGRATIONS, identity_models.Base),
            "image": (IMAGE_MIGRATIONS, image_models.Base),
            "network": (NETWORK_MIGRATIONS, network_models.Base)}


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_migrations_match_the_models(tmp_path: Path, service: str) -> None:
    migrations, base = SERVICES[service]
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.upgrade(service, migrations)
    with db.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), base.metadata)
    db.dispose()
    assert [d for d in differences if "alembic_version" not in str(d)] == []
