"""Per-project compute quotas: limits (configured defaults, overridden per project), usage counted
from the rows that hold resources, and the check made under the project's row lock in the
transaction that takes the resources.
"""

from __future__ import annotations

import weakref

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from stratus.compute import models
from stratus.core import errors
from stratus.core.config import ComputeConfig

RESOURCES = ("instances", "cores", "ram", "key_pairs", "metadata_items", "server_groups",
             "server_group_members", "injected_files", "injected_file_content_bytes", "injected_file_path_bytes")

# The largest limit a column holds.
MAX_LIMIT = 2**31 - 1


def defaults(settings: ComputeConfig) -> dict[str, int]:
    return {name: int(getattr(settings, f"quota_{name}")) for name in RESOURCES}


def overrides(session: Session, project_id: str) -> dict[str, int]:
    """The limits the project has of its own."""
    rows = session.execute(sa.select(models.Quota.resource, models.Quota.hard_limit)
                           .where(models.Quota.project_id == project_id))
    return {resource: limit for resource, limit in rows if resource in RESOURCES}


def limits(session: Session, project_id: str, settings: ComputeConfig) -> dict[str, int]:
    """The project's limits: its own where set, the defaults elsewhere (-1: unlimited)."""
    return {**defaults(settings), **overrides(session, project_id)}


def _live_instances() -> sa.ColumnElement[bool]:
    """Instances that hold quota: not deleted, and not a build that failed on every host."""
    inst = models.Instance
    return sa.and_(inst.deleted.is_(False), sa.not_(sa.and_(inst.vm_state == "error", inst.host.is_(None))))


_INSTANCE_RESOURCES = frozenset({"instances", "cores", "ram"})


def usage(session: Session, project_id: str, *, current: bool = False,
          only: frozenset[str] | set[str] | None = None) -> dict[str, int]:
    """What the project holds of each resource (0 for those counted per user, group or request).

    `current`: read the latest committed rows even where the transaction reads a snapshot (MariaDB's
    REPEATABLE READ), as a check under the project lock must. `only`: count just these resources
    (the others show 0)."""
    inst = models.Instance
    locking = current and session.get_bind().dialect.name in ("mysql", "mariadb")
    used = dict.fromkeys(RESOURCES, 0)
    if only is None or only & _INSTANCE_RESOURCES:
        totals = (sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(inst.vcpus), 0),
                            sa.func.coalesce(sa.func.sum(inst.memory_mb), 0))
                  .where(inst.project_id == project_id, _live_instances()))
        count, cores, ram = session.execute(totals.with_for_update(read=True) if locking else totals).one()
        used.update(instances=int(count), cores=int(cores), ram=int(ram))
    if only is None or "server_groups" in only:
        groups = (sa.select(sa.func.count()).select_from(models.ServerGroup)
                  .where(models.ServerGroup.project_id == project_id))
        used["server_groups"] = int(session.scalar(groups.with_for_update(read=True) if locking else groups) or 0)
    return used


# Engines -> projects whose lock row is known to exist (the rows are never deleted).
_KNOWN_LOCKS: weakref.WeakKeyDictionary[Engine, set[str]] = weakref.WeakKeyDictionary()


def lock_project(session: Session, project_id: str) -> None:
    """Hold the project's quota lock until the transaction ends.

    PostgreSQL/MariaDB: a row lock (SELECT ... FOR UPDATE) on the project's ProjectLock row, taken
    before the transaction reads anything else when the caller makes it its first statement. A
    missing row is made beforehand on a connection of its own, committed at once: made inside the
    caller's transaction, concurrent first boots on MariaDB would wait on the same uncommitted row
    and deadlock upgrading their shared locks, and a plain read to look for it would fix
    MariaDB's snapshot before the lock is held. SQLite: the database's write lock, taken by a write
    at once (writers are serialized, and the reads that follow see every committed write).
    """
    lock = models.ProjectLock
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        touched = session.execute(sa.update(lock).where(lock.project_id == project_id)
                                  .values(project_id=project_id))
        if not touched.rowcount:  # type: ignore[attr-defined]
            _insert_in_savepoint(session, project_id)
        return
    known = _KNOWN_LOCKS.setdefault(bind.engine, set())
    if project_id not in known:
        _ensure_row(bind.engine, project_id)
        known.add(project_id)
    select = sa.select(lock.project_id).where(lock.project_id == project_id).with_for_update()
    if session.scalar(select) is None:  # removed behind our back: make it in our transaction
        _insert_in_savepoint(session, project_id)
        session.scalar(select)


def _insert_in_savepoint(session: Session, project_id: str) -> None:
    try:
        with session.begin_nested():
            session.add(models.ProjectLock(project_id=project_id))
    except IntegrityError:
        pass  # another transaction made it: its row lock is what we wait on next


def _ensure_row(engine: Engine, project_id: str) -> None:
    """The lock row, made on a connection of its own and committed at once; a duplicate is fine."""
    lock = models.ProjectLock
    with engine.connect() as conn:
        if conn.scalar(sa.select(lock.project_id).where(lock.project_id == project_id)) is not None:
            return
        try:
            conn.execute(sa.insert(lock).values(project_id=project_id))
            conn.commit()
        except IntegrityError:
            conn.rollback()


def check(session: Session, project_id: str, settings: ComputeConfig, deltas: dict[str, int]) -> None:
    """Refuse (403, Nova's message) when adding `deltas` would pass one of the project's limits.
    Call after lock_project, in the transaction that then takes the resources."""
    wanted = {name: amount for name, amount in deltas.items() if amount > 0}
    if not wanted:
        return
    unknown = set(wanted) - set(RESOURCES)
    if unknown:
        raise ValueError(f"unknown quota resources: {sorted(unknown)}")
    allowed = limits(session, project_id, settings)
    limited = {name for name in wanted if allowed[name] >= 0}
    if not limited:  # nothing to count against
        return
    used = usage(session, project_id, current=True, only=limited)
    overs = sorted(name for name in limited if used[name] + wanted[name] > allowed[name])
    if overs:
        raise errors.OverLimit(over_message(overs, wanted, used, allowed))


def over_message(overs: list[str], requested: dict[str, int], used: dict[str, int], allowed: dict[str, int]) -> str:
    def join(values: dict[str, int]) -> str:
        return ", ".join(str(values[name]) for name in overs)

    names = ", ".join(overs)
    return (f"Quota exceeded for {names}: Requested {join(requested)}, but already used {join(used)} "
            f"of {join(allowed)} {names}")
