"""Per-project limits (volumes, gigabytes, snapshots, and the same per volume type as
`volumes_<type>`...), checked in the transaction that creates or grows the resource."""

from __future__ import annotations

import weakref
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from stratus.core import errors
from stratus.core.config import VolumeConfig
from stratus.volume import models

# The resources counted for a project; per-type ones are these three with `_<type name>`.
COUNTED = ("volumes", "gigabytes", "snapshots")
CONFIGURED = ("volumes", "snapshots", "gigabytes", "per_volume_gigabytes", "backups", "backup_gigabytes",
              "groups")


class OverQuota(errors.OverLimit):
    """Cinder answers 413 with an `overLimit` fault when a quota would be exceeded."""

    status, fault, title = 413, "overLimit", "Quota exceeded"


def defaults(settings: VolumeConfig, type_names: list[str]) -> dict[str, int]:
    result = {name: getattr(settings, f"quota_{name}") for name in CONFIGURED}
    for type_name in type_names:
        for name in COUNTED:
            result[f"{name}_{type_name}"] = -1
    return result


def type_names(session: Session) -> list[str]:
    return list(session.scalars(sa.select(models.VolumeType.name).order_by(models.VolumeType.name)))


def limits(session: Session, settings: VolumeConfig, project_id: str) -> dict[str, int]:
    """The project's limits: its own where set, the defaults elsewhere."""
    result = defaults(settings, type_names(session))
    rows = session.scalars(sa.select(models.Quota).where(models.Quota.project_id == project_id))
    result.update({row.resource: row.limit for row in rows if row.resource in result})
    return result


def usage(session: Session, project_id: str) -> dict[str, int]:
    """What the project holds, in total and per volume type (two grouped queries)."""
    used = {"volumes": 0, "gigabytes": 0, "snapshots": 0}
    names = dict(session.execute(sa.select(models.VolumeType.id, models.VolumeType.name)).all())
    for type_name in names.values():
        for name in COUNTED:
            used[f"{name}_{type_name}"] = 0
    volumes = session.execute(_current(session,
        sa.select(models.Volume.volume_type_id, sa.func.count(), sa.func.coalesce(sa.func.sum(models.Volume.size), 0))
        .where(models.Volume.project_id == project_id).group_by(models.Volume.volume_type_id)))
    for type_id, count, size in volumes:
        used["volumes"] += count
        used["gigabytes"] += int(size)
        if type_id in names:
            used[f"volumes_{names[type_id]}"] += count
            used[f"gigabytes_{names[type_id]}"] += int(size)
    snapshots = session.execute(_current(session,
        sa.select(models.Volume.volume_type_id, sa.func.count(),
                  sa.func.coalesce(sa.func.sum(models.Snapshot.size), 0))
        .join(models.Volume, models.Volume.id == models.Snapshot.volume_id)
        .where(models.Snapshot.project_id == project_id).group_by(models.Volume.volume_type_id)))
    for type_id, count, size in snapshots:
        used["snapshots"] += count
        used["gigabytes"] += int(size)
        if type_id in names:
            used[f"snapshots_{names[type_id]}"] += count
            used[f"gigabytes_{names[type_id]}"] += int(size)
    return used


# Engines -> projects whose lock row is known to exist (the rows are never deleted).
_KNOWN_LOCKS: weakref.WeakKeyDictionary[Engine, set[str]] = weakref.WeakKeyDictionary()


def lock_project(session: Session, project_id: str) -> None:
    """Hold the project's quota lock until the transaction ends; call it first in the transaction.

    SQLite: a write at once takes the database's write lock (writers are serialized, and what they
    read afterwards is current). PostgreSQL/MariaDB: SELECT ... FOR UPDATE on the project's lock
    row, made beforehand on a connection of its own when it is missing (made inside this
    transaction, two first creates would wait on each other's uncommitted row).
    """
    lock = models.ProjectLock
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        touched = session.execute(sa.update(lock).where(lock.project_id == project_id).values(project_id=project_id))
        if not touched.rowcount:  # type: ignore[attr-defined]
            session.add(lock(project_id=project_id))
            session.flush()
        return
    known = _KNOWN_LOCKS.setdefault(bind.engine, set())
    if project_id not in known:
        try:
            with bind.engine.begin() as conn:
                conn.execute(sa.insert(lock).values(project_id=project_id))
        except IntegrityError:
            pass  # another process made it first
        known.add(project_id)
    session.scalar(sa.select(lock.project_id).where(lock.project_id == project_id).with_for_update())


def _current(session: Session, query: Any) -> Any:
    """A read that sees the latest commits under MariaDB's REPEATABLE READ (a locking read)."""
    return query.with_for_update(read=True) if session.get_bind().dialect.name in ("mysql", "mariadb") else query


def check(session: Session, settings: VolumeConfig, project_id: str, *, type_name: str | None,
          volumes: int = 0, snapshots: int = 0, gigabytes: int = 0) -> None:
    """Refuse with 413 when adding these would pass one of the project's limits (and its type's).

    The caller holds the project's lock (`lock_project`, first in its transaction)."""
    if gigabytes > 0 and volumes:
        per_volume = limits(session, settings, project_id)["per_volume_gigabytes"]
        if 0 <= per_volume < gigabytes:
            raise OverQuota(f"Requested volume size {gigabytes}G is larger than maximum allowed limit "
                            f"{per_volume}G.")
    wanted = {"volumes": volumes, "snapshots": snapshots, "gigabytes": gigabytes}
    if type_name is not None:
        wanted.update({f"{name}_{type_name}": wanted[name] for name in COUNTED})
    wanted = {name: amount for name, amount in wanted.items() if amount > 0}
    if not wanted:
        return
    limit = limits(session, settings, project_id)
    used = usage(session, project_id)
    for name, amount in wanted.items():
        allowed = limit.get(name, -1)
        if allowed >= 0 and used.get(name, 0) + amount > allowed:
            if name.startswith("gigabytes"):
                raise OverQuota(f"VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed "
                                f"{name} quota. Requested {amount}G, quota is {allowed}G and "
                                f"{used.get(name, 0)}G has been consumed.")
            raise OverQuota(f"Maximum number of {name.split('_')[0]} allowed ({allowed}) exceeded for quota "
                            f"'{name}'.")
