"""The agent notifier sends after the committing session gave its connection back: reading the
desired state takes a connection of its own, and a pool whose every connection is held by sessions
waiting for a second one would run dry."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from stratus.network.notify import AgentNotifier, Changes


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
