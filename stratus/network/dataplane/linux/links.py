"""Bridges, VLAN/VXLAN devices, taps and veth pairs (iproute2)."""

from __future__ import annotations

from typing import Any

from stratus.network.dataplane.linux import names
from stratus.network.dataplane.linux.commands import CommandFailed, ip, ip_json, ip_quiet, run
from stratus.network.dataplane.linux.settings import LinuxSettings
from stratus.network.rpc import Segment


class UnsupportedSegment(RuntimeError):
    """This host's kernel cannot build the network's segment; the message says what is missing."""


MISSING = ("does not exist", "Cannot find device", "No such device")
EXISTS = ("File exists",)


def show(name: str, netns: str | None = None) -> dict[str, Any] | None:
    """The link called `name` (`ip -j -d link show`), or None."""
    try:
        found = ip_json("-d", "link", "show", "dev", name, netns=netns)
    except CommandFailed as exc:
        if any(text in exc.stderr for text in MISSING):
            return None
        raise
    return found[0] if found else None


def all_links(netns: str | None = None) -> list[dict[str, Any]]:
    return ip_json("-d", "link", "show", netns=netns)


def delete(name: str, netns: str | None = None) -> None:
    ip_quiet("link", "del", "dev", name, netns=netns, ignore=MISSING)


def up(name: str, mtu: int | None = None, master: str | None = None, netns: str | None = None) -> None:
    args = ["link", "set", "dev", name]
    if mtu is not None:
        args += ["mtu", str(mtu)]
    if master is not None:
        args += ["master", master]
    ip(*args, "up", netns=netns)


def ensure_bridge(name: str, mtu: int | None) -> None:
    if show(name) is None:
        # No STP: a bridge here joins taps and veths, never loops; forward delay would hold
        # every new port for 15 s.
        ip_quiet("link", "add", "name", name, "type", "bridge", "stp_state", "0", "forward_delay", "0",
                 ignore=EXISTS)
    up(name, mtu)


def network_bridge(settings: LinuxSettings, network_id: str, segment: Segment) -> str:
    """The bridge a network's ports join (made by `ensure_network` below)."""
    if segment["network_type"] == "flat" and segment["physical_network"] in settings.bridge_mappings:
        return settings.bridge_mappings[str(segment["physical_network"])]
    return names.bridge(network_id)


def ensure_network(settings: LinuxSettings, network_id: str, segment: Segment, mtu: int) -> str:
    """The network's bridge with its uplink (host interface, VLAN or VXLAN device); its name."""
    bridge = network_bridge(settings, network_id, segment)
    if not bridge.startswith(names.BRIDGE):  # a mapped host bridge: used as it is
        ensure_bridge(bridge, None)
        return bridge
    ensure_bridge(bridge, mtu)
    kind, physnet, seg_id = segment["network_type"], segment["physical_network"], segment["segmentation_id"]
    interface = settings.physical_interface_mappings.get(physnet or "")
    if kind == "flat" and interface:
        up(interface, mtu, master=bridge)
    elif kind == "vlan" and interface and seg_id is not None:
        device = names.vlan(network_id)
        if show(device) is None:
            try:
                ip("link", "add", "link", interface, "name", device, "type", "vlan", "id", str(seg_id))
            except CommandFailed as exc:
                if "Unknown device type" in exc.stderr:
                    raise UnsupportedSegment("VLAN networks need 802.1q in the kernel (CONFIG_VLAN_8021Q), "
                                             "which this host lacks") from None
                raise
        up(device, mtu, master=bridge)
    elif kind == "vxlan" and settings.vxlan_local_ip and seg_id is not None:
        device = names.vxlan(network_id)
        if show(device) is None:
            ip("link", "add", device, "type", "vxlan", "id", str(seg_id), "local", settings.vxlan_local_ip,
               "dstport", "4789", "nolearning" if settings.vxlan_peers else "learning")
            for peer in settings.vxlan_peers:  # flood to every known peer; learn unicast from replies
                run(["bridge", "fdb", "append", "00:00:00:00:00:00", "dev", device, "dst", peer])
        up(device, mtu, master=bridge)
    # Otherwise (local networks, or no mapping on this host) the bridge stays isolated.
    return bridge


def remove_network(network_id: str) -> None:
    for name in (names.vxlan(network_id), names.vlan(network_id), names.bridge(network_id)):
        delete(name)


def ensure_tap(port_id: str) -> str | None:
    """The port's tap: an existing link of that name whatever its kind (the qemu driver's tap, or
    a test's veth), else a new persistent tap. None if it cannot be had."""
    name = names.tap(port_id)
    if show(name) is not None:
        return name
    try:
        ip_quiet("tuntap", "add", "dev", name, "mode", "tap", ignore=EXISTS)
    except CommandFailed:
        return None
    return name if show(name) is not None else None


def ensure_veth(outside: str, inside: str, netns: str, mac: str | None, mtu: int, bridge: str) -> None:
    """A veth pair: `inside` in `netns` (with `mac`), `outside` on `bridge`; both up."""
    if show(inside, netns) is None:
        delete(outside)  # a half-made pair from an earlier try
        ip("link", "add", outside, "mtu", str(mtu), "type", "veth", "peer", "name", inside, "netns", netns)
    if mac:
        current = show(inside, netns) or {}
        if current.get("address") != mac.lower():
            ip("link", "set", "dev", inside, "address", mac, netns=netns)
    up(inside, mtu, netns=netns)
    up(outside, mtu, master=bridge)


def bridge_ports(bridge: str) -> set[str]:
    return {link["ifname"] for link in all_links() if link.get("master") == bridge}
