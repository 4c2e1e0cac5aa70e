"""The scheduler: filters and weighs the hosts held in memory, then claims on the best one.

A decision runs the configured filters (each skipped when the request has nothing for it), weighs
the survivors, and reserves the best host's resources in memory at once (so decisions made at the
same time spread), all under one lock. The claim then goes to the database (`claims.claim`, a
guarded UPDATE); when it is refused because the view was stale, the next best host is tried, up to
CLAIM_ATTEMPTS hosts. Before answering NoValidHost the view is read again in full once (new hosts,
zones just set) and the decision made again.

Members of a server group with a hard policy are scheduled one at a time per group: the group's row
is locked (SELECT ... FOR UPDATE; on SQLite the database write lock) while its members' hosts are
read, the host chosen and the claim made, in one transaction, so two members booted at once cannot
both take the same host (anti-affinity) or two different ones (affinity).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from itertools import compress, repeat
from operator import add, attrgetter, itemgetter, le, mul, neg
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from stratus.compute import claims, models
from stratus.compute.rpc import SCHEDULER_TOPIC
from stratus.compute.scheduler.filters import BaseHostFilter, filter_class
from stratus.compute.scheduler.host_state import REFRESH_INTERVAL, HostState, HostStates
from stratus.compute.scheduler.spec import (
    HARD_POLICIES,
    NO_VALID_HOST,
    NoValidHost,
    RequestSpec,
    SchedulingContext,
)
from stratus.compute.scheduler.weighers import GROUP_WEIGHERS, BaseWeigher, weigher_class
from stratus.core.bus import Bus, RpcServer
from stratus.core.config import ComputeConfig
from stratus.core.db import Database, utcnow

log = logging.getLogger("stratus.compute.scheduler")

# How many hosts, best first, one request may try to claim on before giving up.
CLAIM_ATTEMPTS = 8
_GROUP_LOCKS = 64
_NEG_INF = float("-inf")


class ClaimsRefused(NoValidHost):
    """Every claim tried was refused by the database (the in-memory view was behind)."""


def _ids(value: Any) -> set[str]:
    if not value:
        return set()
    if isinstance(value, str):
        return {value}
    return {str(item) for item in value if item}


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


class Scheduler:
    """Bus endpoint of topic `compute-scheduler` (see `serve`)."""

    def __init__(self, db: Database, settings: ComputeConfig, clock: Callable[[], float] = time.time) -> None:
        self.db, self.settings, self.clock = db, settings, clock
        self.states = HostStates(db, settings, clock)
        self.filters: list[BaseHostFilter] = [filter_class(name)(settings) for name in settings.scheduler_filters]
        names = list(settings.scheduler_weighers)
        names += [name for name in GROUP_WEIGHERS if name not in names]
        self.weighers: list[BaseWeigher] = [weigher_class(name)(settings) for name in names]
        self._group_locks = [threading.Lock() for _ in range(_GROUP_LOCKS)]

    def serve(self, bus: Bus) -> RpcServer:
        return bus.serve(SCHEDULER_TOPIC, self)

    # -- the bus API ------------------------------------------------------------------------------

    def select_destination(self, spec: RequestSpec | dict[str, Any]) -> str:
        """Choose a host for the request and claim its resources there; its name. NoValidHost when
        none fits (the message says which filter removed the last hosts, or that claims failed)."""
        if isinstance(spec, dict):
            spec = RequestSpec.from_dict(spec)
        self.states.refresh()
        try:
            return self._select(spec)
        except ClaimsRefused:
            pass  # the refused hosts were read again: decide once more on the corrected view
        except NoValidHost as exc:
            if self.clock() - self.states.loaded_at < REFRESH_INTERVAL:
                raise
            log.debug("no host for %s (%s); reading every host again", spec.instance_id, exc.message)
            self.states.refresh(full=True)
        return self._select(spec)

    def decide(self, spec: RequestSpec | dict[str, Any]) -> str:
        """The host the filters and weighers pick now, from memory only: no database access, no
        claim, and `spec.context` as the caller filled it (the clock aside). For measurements."""
        if isinstance(spec, dict):
            spec = RequestSpec.from_dict(spec)
        spec.context.now = self.clock()
        with self.states.lock:
            return next(self._ranked(spec)).host

    # -- one decision -----------------------------------------------------------------------------

    def _select(self, spec: RequestSpec) -> str:
        spec.context = SchedulingContext(now=self.clock())
        group_id = str((spec.group or {}).get("id") or "")
        if group_id and spec.policy in HARD_POLICIES:
            return self._select_in_group(spec, group_id)
        if spec.group or spec.hints.get("same_host") or spec.hints.get("different_host"):
            with self.db.transaction() as session:
                self._load_context(session, spec)
        state, at = self._place(spec, None)
        self.states.claimed(state, spec.vcpus, spec.memory_mb, spec.disk_gb, at)
        return state.host

    def _select_in_group(self, spec: RequestSpec, group_id: str) -> str:
        with self._group_locks[hash(group_id) % _GROUP_LOCKS]:
            for attempt in range(5):
                placed: tuple[HostState, dt.datetime] | None = None
                try:
                    with self.db.transaction() as session:
                        _lock_group(session, group_id)
                        self._load_context(session, spec)
                        placed = self._place(spec, session)
                except BaseException as exc:  # the claim (if any) was rolled back with the transaction
                    if placed is not None:
                        self.states.unreserve(placed[0], spec.vcpus, spec.memory_mb, spec.disk_gb)
                    if attempt == 4 or not isinstance(exc, DBAPIError) or not claims.is_retryable(exc):
                        raise
                    continue
                state, at = placed
                self.states.claimed(state, spec.vcpus, spec.memory_mb, spec.disk_gb, at)
                return state.host
        raise AssertionError("unreachable")

    def _load_context(self, session: Session, spec: RequestSpec) -> None:
        context = spec.context
        group_id = str((spec.group or {}).get("id") or "")
        if group_id:
            context.group_hosts = group_hosts(session, group_id, spec.instance_id)
        same, different = _ids(spec.hints.get("same_host")), _ids(spec.hints.get("different_host"))
        if same or different:
            where = instance_hosts(session, same | different)
            if same:
                context.same_hosts = frozenset(h for i in same for h in where.get(i, ()))
            if different:
                context.different_hosts = frozenset(h for i in different for h in where.get(i, ()))

    def _place(self, spec: RequestSpec, session: Session | None) -> tuple[HostState, dt.datetime]:
        """Reserve the best host and claim on it; on a refused claim the next best, and so on. The
        claim runs in `session`, or (None) in a transaction of its own."""
        need = (spec.vcpus, spec.memory_mb, spec.disk_gb)
        with self.states.lock:
            ranked = self._ranked(spec)
            state = next(ranked)
            self.states.reserve(state, *need)
        refused = 0
        while True:
            at = utcnow()
            try:
                if session is None:
                    won = claims.in_transaction(self.db, partial(
                        _claim, instance_id=spec.instance_id, host=state.host, need=need, at=at))
                else:
                    won = _claim(session, spec.instance_id, state.host, need, at)
            except BaseException:
                self.states.unreserve(state, *need)
                raise
            if won:
                return state, at
            self.states.unreserve(state, *need)
            refused += 1
            log.info("claim for %s on %s refused; trying the next host", spec.instance_id, state.host)
            self.states.reload_host(state.host)
            with self.states.lock:
                following = next(ranked, None) if refused < CLAIM_ATTEMPTS else None
                if following is None:
                    raise ClaimsRefused(f"{NO_VALID_HOST} The claims on the {_plural(refused, 'best host')} "
                                      "were refused: their resources were taken meanwhile.")
                state = following
                self.states.reserve(state, *need)

    def _ranked(self, spec: RequestSpec) -> Iterator[HostState]:
        """The passing hosts, best first (computed lazily: usually only the first is wanted)."""
        candidates = self._filtered(spec)
        scores = self._weigh(candidates, spec)
        if scores is None:
            for index in range(min(candidates.count(), CLAIM_ATTEMPTS)):
                yield candidates.at(index)
            return
        for _ in range(min(len(scores), CLAIM_ATTEMPTS)):
            best = scores.index(max(scores))
            yield candidates.at(best)
            scores[best] = _NEG_INF

    def _filtered(self, spec: RequestSpec) -> _Candidates:
        states = self.states
        ignore = set(spec.ignore_hosts)
        forced = spec.forced_host
        if forced:  # an operator's choice: no filter second-guesses it, the claim still needs room
            state = states.by_name.get(forced)
            if state is None:
                raise NoValidHost(f"{NO_VALID_HOST} Host {forced!r} is not a known compute host.")
            if forced in ignore:
                raise NoValidHost(f"{NO_VALID_HOST} Host {forced!r} was already tried.")
            return _Candidates([state])
        if not states.hosts:
            raise NoValidHost(f"{NO_VALID_HOST} No compute host has reported yet.")
        candidates = _Candidates(states.hosts)
        if ignore:
            candidates.filter_objects(lambda hosts: [host for host in hosts if host.host not in ignore])
            if not candidates.count():
                raise NoValidHost(f"{NO_VALID_HOST} Every host was tried already "
                                  f"({_plural(len(ignore), 'host')}).")
        columns = states.columns
        for host_filter in self.filters:
            if not host_filter.applies(spec):
                continue
            before = candidates.count()
            test = host_filter.column_test(spec)
            if test is not None and test[0] in columns:
                name, op, value = test
                candidates.filter_column(columns[name], op, value)
            else:
                candidates.filter_objects(partial(host_filter.filter_all, spec=spec))
            if not candidates.count():
                raise NoValidHost(f"{NO_VALID_HOST} Filter {host_filter.name} removed the last "
                                  f"{_plural(before, 'host')}.")
        return candidates

    def _weigh(self, candidates: _Candidates, spec: RequestSpec) -> list[float] | None:
        """Each candidate's total weight up to a constant (None: no weigher tells them apart).

        A weigher adds multiplier * (value - min) / (max - min); the `- min` part is the same for
        every host and is left out, so each weigher costs a few C-speed passes over a list."""
        if candidates.count() < 2:
            return None
        terms: list[tuple[Sequence[Any], float]] = []
        columns = self.states.columns
        for weigher in self.weighers:
            multiplier = weigher.multiplier
            if not multiplier or not weigher.applies(spec):
                continue
            if weigher.column in columns:
                values: Sequence[Any] = candidates.pick(columns[weigher.column or ""])
            else:
                values = weigher.weigh_all(candidates.objects(), spec)
            low, high = min(values), max(values)
            if high != low:
                terms.append((values, multiplier / (high - low)))
        if not terms:
            return None
        # Only the order matters: everything is divided by the first factor's size, which spares
        # one multiplication pass.
        (first, factor), unit = terms[0], abs(terms[0][1])
        scores = list(first) if factor > 0 else list(map(neg, first))
        for values, factor in terms[1:]:
            scores = list(map(add, scores, map(mul, values, repeat(factor / unit))))
        return scores


_POS = attrgetter("pos")


class _Candidates:
    """The hosts still in the running, in the order of HostStates.hosts: as their positions there
    (what column filters and weighers use) and/or as the HostState objects (what other filters use),
    each made from the other only when needed. Starts with every host."""

    __slots__ = ("_all", "_positions", "_objects", "_pick")

    def __init__(self, hosts: list[HostState]) -> None:
        self._all = hosts
        self._positions: list[int] | None = None  # None with _objects = _all: every host
        self._objects: list[HostState] | None = hosts
        self._pick: Callable[[list[Any]], Sequence[Any]] | None = None

    def count(self) -> int:
        return len(self._objects) if self._objects is not None else len(self._positions or ())

    def positions(self) -> list[int] | None:
        """Positions in HostStates.hosts (None: all of them)."""
        if self._objects is self._all:
            return None
        if self._positions is None:
            self._positions = list(map(_POS, self._objects or ()))
        return self._positions

    def _set_positions(self, positions: list[int]) -> None:
        self._positions, self._objects, self._pick = positions, None, None

    def pick(self, column: list[Any]) -> Sequence[Any]:
        """The column's figures of the candidates (the column itself when every host is one)."""
        positions = self.positions()
        if positions is None:
            return column
        if self._pick is None:
            if len(positions) == 1:
                only = positions[0]
                self._pick = lambda values: (values[only],)
            else:  # itemgetter of many indexes: one C call, about 3 times a map over __getitem__
                self._pick = itemgetter(*positions)
        return self._pick(column)

    def objects(self) -> list[HostState]:
        if self._objects is None:
            self._objects = list(map(self._all.__getitem__, self._positions or ()))
        return self._objects

    def at(self, index: int) -> HostState:
        if self._objects is not None:
            return self._objects[index]
        assert self._positions is not None
        return self._all[self._positions[index]]

    def filter_column(self, column: list[Any], op: Callable[[Any, Any], Any], value: Any) -> None:
        positions = self.positions()
        if positions is None:
            if op is le and column and value <= min(column):  # the usual case for liveness: all pass
                return
            kept = list(compress(range(len(column)), map(op, repeat(value), column)))
            if len(kept) == len(column):
                return
        else:
            kept = list(compress(positions, map(op, repeat(value), self.pick(column))))
            if len(kept) == len(positions):
                return
        self._set_positions(kept)

    def filter_objects(self, keep: Callable[[list[HostState]], list[HostState]]) -> None:
        objects = self.objects()
        kept = keep(objects)
        if len(kept) != len(objects):  # a filter only removes: the same length is the same hosts
            self._objects, self._positions, self._pick = kept, None, None


def _claim(session: Session, instance_id: str, host: str, need: tuple[int, int, int], at: dt.datetime) -> bool:
    return claims.claim(session, instance_id, host, *need, now=at)


def _lock_group(session: Session, group_id: str) -> None:
    """Hold the server group's row lock to the end of the transaction (on SQLite, which has no row
    locks, the database write lock: BEGIN IMMEDIATE through the savepoint hook in core.db)."""
    lock = sa.select(models.ServerGroup.id).where(models.ServerGroup.id == group_id).with_for_update()
    if session.get_bind().dialect.name == "sqlite":
        with session.begin_nested():  # the SAVEPOINT goes out with the first statement inside
            session.execute(lock)
    else:
        session.execute(lock)


def group_hosts(session: Session, group_id: str, exclude: str) -> dict[str, int]:
    """{host: how many members of the group (other than `exclude`) it holds or has claimed for}."""
    member = models.ServerGroupMember
    claimed = (sa.select(models.Allocation.instance_id, models.Allocation.host)
               .join(member, member.instance_id == models.Allocation.instance_id)
               .where(member.group_id == group_id, models.Allocation.instance_id != exclude))
    placed = (sa.select(models.Instance.id, models.Instance.host)
              .join(member, member.instance_id == models.Instance.id)
              .where(member.group_id == group_id, models.Instance.id != exclude, models.Instance.host.is_not(None),
                     models.Instance.deleted.is_(False)))
    pairs: set[tuple[str, str]] = {(i, h) for i, h in session.execute(claimed)}
    pairs |= {(i, h) for i, h in session.execute(placed) if h}
    return dict(Counter(host for _, host in pairs))


def instance_hosts(session: Session, instance_ids: set[str]) -> dict[str, set[str]]:
    """{instance id: the hosts it is on or has claimed} for the given instances."""
    found: dict[str, set[str]] = {}
    rows = session.execute(sa.select(models.Allocation.instance_id, models.Allocation.host)
                           .where(models.Allocation.instance_id.in_(instance_ids)))
    for instance_id, host in rows:
        found.setdefault(instance_id, set()).add(host)
    placed = session.execute(sa.select(models.Instance.id, models.Instance.host).where(
        models.Instance.id.in_(instance_ids), models.Instance.host.is_not(None), models.Instance.deleted.is_(False)))
    for instance_id, placed_host in placed:
        if placed_host:
            found.setdefault(instance_id, set()).add(placed_host)
    return found
