"""Flavors: the default set, lookups that respect private flavors' access lists, and the copy of a
flavor that an instance keeps."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from stratus.compute import models
from stratus.core import errors

# name, flavorid, RAM (MiB), vCPUs, root disk (GiB)
DEFAULT_FLAVORS = (("m1.tiny", "1", 512, 1, 1), ("m1.small", "2", 2048, 1, 20), ("m1.medium", "3", 4096, 2, 40),
                   ("m1.large", "4", 8192, 4, 80), ("m1.xlarge", "5", 16384, 8, 160))


def seed_default_flavors(session: Session) -> None:
    """The m1.* flavors, made only in a cloud that has no flavor at all."""
    if session.scalar(sa.select(models.Flavor.id).limit(1)) is not None:
        return
    for name, flavorid, ram, vcpus, disk in DEFAULT_FLAVORS:
        session.add(models.Flavor(name=name, flavorid=flavorid, memory_mb=ram, vcpus=vcpus, root_gb=disk,
                                  ephemeral_gb=0, swap=0, rxtx_factor=1.0, is_public=True, disabled=False))
    session.flush()


def not_found(flavor_id: str) -> errors.NotFound:
    return errors.NotFound(f"Flavor {flavor_id} could not be found.")


def visible_to(project_id: str | None) -> sa.ColumnElement[bool]:
    """Flavors a project sees: public ones and private ones it was given access to."""
    shared = sa.select(models.FlavorAccess.flavor_id).where(models.FlavorAccess.project_id == (project_id or ""))
    return sa.or_(models.Flavor.is_public.is_(True), models.Flavor.id.in_(shared))


def find_flavor(session: Session, flavor_id: str, project_id: str | None, is_admin: bool,
                *, lock: bool = False) -> models.Flavor:
    """The flavor with API id `flavor_id`; 404 when missing or private to other projects."""
    query = sa.select(models.Flavor).where(models.Flavor.flavorid == flavor_id)
    if not is_admin:
        query = query.where(visible_to(project_id))
    if lock:
        query = query.with_for_update()
    row = session.scalar(query)
    if row is None:
        raise not_found(flavor_id)
    return row


def extra_specs(session: Session, flavor: models.Flavor) -> dict[str, str]:
    rows = session.execute(sa.select(models.FlavorExtraSpec.key, models.FlavorExtraSpec.value)
                           .where(models.FlavorExtraSpec.flavor_id == flavor.id))
    return {key: value for key, value in rows}


def flavor_snapshot(session: Session, flavor: models.Flavor) -> dict[str, Any]:
    """The copy of a flavor an instance keeps (the flavor may change or go later)."""
    return {"id": flavor.flavorid, "name": flavor.name, "vcpus": flavor.vcpus, "ram": flavor.memory_mb,
            "disk": flavor.root_gb, "ephemeral": flavor.ephemeral_gb, "swap": flavor.swap,
            "rxtx_factor": flavor.rxtx_factor, "extra_specs": extra_specs(session, flavor)}


def access_list(session: Session, flavor: models.Flavor) -> list[str]:
    return list(session.scalars(sa.select(models.FlavorAccess.project_id)
                                .where(models.FlavorAccess.flavor_id == flavor.id)
                                .order_by(models.FlavorAccess.project_id)))
