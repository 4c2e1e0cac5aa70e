"""Rule normalization: what is accepted, its stored form, and which rules are the same rule."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from stratus.network import models, secgroups
from stratus.network.secgroups import normalize_rule


def _rule(**fields: Any) -> secgroups.Rule:
    return normalize_rule(**{"direction": "ingress", **fields})


def test_names_numbers_and_spellings_of_one_protocol_are_one_rule() -> None:
    tcp = _rule(protocol="tcp", port_range_min=22, port_range_max=22)
    assert tcp.protocol == "tcp" and tcp.ethertype == "IPv4"
    for same in (_rule(protocol="TCP", port_range_min="22", port_range_max="22"),
                 _rule(protocol="6", port_range_min=22, port_range_max=22, ethertype="ipv4"),
                 _rule(protocol=6, port_range_min=22, port_range_max=22)):
        assert same.fingerprint == tcp.fingerprint
    assert _rule(protocol="udp", port_range_min=22, port_range_max=22).fingerprint != tcp.fingerprint
    assert _rule(protocol="tcp", port_range_min=22, port_range_max=23).fingerprint != tcp.fingerprint
    assert normalize_rule(direction="egress", protocol="tcp", port_range_min=22,
                          port_range_max=22).fingerprint != tcp.fingerprint


def test_ipv6_icmp_has_one_stored_name_and_icmp_in_ipv4_is_another_rule() -> None:
    stored = {_rule(protocol=p, ethertype="IPv6").protocol for p in ("icmp", "icmpv6", "ipv6-icmp")}
    assert stored == {"ipv6-icmp"}
    assert _rule(protocol="1", ethertype="IPv6").protocol == "58"
    prints = {_rule(protocol=p, ethertype="IPv6").fingerprint for p in ("icmp", "icmpv6", "ipv6-icmp", "58", "1")}
    assert len(prints) == 1
    assert _rule(protocol="icmp").fingerprint not in prints


def test_a_prefix_keeps_its_host_bits_and_compares_by_its_network() -> None:
    rule = _rule(remote_ip_prefix="10.0.0.5/24")
    assert rule.remote_ip_prefix == "10.0.0.5/24" and rule.normalized_cidr == "10.0.0.0/24"
    assert rule.fingerprint == _rule(remote_ip_prefix="10.0.0.0/24").fingerprint
    assert _rule(remote_ip_prefix="192.0.2.1").remote_ip_prefix == "192.0.2.1/32"
    assert _rule(remote_ip_prefix="2001:DB8::1/64", ethertype="IPv6").normalized_cidr == "2001:db8::/64"
    # Any address is the same as no prefix at all.
    assert _rule(remote_ip_prefix="0.0.0.0/0").fingerprint == _rule().fingerprint
    assert _rule(remote_ip_prefix="::/0", ethertype="IPv6").fingerprint == _rule(ethertype="IPv6").fingerprint


def test_the_default_rules_are_the_rules_an_api_caller_would_write() -> None:
    group = models.SecurityGroup(id=models.new_id(), project_id="p", name="default")
    stored = {row.fingerprint for row in secgroups.default_rules(group)}
    said = {_rule(remote_group_id=group.id).fingerprint, _rule(remote_group_id=group.id, ethertype="IPv6").fingerprint,
            normalize_rule(direction="egress").fingerprint,
            normalize_rule(direction="egress", ethertype="IPv6", remote_ip_prefix="::/0").fingerprint}
    assert stored == said
    assert all(row.project_id == "p" and row.security_group_id == group.id for row in secgroups.default_rules(group))


@pytest.mark.parametrize(("fields", "fault"), [
    ({"direction": "both"}, secgroups.SecurityGroupRuleInvalidDirection),
    ({"ethertype": "IPX"}, secgroups.SecurityGroupRuleInvalidEtherType),
    ({"ethertype": 4}, secgroups.SecurityGroupRuleInvalidEtherType),
    ({"protocol": "smtp"}, secgroups.SecurityGroupRuleInvalidProtocol),
    ({"protocol": -1}, secgroups.SecurityGroupRuleInvalidProtocol),
    ({"protocol": True}, secgroups.SecurityGroupRuleInvalidProtocol),
    ({"protocol": "tcp", "port_range_min": 1, "port_range_max": 65536}, secgroups.SecurityGroupInvalidPortValue),
    ({"protocol": "tcp", "port_range_min": 2.5, "port_range_max": 3}, secgroups.SecurityGroupInvalidPortValue),
    ({"protocol": "sctp", "port_range_min": 10, "port_range_max": 9}, secgroups.SecurityGroupInvalidPortRange),
    ({"protocol": "tcp", "port_range_max": 9}, secgroups.SecurityGroupInvalidPortRange),
    ({"protocol": "udp", "port_range_min": 0, "port_range_max": 0}, secgroups.SecurityGroupInvalidPortValue),
    ({"port_range_min": 80, "port_range_max": 80}, secgroups.SecurityGroupProtocolRequiredWithPorts),
    ({"protocol": "esp", "port_range_min": 80, "port_range_max": 80}, secgroups.SecurityGroupInvalidProtocolForPort),
    ({"protocol": "icmp", "port_range_min": 300}, secgroups.SecurityGroupInvalidIcmpValue),
    ({"protocol": "icmp", "port_range_max": 3}, secgroups.SecurityGroupMissingIcmpType),
    ({"protocol": "icmpv6"}, secgroups.SecurityGroupEthertypeConflictWithProtocol),
    ({"protocol": "ipv6-frag"}, secgroups.SecurityGroupEthertypeConflictWithProtocol),
    ({"remote_ip_prefix": "10.0.0.0/8", "ethertype": "IPv6"}, secgroups.SecurityGroupRuleParameterConflict),
    ({"remote_ip_prefix": "300.0.0.0/8"}, secgroups.InvalidCIDR),
    ({"remote_ip_prefix": ["10.0.0.0/8"]}, secgroups.InvalidCIDR),
    ({"remote_ip_prefix": "10.0.0.0/8", "remote_group_id": "g"}, secgroups.SecurityGroupRemoteGroupAndRemoteIpPrefix),
])
def test_invalid_rules_raise_neutrons_faults(fields: dict[str, Any], fault: type[Exception]) -> None:
    with pytest.raises(fault):
        _rule(**fields)


def test_icmp_type_and_code_and_any_protocol_are_accepted() -> None:
    rule = _rule(protocol="icmp", port_range_min=8, port_range_max=0)
    assert (rule.port_range_min, rule.port_range_max) == (8, 0)
    assert _rule(protocol="icmp", port_range_min=3).port_range_max is None
    assert _rule(protocol="any").protocol is None and _rule(protocol=None).protocol is None


@given(st.sampled_from(sorted(secgroups.PROTOCOLS)), st.sampled_from(secgroups.ETHERTYPES))
def test_a_protocol_by_name_and_by_number_is_the_same_rule(name: str, ethertype: str) -> None:
    number = secgroups.PROTOCOLS[name]
    ipv6_only = number in (41, 43, 44, 58, 59, 60)
    if ethertype == "IPv4" and ipv6_only:
        with pytest.raises(secgroups.SecurityGroupEthertypeConflictWithProtocol):
            _rule(protocol=name, ethertype=ethertype)
        return
    assert (_rule(protocol=name, ethertype=ethertype).fingerprint
            == _rule(protocol=str(number), ethertype=ethertype).fingerprint)


@given(st.integers(0, 255), st.integers(0, 255))
def test_different_protocol_numbers_are_different_rules(first: int, second: int) -> None:
    ipv6_only = {41, 43, 44, 58, 59, 60}
    assume(first != second and first not in ipv6_only and second not in ipv6_only)
    assert _rule(protocol=first).fingerprint != _rule(protocol=second).fingerprint
