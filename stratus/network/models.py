"""Networking service tables. Ids are dashed UUID4, as Neutron's.

Every resource carries Neutron's standard attributes (project, description, tags, timestamps,
revision number). Router interfaces, router gateways, floating IP addresses and DHCP addresses are
ports like any other, told apart by `device_owner`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from stratus.core.db import JSONText, Timestamp, utcnow

PROJECT = sa.String(64)
UUID = sa.String(36)


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    pass


class StandardAttrs:
    """Columns every Neutron resource has."""

    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(PROJECT, index=True, default="")
    name: Mapped[str] = mapped_column(sa.String(255), default="")
    description: Mapped[str] = mapped_column(sa.String(255), default="")
    tags: Mapped[list[str]] = mapped_column(JSONText, default=list)
    revision_number: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)


class Network(StandardAttrs, Base):
    __tablename__ = "network_network"
    admin_state_up: Mapped[bool] = mapped_column(default=True)
    status: Mapped[str] = mapped_column(sa.String(16), default="ACTIVE")
    shared: Mapped[bool] = mapped_column(default=False, index=True)
    external: Mapped[bool] = mapped_column(default=False, index=True)
    mtu: Mapped[int] = mapped_column(default=1500)
    port_security_enabled: Mapped[bool] = mapped_column(default=True)
    network_type: Mapped[str] = mapped_column(sa.String(16), default="local")
    physical_network: Mapped[str | None] = mapped_column(sa.String(64))
    segmentation_id: Mapped[int | None] = mapped_column()
    subnets: Mapped[list[Subnet]] = relationship(back_populates="network", order_by="Subnet.created_at",
                                                 lazy="raise")


class Segment(Base):
    """A VLAN/VXLAN id (or a flat physical network) in use: the key makes a double use impossible."""

    __tablename__ = "network_segment"
    network_type: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    # "" for VXLAN (it has no physical network) so the key never contains NULL.
    physical_network: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    # 0 for flat networks.
    segmentation_id: Mapped[int] = mapped_column(primary_key=True)
    network_id: Mapped[str] = mapped_column(UUID, sa.ForeignKey("network_network.id", ondelete="CASCADE"),
                                            index=True)


class Subnet(StandardAttrs, Base):
    __tablename__ = "network_subnet"
    network_id: Mapped[str] = mapped_column(UUID, sa.ForeignKey("network_network.id"), index=True)
    ip_version: Mapped[int] = mapped_column(default=4)
    cidr: Mapped[str] = mapped_column(sa.String(64))
    gateway_ip: Mapped[str | None] = mapped_column(sa.String(64))
    enable_dhcp: Mapped[bool] = mapped_column(default=True)
    ipv6_ra_mode: Mapped[str | None] = mapped_column(sa.String(16))
    ipv6_address_mode: Mapped[str | None] = mapped_column(sa.String(16))
    # [{"start": ip, "end": ip}, ...] as the API shows them.
    allocation_pools: Mapped[list[dict[str, str]]] = mapped_column(JSONText, default=list)
    dns_nameservers: Mapped[list[str]] = mapped_column(JSONText, default=list)
    # [{"destination": cidr, "nexthop": ip}, ...]
    host_routes: Mapped[list[dict[str, str]]] = mapped_column(JSONText, default=list)
    network: Mapped[Network] = relationship(back_populates="subnets", lazy="raise")


class Port(StandardAttrs, Base):
    __tablename__ = "network_port"
    network_id: Mapped[str] = mapped_column(UUID, sa.ForeignKey("network_network.id"), index=True)
    mac_address: Mapped[str] = mapped_column(sa.String(32), unique=True)
    admin_state_up: Mapped[bool] = mapped_column(default=True)
    status: Mapped[str] = mapped_column(sa.String(16), default="DOWN")
    device_id: Mapped[str] = mapped_column(sa.String(255), default="", index=True)
    device_owner: Mapped[str] = mapped_column(sa.String(255), default="", index=True)
    port_security_enabled: Mapped[bool] = mapped_column(default=True)
    # [{"ip_address": ip-or-cidr, "mac_address": mac}, ...]
    allowed_address_pairs: Mapped[list[dict[str, str]]] = mapped_column(JSONText, default=list)
    binding_host_id: Mapped[str] = mapped_column(sa.String(255), default="", index=True)
    binding_vif_type: Mapped[str] = mapped_column(sa.String(64), default="unbound")
    binding_vnic_type: Mapped[str] = mapped_column(sa.String(64), default="normal")
    binding_profile: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    binding_vif_details: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    fixed_ips: Mapped[list[IPAllocation]] = relationship(
        back_populates="port", cascade="all, delete-orphan", order_by="IPAllocation.ip_address", lazy="raise")
    security_groups: Mapped[list[PortSecurityGroup]] = relationship(
        cascade="all, delete-orphan", lazy="raise")


class IPAllocation(Base):
    """An address of a subnet held by a port; the key makes a double allocation impossible."""

    __tablename__ = "network_ip_allocation"
    subnet_id: Mapped[str] = mapped_column(UUID, sa.ForeignKey("network_subnet.id"), primary_key=True)
    ip_address: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    port_id: Mapped[str] = mapped_column(UUID, sa.ForeignKey("network_port.id", ondelete="CASCADE"), index=True)
    network_id: Mapped[str] = mapped_column(UUID, index=True)
    port: Mapped[Port] = relationship(back_populates="fixed_ips", lazy="raise")


class SecurityGroup(StandardAttrs, Base):
    __tablename__ = "network_security_group"
    stateful: Mapped[bool] = mapped_column(default=True)
    rules: Mapped[list[SecurityGroupRule]] = relationship(
        back_populates="security_group", cascade="all, delete-orphan",
        foreign_keys="SecurityGroupRule.security_group_id", order_by="SecurityGroupRule.created_at", lazy="raise")


class DefaultSecurityGroup(Base):
    """Which group is a project's `default`; the key makes two defaults for one project impossible."""

    __tablename__ = "network_default_security_group"
    project_id: Mapped[str] = mapped_column(PROJECT, primary_key=True)
    security_group_id: Mapped[str] = mapped_column(
        UUID, sa.ForeignKey("network_security_group.id", ondelete="CASCADE"), unique=True)


class SecurityGroupRule(Base):
    __tablename__ = "network_security_group_rule"
    __table_args__ = (sa.UniqueConstraint("security_group_id", "fingerprint"),)
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(PROJECT, index=True, default="")
    security_group_id: Mapped[str] = mapped_column(
        UUID, sa.ForeignKey("network_security_group.id", ondelete="CASCADE"), index=True)
    direction: Mapped[str] = mapped_column(sa.String(8))
    ethertype: Mapped[str] = mapped_column(sa.String(8), default="IPv4")
    protocol: Mapped[str | None] = mapped_column(sa.String(40))
    port_range_min: Mapped[int | None] = mapped_column()
    port_range_max: Mapped[int | None] = mapped_column()
    remote_ip_prefix: Mapped[str | None] = mapped_column(sa.String(64))
    remote_group_id: Mapped[str | None] = mapped_column(
        UUID, sa.ForeignKey("network_security_group.id", ondelete="CASCADE"), index=True)
    description: Mapped[str] = mapped_column(sa.String(255), default="")
    # What makes two rules the same rule (normalized fields), so duplicates fail on the key.
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
    revision_number: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)
    security_group: Mapped[SecurityGroup] = relationship(
        back_populates="rules", foreign_keys=[security_group_id], lazy="raise")


class PortSecurityGroup(Base):
    __tablename__ = "network_port_security_group"
    port_id: Mapped[str] = mapped_column(UUID, sa.ForeignKey("network_port.id", ondelete="CASCADE"), primary_key=True)
    security_group_id: Mapped[str] = mapped_column(
        UUID, sa.ForeignKey("network_security_group.id"), primary_key=True, index=True)


class Router(StandardAttrs, Base):
    __tablename__ = "network_router"
    admin_state_up: Mapped[bool] = mapped_column(default=True)
    status: Mapped[str] = mapped_column(sa.String(16), default="ACTIVE")
    # The external gateway: a port on an external network (device_owner network:router_gateway).
    gw_port_id: Mapped[str | None] = mapped_column(UUID, sa.ForeignKey("network_port.id", ondelete="SET NULL"))
    enable_snat: Mapped[bool] = mapped_column(default=True)
    # [{"destination": cidr, "nexthop": ip}, ...]
    routes: Mapped[list[dict[str, str]]] = mapped_column(JSONText, default=list)
    gw_port: Mapped[Port | None] = relationship(foreign_keys=[gw_port_id], lazy="raise")


class FloatingIP(Base):
    __tablename__ = "network_floating_ip"
    __table_args__ = (sa.UniqueConstraint("fixed_port_id", "fixed_ip_address"),)
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(PROJECT, index=True, default="")
    description: Mapped[str] = mapped_column(sa.String(255), default="")
    tags: Mapped[list[str]] = mapped_column(JSONText, default=list)
    floating_network_id: Mapped[str] = mapped_column(UUID, sa.ForeignKey("network_network.id"), index=True)
    floating_ip_address: Mapped[str] = mapped_column(sa.String(64))
    # The port on the external network that holds the address (device_owner network:floatingip).
    floating_port_id: Mapped[str] = mapped_column(UUID, sa.ForeignKey("network_port.id"), unique=True)
    fixed_port_id: Mapped[str | None] = mapped_column(UUID, sa.ForeignKey("network_port.id"), index=True)
    fixed_ip_address: Mapped[str | None] = mapped_column(sa.String(64))
    router_id: Mapped[str | None] = mapped_column(UUID, sa.ForeignKey("network_router.id"), index=True)
    status: Mapped[str] = mapped_column(sa.String(16), default="DOWN")
    revision_number: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)
    # The associated port, for the `port_details` a floating IP shows.
    fixed_port: Mapped[Port | None] = relationship(foreign_keys=[fixed_port_id], lazy="raise")


class Quota(Base):
    """A project's limit for one resource, where it differs from the configured default."""

    __tablename__ = "network_quota"
    project_id: Mapped[str] = mapped_column(PROJECT, primary_key=True)
    resource: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    limit: Mapped[int] = mapped_column("hard_limit")


class Agent(Base):
    __tablename__ = "network_agent"
    __table_args__ = (sa.UniqueConstraint("agent_type", "host"),)
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_id)
    agent_type: Mapped[str] = mapped_column(sa.String(64))
    binary: Mapped[str] = mapped_column(sa.String(64))
    topic: Mapped[str] = mapped_column(sa.String(64))
    host: Mapped[str] = mapped_column(sa.String(255), index=True)
    admin_state_up: Mapped[bool] = mapped_column(default=True)
    availability_zone: Mapped[str | None] = mapped_column(sa.String(255))
    description: Mapped[str] = mapped_column(sa.String(255), default="")
    configurations: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    started_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    heartbeat_timestamp: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
