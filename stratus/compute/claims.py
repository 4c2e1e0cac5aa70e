"""Resource claims: what an instance holds on a host, kept in step with the host's running totals.

A claim is one guarded UPDATE of the host's `compute_node` row, which raises the *_used totals only
while they stay within the node's capacity times its allocation ratios (rowcount 1: claimed), and
an `Allocation` row per (instance, host), both in the caller's transaction. The database decides,
so two claims racing for the last room on a host cannot both win, whatever any scheduler believed.

During a resize or migration an instance holds two allocations: the destination is claimed while
the source keeps its own, and `keep_only` drops the one that is not wanted at confirm or revert.
`running_vms` counts allocations.
"""

from __future__ import annotations

import datetime as dt
from typing import cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from stratus.compute import models
from stratus.core import db as db_retry
from stratus.core.db import utcnow

_NODE = cast(sa.Table, models.ComputeNode.__table__)
_ALLOC = cast(sa.Table, models.Allocation.__table__)


def claim(session: Session, instance_id: str, host: str, vcpus: int, memory_mb: int, disk_gb: int,
          *, now: dt.datetime | None = None) -> bool:
    """Claim the resources on `host` for the instance; False when they do not fit (or no such host).

    Idempotent: an instance that already holds an allocation on `host` keeps it as it is (True).
    `now` is written as the node's updated_at (the scheduler uses it to know its cache saw the claim).
    """
    held = session.execute(sa.select(_ALLOC.c.host).where(_ALLOC.c.instance_id == instance_id,
                                                           _ALLOC.c.host == host)).first()
    if held is not None:
        return True
    n = _NODE.c
    result = session.execute(
        sa.update(_NODE)
        .where(n.host == host,
               n.vcpus_used + vcpus <= n.vcpus * n.cpu_allocation_ratio,
               n.memory_mb_used + memory_mb <= n.memory_mb * n.ram_allocation_ratio,
               n.local_gb_used + disk_gb <= n.local_gb * n.disk_allocation_ratio)
        .values(vcpus_used=n.vcpus_used + vcpus, memory_mb_used=n.memory_mb_used + memory_mb,
                local_gb_used=n.local_gb_used + disk_gb, running_vms=n.running_vms + 1,
                updated_at=now or utcnow()))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    session.execute(sa.insert(_ALLOC).values(instance_id=instance_id, host=host, vcpus=vcpus, memory_mb=memory_mb,
                                             disk_gb=disk_gb, created_at=utcnow()))
    return True


def release(session: Session, instance_id: str, host: str | None = None) -> int:
    """Give back what the instance holds on `host` (None: on every host); how many allocations went.

    Each allocation row is deleted first and the totals are lowered only when this transaction is
    the one that deleted it, so two concurrent releases never subtract twice; totals never go below 0.
    """
    query = sa.select(_ALLOC.c.host, _ALLOC.c.vcpus, _ALLOC.c.memory_mb, _ALLOC.c.disk_gb).where(
        _ALLOC.c.instance_id == instance_id)
    if host is not None:
        query = query.where(_ALLOC.c.host == host)
    released = 0
    for held_host, vcpus, memory_mb, disk_gb in session.execute(query).all():
        gone = session.execute(sa.delete(_ALLOC).where(_ALLOC.c.instance_id == instance_id,
                                                       _ALLOC.c.host == held_host))
        if gone.rowcount != 1:  # type: ignore[attr-defined]
            continue
        released += 1
        n = _NODE.c
        session.execute(sa.update(_NODE).where(n.host == held_host).values(
            vcpus_used=_minus(n.vcpus_used, vcpus), memory_mb_used=_minus(n.memory_mb_used, memory_mb),
            local_gb_used=_minus(n.local_gb_used, disk_gb), running_vms=_minus(n.running_vms, 1),
            updated_at=utcnow()))
    return released


def _minus(column: sa.ColumnElement[int], amount: int) -> sa.ColumnElement[int]:
    return sa.case((column > amount, column - amount), else_=0)


def allocations(session: Session, instance_id: str) -> dict[str, dict[str, int]]:
    """{host: {"vcpus", "memory_mb", "disk_gb"}} of what the instance holds (two hosts mid-resize)."""
    rows = session.execute(sa.select(_ALLOC.c.host, _ALLOC.c.vcpus, _ALLOC.c.memory_mb, _ALLOC.c.disk_gb)
                           .where(_ALLOC.c.instance_id == instance_id))
    return {h: {"vcpus": v, "memory_mb": m, "disk_gb": d} for h, v, m, d in rows}


def move(session: Session, instance_id: str, dest: str, vcpus: int, memory_mb: int, disk_gb: int) -> bool:
    """A resize/migration claim: `dest` is claimed with the new sizes while every other allocation of
    the instance (the source's) is kept until `keep_only` at confirm or revert."""
    return claim(session, instance_id, dest, vcpus, memory_mb, disk_gb)


def keep_only(session: Session, instance_id: str, host: str) -> int:
    """Release every allocation of the instance but the one on `host` (confirm: the destination;
    revert: the source). How many went."""
    others = session.scalars(sa.select(_ALLOC.c.host).where(_ALLOC.c.instance_id == instance_id,
                                                             _ALLOC.c.host != host)).all()
    return sum(release(session, instance_id, other) for other in others)


# -- transactions the database may abort to break a deadlock -----------------------------------------------

# A claim runs again when the database aborted its transaction as a deadlock victim.
is_retryable, in_transaction = db_retry.is_retryable, db_retry.retrying
