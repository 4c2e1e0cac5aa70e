"""What a network agent asks of the machinery that makes packets flow on its host.

The agent hands a data plane desired-state documents (stratus/network/rpc.py describes every field)
already narrowed to what this host must build, and one call at a time (never two at once):

- `sync(state)`: make the host exactly `state` (an rpc.HostState: networks, ports, routers and
  security groups), removing whatever else a previous run left behind. Called at start-up and
  after the agent lost messages.
- `apply_*(doc)`: create the thing or bring it to `doc`; the same document twice is a no-op.
- `remove_*(id)`: take the thing away; an unknown id is not an error.

What the data plane receives differs from the bus messages in two ways: a network's `dhcp` is None
when this host must not serve DHCP on it (the agent has no dhcp role, or the network has no DHCP
port or no DHCP-enabled subnet), and a security group always carries its full `members` and
`member_ports`. Ports arrive only for this host (`host` is the agent's host); the port's groups
and the groups their rules name as remote groups are applied before the port.

`sync` and `apply_*` return what they managed to wire, which the agent reports as statuses: a port
listed is ACTIVE (when its admin_state_up is true), one not listed is DOWN; the same for floating
IPs of a router. The ports a network (its DHCP port) or a router (interface and gateway ports) owns
count too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from stratus.network.rpc import HostState, NetworkDoc, PortDoc, RouterDoc, SecurityGroupDoc


@dataclass
class Wired:
    """Ports and floating IPs a data plane call left working."""

    ports: set[str] = field(default_factory=set)
    floating_ips: set[str] = field(default_factory=set)

    def __or__(self, other: Wired) -> Wired:
        return Wired(self.ports | other.ports, self.floating_ips | other.floating_ips)


@runtime_checkable
class DataPlane(Protocol):
    # Shown in the agent's configurations ("noop", "linux").
    name: str

    def sync(self, state: HostState) -> Wired: ...

    def apply_network(self, doc: NetworkDoc) -> Wired: ...

    def remove_network(self, network_id: str) -> None: ...

    def apply_port(self, doc: PortDoc) -> Wired: ...

    def remove_port(self, port_id: str) -> None: ...

    def apply_router(self, doc: RouterDoc) -> Wired: ...

    def remove_router(self, router_id: str) -> None: ...

    def apply_security_group(self, doc: SecurityGroupDoc) -> Wired: ...

    def remove_security_group(self, security_group_id: str) -> None: ...
