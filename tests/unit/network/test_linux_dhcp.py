"""dnsmasq's files and command line for a network (no kernel needed)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from stratus.network.dataplane.linux import dhcp
from stratus.network.dataplane.linux.settings import LinuxSettings
from stratus.network.rpc import NetworkDoc, SubnetDoc


def subnet(**fields: object) -> SubnetDoc:
    base = {"id": "s1", "ip_version": 4, "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1", "enable_dhcp": True,
            "ipv6_address_mode": None, "ipv6_ra_mode": None, "dns_nameservers": [], "host_routes": [],
            "allocation_pools": []}
    return SubnetDoc(**{**base, **fields})  # type: ignore[typeddict-item]


def test_hosts_are_reservations_of_known_subnets_only() -> None:
    doc = NetworkDoc(id="n", admin_state_up=True, mtu=1450, segment={"network_type": "local",
                     "physical_network": None, "segmentation_id": None}, subnets=[subnet()], dhcp=None,
                     dhcp_hosts=[{"port_id": "p", "subnet_id": "s1", "mac_address": "fa:16:3e:00:00:01",
                                  "ip_address": "10.0.0.5", "hostname": "host-10-0-0-5"},
                                 {"port_id": "q", "subnet_id": "other", "mac_address": "fa:16:3e:00:00:02",
                                  "ip_address": "10.9.0.5", "hostname": "host-10-9-0-5"}])
    assert dhcp._hosts(doc, {"s1": "s0"}) == "fa:16:3e:00:00:01,set:s0,10.0.0.5,host-10-0-0-5\n"


def test_options_gateway_dns_mtu_and_host_routes_with_the_default_route() -> None:
    sub = subnet(dns_nameservers=["192.0.2.53", "192.0.2.54"],
                 host_routes=[{"destination": "172.16.0.0/16", "nexthop": "10.0.0.254"}])
    text = dhcp._options([sub], {"s1": "s0"}, 1450)
    assert "tag:s0,option:router,10.0.0.1\n" in text
    assert "tag:s0,option:dns-server,192.0.2.53,192.0.2.54\n" in text
    assert "tag:s0,option:classless-static-route,172.16.0.0/16,10.0.0.254,0.0.0.0/0,10.0.0.1\n" in text
    assert "tag:s0,option:mtu,1450\n" in text


def test_no_gateway_sends_an_empty_router_option() -> None:
    assert "tag:s0,option:router\n" in dhcp._options([subnet(gateway_ip=None)], {"s1": "s0"}, 1500)


def test_ranges_are_static_so_unknown_macs_get_nothing(tmp_path: Path) -> None:
    servers = dhcp.DhcpServers(LinuxSettings(state_dir=tmp_path, dhcp_lease_seconds=600))
    argv = servers._argv("n", "ns-x", [subnet()], {"s1": "s0"})
    assert "--dhcp-range=set:s0,10.0.0.0,static,255.255.255.0,600s" in argv
    assert "--dhcp-ignore=tag:!known" in argv
    assert f"--pid-file={tmp_path / 'dhcp' / 'n' / 'dnsmasq.pid'}" in argv


def test_a_pid_file_of_another_program_is_not_dnsmasq(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    pid_file.write_text("1\n")  # init, never dnsmasq
    assert dhcp.pid_of(pid_file) is None
    assert dhcp.pid_of(tmp_path / "missing") is None


def test_a_dead_but_unreaped_dnsmasq_counts_as_stopped() -> None:
    # dnsmasq daemonizes; a container's PID 1 may never reap it, leaving a zombie after SIGTERM.
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert dhcp.alive(child.pid)
        child.terminate()
        deadline = time.monotonic() + 5
        while dhcp.alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not dhcp.alive(child.pid)  # exited, not yet reaped: a zombie
        started = time.monotonic()
        dhcp.stop_pid(child.pid)
        assert time.monotonic() - started < 1
    finally:
        child.kill()
        child.wait()
