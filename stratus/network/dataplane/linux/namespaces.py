"""Network namespaces and the addresses and routes inside them."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from pathlib import Path

from stratus.network.dataplane.linux.commands import ip, ip_json, ip_quiet, run

NETNS_DIR = Path("/run/netns")


def exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def all_names() -> list[str]:
    return sorted(p.name for p in NETNS_DIR.iterdir()) if NETNS_DIR.is_dir() else []


def ensure(name: str, forwarding: bool = False) -> None:
    if not exists(name):
        ip_quiet("netns", "add", name, ignore=("File exists",))
    ip("link", "set", "dev", "lo", "up", netns=name)
    # A namespace starts with the kernel defaults: a router forwards, nothing else does.
    value = "1" if forwarding else "0"
    run(["ip", "netns", "exec", name, "sysctl", "-q", "-w", f"net.ipv4.ip_forward={value}"])


def delete(name: str) -> None:
    ip_quiet("netns", "del", name, ignore=("No such file", "Invalid argument"))


def set_addresses(device: str, wanted: Iterable[str], netns: str) -> None:
    """Make `wanted` ("address/prefix") the global addresses of `device`, adding and removing only
    the difference (an address removed and re-added would break connections through it)."""
    want = {str(ipaddress.ip_interface(a)) for a in wanted}
    have: set[str] = set()
    for link in ip_json("addr", "show", "dev", device, netns=netns):
        for info in link.get("addr_info", []):
            if info.get("scope") == "global":
                have.add(f"{info['local']}/{info['prefixlen']}")
    for address in sorted(have - want):
        ip_quiet("addr", "del", address, "dev", device, netns=netns, ignore=("Cannot assign",))
    for address in sorted(want - have):
        ip("addr", "add", address, "dev", device, netns=netns)


def set_static_routes(wanted: dict[str, tuple[str, str | None]], netns: str) -> None:
    """Make `wanted` ({destination: (nexthop, device or None)}) the `proto static` IPv4 routes of
    `netns`; other static routes there are removed."""
    have = {r["dst"] for r in ip_json("-4", "route", "show", "proto", "static", netns=netns)}
    for destination in have:
        key = "0.0.0.0/0" if destination == "default" else destination
        if key not in wanted and destination not in wanted:
            ip_quiet("route", "del", destination, "proto", "static", netns=netns, ignore=("No such process",))
    for destination, (nexthop, device) in wanted.items():
        args = ["route", "replace", destination, "via", nexthop, "proto", "static"]
        if device:
            args += ["dev", device]
        ip_quiet(*args, netns=netns, ignore=("Nexthop has invalid gateway", "Network is unreachable"))
