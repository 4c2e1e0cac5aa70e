"""Data planes: what turns the agent's desired-state documents into packets flowing on a host.

`noop` records what it receives (tests, and `stratus up` until the Linux one lands); `linux`
(bridges, dnsmasq, namespaces, nftables) comes with the real-VM work and implements the same
`DataPlane` protocol (base.py).
"""

from __future__ import annotations

from stratus.network.dataplane.base import DataPlane, Wired
from stratus.network.dataplane.noop import NoopDataPlane

__all__ = ["DataPlane", "NoopDataPlane", "Wired", "load"]

KINDS = ("noop",)


def load(name: str) -> DataPlane:
    """The data plane called `name` in the configuration (network.agent_dataplane)."""
    if name == "noop":
        return NoopDataPlane(record=False)
    raise ValueError(f"unknown network data plane {name!r}; known: {', '.join(KINDS)}")
