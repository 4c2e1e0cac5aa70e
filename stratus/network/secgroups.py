"""Security groups: each project's `default` group, and what makes two rules the same rule."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from stratus.network import models

DEFAULT_NAME = "default"
DEFAULT_DESCRIPTION = "Default security group"


def fingerprint(direction: str, ethertype: str, protocol: str | None, port_range_min: int | None,
                port_range_max: int | None, remote_ip_prefix: str | None, remote_group_id: str | None) -> str:
    """A digest of a rule's normalized matching fields: equal for rules that match the same traffic."""
    key = "|".join(str(part) for part in (direction, ethertype, protocol, port_range_min, port_range_max,
                                             remote_ip_prefix, remote_group_id))
    return hashlib.sha256(key.encode()).hexdigest()


def _rule(group: models.SecurityGroup, direction: str, ethertype: str,
          remote_group_id: str | None) -> models.SecurityGroupRule:
    return models.SecurityGroupRule(
        id=models.new_id(), project_id=group.project_id, security_group_id=group.id, direction=direction,
        ethertype=ethertype, remote_group_id=remote_group_id,
        fingerprint=fingerprint(direction, ethertype, None, None, None, None, remote_group_id))


def default_rules(group: models.SecurityGroup) -> list[models.SecurityGroupRule]:
    """All traffic out; in, only from members of the same group; for IPv4 and IPv6."""
    return [_rule(group, direction, ethertype, group.id if direction == "ingress" else None)
            for direction in ("egress", "ingress") for ethertype in ("IPv4", "IPv6")]


def ensure_default(session: Session, project_id: str) -> str:
    """The id of the project's `default` group, created with its rules on first use."""
    existing = session.get(models.DefaultSecurityGroup, project_id)
    if existing is not None:
        return existing.security_group_id
    group = models.SecurityGroup(id=models.new_id(), project_id=project_id, name=DEFAULT_NAME,
                                 description=DEFAULT_DESCRIPTION)
    try:
        with session.begin_nested():
            session.add(group)
            session.flush()
            session.add(models.DefaultSecurityGroup(project_id=project_id, security_group_id=group.id))
            session.add_all(default_rules(group))
            session.flush()
    except IntegrityError:
        # Another request made it at the same moment: use theirs.
        winner = session.scalar(sa.select(models.DefaultSecurityGroup.security_group_id)
                                .where(models.DefaultSecurityGroup.project_id == project_id))
        if winner is None:
            raise
        return winner
    return group.id
