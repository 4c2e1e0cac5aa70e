"""The documents a guest reads from the metadata service, built from its instance record: the
OpenStack format (`/openstack/<version>/meta_data.json`, `network_data.json`, ...) and the EC2
format (`/<version>/meta-data/...`).

Everything here is pure: the caller loads the instance (and, for network_data.json, the subnets
and networks it sits on) and hands them in.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stratus.compute.models import Instance

# Dated versions of each format, oldest first; "latest" is every one of them and then some.
OPENSTACK_VERSIONS = ("2012-08-10", "2013-04-04", "2013-10-17", "2015-10-15", "2016-06-30", "2016-10-06",
                      "2017-02-22", "2018-08-27")
EC2_VERSIONS = ("1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15", "2008-02-01",
                "2008-09-01", "2009-04-04")
LATEST = "latest"

# Bytes of fresh randomness each meta_data.json carries (guests seed their entropy pool with it).
RANDOM_SEED_BYTES = 512


@dataclass(frozen=True)
class Guest:
    """What the metadata service needs of an instance, read out of its row."""

    id: str
    name: str
    hostname: str
    project_id: str
    availability_zone: str
    key_name: str | None = None
    key_data: str | None = None
    user_data: bytes | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    launch_index: int = 0
    reservation_id: str = ""
    security_groups: list[str] = field(default_factory=list)
    flavor_name: str = ""
    image_ref: str = ""
    network_info: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_row(cls, row: Instance, default_zone: str = "nova") -> Guest:
        return cls(id=row.id, name=row.name, hostname=row.hostname or row.name, project_id=row.project_id,
                   availability_zone=row.availability_zone or default_zone, key_name=row.key_name,
                   key_data=row.key_data, user_data=decode_user_data(row.user_data),
                   metadata=dict(row.metadata_ or {}), launch_index=row.launch_index or 0,
                   reservation_id=row.reservation_id or "", security_groups=list(row.security_groups or []),
                   flavor_name=str((row.flavor or {}).get("name", "")), image_ref=row.image_ref or "",
                   network_info=list(row.network_info or []))

    def fixed_ips(self) -> list[str]:
        return [ip["ip_address"] for entry in self.network_info for ip in entry.get("fixed_ips", [])]

    def floating_ips(self) -> list[str]:
        return [ip for entry in self.network_info for ip in entry.get("floating_ips", [])]


def decode_user_data(stored: str | None) -> bytes | None:
    """The user data as the guest gave it (the API keeps it base64-encoded); None when there is none."""
    if not stored:
        return None
    try:
        return base64.b64decode(stored, validate=False)
    except (binascii.Error, ValueError):
        return None


def _at_least(version: str, date: str) -> bool:
    return version == LATEST or version >= date


# OpenStack format

def openstack_versions() -> list[str]:
    return [*OPENSTACK_VERSIONS, LATEST]


def openstack_listing(guest: Guest, version: str) -> list[str]:
    """The files under `/openstack/<version>/`."""
    names = ["meta_data.json"]
    if guest.user_data is not None:
        names.append("user_data")
    if _at_least(version, "2013-10-17"):
        names.append("vendor_data.json")
    if _at_least(version, "2015-10-15"):
        names.append("network_data.json")
    if _at_least(version, "2016-10-06"):
        names.append("vendor_data2.json")
    return names


def meta_data(guest: Guest, version: str) -> dict[str, Any]:
    """meta_data.json: who the instance is, its keys and its server metadata (never a password)."""
    doc: dict[str, Any] = {"uuid": guest.id, "name": guest.name, "hostname": guest.hostname,
                           "launch_index": guest.launch_index, "availability_zone": guest.availability_zone,
                           "meta": dict(guest.metadata)}
    if guest.key_name and guest.key_data:
        doc["public_keys"] = {guest.key_name: guest.key_data}
        if _at_least(version, "2015-10-15"):
            doc["keys"] = [{"name": guest.key_name, "type": "ssh", "data": guest.key_data}]
    if _at_least(version, "2013-04-04"):
        doc["random_seed"] = base64.b64encode(secrets.token_bytes(RANDOM_SEED_BYTES)).decode()
    if _at_least(version, "2015-10-15"):
        doc["project_id"] = guest.project_id
    if _at_least(version, "2016-06-30"):
        doc["devices"] = []
    return doc


def subnet_ids(guest: Guest) -> list[str]:
    return sorted({ip["subnet_id"] for entry in guest.network_info for ip in entry.get("fixed_ips", [])
                   if ip.get("subnet_id")})


def network_ids(guest: Guest) -> list[str]:
    return sorted({entry["network_id"] for entry in guest.network_info if entry.get("network_id")})


_IPV6_MODES = {"slaac": "ipv6_slaac", "dhcpv6-stateful": "ipv6_dhcpv6-stateful",
               "dhcpv6-stateless": "ipv6_dhcpv6-stateless"}


def _network_type(subnet: Mapping[str, Any]) -> str:
    if int(subnet.get("ip_version", 4)) == 6:
        return _IPV6_MODES.get(subnet.get("ipv6_address_mode") or "", "ipv6")
    return "ipv4_dhcp" if subnet.get("enable_dhcp") else "ipv4"


def _routes(subnet: Mapping[str, Any], version: int) -> list[dict[str, str]]:
    routes = []
    if subnet.get("gateway_ip"):
        anywhere = "0.0.0.0" if version == 4 else "::"
        routes.append({"network": anywhere, "netmask": anywhere, "gateway": subnet["gateway_ip"]})
    for route in subnet.get("host_routes") or []:
        try:
            destination = ipaddress.ip_network(route["destination"], strict=False)
        except (KeyError, ValueError):
            continue
        routes.append({"network": str(destination.network_address), "netmask": str(destination.netmask),
                       "gateway": route.get("nexthop", "")})
    return routes


def network_data(guest: Guest, subnets: Mapping[str, Mapping[str, Any]],
                 networks: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """network_data.json: one link per port, one network per fixed IP (whose subnet is known), and
    the DNS servers of those subnets."""
    links: list[dict[str, Any]] = []
    nets: list[dict[str, Any]] = []
    dns: list[str] = []
    for entry in guest.network_info:
        port_id = str(entry.get("port_id", ""))
        link_id = "tap" + port_id[:11]
        links.append({"id": link_id, "vif_id": port_id, "type": "phy",
                      "ethernet_mac_address": entry.get("mac_address", ""),
                      "mtu": networks.get(entry.get("network_id", ""), {}).get("mtu")})
        for fixed in entry.get("fixed_ips", []):
            subnet = subnets.get(fixed.get("subnet_id", ""))
            if subnet is None or not subnet.get("cidr"):
                continue
            cidr = ipaddress.ip_network(subnet["cidr"], strict=False)
            servers = [str(a) for a in subnet.get("dns_nameservers") or []]
            dns.extend(a for a in servers if a not in dns)
            nets.append({"id": f"network{len(nets)}", "type": _network_type(subnet), "link": link_id,
                         "ip_address": fixed["ip_address"], "netmask": str(cidr.netmask),
                         "routes": _routes(subnet, cidr.version), "network_id": entry.get("network_id", ""),
                         "services": [{"type": "dns", "address": a} for a in servers]})
    return {"links": links, "networks": nets, "services": [{"type": "dns", "address": a} for a in dns]}


def vendor_data() -> dict[str, Any]:
    return {}


# EC2 format

def ec2_versions() -> list[str]:
    return [*EC2_VERSIONS, LATEST]


def _ec2_number(prefix: str, uuid: str) -> str:
    """`i-0a1b2c3d` style ids: the first 32 bits of the UUID as eight hex digits (stable)."""
    digits = uuid.replace("-", "")[:8].lower()
    return f"{prefix}-{digits:0>8}"


def ec2_instance_id(guest: Guest) -> str:
    return _ec2_number("i", guest.id)


def _is_ipv4(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).version == 4
    except ValueError:
        return False


def ec2_meta_data(guest: Guest, version: str) -> dict[str, Any]:
    """The `/<version>/meta-data/` tree: dicts are directories, everything else a file.

    A directory entry that names itself differently in its parent's listing (public-keys/0 is
    listed as "0=<key name>") carries that name under "_name".
    """
    fixed_v4 = [ip for ip in guest.fixed_ips() if _is_ipv4(ip)]
    floating = guest.floating_ips()
    tree: dict[str, Any] = {
        "ami-id": _ec2_number("ami", guest.image_ref) if guest.image_ref else "ami-00000000",
        "ami-launch-index": str(guest.launch_index),
        "ami-manifest-path": "FIXME",
        "hostname": guest.hostname,
        "instance-action": "none",
        "instance-id": ec2_instance_id(guest),
        "local-ipv4": fixed_v4[0] if fixed_v4 else "",
        "public-ipv4": floating[0] if floating else "",
        "reservation-id": guest.reservation_id,
        "security-groups": list(guest.security_groups),
    }
    if guest.key_name and guest.key_data:
        tree["public-keys"] = {"0": {"_name": f"0={guest.key_name}", "openssh-key": guest.key_data}}
    if _at_least(version, "2007-01-19"):
        tree["local-hostname"] = guest.hostname
        tree["public-hostname"] = guest.hostname
    if _at_least(version, "2007-08-29"):
        tree["instance-type"] = guest.flavor_name
    if _at_least(version, "2007-12-15"):
        tree["block-device-mapping"] = {"ami": "vda", "root": "/dev/vda"}
    if _at_least(version, "2008-02-01"):
        tree["placement"] = {"availability-zone": guest.availability_zone}
    return tree


def listing(directory: Mapping[str, Any]) -> list[str]:
    """A directory's entries, sorted; sub-directories end with "/" unless they carry a "_name"."""
    out = []
    for key in sorted(directory):
        if key.startswith("_"):
            continue
        value = directory[key]
        if isinstance(value, Mapping):
            out.append(str(value["_name"]) if "_name" in value else key + "/")
        else:
            out.append(key)
    return out


def lookup(tree: Mapping[str, Any], path: str) -> str | None:
    """The text at `path` (slash-separated, relative to the tree) or None when there is nothing."""
    node: Any = tree
    for part in (p for p in path.split("/") if p):
        if not isinstance(node, Mapping) or part.startswith("_") or part not in node:
            return None
        node = node[part]
    if isinstance(node, Mapping):
        return "\n".join(listing(node))
    if isinstance(node, list):
        return "\n".join(str(item) for item in node)
    return str(node)
