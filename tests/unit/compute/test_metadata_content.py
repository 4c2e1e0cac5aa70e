"""Metadata documents built from an instance: versions, keys, network_data.json and the EC2 tree."""

from __future__ import annotations

import base64
import hashlib
import hmac
import stat
from pathlib import Path
from typing import Any

from stratus.compute.metadata import content, proxy_signature, shared_secret
from stratus.compute.metadata.content import Guest
from stratus.core import config as config_mod

GUEST = Guest(id="0a1b2c3d-0000-4000-8000-000000000001", name="web", hostname="web-1", project_id="p1",
              availability_zone="az1", key_name="k", key_data="ssh-rsa AAAA k@h", user_data=b"hello",
              metadata={"a": "b"}, launch_index=2, reservation_id="r-1", security_groups=["default"],
              flavor_name="m1.tiny", image_ref="ffeeddcc-0000-4000-8000-000000000000",
              network_info=[{"port_id": "11112222-3333-4444-5555-666677778888", "network_id": "n1",
                             "mac_address": "fa:16:3e:aa:bb:cc",
                             "fixed_ips": [{"ip_address": "10.1.0.9", "subnet_id": "s4"},
                                           {"ip_address": "2001:db8::9", "subnet_id": "s6"}],
                             "floating_ips": []}])

SUBNETS: dict[str, dict[str, Any]] = {
    "s4": {"id": "s4", "cidr": "10.1.0.0/22", "ip_version": 4, "gateway_ip": None, "enable_dhcp": False,
           "dns_nameservers": ["1.1.1.1"], "host_routes": []},
    "s6": {"id": "s6", "cidr": "2001:db8::/64", "ip_version": 6, "gateway_ip": "2001:db8::1", "enable_dhcp": True,
           "ipv6_address_mode": "slaac", "dns_nameservers": ["2001:db8::53", "1.1.1.1"], "host_routes": []},
}


def test_meta_data_grows_with_the_version() -> None:
    old = content.meta_data(GUEST, "2012-08-10")
    assert set(old) == {"uuid", "name", "hostname", "launch_index", "availability_zone", "meta", "public_keys"}
    latest = content.meta_data(GUEST, "latest")
    assert latest["keys"] == [{"name": "k", "type": "ssh", "data": "ssh-rsa AAAA k@h"}]
    assert latest["project_id"] == "p1" and latest["devices"] == [] and latest["launch_index"] == 2
    assert content.meta_data(GUEST, "2015-10-15")["project_id"] == "p1"
    assert "devices" not in content.meta_data(GUEST, "2015-10-15")


def test_random_seed_is_fresh_512_bytes() -> None:
    first, second = (base64.b64decode(content.meta_data(GUEST, "latest")["random_seed"]) for _ in range(2))
    assert len(first) == 512 and first != second


def test_no_key_no_key_fields() -> None:
    bare = Guest(id="x", name="n", hostname="n", project_id="p", availability_zone="nova")
    doc = content.meta_data(bare, "latest")
    assert "public_keys" not in doc and "keys" not in doc
    assert "public-keys" not in content.ec2_meta_data(bare, "latest")
    assert "user_data" not in content.openstack_listing(bare, "latest")


def test_openstack_listing_by_version() -> None:
    assert content.openstack_listing(GUEST, "2012-08-10") == ["meta_data.json", "user_data"]
    assert content.openstack_listing(GUEST, "latest") == ["meta_data.json", "user_data", "vendor_data.json",
                                                          "network_data.json", "vendor_data2.json"]


def test_network_data_static_ipv4_and_slaac_ipv6() -> None:
    doc = content.network_data(GUEST, SUBNETS, {"n1": {"id": "n1", "mtu": 1450}})
    assert doc["links"] == [{"id": "tap11112222-33", "vif_id": "11112222-3333-4444-5555-666677778888",
                             "type": "phy", "ethernet_mac_address": "fa:16:3e:aa:bb:cc", "mtu": 1450}]
    v4, v6 = doc["networks"]
    assert v4["id"] == "network0" and v4["type"] == "ipv4" and v4["netmask"] == "255.255.252.0"
    assert v4["routes"] == [] and v4["link"] == "tap11112222-33" and v4["network_id"] == "n1"
    assert v6["id"] == "network1" and v6["type"] == "ipv6_slaac" and v6["netmask"] == "ffff:ffff:ffff:ffff::"
    assert v6["routes"] == [{"network": "::", "netmask": "::", "gateway": "2001:db8::1"}]
    assert [s["address"] for s in doc["services"]] == ["1.1.1.1", "2001:db8::53"]


def test_network_data_types_follow_dhcp_and_unknown_subnets_are_left_out() -> None:
    dhcp = {**SUBNETS["s4"], "enable_dhcp": True}
    assert content.network_data(GUEST, {"s4": dhcp}, {})["networks"][0]["type"] == "ipv4_dhcp"
    static6 = {**SUBNETS["s6"], "ipv6_address_mode": None}
    doc = content.network_data(GUEST, {"s6": static6}, {})
    assert [n["type"] for n in doc["networks"]] == ["ipv6"] and doc["links"][0]["mtu"] is None


def test_ec2_tree_and_lookup() -> None:
    tree = content.ec2_meta_data(GUEST, "latest")
    assert content.lookup(tree, "instance-id") == "i-0a1b2c3d"
    assert content.lookup(tree, "ami-id") == "ami-ffeeddcc"
    assert content.lookup(tree, "local-ipv4") == "10.1.0.9" and content.lookup(tree, "public-ipv4") == ""
    assert content.lookup(tree, "public-keys") == "0=k"
    assert content.lookup(tree, "public-keys/0/openssh-key") == "ssh-rsa AAAA k@h"
    assert content.lookup(tree, "public-keys/0/_name") is None
    assert content.lookup(tree, "hostname/deeper") is None
    listing = content.lookup(tree, "")
    assert listing is not None and "placement/" in listing.splitlines() and "public-keys/" in listing.splitlines()
    old = content.ec2_meta_data(GUEST, "1.0")
    assert "instance-type" not in old and "placement" not in old


def test_user_data_decoding() -> None:
    assert content.decode_user_data(base64.b64encode(b"\x00abc").decode()) == b"\x00abc"
    assert content.decode_user_data(None) is None and content.decode_user_data("") is None


def test_proxy_signature_is_hmac_sha256_hex() -> None:
    assert proxy_signature("s", "id") == hmac.new(b"s", b"id", hashlib.sha256).hexdigest()


def test_shared_secret_is_made_once_and_kept_private(tmp_path: Path) -> None:
    cfg = config_mod.load(state_dir=tmp_path, environ={})
    first = shared_secret(cfg)
    path = tmp_path / "metadata-secret"
    assert len(first) == 64 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert shared_secret(cfg) == first
    path.chmod(0o644)
    assert shared_secret(cfg) == first and stat.S_IMODE(path.stat().st_mode) == 0o600
    configured = config_mod.load(state_dir=tmp_path, environ={"STRATUS_COMPUTE__METADATA_SHARED_SECRET": "abc"})
    assert shared_secret(configured) == "abc"
