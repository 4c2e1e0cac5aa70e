"""Telling the node agents what changed, after the change is committed.

Managers call `AgentNotifier.changed(session, ...)` inside their transaction; the ids are collected
on the session and, once it commits, handed to a publisher thread, which reads the desired state of
each changed thing afresh and sends it on the bus (a rolled-back transaction sends nothing). See
`stratus/network/rpc.py` for the messages.

The publisher gathers for `GATHER_SECONDS` and then sends everything committed meanwhile as one
batch: a burst of boots (a port each) costs one read of the documents, not one per port. Agents
apply documents by stamp, so merged changes mean the same as the separate ones did.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, fields

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from stratus.core.bus import Bus
from stratus.core.db import Database

log = logging.getLogger("stratus.network.notify")

_KEY = "stratus.network.changes"
_COMMITTED = "stratus.network.changes.committed"
_LISTENING = "stratus.network.changes.listening"

# Long enough that a burst of boots shares a read, short beside an agent's own work on a port.
GATHER_SECONDS = 0.05
PUBLISHER_THREAD = "network-notify"


@dataclass
class Changes:
    """What one transaction changed, by id."""

    networks: set[str] = field(default_factory=set)
    deleted_networks: set[str] = field(default_factory=set)
    ports: set[str] = field(default_factory=set)
    # port id -> (network id, host) of ports that no longer exist
    deleted_ports: dict[str, tuple[str, str]] = field(default_factory=dict)
    routers: set[str] = field(default_factory=set)
    deleted_routers: set[str] = field(default_factory=set)
    security_groups: set[str] = field(default_factory=set)
    deleted_security_groups: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return any(getattr(self, kind.name) for kind in fields(self))

    def merge(self, later: Changes) -> None:
        """Add what a later transaction changed (the documents are read afresh, so the union is the news)."""
        for kind in fields(self):
            getattr(self, kind.name).update(getattr(later, kind.name))


class AgentNotifier:
    def __init__(self, db: Database, bus: Bus | None) -> None:
        self.db, self.bus = db, bus
        self._lock = threading.Lock()
        self._waiting: list[Changes] = []
        self._publishing = False

    def changed(self, session: Session, *, networks: Iterable[str] = (), deleted_networks: Iterable[str] = (),
                ports: Iterable[str] = (), deleted_ports: dict[str, tuple[str, str]] | None = None,
                routers: Iterable[str] = (), deleted_routers: Iterable[str] = (),
                security_groups: Iterable[str] = (), deleted_security_groups: Iterable[str] = ()) -> None:
        changes = session.info.get(_KEY)
        if changes is None:
            changes = session.info[_KEY] = Changes()
            if not session.info.get(_LISTENING):
                # Both events also fire when a savepoint (begin_nested) is released or rolled
                # back; the handlers wait for the outermost transaction.
                event.listen(session, "after_commit", self._after_commit)
                event.listen(session, "after_rollback", self._after_rollback)
                event.listen(session, "after_transaction_end", self._after_transaction_end)
                session.info[_LISTENING] = True
        changes.networks.update(networks)
        changes.deleted_networks.update(deleted_networks)
        changes.ports.update(ports)
        changes.deleted_ports.update(deleted_ports or {})
        changes.routers.update(routers)
        changes.deleted_routers.update(deleted_routers)
        changes.security_groups.update(security_groups)
        changes.deleted_security_groups.update(deleted_security_groups)

    def _after_rollback(self, session: Session) -> None:
        # A savepoint rolled back: what was noted inside it is at worst sent needlessly (the
        # documents are read afresh after the commit, a thing that is not there is sent as gone).
        if not session.in_nested_transaction():
            session.info.pop(_KEY, None)

    def _after_commit(self, session: Session) -> None:
        if session.in_nested_transaction():  # a savepoint released: nothing is committed yet
            return
        changes = session.info.pop(_KEY, None)
        if changes:
            session.info[_COMMITTED] = changes

    def _after_transaction_end(self, session: Session, transaction: SessionTransaction) -> None:
        # Sent once the transaction gave its connection back: reading the documents takes another
        # one, and with every pooled connection held by a committing session waiting for a second,
        # the pool would run dry (seen at 16 concurrent boots: 30 s pool timeouts, 500s).
        if transaction.parent is not None:
            return
        changes = session.info.pop(_COMMITTED, None)
        if not changes:
            return
        try:
            self.send(changes)
        except Exception:  # the change is committed; a resync brings the agents up to date
            log.exception("could not tell the network agents about %s", changes)

    def send(self, changes: Changes) -> None:
        """Hand committed `changes` to the publisher (started when none runs; it ends when idle)."""
        if self.bus is None:
            return
        with self._lock:
            self._waiting.append(changes)
            if self._publishing:
                return
            self._publishing = True
        try:
            threading.Thread(target=self._publish_waiting, args=(self.bus,), name=PUBLISHER_THREAD,
                             daemon=True).start()
        except RuntimeError:  # no thread to be had: the next change tries again
            with self._lock:
                self._publishing = False
            raise

    def _publish_waiting(self, bus: Bus) -> None:
        from stratus.network import rpc

        while True:
            time.sleep(GATHER_SECONDS)
            with self._lock:
                waiting, self._waiting = self._waiting, []
                if not waiting:
                    self._publishing = False
                    return
            batch = waiting[0]
            for later in waiting[1:]:
                batch.merge(later)
            try:
                rpc.publish(self.db, bus, batch)
            except Exception:  # committed all the same; a resync brings the agents up to date
                log.exception("could not tell the network agents about %s", batch)
