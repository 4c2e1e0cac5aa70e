"""The Linux network data plane: bridges, taps, dnsmasq, router namespaces and nftables.

One module per concern: `names` (every object's name and prefix), `commands` (running ip/nft),
`links` (bridges, VLAN/VXLAN devices, taps, veths), `namespaces`, `dhcp` (dnsmasq),
`routers` (namespaces, routes, NAT), `firewall` (security groups, anti-spoofing),
`metadata_proxy`, and `plane` (the DataPlane protocol over them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stratus.network.dataplane.linux.plane import LinuxDataPlane, MissingCapability
from stratus.network.dataplane.linux.settings import LinuxSettings

if TYPE_CHECKING:
    from stratus.core.bus import Bus
    from stratus.core.config import Config

__all__ = ["LinuxDataPlane", "LinuxSettings", "MissingCapability", "from_config"]


def from_config(cfg: Config, bus: Bus) -> LinuxDataPlane:
    """The data plane `stratus up` runs: metadata lookups go to the network conductor."""
    from stratus.core.metadata_secret import proxy_signature
    from stratus.network.rpc import CONDUCTOR_TOPIC

    settings = LinuxSettings.from_config(cfg)

    def lookup(network_id: str, address: str) -> dict[str, str] | None:
        found = bus.call(CONDUCTOR_TOPIC, "find_instance_port", timeout=10.0,
                         network_id=network_id, ip_address=address)
        return found if isinstance(found, dict) else None

    secret = settings.metadata_secret
    return LinuxDataPlane(settings, lookup, lambda instance_id: proxy_signature(secret, instance_id))
