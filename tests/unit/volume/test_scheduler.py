"""The volume scheduler: filters by zone, backend and room (thin provisioning), weighs free room."""

from __future__ import annotations

from pathlib import Path

import pytest

from stratus.core import config as config_mod
from stratus.core.db import Database, utcnow
from stratus.volume import models
from stratus.volume.rpc import AGENT_BINARY
from stratus.volume.scheduler import NoValidBackend, select_host
from stratus.volume.service import MIGRATIONS


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'volume.sqlite'}")
    database.upgrade("volume", MIGRATIONS)
    now = utcnow()
    with database.transaction() as session:
        for host, zone, backend, total in (("a", "nova", "file", 100.0), ("b", "nova", "file", 50.0),
                                           ("c", "east", "lvm", 1000.0)):
            session.add(models.Service(host=host, binary=AGENT_BINARY, availability_zone=zone, backend=backend,
                                       total_gb=total, free_gb=total, last_seen_up=now))
        # Host a already holds 90 GiB of volumes.
        session.add(models.Volume(project_id="p", size=90, availability_zone="nova", host="a", status="available"))
    return database


def _settings(ratio: float) -> config_mod.VolumeConfig:
    return config_mod.VolumeConfig(max_over_subscription_ratio=ratio)


def test_weighs_virtual_free_space_with_the_ratio(db: Database) -> None:
    with db.transaction() as session:
        # ratio 1: a has 10 GiB left, b 50 -> b; ratio 20: a has 1910, b 1000 -> a.
        assert select_host(session, _settings(1.0), size=5, availability_zone="nova", extra_specs={}) == "b"
        assert select_host(session, _settings(20.0), size=5, availability_zone="nova", extra_specs={}) == "a"


def test_filters_by_zone_backend_and_room(db: Database) -> None:
    with db.transaction() as session:
        assert select_host(session, _settings(1.0), size=5, availability_zone="east", extra_specs={}) == "c"
        assert select_host(session, _settings(1.0), size=5, availability_zone=None,
                           extra_specs={"volume_backend_name": "lvm"}) == "c"
        with pytest.raises(NoValidBackend, match="with 60 GiB free"):
            select_host(session, _settings(1.0), size=60, availability_zone="nova", extra_specs={})
        with pytest.raises(NoValidBackend, match="availability zone west"):
            select_host(session, _settings(1.0), size=1, availability_zone="west", extra_specs={})
        assert select_host(session, _settings(1.0), size=1, availability_zone="nova", extra_specs={},
                           only_host="a") == "a"


def test_a_host_silent_past_service_down_time_is_not_chosen(db: Database) -> None:
    import datetime as dt

    with db.transaction() as session:
        for row in session.query(models.Service).filter(models.Service.host.in_(["b", "c"])):
            row.last_seen_up = utcnow() - dt.timedelta(hours=1)
    with db.transaction() as session:
        assert select_host(session, _settings(20.0), size=1, availability_zone=None, extra_specs={}) == "a"
