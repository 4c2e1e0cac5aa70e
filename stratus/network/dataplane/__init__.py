"""Data planes: what turns the agent's desired-state documents into packets flowing on a host.

`noop` records what it receives (tests, and `stratus up` by default); `linux` (bridges, dnsmasq,
namespaces, nftables: the `linux` package) implements the same `DataPlane` protocol (base.py) and
needs the whole configuration (metadata secret and port) and the bus (metadata lookups).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stratus.network.dataplane.base import DataPlane, Wired
from stratus.network.dataplane.noop import NoopDataPlane

if TYPE_CHECKING:
    from stratus.core.bus import Bus
    from stratus.core.config import Config

__all__ = ["DataPlane", "NoopDataPlane", "Wired", "load"]

KINDS = ("noop", "linux")


def load(name: str, cfg: Config | None = None, bus: Bus | None = None) -> DataPlane:
    """The data plane called `name` in the configuration (network.agent_dataplane)."""
    if name == "noop":
        return NoopDataPlane(record=False)
    if name == "linux":
        if cfg is None or bus is None:
            raise ValueError("the linux data plane needs the configuration and the bus")
        from stratus.network.dataplane import linux

        return linux.from_config(cfg, bus)
    raise ValueError(f"unknown network data plane {name!r}; known: {', '.join(KINDS)}")
