"""What the network agent keeps of networks and security groups between full states: each document
as the service last sent it, with the parts that port messages keep current without a new document
(a network's DHCP reservations, a group's member addresses)."""

from __future__ import annotations

from dataclasses import dataclass, field

from stratus.network.rpc import (
    DhcpHost,
    NetworkDoc,
    PortDoc,
    SecurityGroupDoc,
    dhcp_entries,
    dhcp_subnet_ids,
    ethertype,
    port_member_addresses,
)


@dataclass
class HeldNetwork:
    """A network: its document, and its DHCP reservations by port (kept current from port messages
    newer than `hosts_stamp`)."""

    doc: NetworkDoc
    hosts_stamp: int
    hosts: dict[str, list[DhcpHost]] = field(default_factory=dict)

    def take_port(self, port_id: str, port: PortDoc | None) -> bool:
        """Follow a port's change (None: it went); whether the reservations changed."""
        entries = dhcp_entries(port_id, port["mac_address"], port["fixed_ips"], dhcp_subnet_ids(self.doc)) \
            if port is not None and port["network_id"] == self.doc["id"] else []
        if self.hosts.get(port_id, []) == entries:
            return False
        if entries:
            self.hosts[port_id] = entries
        else:
            self.hosts.pop(port_id, None)
        return True

    def view(self, serves_dhcp: bool) -> NetworkDoc:
        """The document for the data plane: reservations and the DHCP port only where this host
        serves DHCP for the network."""
        doc = self.doc
        serve = serves_dhcp and doc["dhcp"] is not None and bool(dhcp_subnet_ids(doc))
        hosts = [e for entries in self.hosts.values() for e in entries] if serve else []
        return NetworkDoc(id=doc["id"], admin_state_up=doc["admin_state_up"], mtu=doc["mtu"], segment=doc["segment"],
                          subnets=doc["subnets"], dhcp=doc["dhcp"] if serve else None, dhcp_hosts=hosts)


@dataclass
class HeldGroup:
    """A security group: rules, and member addresses by port (kept current from port messages newer
    than `members_stamp`), with how many ports hold each address, by ethertype."""

    doc: SecurityGroupDoc
    members_stamp: int
    members: dict[str, list[str]] = field(default_factory=dict)
    held: dict[str, dict[str, int]] = field(default_factory=lambda: {"IPv4": {}, "IPv6": {}})

    def take_port(self, port_id: str, port: PortDoc | None) -> bool:
        """Follow a port's change (None: it went); whether the members changed."""
        member = port is not None and self.doc["id"] in port["security_group_ids"]
        return self.set_member(port_id, port_member_addresses(port) if port is not None and member else None)

    def set_member(self, port_id: str, addresses: list[str] | None) -> bool:
        """Make `addresses` the port's (None: not a member); whether anything changed."""
        old = self.members.get(port_id)
        if old == addresses:
            return False
        for address in old or []:
            kind = ethertype(address)
            if kind is not None:
                count = self.held[kind].get(address, 0) - 1
                if count > 0:
                    self.held[kind][address] = count
                else:
                    self.held[kind].pop(address, None)
        if addresses is None:
            del self.members[port_id]
            return True
        self.members[port_id] = addresses
        for address in addresses:
            kind = ethertype(address)
            if kind is not None:
                self.held[kind][address] = self.held[kind].get(address, 0) + 1
        return True

    def view(self) -> SecurityGroupDoc:
        return SecurityGroupDoc(id=self.doc["id"], stateful=self.doc["stateful"], rules=self.doc["rules"],
                                members={kind: list(held) for kind, held in self.held.items()},
                                member_ports=dict(self.members))
