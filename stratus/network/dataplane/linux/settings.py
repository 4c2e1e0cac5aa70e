"""What the Linux data plane needs to know about its host, taken from the configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stratus.core.config import Config


@dataclass
class LinuxSettings:
    # Where dnsmasq's files live (one directory per network).
    state_dir: Path
    # physical network -> host interface enslaved to (flat) or carrying the 802.1q sub-interfaces
    # of (vlan) the network's bridge.
    physical_interface_mappings: dict[str, str] = field(default_factory=dict)
    # physical network -> an existing host bridge used as is by flat networks on it (the external
    # network's `br-ex`).
    bridge_mappings: dict[str, str] = field(default_factory=dict)
    # The address VXLAN tunnels leave from; empty: VXLAN networks stay on this host.
    vxlan_local_ip: str = ""
    # Other hosts' VXLAN addresses: broadcast and unknown frames are sent to each of them.
    vxlan_peers: list[str] = field(default_factory=list)
    dhcp_lease_seconds: int = 86400
    # The metadata service the proxies forward to, and the secret that signs their headers.
    metadata_host: str = "127.0.0.1"
    metadata_port: int = 8775
    metadata_secret: str = ""

    @classmethod
    def from_config(cls, cfg: Config) -> LinuxSettings:
        from stratus.core.metadata_secret import shared_secret

        net = cfg.network
        return cls(state_dir=Path(cfg.server.state_dir) / "network-linux",
                   physical_interface_mappings=_mapping(net.physical_interface_mappings),
                   bridge_mappings=_mapping(net.bridge_mappings),
                   vxlan_local_ip=net.vxlan_local_ip, vxlan_peers=list(net.vxlan_peers),
                   dhcp_lease_seconds=net.dhcp_lease_duration,
                   metadata_port=cfg.compute.metadata_port, metadata_secret=shared_secret(cfg))


def _mapping(items: list[str]) -> dict[str, str]:
    """["physnet:device", ...] as a dict (the configuration validates the shape)."""
    return dict(item.split(":", 1) for item in items)
