"""What the scheduler is asked (`RequestSpec`, JSON on the bus) and how it says no (`NoValidHost`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from stratus.core.errors import StratusError

HARD_POLICIES = frozenset({"affinity", "anti-affinity"})
SOFT_POLICIES = frozenset({"soft-affinity", "soft-anti-affinity"})
NO_VALID_HOST = "No valid host was found. There are not enough hosts available."


class NoValidHost(StratusError):
    """No host passes the filters, or every claim on the passing ones was lost; the message says why."""

    status, fault, title = 500, "computeFault", NO_VALID_HOST


@dataclass
class SchedulingContext:
    """What the scheduler looks up for one decision; filled in before the filters run, never sent.

    `group_hosts`: host -> how many other members of the request's server group it holds.
    `same_hosts` / `different_hosts`: the hosts of the instances named by those hints (None: no hint).
    """

    now: float = 0.0
    group_hosts: dict[str, int] = field(default_factory=dict)
    same_hosts: frozenset[str] | None = None
    different_hosts: frozenset[str] | None = None


@dataclass
class RequestSpec:
    instance_id: str
    project_id: str
    vcpus: int
    memory_mb: int
    disk_gb: int  # root + ephemeral + ceil(swap MiB / 1024)
    availability_zone: str | None = None
    flavor_extra_specs: dict[str, str] = field(default_factory=dict)
    image_properties: dict[str, Any] = field(default_factory=dict)
    # {"id", "policy": affinity | anti-affinity | soft-affinity | soft-anti-affinity, "rules": {...}}
    group: dict[str, Any] | None = None
    # same_host / different_host: instance ids (a string or a list); query: a JsonFilter query (JSON text).
    hints: dict[str, Any] = field(default_factory=dict)
    ignore_hosts: list[str] = field(default_factory=list)  # hosts already tried for this build
    force_host: str | None = None  # "zone:host", "zone:host:node" or "host"
    context: SchedulingContext = field(default_factory=SchedulingContext, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _copy(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "context"}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RequestSpec:
        """The spec a `to_dict` made (unknown keys are ignored: a newer sender may add some)."""
        known = {f.name for f in dataclasses.fields(cls)} - {"context"}
        values = {k: _copy(v) for k, v in d.items() if k in known}
        for name in ("flavor_extra_specs", "image_properties", "hints"):
            if values.get(name) is None:
                values.pop(name, None)
        if values.get("ignore_hosts") is None:
            values.pop("ignore_hosts", None)
        return cls(**values)

    @property
    def policy(self) -> str | None:
        return str(self.group.get("policy") or "") or None if self.group else None

    @property
    def forced_host(self) -> str | None:
        """The host part of `force_host` ("zone:host[:node]" or a bare host name)."""
        if not self.force_host:
            return None
        parts = self.force_host.split(":")
        return (parts[1] if len(parts) > 1 else parts[0]) or None


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value
