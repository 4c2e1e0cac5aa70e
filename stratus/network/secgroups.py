"""Security groups: each project's `default` group, what a valid rule is, and what makes two rules the same.

A rule arrives as the API gives it (protocol by name or number, ports as strings or integers, a
prefix with host bits) and leaves `normalize_rule` as the one form that is stored and compared:
names in lower case, IPv6 ICMP always `ipv6-icmp`, the prefix with its mask. Two rules that match
the same traffic (`tcp` and `6`, no prefix and `0.0.0.0/0`) get the same fingerprint, which the
table's unique key turns into a refused duplicate.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from stratus.core.errors import BadRequest, Conflict
from stratus.network import models

DEFAULT_NAME = "default"
DEFAULT_DESCRIPTION = "Default security group"
ETHERTYPES = ("IPv4", "IPv6")
DIRECTIONS = ("ingress", "egress")

# IP protocol names the API accepts, with their numbers (IANA).
PROTOCOLS = {
    "ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "hopopt": 0, "icmp": 1, "igmp": 2, "ip": 0,
    "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58, "icmpv6": 58, "ipv6-nonxt": 59,
    "ipv6-opts": 60, "ipv6-route": 43, "ospf": 89, "pgm": 113, "rsvp": 46, "sctp": 132, "tcp": 6, "udp": 17,
    "udplite": 136, "vrrp": 112,
}
ICMP, ICMPV6 = 1, 58
# Protocols with ports (a range of 1-65535); ICMP's "ports" are its type and code.
PORT_PROTOCOLS = {6: "TCP", 17: "UDP", 136: "UDPLITE", 132: "SCTP", 33: "DCCP"}
# Protocols that only exist over IPv6, by name and by number.
_IPV6_ONLY_NUMBERS = {41, 44, 58, 59, 60, 43}
_IPV6_LEGACY_ICMP = {"icmp", "icmpv6"}
_ANY_PREFIXES = {"0.0.0.0/0", "::/0"}


# --- faults (the body's `type` is the class name, as Neutron's clients read it) ---

class InvalidCIDR(BadRequest):
    def __init__(self, value: object) -> None:
        super().__init__(f"Invalid CIDR {value} given as IP prefix.")


class SecurityGroupRuleInvalidProtocol(BadRequest):
    def __init__(self, protocol: object) -> None:
        names = ", ".join(sorted(PROTOCOLS))
        super().__init__(f"Security group rule protocol {protocol} not supported. Only protocol values "
                         f"[None, {names}] and integer representations [0 to 255] are supported.")


class SecurityGroupRuleInvalidEtherType(BadRequest):
    def __init__(self, ethertype: object) -> None:
        super().__init__(f"Security group rule for ethertype '{ethertype}' not supported. "
                         f"Allowed values are {list(ETHERTYPES)}.")


class SecurityGroupRuleInvalidDirection(BadRequest):
    def __init__(self, direction: object) -> None:
        super().__init__(f"Invalid input for direction. Reason: '{direction}' is not in {list(DIRECTIONS)}.")


class SecurityGroupInvalidPortValue(BadRequest):
    def __init__(self, port: object) -> None:
        super().__init__(f"Invalid value for port {port}.")


class SecurityGroupInvalidPortRange(BadRequest):
    def __init__(self) -> None:
        super().__init__("For TCP/UDP protocols, port_range_min must be <= port_range_max")


class SecurityGroupInvalidIcmpValue(BadRequest):
    def __init__(self, field: str, attr: str, value: int) -> None:
        super().__init__(f"Invalid value for ICMP {field} ({attr}) {value}. It must be 0 to 255.")


class SecurityGroupMissingIcmpType(BadRequest):
    def __init__(self, value: int) -> None:
        super().__init__(f"ICMP code (port-range-max) {value} is provided but ICMP type (port-range-min) "
                         "is missing.")


class SecurityGroupProtocolRequiredWithPorts(BadRequest):
    def __init__(self) -> None:
        super().__init__("Must also specify protocol if port range is given.")


class SecurityGroupInvalidProtocolForPort(BadRequest):
    def __init__(self, protocol: object) -> None:
        super().__init__(f"Invalid protocol {protocol} for port range, only supported for "
                         f"{', '.join(PORT_PROTOCOLS.values())} protocols.")


class SecurityGroupEthertypeConflictWithProtocol(BadRequest):
    def __init__(self, ethertype: str, protocol: str) -> None:
        super().__init__(f"Invalid ethertype {ethertype} for protocol {protocol}.")


class SecurityGroupRuleParameterConflict(BadRequest):
    def __init__(self, ethertype: str, cidr: str) -> None:
        super().__init__(f"Conflicting value ethertype {ethertype} for CIDR {cidr}")


class SecurityGroupRemoteGroupAndRemoteIpPrefix(BadRequest):
    def __init__(self) -> None:
        super().__init__("Only remote_ip_prefix or remote_group_id may be provided.")


class SecurityGroupDefaultAlreadyExists(Conflict):
    def __init__(self) -> None:
        super().__init__("Default security group already exists.")


class SecurityGroupCannotUpdateDefault(Conflict):
    def __init__(self) -> None:
        super().__init__("Updating default security group not allowed.")


class SecurityGroupCannotRemoveDefault(Conflict):
    def __init__(self) -> None:
        super().__init__("Insufficient rights for removing default security group.")


# --- rules ---

@dataclass(frozen=True)
class Rule:
    """A rule's matching fields in their stored form."""

    direction: str
    ethertype: str
    protocol: str | None
    port_range_min: int | None
    port_range_max: int | None
    remote_ip_prefix: str | None
    remote_group_id: str | None

    @property
    def normalized_cidr(self) -> str | None:
        return normalized_cidr(self.remote_ip_prefix)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.direction, self.ethertype, protocol_key(self.protocol, self.ethertype),
                           self.port_range_min, self.port_range_max, _any_as_none(self.normalized_cidr),
                           self.remote_group_id)


def fingerprint(direction: str, ethertype: str, protocol: str | None, port_range_min: int | None,
                port_range_max: int | None, remote_ip_prefix: str | None, remote_group_id: str | None) -> str:
    """A digest of a rule's normalized matching fields: equal for rules that match the same traffic.

    `protocol` is the protocol number as a string (None: any), `remote_ip_prefix` the network
    address with its mask (None: any address)."""
    key = "|".join(str(part) for part in (direction, ethertype, protocol, port_range_min, port_range_max,
                                             remote_ip_prefix, remote_group_id))
    return hashlib.sha256(key.encode()).hexdigest()


def normalized_cidr(prefix: str | None) -> str | None:
    """The network a prefix names: 10.0.0.5/24 -> 10.0.0.0/24."""
    return None if prefix is None else str(ipaddress.ip_network(prefix, strict=False))


def _any_as_none(cidr: str | None) -> str | None:
    return None if cidr in _ANY_PREFIXES else cidr


def protocol_number(protocol: str | None) -> int | None:
    if protocol is None:
        return None
    return PROTOCOLS[protocol] if protocol in PROTOCOLS else int(protocol)


def protocol_key(protocol: str | None, ethertype: str) -> str | None:
    """What a stored protocol matches, as a number: `tcp` and `6` are one protocol; for IPv6, ICMP is ICMPv6."""
    number = protocol_number(protocol)
    if number is None:
        return None
    if ethertype == "IPv6" and number == ICMP:
        number = ICMPV6
    return str(number)


def _protocol(value: Any) -> str | None:
    """`tcp`, `TCP`, `6`, 6 -> the stored form (a lower-case name or a number as a string); None, `any` -> None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise SecurityGroupRuleInvalidProtocol(value)
    text = str(value).strip().lower()
    if text == "any":
        return None
    if text in PROTOCOLS:
        return text
    try:
        number = int(text)
    except ValueError:
        raise SecurityGroupRuleInvalidProtocol(value) from None
    if not 0 <= number <= 255:
        raise SecurityGroupRuleInvalidProtocol(value)
    return str(number)


def _port(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise SecurityGroupInvalidPortValue(value)
    try:
        port = int(value)
    except ValueError:
        raise SecurityGroupInvalidPortValue(value) from None
    if not 0 <= port <= 65535:
        raise SecurityGroupInvalidPortValue(value)
    return port


def _ethertype(value: Any) -> str:
    if value is None:
        return "IPv4"
    if isinstance(value, str):
        for ethertype in ETHERTYPES:
            if ethertype.lower() == value.lower():
                return ethertype
    raise SecurityGroupRuleInvalidEtherType(value)


def _prefix(value: Any) -> str | None:
    """`10.0.0.5` -> `10.0.0.5/32`; `10.0.0.5/24` stays (its network is the rule's `normalized_cidr`)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidCIDR(value)
    try:
        return str(ipaddress.ip_interface(value.strip()))
    except ValueError:
        raise InvalidCIDR(value) from None


def _check_ports(protocol: str | None, low: int | None, high: int | None) -> None:
    if low is None and high is None:
        return
    number = protocol_number(protocol)
    if number is None:
        raise SecurityGroupProtocolRequiredWithPorts()
    if number in PORT_PROTOCOLS:
        if low == 0 or high == 0:
            raise SecurityGroupInvalidPortValue(0)
        if low is None or high is None or low > high:
            raise SecurityGroupInvalidPortRange()
    elif number in (ICMP, ICMPV6):
        for value, field, attr in ((low, "type", "port_range_min"), (high, "code", "port_range_max")):
            if value is not None and not 0 <= value <= 255:
                raise SecurityGroupInvalidIcmpValue(field, attr, value)
        if low is None and high is not None:
            raise SecurityGroupMissingIcmpType(high)
    else:
        raise SecurityGroupInvalidProtocolForPort(protocol)


def normalize_rule(*, direction: Any, ethertype: Any = None, protocol: Any = None, port_range_min: Any = None,
                   port_range_max: Any = None, remote_ip_prefix: Any = None,
                   remote_group_id: str | None = None) -> Rule:
    """Validate a rule as the API receives it; its stored form, or a Neutron-named 400."""
    if direction not in DIRECTIONS:
        raise SecurityGroupRuleInvalidDirection(direction)
    kind = _ethertype(ethertype)
    proto = _protocol(protocol)
    low, high = _port(port_range_min), _port(port_range_max)
    prefix = _prefix(remote_ip_prefix)
    if kind == "IPv6":
        # IPv6 ICMP has one name and one number; the old spellings are taken and converted.
        if proto in _IPV6_LEGACY_ICMP:
            proto = "ipv6-icmp"
        elif proto == str(ICMP):
            proto = str(ICMPV6)
    _check_ports(proto, low, high)
    if prefix is not None and f"IPv{ipaddress.ip_interface(prefix).version}" != kind:
        raise SecurityGroupRuleParameterConflict(kind, prefix)
    if kind == "IPv4" and proto is not None and protocol_number(proto) in _IPV6_ONLY_NUMBERS:
        raise SecurityGroupEthertypeConflictWithProtocol(kind, proto)
    if prefix is not None and remote_group_id:
        raise SecurityGroupRemoteGroupAndRemoteIpPrefix()
    return Rule(direction, kind, proto, low, high, prefix, remote_group_id or None)


def new_rule(group: models.SecurityGroup, rule: Rule, description: str = "") -> models.SecurityGroupRule:
    """The row of `rule` in `group` (owned by the group's project)."""
    return models.SecurityGroupRule(
        id=models.new_id(), project_id=group.project_id, security_group_id=group.id, direction=rule.direction,
        ethertype=rule.ethertype, protocol=rule.protocol, port_range_min=rule.port_range_min,
        port_range_max=rule.port_range_max, remote_ip_prefix=rule.remote_ip_prefix,
        remote_group_id=rule.remote_group_id, description=description, fingerprint=rule.fingerprint)


def egress_rules(group: models.SecurityGroup) -> list[models.SecurityGroupRule]:
    """What a new group starts with: all traffic out, for IPv4 and IPv6."""
    return [new_rule(group, Rule("egress", ethertype, None, None, None, None, None)) for ethertype in ETHERTYPES]


def default_rules(group: models.SecurityGroup) -> list[models.SecurityGroupRule]:
    """All traffic out; in, only from members of the same group; for IPv4 and IPv6."""
    return [new_rule(group, Rule(direction, ethertype, None, None, None, None,
                                 group.id if direction == "ingress" else None))
            for direction in ("egress", "ingress") for ethertype in ETHERTYPES]


def is_default(group: models.SecurityGroup) -> bool:
    """Whether a group is its project's `default` one. Only that group bears the name: creating or
    renaming another to it is refused, and the default group cannot be renamed."""
    return group.name == DEFAULT_NAME


def ensure_default(session: Session, project_id: str) -> str:
    """The id of the project's `default` group, created with its rules on first use."""
    existing = session.get(models.DefaultSecurityGroup, project_id)
    if existing is not None:
        return existing.security_group_id
    group = models.SecurityGroup(id=models.new_id(), project_id=project_id, name=DEFAULT_NAME,
                                 description=DEFAULT_DESCRIPTION)
    try:
        with session.begin_nested():
            session.add(group)
            session.flush()
            session.add(models.DefaultSecurityGroup(project_id=project_id, security_group_id=group.id))
            session.add_all(default_rules(group))
            session.flush()
    except IntegrityError:
        # Another request made it at the same moment: use theirs.
        # A locking read: it sees the winner's committed row where a plain read in MariaDB's
        # repeatable-read snapshot would not.
        winner = session.scalar(sa.select(models.DefaultSecurityGroup.security_group_id)
                                .where(models.DefaultSecurityGroup.project_id == project_id).with_for_update())
        if winner is None:
            raise
        return winner
    return group.id
