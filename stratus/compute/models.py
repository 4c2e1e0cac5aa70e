"""Compute service tables. Instance and server group ids are dashed UUID4, as Nova's; flavors keep
an internal integer key beside the API's string `flavorid`.

Resource claims live in two places updated in one transaction: a row per (instance, host) in
`compute_allocation`, and the running totals on `compute_node`, raised only by a guarded UPDATE
so that concurrent boots can never push a host past its allocation ratios.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from stratus.core.db import JSONText, Timestamp, utcnow

PROJECT = sa.String(64)
UUID = sa.String(36)
HOST = sa.String(255)


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    pass


class Flavor(Base):
    __tablename__ = "compute_flavor"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    flavorid: Mapped[str] = mapped_column(sa.String(255), unique=True)
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    memory_mb: Mapped[int] = mapped_column()
    vcpus: Mapped[int] = mapped_column()
    root_gb: Mapped[int] = mapped_column(default=0)
    ephemeral_gb: Mapped[int] = mapped_column(default=0)
    swap: Mapped[int] = mapped_column(default=0)  # MiB
    rxtx_factor: Mapped[float] = mapped_column(default=1.0)
    is_public: Mapped[bool] = mapped_column(default=True)
    disabled: Mapped[bool] = mapped_column(default=False)
    description: Mapped[str | None] = mapped_column(sa.String(65535).with_variant(sa.Text, "mysql", "mariadb"))
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, onupdate=utcnow)


class FlavorExtraSpec(Base):
    __tablename__ = "compute_flavor_extra_spec"
    flavor_id: Mapped[int] = mapped_column(sa.ForeignKey("compute_flavor.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    value: Mapped[str] = mapped_column(sa.String(255))


class FlavorAccess(Base):
    __tablename__ = "compute_flavor_access"
    flavor_id: Mapped[int] = mapped_column(sa.ForeignKey("compute_flavor.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[str] = mapped_column(PROJECT, primary_key=True)


class KeyPair(Base):
    __tablename__ = "compute_keypair"
    __table_args__ = (sa.UniqueConstraint("user_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    name: Mapped[str] = mapped_column(sa.String(255))
    type: Mapped[str] = mapped_column(sa.String(16), default="ssh")
    public_key: Mapped[str] = mapped_column(sa.Text)
    fingerprint: Mapped[str] = mapped_column(sa.String(255))
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)


class Instance(Base):
    __tablename__ = "compute_instance"
    __table_args__ = (sa.Index("ix_compute_instance_project_deleted", "project_id", "deleted"),)
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(PROJECT)
    user_id: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str] = mapped_column(sa.String(255))
    hostname: Mapped[str] = mapped_column(sa.String(255), default="")
    description: Mapped[str | None] = mapped_column(sa.String(255))
    image_ref: Mapped[str] = mapped_column(sa.String(255), default="")
    # A copy of the flavor as it was at boot (the flavor may be deleted later), and during a
    # resize the flavor being left and the one being moved to.
    flavor: Mapped[dict[str, Any]] = mapped_column(JSONText)
    old_flavor: Mapped[dict[str, Any] | None] = mapped_column(JSONText)
    new_flavor: Mapped[dict[str, Any] | None] = mapped_column(JSONText)
    flavor_id: Mapped[str] = mapped_column(sa.String(255), index=True)
    vcpus: Mapped[int] = mapped_column(default=0)
    memory_mb: Mapped[int] = mapped_column(default=0)
    root_gb: Mapped[int] = mapped_column(default=0)
    ephemeral_gb: Mapped[int] = mapped_column(default=0)
    vm_state: Mapped[str] = mapped_column(sa.String(32), default="building", index=True)
    task_state: Mapped[str | None] = mapped_column(sa.String(64))
    power_state: Mapped[int] = mapped_column(default=0)
    host: Mapped[str | None] = mapped_column(HOST, index=True)
    node: Mapped[str | None] = mapped_column(HOST)
    availability_zone: Mapped[str | None] = mapped_column(sa.String(255))
    key_name: Mapped[str | None] = mapped_column(sa.String(255))
    key_data: Mapped[str | None] = mapped_column(sa.Text)
    user_data: Mapped[str | None] = mapped_column(sa.Text)
    config_drive: Mapped[str] = mapped_column(sa.String(255), default="")
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSONText, default=dict)
    # Image properties copied at boot (image_*), as Nova's system metadata.
    system_metadata: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    security_groups: Mapped[list[str]] = mapped_column(JSONText, default=list)
    # What was asked at boot and is needed again to reschedule, resize or migrate.
    request_spec: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    # The network service's view of the instance's ports, refreshed when they change.
    network_info: Mapped[list[dict[str, Any]]] = mapped_column(JSONText, default=list)
    access_ip_v4: Mapped[str | None] = mapped_column(sa.String(64))
    access_ip_v6: Mapped[str | None] = mapped_column(sa.String(64))
    locked: Mapped[bool] = mapped_column(default=False)
    locked_by: Mapped[str | None] = mapped_column(sa.String(16))
    locked_reason: Mapped[str | None] = mapped_column(sa.String(255))
    reservation_id: Mapped[str] = mapped_column(sa.String(255), default="")
    launch_index: Mapped[int] = mapped_column(default=0)
    progress: Mapped[int] = mapped_column(default=0)
    launched_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    terminated_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow, index=True)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    deleted: Mapped[bool] = mapped_column(default=False)


class InstanceTag(Base):
    __tablename__ = "compute_instance_tag"
    instance_id: Mapped[str] = mapped_column(UUID, sa.ForeignKey("compute_instance.id", ondelete="CASCADE"),
                                             primary_key=True)
    tag: Mapped[str] = mapped_column(sa.String(80), primary_key=True, index=True)


class InstanceFault(Base):
    __tablename__ = "compute_instance_fault"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(UUID, sa.ForeignKey("compute_instance.id", ondelete="CASCADE"),
                                             index=True)
    code: Mapped[int] = mapped_column(default=500)
    message: Mapped[str] = mapped_column(sa.String(255))
    details: Mapped[str] = mapped_column(sa.Text, default="")
    host: Mapped[str | None] = mapped_column(HOST)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)


class InstanceAction(Base):
    __tablename__ = "compute_instance_action"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(UUID, sa.ForeignKey("compute_instance.id", ondelete="CASCADE"),
                                             index=True)
    request_id: Mapped[str] = mapped_column(sa.String(255), index=True)
    action: Mapped[str] = mapped_column(sa.String(64))
    project_id: Mapped[str] = mapped_column(PROJECT)
    user_id: Mapped[str] = mapped_column(sa.String(64))
    message: Mapped[str | None] = mapped_column(sa.String(255))
    start_time: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    finish_time: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    updated_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)


class InstanceActionEvent(Base):
    __tablename__ = "compute_instance_action_event"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    action_id: Mapped[int] = mapped_column(sa.ForeignKey("compute_instance_action.id", ondelete="CASCADE"),
                                           index=True)
    event: Mapped[str] = mapped_column(sa.String(255))
    result: Mapped[str | None] = mapped_column(sa.String(32))
    traceback: Mapped[str | None] = mapped_column(sa.Text)
    host: Mapped[str | None] = mapped_column(HOST)
    start_time: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    finish_time: Mapped[dt.datetime | None] = mapped_column(Timestamp)


class ComputeNode(Base):
    """A hypervisor: what its agent reports, and the claims made against it."""

    __tablename__ = "compute_node"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(UUID, unique=True, default=new_id)
    host: Mapped[str] = mapped_column(HOST, unique=True)
    hypervisor_hostname: Mapped[str] = mapped_column(HOST)
    hypervisor_type: Mapped[str] = mapped_column(sa.String(64), default="fake")
    hypervisor_version: Mapped[int] = mapped_column(default=1)
    host_ip: Mapped[str] = mapped_column(sa.String(64), default="127.0.0.1")
    vcpus: Mapped[int] = mapped_column(default=0)
    memory_mb: Mapped[int] = mapped_column(default=0)
    local_gb: Mapped[int] = mapped_column(default=0)
    vcpus_used: Mapped[int] = mapped_column(default=0)
    memory_mb_used: Mapped[int] = mapped_column(default=0)
    local_gb_used: Mapped[int] = mapped_column(default=0)
    running_vms: Mapped[int] = mapped_column(default=0)
    cpu_allocation_ratio: Mapped[float] = mapped_column(default=16.0)
    ram_allocation_ratio: Mapped[float] = mapped_column(default=1.5)
    disk_allocation_ratio: Mapped[float] = mapped_column(default=1.0)
    cpu_info: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)


class Allocation(Base):
    """Resources an instance holds on a host (two rows while a resize holds both hosts)."""

    __tablename__ = "compute_allocation"
    instance_id: Mapped[str] = mapped_column(UUID, primary_key=True)
    host: Mapped[str] = mapped_column(HOST, primary_key=True, index=True)
    vcpus: Mapped[int] = mapped_column()
    memory_mb: Mapped[int] = mapped_column()
    disk_gb: Mapped[int] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)


class Service(Base):
    __tablename__ = "compute_service"
    __table_args__ = (sa.UniqueConstraint("host", "binary"),)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(UUID, unique=True, default=new_id)
    host: Mapped[str] = mapped_column(HOST)
    binary: Mapped[str] = mapped_column(sa.String(255))
    topic: Mapped[str] = mapped_column(sa.String(255), default="")
    disabled: Mapped[bool] = mapped_column(default=False)
    disabled_reason: Mapped[str | None] = mapped_column(sa.String(255))
    forced_down: Mapped[bool] = mapped_column(default=False)
    report_count: Mapped[int] = mapped_column(default=0)
    last_seen_up: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)


class Aggregate(Base):
    __tablename__ = "compute_aggregate"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(UUID, unique=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, onupdate=utcnow)


class AggregateHost(Base):
    __tablename__ = "compute_aggregate_host"
    aggregate_id: Mapped[int] = mapped_column(sa.ForeignKey("compute_aggregate.id", ondelete="CASCADE"),
                                              primary_key=True)
    host: Mapped[str] = mapped_column(HOST, primary_key=True, index=True)


class AggregateMetadata(Base):
    __tablename__ = "compute_aggregate_metadata"
    aggregate_id: Mapped[int] = mapped_column(sa.ForeignKey("compute_aggregate.id", ondelete="CASCADE"),
                                              primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    value: Mapped[str] = mapped_column(sa.String(255))


class ServerGroup(Base):
    __tablename__ = "compute_server_group"
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(255))
    project_id: Mapped[str] = mapped_column(PROJECT, index=True)
    user_id: Mapped[str] = mapped_column(sa.String(64))
    policy: Mapped[str] = mapped_column(sa.String(32))
    rules: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)


class ServerGroupMember(Base):
    __tablename__ = "compute_server_group_member"
    group_id: Mapped[str] = mapped_column(UUID, sa.ForeignKey("compute_server_group.id", ondelete="CASCADE"),
                                          primary_key=True)
    instance_id: Mapped[str] = mapped_column(UUID, primary_key=True, index=True)


class Quota(Base):
    """A project's limit for one resource, where it differs from the configured default."""

    __tablename__ = "compute_quota"
    project_id: Mapped[str] = mapped_column(PROJECT, primary_key=True)
    resource: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    hard_limit: Mapped[int] = mapped_column()


class ProjectLock(Base):
    """One row per project, locked (SELECT ... FOR UPDATE) while its quota is checked and used, so
    that two concurrent boots of one project cannot both pass the same last free slot."""

    __tablename__ = "compute_project_lock"
    project_id: Mapped[str] = mapped_column(PROJECT, primary_key=True)


class Migration(Base):
    __tablename__ = "compute_migration"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(UUID, unique=True, default=new_id)
    instance_id: Mapped[str] = mapped_column(UUID, index=True)
    project_id: Mapped[str] = mapped_column(PROJECT, default="")
    user_id: Mapped[str] = mapped_column(sa.String(64), default="")
    migration_type: Mapped[str] = mapped_column(sa.String(32))  # resize | migration
    source_compute: Mapped[str | None] = mapped_column(HOST)
    dest_compute: Mapped[str | None] = mapped_column(HOST)
    source_node: Mapped[str | None] = mapped_column(HOST)
    dest_node: Mapped[str | None] = mapped_column(HOST)
    old_flavor_id: Mapped[str | None] = mapped_column(sa.String(255))
    new_flavor_id: Mapped[str | None] = mapped_column(sa.String(255))
    status: Mapped[str] = mapped_column(sa.String(32))
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)


class BlockDeviceMapping(Base):
    """A volume an instance has (or is getting): its device name, the block storage attachment,
    and whether the volume goes with the instance when it is deleted."""

    __tablename__ = "compute_block_device_mapping"
    __table_args__ = (sa.UniqueConstraint("instance_id", "device_name"),)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(UUID, sa.ForeignKey("compute_instance.id", ondelete="CASCADE"),
                                             index=True)
    volume_id: Mapped[str] = mapped_column(UUID, index=True)
    device_name: Mapped[str] = mapped_column(sa.String(255))
    boot_index: Mapped[int | None] = mapped_column()
    source_type: Mapped[str] = mapped_column(sa.String(32), default="volume")  # volume | image
    delete_on_termination: Mapped[bool] = mapped_column(default=False)
    attachment_id: Mapped[str | None] = mapped_column(UUID)
    # attaching -> attached -> detaching (the row goes when the volume is detached)
    status: Mapped[str] = mapped_column(sa.String(32), default="attaching")
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
