"""Server groups: placement policies (affinity, anti-affinity and their soft forms) shared by the
instances booted into them."""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa
from sqlalchemy.orm import Session

from stratus.compute import models, quotas
from stratus.core import errors
from stratus.core.config import ComputeConfig

POLICIES = ("anti-affinity", "affinity")
SOFT_POLICIES = ("soft-anti-affinity", "soft-affinity")  # 2.15


def not_found(group_id: str) -> errors.NotFound:
    return errors.NotFound(f"Instance group {group_id} could not be found.")


def get_group(session: Session, group_id: str, ctx_project: str | None, is_admin: bool) -> models.ServerGroup:
    """The group, when the caller's project owns it (any group for the operator); 404 otherwise."""
    row = session.get(models.ServerGroup, group_id)
    if row is None or (not is_admin and row.project_id != ctx_project):
        raise not_found(group_id)
    return row


def members(session: Session, group_ids: list[str]) -> dict[str, list[str]]:
    """{group id: ids of its instances that are not deleted}, in one query."""
    found: dict[str, list[str]] = defaultdict(list)
    if not group_ids:
        return found
    member = models.ServerGroupMember
    rows = session.execute(sa.select(member.group_id, member.instance_id)
                           .join(models.Instance, models.Instance.id == member.instance_id)
                           .where(member.group_id.in_(group_ids), models.Instance.deleted.is_(False))
                           .order_by(models.Instance.created_at, models.Instance.id))
    for group_id, instance_id in rows:
        found[group_id].append(instance_id)
    return found


def create(session: Session, settings: ComputeConfig, project_id: str, user_id: str, name: str,
           policy: str) -> models.ServerGroup:
    """A new group, within the project's server_groups quota (403 with Nova's message beyond it)."""
    quotas.lock_project(session, project_id)
    try:
        quotas.check(session, project_id, settings, {"server_groups": 1})
    except errors.OverLimit:
        raise errors.OverLimit("Quota exceeded, too many server groups.") from None
    row = models.ServerGroup(id=models.new_id(), name=name, project_id=project_id, user_id=user_id, policy=policy,
                             rules={})
    session.add(row)
    session.flush()
    return row


def delete(session: Session, row: models.ServerGroup) -> None:
    session.execute(sa.delete(models.ServerGroupMember).where(models.ServerGroupMember.group_id == row.id))
    session.delete(row)
