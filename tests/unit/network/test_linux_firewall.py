"""Security group rules and anti-spoofing compiled to nftables (no kernel needed)."""

from __future__ import annotations

from stratus.network.dataplane.linux import firewall
from stratus.network.rpc import PortDoc, RuleDoc


def rule(**fields: object) -> RuleDoc:
    base = {"id": "r", "direction": "ingress", "ethertype": "IPv4", "protocol": None, "port_range_min": None,
            "port_range_max": None, "remote_ip_prefix": None, "remote_group_id": None}
    return RuleDoc(**{**base, **fields})  # type: ignore[typeddict-item]


def test_tcp_port_range_from_a_prefix() -> None:
    match = firewall._match(rule(protocol="tcp", port_range_min=22, port_range_max=80, remote_ip_prefix="10.1.2.3/8"))
    assert match == "meta nfproto ipv4 ip saddr 10.0.0.0/8 meta l4proto tcp tcp dport 22-80"


def test_single_port_and_egress_peer_is_the_destination() -> None:
    match = firewall._match(rule(direction="egress", protocol="udp", port_range_min=53, port_range_max=53,
                                 remote_ip_prefix="192.0.2.1/32"))
    assert match == "meta nfproto ipv4 ip daddr 192.0.2.1/32 meta l4proto udp udp dport 53"


def test_icmp_type_and_code_and_icmp_on_ipv6_is_icmpv6() -> None:
    assert firewall._match(rule(protocol="icmp", port_range_min=8, port_range_max=0)) == \
        "meta nfproto ipv4 meta l4proto icmp icmp type 8 icmp code 0"
    assert firewall._match(rule(ethertype="IPv6", protocol="icmp")) == "meta nfproto ipv6 meta l4proto ipv6-icmp"


def test_protocol_numbers_and_any() -> None:
    assert firewall._match(rule(protocol="6", port_range_min=443, port_range_max=443)).endswith("tcp dport 443")
    assert firewall._match(rule(protocol="47")) == "meta nfproto ipv4 meta l4proto 47"
    assert firewall._match(rule(protocol="any")) == "meta nfproto ipv4"


def test_remote_group_is_a_named_set() -> None:
    match = firewall._match(rule(remote_group_id="aa-bb", ethertype="IPv6"))
    assert match == "meta nfproto ipv6 ip6 saddr @sg6_aa_bb"


def test_set_elements_are_collapsed_so_interval_sets_accept_them() -> None:
    assert firewall._elements(["10.0.0.5", "10.0.0.0/24", "10.0.1.7"]) == "10.0.0.0/24, 10.0.1.7"


def test_a_port_may_send_only_from_its_mac_and_addresses_and_its_pairs() -> None:
    port = PortDoc(id="p", network_id="n", host="h", mac_address="FA:16:3E:00:00:01", admin_state_up=True,
                   device_owner="compute:nova", device_id="i", fixed_ips=[{"subnet_id": "s", "ip_address": "10.0.0.5"}],
                   port_security_enabled=True, security_group_ids=[],
                   allowed_address_pairs=[{"ip_address": "10.0.0.200", "mac_address": "fa:16:3e:00:00:09"}],
                   segment={"network_type": "local", "physical_network": None, "segmentation_id": None}, mtu=1500)
    allowed = firewall._spoof_allowed(port)
    assert "ether saddr fa:16:3e:00:00:01 ip saddr { 10.0.0.5 }" in allowed
    assert "ether saddr fa:16:3e:00:00:01 arp saddr ip { 10.0.0.5 }" in allowed
    assert "ether saddr fa:16:3e:00:00:09 ip saddr { 10.0.0.200 }" in allowed
    assert "ether saddr fa:16:3e:00:00:01 ip saddr 0.0.0.0 udp sport 68 udp dport 67" in allowed
    assert not [line for line in allowed if "10.0.0.6" in line]
