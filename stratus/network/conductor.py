"""The network conductor: the database work node agents need, done for them over the bus.

Served on topic `network-conductor` (rpc.CONDUCTOR_TOPIC); every public method is a bus method an
agent calls. Agents never reach the database themselves (a compromised host learns only what its
own agent may ask). Status writes are not fanned out again: no agent acts on a status.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from stratus.core.bus import Bus, RpcServer
from stratus.core.db import Database, utcnow
from stratus.network import desired, models
from stratus.network.errors import InvalidInput
from stratus.network.rpc import (
    CONDUCTOR_TOPIC,
    FLOATINGIP_STATUSES,
    PORT_STATUSES,
    ROLES,
    AgentReport,
    HostState,
)

log = logging.getLogger("stratus.network.conductor")

# Longest strings the agent table holds.
_LIMITS = {"agent_type": 64, "binary": 64, "topic": 64, "host": 255, "availability_zone": 255}


class Conductor:
    def __init__(self, db: Database) -> None:
        self._db = db

    def serve(self, bus: Bus) -> RpcServer:
        """Answer the agents' calls on `bus` until the returned server is stopped."""
        return bus.serve(CONDUCTOR_TOPIC, self)

    # --- agents -------------------------------------------------------------------------------------

    def report_state(self, agent: AgentReport, start_flag: bool = False) -> dict[str, Any]:
        """Record an agent's heartbeat (its row, one per agent_type and host, made on first report);
        `start_flag` says the agent (re)started. Returns the row's id and admin_state_up."""
        fields = _agent_fields(agent)
        now = utcnow()
        for _attempt in range(3):
            try:
                with self._db.transaction() as session:
                    row = session.scalar(sa.select(models.Agent).where(
                        models.Agent.agent_type == fields["agent_type"], models.Agent.host == fields["host"]))
                    if row is None:
                        row = models.Agent(id=models.new_id(), created_at=now, started_at=now, **fields)
                        session.add(row)
                    else:
                        for name, value in fields.items():
                            setattr(row, name, value)
                        if start_flag:
                            row.started_at = now
                    row.heartbeat_timestamp = now
                    session.flush()
                    return {"id": row.id, "admin_state_up": row.admin_state_up}
            except IntegrityError:  # the same agent's first report twice at once: update the winner's row
                continue
        raise InvalidInput(f"could not record agent {fields['agent_type']} on {fields['host']}")

    # --- desired state ------------------------------------------------------------------------------

    def get_host_state(self, host: str, roles: Iterable[str] = ROLES) -> HostState:
        """Everything an agent on `host` playing `roles` must build (rpc.HostState)."""
        unknown = set(roles) - set(ROLES)
        if unknown:
            raise InvalidInput(f"unknown agent role(s) {sorted(unknown)}; known: {list(ROLES)}")
        with self._db.transaction() as session:
            return desired.host_state(session, host, roles)

    def get_documents(self, networks: Iterable[str] = (), ports: Iterable[str] = (), routers: Iterable[str] = (),
                      security_groups: Iterable[str] = ()) -> dict[str, Any]:
        """The current full documents of the things named (the missing ones are left out), for an
        agent that needs something it did not keep: {stamp, networks, ports, routers, security_groups}."""
        wanted = {"networks": set(networks), "ports": set(ports), "routers": set(routers),
                  "security_groups": set(security_groups)}
        with self._db.transaction() as session:
            out: dict[str, Any] = {"stamp": desired.clock(session)}
            out["networks"] = list(desired.networks(session, wanted["networks"]).values()) if wanted["networks"] else []
            out["ports"] = list(desired.ports(session, wanted["ports"]).values()) if wanted["ports"] else []
            out["routers"] = list(desired.routers(session, wanted["routers"]).values()) if wanted["routers"] else []
            out["security_groups"] = (list(desired.security_groups(session, wanted["security_groups"]).values())
                                      if wanted["security_groups"] else [])
        return out

    # --- metadata -----------------------------------------------------------------------------------

    def find_instance_port(self, network_id: str, ip_address: str) -> dict[str, str] | None:
        """The instance behind a guest's address, for a metadata proxy: the compute port holding
        `ip_address` on `network_id` -> {port_id, instance_id, project_id}; None if there is none."""
        if not isinstance(network_id, str) or not isinstance(ip_address, str):
            raise InvalidInput("network_id and ip_address must be strings")
        with self._db.transaction() as session:
            row = session.execute(
                sa.select(models.Port.id, models.Port.device_id, models.Port.project_id)
                .join(models.IPAllocation, models.IPAllocation.port_id == models.Port.id)
                .where(models.IPAllocation.network_id == network_id, models.IPAllocation.ip_address == ip_address,
                       models.Port.device_owner.like("compute:%"), models.Port.device_id != "")).first()
        if row is None:
            return None
        return {"port_id": row.id, "instance_id": row.device_id, "project_id": row.project_id}

    # --- statuses -----------------------------------------------------------------------------------

    def update_port_status(self, port_id: str, status: str, host: str = "") -> bool:
        """Set a port's status as seen by the agent on `host`; whether the port changed."""
        return self.update_port_statuses({port_id: status}, host) == 1

    def update_port_statuses(self, statuses: dict[str, str], host: str = "") -> int:
        """Set ports' statuses ({port_id: status}) as seen by the agent on `host`. A port bound to
        another host is left alone (its own agent speaks for it), so a port that moved does not
        flap. Returns how many ports changed."""
        by_status = _group(statuses, PORT_STATUSES, "port")
        changed = 0
        with self._db.transaction() as session:
            for status, ids in by_status.items():
                which = (models.Port.id.in_(ids), models.Port.status != status,
                         models.Port.binding_host_id.in_(["", host]))
                # Read first: most reports repeat what is known, and a write would lock SQLite.
                if session.scalar(sa.select(sa.func.count()).select_from(models.Port).where(*which)):
                    result = session.execute(
                        sa.update(models.Port).where(*which)
                        .values(status=status, revision_number=models.Port.revision_number + 1)
                        .execution_options(synchronize_session=False))
                    changed += result.rowcount  # type: ignore[attr-defined]
        return changed

    def update_floatingip_statuses(self, router_id: str, statuses: dict[str, str]) -> int:
        """Set floating IPs' statuses as the agent serving `router_id` sees them. ACTIVE only counts
        for a floating IP still associated through that router; DOWN also for one no longer
        associated. Returns how many changed."""
        by_status = _group(statuses, FLOATINGIP_STATUSES, "floating IP")
        changed = 0
        with self._db.transaction() as session:
            for status, ids in by_status.items():
                through = models.FloatingIP.router_id == router_id
                if status != "ACTIVE":
                    through = sa.or_(through, models.FloatingIP.router_id.is_(None))
                which = (models.FloatingIP.id.in_(ids), models.FloatingIP.status != status, through)
                if session.scalar(sa.select(sa.func.count()).select_from(models.FloatingIP).where(*which)):
                    result = session.execute(
                        sa.update(models.FloatingIP).where(*which)
                        .values(status=status, revision_number=models.FloatingIP.revision_number + 1)
                        .execution_options(synchronize_session=False))
                    changed += result.rowcount  # type: ignore[attr-defined]
        return changed


def _group(statuses: dict[str, str], allowed: tuple[str, ...], what: str) -> dict[str, list[str]]:
    if not isinstance(statuses, dict):
        raise InvalidInput(f"{what} statuses must be an object of id to status")
    by_status: dict[str, list[str]] = defaultdict(list)
    for item_id, status in statuses.items():
        if status not in allowed:
            raise InvalidInput(f"invalid {what} status {status!r}; one of {list(allowed)}")
        by_status[status].append(str(item_id))
    return {status: sorted(ids) for status, ids in by_status.items()}


def _agent_fields(agent: AgentReport) -> dict[str, Any]:
    if not isinstance(agent, dict):
        raise InvalidInput("agent must be an object")
    fields: dict[str, Any] = {}
    for name in ("host", "agent_type", "binary", "topic"):
        value = agent.get(name)
        if not isinstance(value, str) or not value:
            raise InvalidInput(f"agent {name} must be a non-empty string")
        fields[name] = value
    zone = agent.get("availability_zone")
    if zone is not None and not isinstance(zone, str):
        raise InvalidInput("agent availability_zone must be a string or null")
    fields["availability_zone"] = zone
    configurations = agent.get("configurations") or {}
    if not isinstance(configurations, dict):
        raise InvalidInput("agent configurations must be an object")
    fields["configurations"] = configurations
    for name, limit in _LIMITS.items():
        if isinstance(fields.get(name), str) and len(fields[name]) > limit:
            raise InvalidInput(f"agent {name} is longer than {limit} characters")
    return fields
