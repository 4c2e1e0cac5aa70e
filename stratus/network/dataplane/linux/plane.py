"""The Linux data plane: the `DataPlane` protocol (../base.py) over the modules of this package.

It keeps the documents it was given (to know which bridge a port joins, which ports a group's
change touches) and builds in this order: bridges, filters, then the tap joins the bridge, so a
port never forwards a frame unfiltered. `sync` first removes every object with one of our
prefixes that the state does not want, then applies the state.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from stratus.network.dataplane.base import Wired
from stratus.network.dataplane.linux import links, names, namespaces, routers
from stratus.network.dataplane.linux.dhcp import DhcpServers
from stratus.network.dataplane.linux.firewall import Firewall
from stratus.network.dataplane.linux.metadata_proxy import Lookup, MetadataProxies
from stratus.network.dataplane.linux.settings import LinuxSettings
from stratus.network.rpc import HostState, NetworkDoc, PortDoc, RouterDoc, SecurityGroupDoc, Segment

log = logging.getLogger("stratus.network.dataplane.linux")

TOOLS = ("ip", "nft", "dnsmasq", "bridge")
BR_NETFILTER = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")


class MissingCapability(RuntimeError):
    """The host cannot run the Linux data plane; the message says what is missing."""


def check_host() -> None:
    if os.geteuid() != 0:
        raise MissingCapability("the linux network data plane needs root (CAP_NET_ADMIN)")
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise MissingCapability(f"the linux network data plane needs {', '.join(missing)} "
                                "(Debian: iproute2 nftables dnsmasq-base)")
    if not BR_NETFILTER.exists():
        raise MissingCapability("security groups need br_netfilter (net.bridge.bridge-nf-call-iptables)")


class LinuxDataPlane:
    name = "linux"

    def __init__(self, settings: LinuxSettings, lookup: Lookup, sign: Callable[[str], str]) -> None:
        check_host()
        self.settings = settings
        self.dhcp = DhcpServers(settings)
        self.firewall = Firewall()
        self.proxies = MetadataProxies(lookup, (settings.metadata_host, settings.metadata_port), sign)
        self.networks: dict[str, NetworkDoc] = {}
        self.ports: dict[str, PortDoc] = {}
        self.routers: dict[str, RouterDoc] = {}
        self.groups: dict[str, SecurityGroupDoc] = {}

    # --- whole state ----------------------------------------------------------------------------

    def sync(self, state: HostState) -> Wired:
        BR_NETFILTER.write_text("1\n")  # bridged traffic must reach the inet hooks to be filtered
        self._sweep(state)
        self.networks, self.ports, self.routers = {}, {}, {}
        self.groups = {g["id"]: g for g in state["security_groups"]}
        zones = {}
        for segment_owner, segment in self._segments(state):
            bridge = links.network_bridge(self.settings, segment_owner, segment)
            if bridge.startswith(names.BRIDGE):
                zones[bridge] = names.conntrack_zone(segment_owner)
        ports = [(p, names.conntrack_zone(p["network_id"])) for p in state["ports"]
                 if not p["device_owner"].startswith("network:")]
        self.firewall.reset(zones, state["security_groups"], ports)
        wired = Wired()
        for network in state["networks"]:
            wired |= self.apply_network(network)
        for port in state["ports"]:
            wired |= self.apply_port(port)
        for router in state["routers"]:
            wired |= self.apply_router(router)
        return wired

    def _segments(self, state: HostState) -> list[tuple[str, Segment]]:
        out = [(n["id"], n["segment"]) for n in state["networks"]]
        out += [(p["network_id"], p["segment"]) for p in state["ports"]]
        for router in state["routers"]:
            out += [(i["network_id"], i["segment"]) for i in router["interfaces"]]
            if router["gateway"] is not None:
                out.append((router["gateway"]["network_id"], router["gateway"]["segment"]))
        return out

    def _sweep(self, state: HostState) -> None:
        """Remove every object of ours that `state` does not want."""
        want_routers = {r["id"] for r in state["routers"]}
        want_dhcp = {n["id"] for n in state["networks"] if n["dhcp"] is not None}
        for router_id in self.proxies.routers() - want_routers:
            self.proxies.stop(router_id)
        for netns in namespaces.all_names():
            if netns.startswith(names.ROUTER_NS) and netns[len(names.ROUTER_NS):] not in want_routers:
                namespaces.delete(netns)
            elif netns.startswith(names.DHCP_NS) and netns[len(names.DHCP_NS):] not in want_dhcp:
                self.dhcp.remove(netns[len(names.DHCP_NS):])
        for network_id in self.dhcp.served():
            if network_id not in want_dhcp:
                self.dhcp.remove(network_id)
        want_links = {links.network_bridge(self.settings, owner, seg) for owner, seg in self._segments(state)}
        want_links |= {names.vxlan(owner) for owner, _seg in self._segments(state)}
        want_links |= {names.vlan(owner) for owner, _seg in self._segments(state)}
        want_links |= {names.tap(p["id"]) for p in state["ports"]}
        for network in state["networks"]:
            if network["dhcp"] is not None:
                want_links.add(names.DHCP_OUTSIDE + names.short(network["dhcp"]["port_id"]))
        for router in state["routers"]:
            want_links |= {names.ROUTER_OUTSIDE + names.short(i["port_id"]) for i in router["interfaces"]}
            if router["gateway"] is not None:
                want_links.add(names.GATEWAY_OUTSIDE + names.short(router["gateway"]["port_id"]))
        present = links.all_links()
        for link in present:  # taps first, while they still show which bridge (of ours) they were on
            name = link["ifname"]
            if name.startswith(names.TAP) and name not in want_links and \
                    str(link.get("master", "")).startswith(names.BRIDGE):
                links.delete(name)
        for link in present:
            name = link["ifname"]
            if name.startswith(names.OWN_LINK_PREFIXES) and name not in want_links:
                links.delete(name)

    # --- networks -------------------------------------------------------------------------------

    def apply_network(self, doc: NetworkDoc) -> Wired:
        self.networks[doc["id"]] = doc
        try:
            bridge = self._network(doc["id"], doc["segment"], doc["mtu"])
        except links.UnsupportedSegment as exc:  # nothing on it can work; other networks can
            log.error("network %s: %s", doc["id"], exc)
            return Wired()
        if doc["dhcp"] is None:
            self.dhcp.remove(doc["id"])
            return Wired()
        try:
            self.dhcp.apply(doc, bridge)
        except Exception:
            log.exception("DHCP for network %s", doc["id"])
            return Wired()
        return Wired(ports={doc["dhcp"]["port_id"]})

    def remove_network(self, network_id: str) -> None:
        doc = self.networks.pop(network_id, None)
        self.dhcp.remove(network_id)
        bridge = names.bridge(network_id)
        self.firewall.drop_zone(bridge)
        if doc is None or links.network_bridge(self.settings, network_id, doc["segment"]) == bridge:
            links.remove_network(network_id)

    def _network(self, network_id: str, segment: Segment, mtu: int) -> str:
        bridge = links.ensure_network(self.settings, network_id, segment, mtu)
        if bridge.startswith(names.BRIDGE):
            self.firewall.set_zone(bridge, names.conntrack_zone(network_id))
        return bridge

    # --- ports ----------------------------------------------------------------------------------

    def apply_port(self, doc: PortDoc) -> Wired:
        if doc["device_owner"].startswith("network:"):
            return Wired()  # DHCP and router ports are wired with their network or router
        self.ports[doc["id"]] = doc
        try:
            bridge = self._network(doc["network_id"], doc["segment"], doc["mtu"])
            tap = links.ensure_tap(doc["id"])
            if tap is None:
                log.warning("port %s: no tap %s and none could be made", doc["id"], names.tap(doc["id"]))
                return Wired()
            self.firewall.apply_port(doc, names.conntrack_zone(doc["network_id"]))
            links.up(tap, doc["mtu"], master=bridge)
        except Exception:
            log.exception("wiring port %s", doc["id"])
            return Wired()
        return Wired(ports={doc["id"]})

    def remove_port(self, port_id: str) -> None:
        self.ports.pop(port_id, None)
        self.firewall.remove_port(port_id)
        links.delete(names.tap(port_id))

    # --- routers --------------------------------------------------------------------------------

    def apply_router(self, doc: RouterDoc) -> Wired:
        self.routers[doc["id"]] = doc
        segments = [(i["network_id"], i["segment"], i["mtu"]) for i in doc["interfaces"]]
        if doc["gateway"] is not None:
            segments.append((doc["gateway"]["network_id"], doc["gateway"]["segment"], doc["gateway"]["mtu"]))
        for network_id, segment, mtu in segments:
            try:
                self._network(network_id, segment, mtu)
            except links.UnsupportedSegment as exc:
                log.error("router %s: %s", doc["id"], exc)
                return Wired()
        try:
            ports, floating_ips = routers.apply(self.settings, doc)
        except links.UnsupportedSegment as exc:
            log.error("router %s: %s", doc["id"], exc)
            return Wired()
        networks = sorted({(i["network_id"], i["cidr"]) for i in doc["interfaces"]})
        if networks:
            try:
                self.proxies.ensure(doc["id"], names.router_namespace(doc["id"]), networks)
            except OSError:
                log.exception("metadata proxy for router %s", doc["id"])
        else:
            self.proxies.stop(doc["id"])
        return Wired(ports=ports, floating_ips=floating_ips)

    def remove_router(self, router_id: str) -> None:
        self.routers.pop(router_id, None)
        self.proxies.stop(router_id)
        routers.remove(router_id)

    # --- security groups ------------------------------------------------------------------------

    def apply_security_group(self, doc: SecurityGroupDoc) -> Wired:
        self.groups[doc["id"]] = doc
        self.firewall.apply_group(doc)
        return Wired()

    def remove_security_group(self, security_group_id: str) -> None:
        self.groups.pop(security_group_id, None)
        self.firewall.remove_group(security_group_id)

    # --- the end --------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the proxies (they are threads of this process); what the kernel holds stays."""
        self.proxies.stop_all()
