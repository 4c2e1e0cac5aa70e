"""Per-project compute quotas: limits (configured defaults, overridden per project), usage counted
from the rows that hold resources, and the check made under the project's row lock in the
transaction that takes the resources.
"""

from __future__ import annotations

import sqlalchemy as sa
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


def usage(session: Session, project_id: str) -> dict[str, int]:
    """What the project holds of each resource (0 for those counted per user, group or request)."""
    inst = models.Instance
    count, cores, ram = session.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(inst.vcpus), 0),
                  sa.func.coalesce(sa.func.sum(inst.memory_mb), 0))
        .where(inst.project_id == project_id, _live_instances())).one()
    groups = session.scalar(sa.select(sa.func.count()).select_from(models.ServerGroup)
                            .where(models.ServerGroup.project_id == project_id)) or 0
    used = dict.fromkeys(RESOURCES, 0)
    used.update(instances=int(count), cores=int(cores), ram=int(ram), server_groups=int(groups))
    return used


def lock_project(session: Session, project_id: str) -> None:
    """Hold the project's quota lock until the transaction ends.

    PostgreSQL/MariaDB: a row lock (SELECT ... FOR UPDATE) on the project's ProjectLock row. The row
    is made, when missing, in a short transaction of its own: made inside the caller's transaction,
    concurrent first boots on MariaDB would all wait on the same uncommitted row and deadlock when
    they upgrade their shared locks. SQLite: the database's write lock, taken by a write at once
    (writers are serialized, and the reads that follow see every committed write).
    """
    lock = models.ProjectLock
    if session.get_bind().dialect.name == "sqlite":
        touched = session.execute(sa.update(lock).where(lock.project_id == project_id)
                                  .values(project_id=project_id))
        if not touched.rowcount:  # type: ignore[attr-defined]
            _insert_in_savepoint(session, project_id)
        return
    select = sa.select(lock.project_id).where(lock.project_id == project_id)
    if session.scalar(select) is None:
        _insert_committed(session, project_id)
    if session.scalar(select.with_for_update()) is None:  # made by nobody: last resort, in our transaction
        _insert_in_savepoint(session, project_id)
        session.scalar(select.with_for_update())


def _insert_in_savepoint(session: Session, project_id: str) -> None:
    try:
        with session.begin_nested():
            session.add(models.ProjectLock(project_id=project_id))
    except IntegrityError:
        pass  # another transaction made it: its row lock is what we wait on next


def _insert_committed(session: Session, project_id: str) -> None:
    """INSERT the lock row on a connection of its own, committed at once; a duplicate is fine."""
    engine = session.get_bind().engine
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(models.ProjectLock).values(project_id=project_id))
    except IntegrityError:
        pass


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
    used = usage(session, project_id)
    overs = sorted(name for name, amount in wanted.items()
                   if allowed[name] >= 0 and used[name] + amount > allowed[name])
    if overs:
        raise errors.OverLimit(over_message(overs, wanted, used, allowed))


def over_message(overs: list[str], requested: dict[str, int], used: dict[str, int], allowed: dict[str, int]) -> str:
    def join(values: dict[str, int]) -> str:
        return ", ".join(str(values[name]) for name in overs)

    names = ", ".join(overs)
    return (f"Quota exceeded for {names}: Requested {join(requested)}, but already used {join(used)} "
            f"of {join(allowed)} {names}")
