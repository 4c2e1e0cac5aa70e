"""Per-project limits, checked in the transaction that creates the resource."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from stratus.core.config import NetworkConfig
from stratus.network import models
from stratus.network.errors import OverQuota

# Quota resource name -> the table whose rows it counts.
RESOURCES: dict[str, Any] = {
    "network": models.Network,
    "subnet": models.Subnet,
    "port": models.Port,
    "router": models.Router,
    "floatingip": models.FloatingIP,
    "security_group": models.SecurityGroup,
    "security_group_rule": models.SecurityGroupRule,
}


def defaults(settings: NetworkConfig) -> dict[str, int]:
    return {name: getattr(settings, f"quota_{name}") for name in RESOURCES}


def limits(session: Session, settings: NetworkConfig, project_id: str) -> dict[str, int]:
    """The project's limits: its own where set, the defaults elsewhere."""
    result = defaults(settings)
    rows = session.scalars(sa.select(models.Quota).where(models.Quota.project_id == project_id))
    result.update({row.resource: row.limit for row in rows if row.resource in result})
    return result


def usage(session: Session, project_id: str) -> dict[str, int]:
    """How many of each resource the project holds (one query per resource type)."""
    return {name: count(session, name, project_id) for name in RESOURCES}


def count(session: Session, resource: str, project_id: str) -> int:
    model = RESOURCES[resource]
    return session.scalar(sa.select(sa.func.count()).select_from(model).where(model.project_id == project_id)) or 0


def check(session: Session, settings: NetworkConfig, project_id: str, resource: str, adding: int = 1) -> None:
    """Refuse with 409 OverQuota when `adding` more of `resource` would pass the project's limit."""
    row = session.get(models.Quota, (project_id, resource))
    limit = row.limit if row is not None else getattr(settings, f"quota_{resource}")
    if limit < 0:
        return
    if count(session, resource, project_id) + adding > limit:
        raise OverQuota(resource)
