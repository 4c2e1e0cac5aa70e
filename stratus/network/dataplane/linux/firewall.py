"""Security groups and anti-spoofing in nftables on the host, per port.

conntrack does not work in nftables' bridge family on this kernel kind (no nf_conntrack_bridge),
but br_netfilter hands bridged IPv4/IPv6 packets to the inet hooks, where it does. There, though,
the in/out interface is the bridge, not the tap. So the work is split over two tables:

- `bridge stratus_ports`: per port, on the way in (prerouting) the anti-spoofing checks (only the
  port's MAC with its fixed IPs and allowed address pairs, DHCP discovery from 0.0.0.0, IPv6
  link-local) and a mark with the port's number in the low 16 bits; on the way out (forward) its
  number in the high 16 bits.
- `inet stratus_fw`: conntrack zones per network bridge (two tenants' overlapping addresses never
  share entries); in the forward hook, the source port's egress chain then the destination port's
  ingress chain, found by the mark in verdict maps. Stateful: established/related traffic passes;
  ingress is dropped unless a rule allows; egress is what the rules allow. A remote group is a
  named set of its members' addresses: a membership change updates the set only.

A port without port security gets neither chain. Every change is one `nft -f` transaction. When a
port's rules lose something, its conntrack entries are deleted so that traffic the old rules
allowed stops at once instead of living on as "established".
"""

from __future__ import annotations

import ipaddress
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field

from stratus.network.dataplane.linux import names
from stratus.network.dataplane.linux.commands import CommandFailed, nft, quote, run
from stratus.network.rpc import PortDoc, RuleDoc, SecurityGroupDoc

log = logging.getLogger("stratus.network.dataplane.linux")

FILTER = f"inet {names.FILTER_TABLE}"
MARKS = f"bridge {names.PORT_MARK_TABLE}"
MAX_PORTS = 0xFFFF

PROTOCOL_NAMES = {"tcp": "tcp", "udp": "udp", "sctp": "sctp", "icmp": "icmp", "ipv6-icmp": "ipv6-icmp",
                  "icmpv6": "ipv6-icmp", "gre": "47", "esp": "50", "ah": "51", "vrrp": "112"}
PORT_PROTOCOLS = ("tcp", "udp", "sctp")


def set_name(group_id: str, ethertype: str) -> str:
    return ("sg4_" if ethertype == "IPv4" else "sg6_") + group_id.replace("-", "_")


def _chain_id(port_id: str) -> str:
    return port_id.replace("-", "_")


@dataclass
class _Port:
    doc: PortDoc
    number: int
    zone: int
    ingress: list[str] = field(default_factory=list)
    egress: list[str] = field(default_factory=list)


class Firewall:
    def __init__(self) -> None:
        self._ports: dict[str, _Port] = {}
        self._groups: dict[str, SecurityGroupDoc] = {}
        self._zones: dict[str, int] = {}  # bridge -> conntrack zone

    # --- whole state ----------------------------------------------------------------------------

    def reset(self, zones: dict[str, int], groups: list[SecurityGroupDoc],
              ports: Sequence[tuple[PortDoc, int]] = ()) -> None:
        """Both tables rebuilt from scratch with `zones`, `groups` and `ports` (with their zones)
        in one transaction: a resync never leaves a port unfiltered, not even for a moment."""
        self._ports, self._zones = {}, dict(zones)
        self._groups = {g["id"]: g for g in groups}
        sets = "".join(self._set_definitions(g) for g in groups)
        zone_elements = ", ".join(f"{quote(b)} : {z}" for b, z in sorted(zones.items()))
        script = f"""table {FILTER}
delete table {FILTER}
table {FILTER} {{
  map zones {{ typeof iifname : ct zone; {f"elements = {{ {zone_elements} }}" if zones else ""} }}
  map egress {{ type mark : verdict; }}
  map ingress {{ type mark : verdict; }}
{sets}  chain zone {{ type filter hook prerouting priority raw; policy accept; ct zone set iifname map @zones; }}
  chain forward {{ type filter hook forward priority filter; policy accept;
    meta mark & 0x0000ffff vmap @egress
    meta mark & 0xffff0000 vmap @ingress
  }}
}}
table {MARKS}
delete table {MARKS}
table {MARKS} {{
  map from_ports {{ type ifname : verdict; }}
  map to_ports {{ type ifname : verdict; }}
  chain prerouting {{ type filter hook prerouting priority -300; policy accept; iifname vmap @from_ports; }}
  chain forward {{ type filter hook forward priority -300; policy accept; oifname vmap @to_ports; }}
}}
"""
        for doc, zone in ports:
            if doc["port_security_enabled"]:
                port = _Port(doc, self._free_number(), zone)
                self._ports[doc["id"]] = port
                script += self._port_chains(port, new=True)[0]
        nft(script)

    @staticmethod
    def remove_all() -> None:
        nft(f"table {FILTER}\ndelete table {FILTER}\ntable {MARKS}\ndelete table {MARKS}\n")

    # --- zones ----------------------------------------------------------------------------------

    def set_zone(self, bridge: str, zone: int) -> None:
        if self._zones.get(bridge) == zone:
            return
        script = ""
        if bridge in self._zones:
            script += f"delete element {FILTER} zones {{ {quote(bridge)} }}\n"
        nft(script + f"add element {FILTER} zones {{ {quote(bridge)} : {zone} }}\n")
        self._zones[bridge] = zone

    def drop_zone(self, bridge: str) -> None:
        if self._zones.pop(bridge, None) is not None:
            nft(f"delete element {FILTER} zones {{ {quote(bridge)} }}\n")

    # --- groups ---------------------------------------------------------------------------------

    def apply_group(self, doc: SecurityGroupDoc) -> None:
        old = self._groups.get(doc["id"])
        self._groups[doc["id"]] = doc
        script = ""
        if old is None:
            script += self._set_definitions(doc, add=True)
        elif old.get("members") != doc.get("members"):
            for kind in ("IPv4", "IPv6"):
                name = set_name(doc["id"], kind)
                script += f"flush set {FILTER} {name}\n"
                elements = _elements(doc.get("members", {}).get(kind, []))
                if elements:
                    script += f"add element {FILTER} {name} {{ {elements} }}\n"
        rules_changed = old is None or old["rules"] != doc["rules"]
        users = [p for p in self._ports.values() if doc["id"] in p.doc["security_group_ids"]] if rules_changed else []
        flush = []
        for port in users:
            part, lost = self._port_chains(port)
            script += part
            if lost:
                flush.append(port)
        if script:
            nft(script)
        for port in flush:
            _forget_connections(port)

    def remove_group(self, group_id: str) -> None:
        if self._groups.pop(group_id, None) is None:
            return
        # A chain still naming the set would make deleting it fail: leave it until no port uses it.
        if any(group_id in p.doc["security_group_ids"] or _names_remote(self._groups, p.doc, group_id)
               for p in self._ports.values()):
            return
        nft("".join(f"delete set {FILTER} {set_name(group_id, kind)}\n" for kind in ("IPv4", "IPv6")))

    def _set_definitions(self, doc: SecurityGroupDoc, add: bool = False) -> str:
        out = ""
        for kind, type_name in (("IPv4", "ipv4_addr"), ("IPv6", "ipv6_addr")):
            elements = _elements(doc.get("members", {}).get(kind, []))
            body = f"type {type_name}; flags interval; {f'elements = {{ {elements} }}' if elements else ''}"
            name = set_name(doc["id"], kind)
            out += f"add set {FILTER} {name} {{ {body} }}\n" if add else f"  set {name} {{ {body} }}\n"
        return out

    def _ensure_sets(self, group_ids: set[str]) -> str:
        """Sets for remote groups not (yet) known here: empty until the group arrives."""
        script = ""
        for group_id in sorted(group_ids - self._groups.keys()):
            empty = SecurityGroupDoc(id=group_id, stateful=True, rules=[], members={}, member_ports={})
            script += self._set_definitions(empty, add=True)
            self._groups[group_id] = empty
        return script

    # --- ports ----------------------------------------------------------------------------------

    def apply_port(self, doc: PortDoc, zone: int) -> None:
        old = self._ports.get(doc["id"])
        if not doc["port_security_enabled"]:
            self.remove_port(doc["id"])
            return
        number = old.number if old is not None else self._free_number()
        port = _Port(doc, number, zone, old.ingress if old else [], old.egress if old else [])
        self._ports[doc["id"]] = port
        chains, lost = self._port_chains(port, new=old is None)
        nft(chains)
        if lost:
            _forget_connections(port)

    def remove_port(self, port_id: str) -> None:
        port = self._ports.pop(port_id, None)
        if port is None:
            return
        cid, tap = _chain_id(port_id), quote(names.tap(port_id))
        nft(f"""delete element {MARKS} from_ports {{ {tap} }}
delete element {MARKS} to_ports {{ {tap} }}
delete chain {MARKS} from_{cid}
delete chain {MARKS} to_{cid}
delete element {FILTER} egress {{ {port.number:#010x} }}
delete element {FILTER} ingress {{ {port.number << 16:#010x} }}
delete chain {FILTER} out_{cid}
delete chain {FILTER} in_{cid}
""")
        _forget_connections(port)

    def ports(self) -> set[str]:
        return set(self._ports)

    def _free_number(self) -> int:
        used = {p.number for p in self._ports.values()}
        for number in range(1, MAX_PORTS + 1):
            if number not in used:
                return number
        raise RuntimeError("more than 65535 filtered ports on one host")

    def _port_chains(self, port: _Port, new: bool = False) -> tuple[str, bool]:
        """The script (re)writing a port's four chains; whether a rule it had is gone."""
        doc, cid, tap = port.doc, _chain_id(port.doc["id"]), quote(names.tap(port.doc["id"]))
        rules = [r for g in doc["security_group_ids"] for r in self._groups.get(g, {}).get("rules", [])]
        script = self._ensure_sets({r["remote_group_id"] for r in rules if r["remote_group_id"]}
                                   | set(doc["security_group_ids"]))
        ingress = sorted({_match(r) + " accept" for r in rules if r["direction"] == "ingress"})
        egress = sorted({_match(r) + " return" for r in rules if r["direction"] == "egress"})
        lost = bool((set(port.ingress) - set(ingress)) | (set(port.egress) - set(egress)))
        port.ingress, port.egress = ingress, egress
        low, high = f"{port.number:#010x}", f"{port.number << 16:#010x}"
        in_chain = ["ct state established,related accept", "ct state invalid drop",
                    "udp sport 67 udp dport 68 accept",
                    "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept",
                    *ingress, "drop"]
        out_chain = ["ct state established,related return", "ct state invalid drop",
                     "udp sport 68 udp dport 67 return",
                     "icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } return",
                     *egress, "drop"]
        mark_in = f"meta mark set meta mark & 0xffff0000 | {low}"
        from_chain = [f"{rule} {mark_in} return" for rule in _spoof_allowed(doc)] + ["drop"]
        to_chain = [f"meta mark set meta mark & 0x0000ffff | {high}"]
        for table, chain, lines in ((FILTER, f"in_{cid}", in_chain), (FILTER, f"out_{cid}", out_chain),
                                    (MARKS, f"from_{cid}", from_chain), (MARKS, f"to_{cid}", to_chain)):
            script += f"add chain {table} {chain}\nflush chain {table} {chain}\n"
            script += "".join(f"add rule {table} {chain} {line}\n" for line in lines)
        if new:
            script += (f"add element {FILTER} egress {{ {low} : jump out_{cid} }}\n"
                       f"add element {FILTER} ingress {{ {high} : jump in_{cid} }}\n"
                       f"add element {MARKS} from_ports {{ {tap} : jump from_{cid} }}\n"
                       f"add element {MARKS} to_ports {{ {tap} : jump to_{cid} }}\n")
        return script, lost and not new


def _names_remote(groups: dict[str, SecurityGroupDoc], port: PortDoc, group_id: str) -> bool:
    return any(r["remote_group_id"] == group_id for g in port["security_group_ids"]
               for r in groups.get(g, {}).get("rules", []))


def _elements(addresses: list[str]) -> str:
    # Interval sets refuse overlapping elements: collapse them first.
    parsed = [ipaddress.ip_network(a, strict=False) for a in addresses]
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = [
        *ipaddress.collapse_addresses(n for n in parsed if isinstance(n, ipaddress.IPv4Network)),
        *ipaddress.collapse_addresses(n for n in parsed if isinstance(n, ipaddress.IPv6Network))]
    return ", ".join(str(n.network_address) if n.num_addresses == 1 else str(n) for n in nets)


def _match(rule: RuleDoc) -> str:
    """The nftables match of one rule (without its verdict)."""
    v6 = rule["ethertype"] == "IPv6"
    family = "ip6" if v6 else "ip"
    parts = ["meta nfproto " + ("ipv6" if v6 else "ipv4")]
    field_name = "saddr" if rule["direction"] == "ingress" else "daddr"
    if rule["remote_ip_prefix"]:
        parts.append(f"{family} {field_name} {ipaddress.ip_network(rule['remote_ip_prefix'], strict=False)}")
    elif rule["remote_group_id"]:
        parts.append(f"{family} {field_name} @{set_name(rule['remote_group_id'], rule['ethertype'])}")
    protocol = rule["protocol"]
    if protocol is not None and protocol.lower() not in ("any", "0"):
        name = PROTOCOL_NAMES.get(protocol.lower(), protocol)
        if name == "icmp" and v6:
            name = "ipv6-icmp"
        if name.isdigit():
            name = {"6": "tcp", "17": "udp", "132": "sctp", "1": "icmp", "58": "ipv6-icmp"}.get(name, name)
        parts.append(f"meta l4proto {name}")
        low, high = rule["port_range_min"], rule["port_range_max"]
        if name in PORT_PROTOCOLS and low is not None:
            parts.append(f"{name} dport {low}" + (f"-{high}" if high is not None and high != low else ""))
        elif name in ("icmp", "ipv6-icmp") and low is not None:
            word = "icmp" if name == "icmp" else "icmpv6"
            parts.append(f"{word} type {low}")
            if high is not None:
                parts.append(f"{word} code {high}")
    return " ".join(parts)


def _spoof_allowed(doc: PortDoc) -> list[str]:
    """What a port may send: matches, each allowing one (MAC, addresses) combination."""
    mac = doc["mac_address"].lower()
    by_mac: dict[str, list[str]] = {mac: [ip["ip_address"] for ip in doc["fixed_ips"]]}
    for pair in doc["allowed_address_pairs"]:
        by_mac.setdefault((pair.get("mac_address") or mac).lower(), []).append(pair["ip_address"])
    lines = [f"ether saddr {mac} ip saddr 0.0.0.0 udp sport 68 udp dport 67",
             f"ether saddr {mac} ip6 saddr {{ ::, fe80::/10 }}"]
    for source_mac, addresses in sorted(by_mac.items()):
        v4 = _elements([a for a in addresses if ":" not in a])
        v6 = _elements([a for a in addresses if ":" in a])
        if v4:
            lines.append(f"ether saddr {source_mac} ip saddr {{ {v4} }}")
            lines.append(f"ether saddr {source_mac} arp saddr ip {{ {v4} }}")
        if v6:
            lines.append(f"ether saddr {source_mac} ip6 saddr {{ {v6} }}")
    return lines


def _forget_connections(port: _Port) -> None:
    """Delete the conntrack entries to and from the port's addresses in its network's zone."""
    if shutil.which("conntrack") is None:
        log.warning("conntrack is not installed: connections through removed rules live on")
        return
    for ip in port.doc["fixed_ips"]:
        for flag in ("--orig-src", "--orig-dst"):
            try:
                run(["conntrack", "-D", "-w", str(port.zone), flag, ip["ip_address"]], check=False)
            except (CommandFailed, OSError) as exc:
                log.warning("conntrack -D for %s: %s", ip["ip_address"], exc)
