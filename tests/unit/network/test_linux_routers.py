"""A router's NAT table and the data plane's names and settings (no kernel needed)."""

from __future__ import annotations

import pytest

from stratus.core.config import Config, ConfigError, load
from stratus.network.dataplane.linux import names, routers
from stratus.network.rpc import RouterDoc

SEG = {"network_type": "flat", "physical_network": "public", "segmentation_id": None}


def router(enable_snat: bool = True) -> RouterDoc:
    return RouterDoc(
        id="r", admin_state_up=True, enable_snat=enable_snat, routes=[], interfaces=[],
        gateway={"network_id": "ext", "port_id": "gwport-0000-1111", "mac_address": "fa:16:3e:00:00:01",
                 "segment": SEG, "mtu": 1500,  # type: ignore[typeddict-item]
                 "addresses": [{"subnet_id": "s", "ip_address": "172.24.4.10", "cidr": "172.24.4.0/24",
                                "gateway_ip": "172.24.4.1"}]},
        floating_ips=[{"id": "f", "floating_ip_address": "172.24.4.20", "fixed_ip_address": "10.0.0.5",
                       "port_id": "p"}])


def test_floating_ip_dnat_and_snat_before_the_router_snat() -> None:
    script = routers._nat_script(router(), "qg-gwport-0000")
    assert script.startswith("table ip stratus_router\ndelete table ip stratus_router\n")
    assert "ip daddr 172.24.4.20 dnat to 10.0.0.5" in script
    fip_snat = 'oifname "qg-gwport-0000" ip saddr 10.0.0.5 snat to 172.24.4.20'
    router_snat = 'oifname "qg-gwport-0000" snat to 172.24.4.10'
    assert script.index(fip_snat) < script.index(router_snat)


def test_without_snat_only_floating_ips_are_translated() -> None:
    script = routers._nat_script(router(enable_snat=False), "qg-gwport-0000")
    assert "snat to 172.24.4.10" not in script
    assert "snat to 172.24.4.20" in script


def test_names_fit_linux_interface_names_and_zones_are_stable() -> None:
    port = "0123456789abcdef-0000-0000-0000-000000000000"
    for name in (names.tap(port), names.bridge(port), names.vxlan(port), names.vlan(port),
                 names.DHCP_OUTSIDE + names.short(port), names.ROUTER_OUTSIDE + names.short(port),
                 names.GATEWAY_OUTSIDE + names.short(port)):
        assert len(name) <= 15, name
    assert names.tap(port) == "tap0123456789a"
    assert names.conntrack_zone(port) == names.conntrack_zone(port)
    assert 1 <= names.conntrack_zone(port) <= 65000


def test_config_takes_linux_and_checks_mappings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATUS_NETWORK__AGENT_DATAPLANE", "linux")
    monkeypatch.setenv("STRATUS_NETWORK__PHYSICAL_INTERFACE_MAPPINGS", "physnet1:eth1")
    cfg: Config = load()
    assert cfg.network.agent_dataplane == "linux"
    assert cfg.network.physical_interface_mappings == ["physnet1:eth1"]
    assert cfg.network.bridge_mappings == ["public:br-ex"]
    monkeypatch.setenv("STRATUS_NETWORK__BRIDGE_MAPPINGS", "public")
    with pytest.raises(ConfigError, match="bridge_mappings"):
        load()
