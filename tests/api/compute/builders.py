"""Rows the conductor writes (services, compute nodes, instances, migrations), made directly for
tests of the operator APIs that read them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from stratus.compute import models
from stratus.core.db import utcnow
from tests.api.compute.servers_helpers import LATEST, Tenant, tenant
from tests.conftest import ComputeHarness

TINY = {"id": "1", "name": "m1.tiny", "vcpus": 1, "ram": 512, "disk": 1, "ephemeral": 0, "swap": 0,
        "extra_specs": {}}
SMALL = {"id": "2", "name": "m1.small", "vcpus": 2, "ram": 2048, "disk": 20, "ephemeral": 5, "swap": 0,
         "extra_specs": {}}


def make_service(session: Session, host: str, binary: str = "nova-compute", *,
                 last_seen_up: dt.datetime | None = None, **fields: Any) -> models.Service:
    row = models.Service(host=host, binary=binary, topic=binary.removeprefix("nova-"),
                         last_seen_up=last_seen_up or utcnow(), **fields)
    session.add(row)
    session.flush()
    return row


def make_host(session: Session, name: str, *, vcpus: int = 16, memory_mb: int = 32768, local_gb: int = 500,
              vcpus_used: int = 0, memory_mb_used: int = 0, local_gb_used: int = 0, running_vms: int = 0,
              last_seen_up: dt.datetime | None = None, disabled: bool = False, disabled_reason: str | None = None,
              forced_down: bool = False, host_ip: str = "192.0.2.10",
              cpu_info: dict[str, Any] | None = None) -> tuple[models.Service, models.ComputeNode]:
    """A nova-compute service seen up now (unless told otherwise) and its compute node."""
    service = make_service(session, name, last_seen_up=last_seen_up, disabled=disabled,
                           disabled_reason=disabled_reason, forced_down=forced_down)
    node = models.ComputeNode(host=name, hypervisor_hostname=f"{name}.example.org", hypervisor_type="fake",
                              hypervisor_version=1000, host_ip=host_ip, vcpus=vcpus, memory_mb=memory_mb,
                              local_gb=local_gb, vcpus_used=vcpus_used, memory_mb_used=memory_mb_used,
                              local_gb_used=local_gb_used, running_vms=running_vms,
                              cpu_info=cpu_info if cpu_info is not None else {"arch": "x86_64", "model": "fake"})
    session.add(node)
    session.flush()
    return service, node


def make_instance(session: Session, project_id: str, host: str | None, flavor: dict[str, Any] | None = None, *,
                  name: str = "vm", launched_at: dt.datetime | None = None, terminated_at: dt.datetime | None = None,
                  deleted_at: dt.datetime | None = None, deleted: bool = False, vm_state: str = "active",
                  task_state: str | None = None, created_at: dt.datetime | None = None) -> models.Instance:
    flavor = dict(flavor or TINY)
    row = models.Instance(project_id=project_id, user_id="u", name=name, flavor=flavor, flavor_id=flavor["id"],
                          vcpus=flavor["vcpus"], memory_mb=flavor["ram"], root_gb=flavor["disk"],
                          ephemeral_gb=flavor["ephemeral"], vm_state=vm_state, task_state=task_state, host=host,
                          node=host, launched_at=launched_at, terminated_at=terminated_at, deleted_at=deleted_at,
                          deleted=deleted, created_at=created_at or utcnow())
    session.add(row)
    session.flush()
    return row


def make_migration(session: Session, instance_id: str, *, source: str, dest: str | None, status: str = "finished",
                   migration_type: str = "resize", old_flavor: str = "1", new_flavor: str = "2",
                   created_at: dt.datetime | None = None) -> models.Migration:
    row = models.Migration(instance_id=instance_id, migration_type=migration_type, source_compute=source,
                           source_node=source, dest_compute=dest, dest_node=dest, old_flavor_id=old_flavor,
                           new_flavor_id=new_flavor, status=status, created_at=created_at or utcnow())
    session.add(row)
    session.flush()
    return row


def admin(compute: ComputeHarness, version: str | None = "2.53") -> dict[str, str]:
    """The operator's headers at `version` (None: no version header, i.e. 2.1)."""
    headers = compute.as_admin()
    if version is not None:
        headers["OpenStack-API-Version"] = f"compute {version}"
    return headers


def member(compute: ComputeHarness, name: str = "alice") -> Tenant:
    """A member (no admin role) of a project of its own, at the latest version."""
    return tenant(compute, name, network=False)


__all__ = ["LATEST", "SMALL", "TINY", "admin", "make_host", "make_instance", "make_migration", "make_service",
           "member"]
