"""The agent notifier hands changes on after the committing session gave its connection back: reading the
desired state takes a connection of its own, and a pool whose every connection is held by sessions
waiting for a second one would run dry."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from stratus.network.notify import GATHER_SECONDS, AgentNotifier, Changes


class RecordingNotifier(AgentNotifier):
    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(db=None, bus=object())  # type: ignore[arg-type]
        self.engine = engine
        self.sent: list[Changes] = []

    def send(self, changes: Changes) -> None:
        with self.engine.connect() as connection:  # as rpc.publish reads the documents
            connection.execute(sa.text("SELECT 1"))
        self.sent.append(changes)


def test_send_gets_a_connection_from_a_pool_of_one(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", pool_size=1, max_overflow=0, pool_timeout=1)
    notifier = RecordingNotifier(engine)
    with Session(engine) as session, session.begin():
        session.execute(sa.text("SELECT 1"))  # the transaction holds the pool's only connection
        notifier.changed(session, ports=["p1"])
    assert [c.ports for c in notifier.sent] == [{"p1"}]


def test_a_savepoint_sends_nothing_until_the_outer_commit_and_a_rollback_nothing_at_all(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    notifier = RecordingNotifier(engine)
    with Session(engine) as session:
        with session.begin():
            with session.begin_nested():
                notifier.changed(session, networks=["n1"])
            assert notifier.sent == []
        assert [c.networks for c in notifier.sent] == [{"n1"}]
        session.begin()
        notifier.changed(session, networks=["n2"])
        session.rollback()
    assert len(notifier.sent) == 1


def test_changes_committed_close_together_are_published_as_one_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    from stratus.network import rpc

    published: list[Changes] = []
    done = threading.Event()

    def record(db: object, bus: object, changes: Changes) -> None:
        published.append(changes)
        done.set()

    monkeypatch.setattr(rpc, "publish", record)
    notifier = AgentNotifier(db=None, bus=object())  # type: ignore[arg-type]
    notifier.send(Changes(ports={"p1"}, security_groups={"g1"}))
    notifier.send(Changes(ports={"p2"}, deleted_ports={"p0": ("n1", "host-a")}))
    notifier.send(Changes(deleted_networks={"n9"}))
    assert done.wait(5)
    time.sleep(GATHER_SECONDS * 3)  # a second batch, were there one, would be out by now
    assert len(published) == 1
    batch = published[0]
    assert batch.ports == {"p1", "p2"} and batch.security_groups == {"g1"}
    assert batch.deleted_ports == {"p0": ("n1", "host-a")} and batch.deleted_networks == {"n9"}
    # The publisher ended with nothing left; the next change starts another and is sent on its own.
    done.clear()
    notifier.send(Changes(routers={"r1"}))
    assert done.wait(5)
    assert [c.routers for c in published] == [set(), {"r1"}]
