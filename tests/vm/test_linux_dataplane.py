"""The Linux network data plane on this host, driven directly with desired-state documents.

"Guests" are network namespaces made here, each with a veth pair whose host end carries the
port's tap name (the data plane uses an existing link of that name as it is) and whose inside end
has the port's MAC. Needs root, iproute2, nftables, dnsmasq, conntrack and busybox (udhcpc, wget).
Traffic goes only to the bridges, veths and namespaces made here; the external network is a
bridge of this test's own (198.18.77.0/24, a benchmarking range), not br-ex.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from stratus.core.metadata_secret import proxy_signature
from stratus.network.dataplane.linux import LinuxDataPlane, LinuxSettings, dhcp, names
from stratus.network.dataplane.linux.dhcp import pid_of
from tests.vm import linux_docs as d

NEEDED = ("ip", "nft", "dnsmasq", "conntrack", "busybox", "ping")
SECRET = "test-metadata-secret"
EXT_CIDR, HOST_IP = "198.18.77.0/24", "198.18.77.1"


def _require_host() -> None:
    if os.geteuid() != 0:
        pytest.fail("the linux data plane tests need root (they make bridges, namespaces and nftables)")
    missing = [tool for tool in NEEDED if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing tools: {', '.join(missing)} (make install-deb puts them in place)")


def sh(*argv: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=timeout)


class Guest:
    """A namespace standing in for a VM on `port`."""

    def __init__(self, port: dict[str, Any], on_bridge: str | None = None) -> None:
        self.port = port
        self.netns = "stxg-" + uuid.uuid4().hex[:8]
        self.outside = names.tap(port["id"]) if on_bridge is None else "stxu" + uuid.uuid4().hex[:8]
        sh("ip", "netns", "add", self.netns)
        sh("ip", "link", "add", self.outside, "type", "veth", "peer", "name", "eth0", "netns", self.netns)
        sh("ip", "-n", self.netns, "link", "set", "eth0", "address", port["mac_address"], "mtu", str(port["mtu"]), "up")
        sh("ip", "-n", self.netns, "link", "set", "lo", "up")
        sh("ip", "link", "set", self.outside, "up")
        if on_bridge is not None:
            sh("ip", "link", "set", self.outside, "master", on_bridge)

    def run(self, *argv: str, check: bool = False, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", self.netns, *argv, check=check, timeout=timeout)

    def configure(self, address: str, prefix: int, gateway: str) -> None:
        self.run("ip", "addr", "add", f"{address}/{prefix}", "dev", "eth0", check=True)
        self.run("ip", "route", "add", "default", "via", gateway, check=True)

    def ping(self, target: str, source: str | None = None, tries: int = 1) -> bool:
        """Whether `target` answers one ping (of up to `tries`: a busy machine may lose the first
        to ARP; a test expecting silence asks once)."""
        argv = ["ping", "-c", "1", "-W", "1", target] + (["-I", source] if source else [])
        return any(self.run(*argv).returncode == 0 for _ in range(tries))

    def destroy(self) -> None:
        sh("ip", "link", "del", self.outside, check=False)
        sh("ip", "netns", "del", self.netns, check=False)


class MetadataStub:
    """A metadata service on the host that answers only requests carrying the proxy's signed headers."""

    def __init__(self, expected: dict[str, str]) -> None:
        self.expected = expected  # instance id -> the body to answer
        self.seen: list[dict[str, str]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                headers = {k.lower(): v for k, v in self.headers.items()}
                stub.seen.append(headers)
                instance = headers.get("x-instance-id", "")
                good = headers.get("x-instance-id-signature") == proxy_signature(SECRET, instance)
                body = stub.expected.get(instance, "") if good else ""
                self.send_response(200 if body else 403)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class World:
    """Two projects with the same 10.0.0.0/24, each with a router to the external network."""

    def __init__(self, tmp: Path) -> None:
        self.ext_bridge = "stxex" + uuid.uuid4().hex[:8]
        self.lookup_table: dict[tuple[str, str], dict[str, str]] = {}
        self.sg_a, self.sg_b = d.new_id(), d.new_id()
        ext_sub = d.subnet(EXT_CIDR, HOST_IP, dhcp=False)
        self.ext = d.network(ext_sub, d.segment("flat", "public", None), mtu=1500)
        self.net_a = d.network(d.subnet("10.0.0.0/24", "10.0.0.1"), d.segment(seg_id=101), dhcp_ip="10.0.0.2")
        self.net_b = d.network(d.subnet("10.0.0.0/24", "10.0.0.1"), d.segment(seg_id=102), dhcp_ip="10.0.0.2")
        self.a1 = d.port(self.net_a, "10.0.0.5", [self.sg_a])
        self.a2 = d.port(self.net_a, "10.0.0.6", [self.sg_a])
        self.b1 = d.port(self.net_b, "10.0.0.5", [self.sg_b])
        self.net_a = d.with_hosts(self.net_a, [self.a1, self.a2])
        self.net_b = d.with_hosts(self.net_b, [self.b1])
        self.base_rules_a = [d.rule("egress"), d.rule("ingress", remote_group=self.sg_a)]
        self.group_a = d.group(self.sg_a, self.base_rules_a, [self.a1, self.a2])
        self.group_b = d.group(self.sg_b, [d.rule("egress"), d.rule("ingress", "icmp", "0.0.0.0/0")], [self.b1])
        self.router_a = d.router(self.net_a, self.ext, "198.18.77.10", [("198.18.77.20", self.a1)])
        self.router_b = d.router(self.net_b, self.ext, "198.18.77.11")
        for p in (self.a1, self.a2, self.b1):
            self.lookup_table[(p["network_id"], p["fixed_ips"][0]["ip_address"])] = {
                "instance_id": p["device_id"], "project_id": "project-of-" + p["network_id"][:4]}
        self.metadata = MetadataStub({self.a1["device_id"]: "hello " + self.a1["device_id"]})
        settings = LinuxSettings(state_dir=tmp / "state", bridge_mappings={"public": self.ext_bridge},
                                 metadata_port=self.metadata.port, metadata_secret=SECRET)
        self.plane = LinuxDataPlane(settings, lambda n, a: self.lookup_table.get((n, a)),
                                    lambda instance: proxy_signature(SECRET, instance))
        self.guests: list[Guest] = []

    def state(self, group_a: Any = None) -> Any:
        return d.state([self.ext, self.net_a, self.net_b], [self.a1, self.a2, self.b1],
                       [self.router_a, self.router_b], [group_a or self.group_a, self.group_b])

    def guest(self, port: dict[str, Any], on_bridge: str | None = None) -> Guest:
        guest = Guest(port, on_bridge)
        self.guests.append(guest)
        return guest

    def cleanup(self) -> None:
        try:
            self.plane.sync(d.state([], [], [], []))
        finally:
            self.plane.close()
            self.metadata.close()
            for guest in self.guests:
                guest.destroy()
            sh("ip", "link", "del", self.ext_bridge, check=False)
            for table in (f"inet {names.FILTER_TABLE}", f"bridge {names.PORT_MARK_TABLE}"):
                sh("nft", "delete", "table", *table.split(), check=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    _require_host()
    w = World(tmp_path_factory.mktemp("linux-dataplane"))
    try:
        # Guests first: the data plane must take the existing "tap" links as they are.
        w.ga1, w.ga2, w.gb1 = w.guest(w.a1), w.guest(w.a2), w.guest(w.b1)
        wired = w.plane.sync(w.state())
        w.wired = wired
        sh("ip", "addr", "replace", f"{HOST_IP}/24", "dev", w.ext_bridge)
        w.ga1.configure("10.0.0.5", 24, "10.0.0.1")
        w.ga2.configure("10.0.0.6", 24, "10.0.0.1")
        w.gb1.configure("10.0.0.5", 24, "10.0.0.1")
        yield w
    finally:
        w.cleanup()


def test_everything_is_wired(world: World) -> None:
    expected = {world.a1["id"], world.a2["id"], world.b1["id"], world.net_a["dhcp"]["port_id"],
                world.router_a["gateway"]["port_id"], world.router_a["interfaces"][0]["port_id"]}
    assert expected <= world.wired.ports
    assert {f["id"] for f in world.router_a["floating_ips"]} == world.wired.floating_ips
    assert pid_of(world.plane.dhcp.pid_file(world.net_a["id"])) is not None


def test_dhcp_gives_the_reserved_address_and_nothing_to_strangers(world: World, tmp_path: Path) -> None:
    script = tmp_path / "udhcpc.sh"
    out = tmp_path / "lease"
    script.write_text(f'#!/bin/sh\n[ "$1" = bound ] && echo "$ip $subnet $router $mtu $hostname" > {out}\nexit 0\n')
    script.chmod(0o755)
    udhcpc = ("busybox", "udhcpc", "-i", "eth0", "-q", "-n", "-f", "-T", "1", "-O", "mtu", "-s", str(script))
    done = world.ga2.run(*udhcpc, "-t", "4", timeout=30)
    assert done.returncode == 0, done.stderr
    assert out.read_text().split() == ["10.0.0.6", "255.255.255.0", "10.0.0.1", "1450", "host-10-0-0-6"]
    stranger_port = d.port(world.net_a, "10.0.0.77", [])  # never given to the data plane
    stranger = world.guest(stranger_port, on_bridge=names.bridge(world.net_a["id"]))
    out.unlink()
    done = stranger.run(*udhcpc, "-t", "2", timeout=30)
    assert done.returncode != 0 and not out.exists()


def test_guests_reach_their_own_router_and_the_outside(world: World) -> None:
    assert world.ga1.ping("10.0.0.1", tries=3)
    assert world.gb1.ping("10.0.0.1", tries=3)
    assert world.gb1.ping(HOST_IP, tries=3)  # SNAT through router B's gateway


def test_overlapping_projects_cannot_reach_each_other(world: World) -> None:
    assert world.ga1.ping("10.0.0.6", tries=3)  # same project, same group
    assert not world.gb1.ping("10.0.0.6")  # A2's address in project A is nothing in project B


def _host_ping(target: str, tries: int = 1) -> bool:
    return any(sh("ping", "-c", "1", "-W", "1", target, check=False).returncode == 0 for _ in range(tries))


def test_floating_ip_follows_the_icmp_rule(world: World) -> None:
    fip = "198.18.77.20"
    assert not _host_ping(fip), "no rule admits ICMP from outside yet"
    icmp = d.rule("ingress", "icmp", "0.0.0.0/0")
    world.plane.apply_security_group(d.group(world.sg_a, [*world.base_rules_a, icmp], [world.a1, world.a2]))
    assert _host_ping(fip, tries=3)
    pinger = subprocess.Popen(["ping", "-D", "-i", "0.2", "-W", "1", fip], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        removed_at = time.time()
        world.plane.apply_security_group(d.group(world.sg_a, world.base_rules_a, [world.a1, world.a2]))
        time.sleep(2.5)
    finally:
        pinger.terminate()
        output, _ = pinger.communicate(timeout=5)
    replies = [float(line[1:line.index("]")]) for line in output.splitlines() if "bytes from" in line]
    assert any(t < removed_at for t in replies), output
    assert not [t for t in replies if t > removed_at + 2.0], f"replies after the rule went:\n{output}"


def test_forged_source_address_is_dropped(world: World) -> None:
    world.ga2.run("ip", "addr", "add", "10.0.0.99/24", "dev", "eth0", check=True)
    try:
        assert world.ga2.ping("10.0.0.1", source="10.0.0.6", tries=3)
        assert not world.ga2.ping("10.0.0.1", source="10.0.0.99")
        open_port = d.PortDoc(**{**world.a2, "port_security_enabled": False})  # type: ignore[typeddict-item]
        world.plane.apply_port(open_port)  # no port security: no anti-spoofing, no filter
        assert world.ga2.ping("10.0.0.1", source="10.0.0.99", tries=3)
    finally:
        world.plane.apply_port(world.a2)
        world.ga2.run("ip", "addr", "del", "10.0.0.99/24", "dev", "eth0")
    assert not world.ga2.ping("10.0.0.1", source="10.0.0.99")


def test_metadata_proxy_signs_for_the_guest_and_ignores_its_headers(world: World) -> None:
    url = "http://169.254.169.254/latest/meta-data/instance-id"
    done = world.ga1.run("busybox", "wget", "-q", "-O", "-", "--header", "X-Instance-ID: someone-else", url)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello " + world.a1["device_id"]
    seen = world.metadata.seen[-1]
    assert seen["x-instance-id"] == world.a1["device_id"]
    assert seen["x-forwarded-for"] == "10.0.0.5"
    assert seen["x-neutron-network-id"] == world.net_a["id"]
    assert seen["x-tenant-id"] == "project-of-" + world.net_a["id"][:4]


def test_a_new_reservation_reloads_dnsmasq_without_restarting_it(world: World, tmp_path: Path) -> None:
    pid = pid_of(world.plane.dhcp.pid_file(world.net_a["id"]))
    assert pid is not None
    a3 = d.port(world.net_a, "10.0.0.7", [world.sg_a])
    guest = world.guest(a3)
    assert a3["id"] in world.plane.apply_port(a3).ports
    world.plane.apply_network(d.with_hosts(world.net_a, [world.a1, world.a2, a3]))
    assert pid_of(world.plane.dhcp.pid_file(world.net_a["id"])) == pid
    script, out = tmp_path / "udhcpc.sh", tmp_path / "lease"
    script.write_text(f'#!/bin/sh\n[ "$1" = bound ] && echo "$ip" > {out}\nexit 0\n')
    script.chmod(0o755)
    done = guest.run("busybox", "udhcpc", "-i", "eth0", "-q", "-n", "-f", "-T", "1", "-t", "4", "-s", str(script),
                     timeout=30)
    log = world.plane.dhcp.directory(world.net_a["id"]) / "log"
    assert done.returncode == 0 and out.read_text().strip() == "10.0.0.7", done.stderr + log.read_text()[-2000:]
    world.plane.remove_port(a3["id"])
    assert not Path(f"/sys/class/net/{names.tap(a3['id'])}").exists()
    world.plane.apply_network(world.net_a)  # a reservation gone: dnsmasq starts again without it
    hosts = (world.plane.dhcp.directory(world.net_a["id"]) / "hosts.d" / "hosts").read_text()
    assert a3["mac_address"] not in hosts
    assert pid_of(world.plane.dhcp.pid_file(world.net_a["id"])) not in (None, pid)


def test_remote_group_membership_is_a_set_update(world: World) -> None:
    assert world.ga2.ping("10.0.0.5", tries=3)  # A2 is a member of the group A1's rule admits
    chain = sh("nft", "list", "chain", "inet", names.FILTER_TABLE, "in_" + world.a1["id"].replace("-", "_")).stdout
    only_a1 = d.group(world.sg_a, world.base_rules_a, [world.a1])
    try:
        world.plane.apply_security_group(only_a1)
        assert not world.ga2.ping("10.0.0.5")
        after = sh("nft", "list", "chain", "inet", names.FILTER_TABLE, "in_" + world.a1["id"].replace("-", "_")).stdout
        assert after == chain  # the port's chain was not rewritten
    finally:
        world.plane.apply_security_group(world.group_a)
    assert world.ga2.ping("10.0.0.5", tries=3)


def test_a_second_sync_of_the_same_state_keeps_everything_working(world: World) -> None:
    pid = pid_of(world.plane.dhcp.pid_file(world.net_a["id"]))
    wired = world.plane.sync(world.state())
    assert {world.a1["id"], world.a2["id"], world.b1["id"]} <= wired.ports
    assert pid_of(world.plane.dhcp.pid_file(world.net_a["id"])) == pid  # nothing to restart
    assert world.ga1.ping("10.0.0.1", tries=3) and world.gb1.ping(HOST_IP, tries=3)
    assert not _host_ping("198.18.77.20")  # still filtered: no rule admits ICMP from outside


def test_sync_with_nothing_removes_everything(world: World) -> None:
    pids = [pid_of(world.plane.dhcp.pid_file(n["id"])) for n in (world.net_a, world.net_b)]
    assert all(pids)
    world.plane.sync(d.state([], [], [], []))
    links = sh("ip", "-o", "link", "show").stdout
    ours = [n for n in (names.bridge(world.net_a["id"]), names.bridge(world.net_b["id"]),
                        names.tap(world.a1["id"]), names.tap(world.b1["id"]),
                        names.DHCP_OUTSIDE + names.short(world.net_a["dhcp"]["port_id"]),
                        names.ROUTER_OUTSIDE + names.short(world.router_a["interfaces"][0]["port_id"]),
                        names.GATEWAY_OUTSIDE + names.short(world.router_a["gateway"]["port_id"]))
            if f" {n}:" in links or f" {n}@" in links]
    assert ours == []
    netns = sh("ip", "netns", "list").stdout
    for router in (world.router_a, world.router_b):
        assert names.router_namespace(router["id"]) not in netns
    for net in (world.net_a, world.net_b):
        assert names.dhcp_namespace(net["id"]) not in netns
    tables = sh("nft", "list", "tables").stdout
    assert names.FILTER_TABLE in tables  # the (now empty) tables stay; their ports are gone
    assert world.plane.firewall.ports() == set()
    assert not any(dhcp.alive(pid) for pid in pids if pid is not None)  # gone, or a zombie nobody reaped yet
    assert world.plane.proxies.routers() == set()


def test_stratus_up_with_the_linux_data_plane_builds_the_default_router(tmp_path: Path) -> None:
    """The whole path: `stratus up` seeds public/private/router, the agent gets them from the
    conductor and builds the router, and the host reaches the router's gateway on its bridge."""
    _require_host()
    from tests.clients.conftest import launch, stop
    from tests.ports import free_port

    bridge = "stxup" + uuid.uuid4().hex[:8]
    state = tmp_path / "state"
    state.mkdir()
    (state / "stratus.toml").write_text(
        '[compute]\ndriver = "fake"\n'
        f'[network]\nagent_dataplane = "linux"\nhost = "linuxtest-{uuid.uuid4().hex[:6]}"\n'
        f'bridge_mappings = ["public:{bridge}"]\nexternal_network_cidr = "198.18.78.0/24"\n')
    proc = launch(state, free_port(), real_vms=True)
    router_ns = ""
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            router_ns = next((n for n in sh("ip", "netns", "list").stdout.split()
                              if n.startswith(names.ROUTER_NS) and _has_gateway(n, "198.18.78.")), "")
            if router_ns:
                break
            time.sleep(0.5)
        log = (state / "stratus-up.log").read_text(errors="replace")
        assert router_ns, f"no router namespace with a gateway on 198.18.78.0/24; stratus up said:\n{log[-3000:]}"
        gateway = _has_gateway(router_ns, "198.18.78.")
        assert _host_ping(gateway, tries=3)
        assert "198.18.78.1/24" in sh("ip", "-o", "addr", "show", "dev", bridge).stdout
    finally:
        stop(proc, state)
        plane = LinuxDataPlane(LinuxSettings(state_dir=state / "network-linux", bridge_mappings={"public": bridge}),
                               lambda n, a: None, lambda i: "")
        plane.sync(d.state([], [], [], []))
        plane.close()
        sh("ip", "link", "del", bridge, check=False)
        for table in (f"inet {names.FILTER_TABLE}", f"bridge {names.PORT_MARK_TABLE}"):
            sh("nft", "delete", "table", *table.split(), check=False)


def _has_gateway(netns: str, prefix: str) -> str:
    """The address starting with `prefix` in `netns`, or ""."""
    out = sh("ip", "-n", netns, "-o", "-4", "addr", "show", check=False).stdout
    for word in out.split():
        if word.startswith(prefix):
            return word.split("/")[0]
    return ""


def test_flat_vlan_and_vxlan_uplinks_join_the_bridge(tmp_path: Path) -> None:
    _require_host()
    from stratus.network.dataplane.linux import links

    dummy = "stxd" + uuid.uuid4().hex[:8]  # the "host interface": one end of a veth (no dummy driver here)
    sh("ip", "link", "add", dummy, "type", "veth", "peer", "name", "stxe" + dummy[4:])
    settings = LinuxSettings(state_dir=tmp_path, physical_interface_mappings={"physnet1": dummy},
                             vxlan_local_ip="127.0.0.1", vxlan_peers=["127.0.0.2"])
    vlan_net, vxlan_net, flat_net = d.new_id(), d.new_id(), d.new_id()
    try:
        probe = sh("ip", "link", "add", "link", dummy, "name", "stxv" + dummy[4:], "type", "vlan", "id", "9",
                   check=False)
        sh("ip", "link", "del", "stxv" + dummy[4:], check=False)
        if "Unknown device type" in probe.stderr:  # this kernel has no 802.1q: refused, and said so
            with pytest.raises(links.UnsupportedSegment, match="802.1q"):
                links.ensure_network(settings, vlan_net, d.segment("vlan", "physnet1", 123), 1400)
        else:
            bridge = links.ensure_network(settings, vlan_net, d.segment("vlan", "physnet1", 123), 1400)
            info = sh("ip", "-d", "link", "show", names.vlan(vlan_net)).stdout
            assert "vlan protocol 802.1Q id 123" in info and f"master {bridge}" in info and "mtu 1400" in info
        bridge = links.ensure_network(settings, vxlan_net, d.segment("vxlan", None, 4242), 1450)
        info = sh("ip", "-d", "link", "show", names.vxlan(vxlan_net)).stdout
        assert "vxlan id 4242" in info and "local 127.0.0.1" in info and f"master {bridge}" in info
        assert "dst 127.0.0.2" in sh("bridge", "fdb", "show", "dev", names.vxlan(vxlan_net)).stdout
        bridge = links.ensure_network(settings, flat_net, d.segment("flat", "physnet1", None), 1500)
        assert f"master {bridge}" in sh("ip", "link", "show", dummy).stdout
    finally:
        for network_id in (vlan_net, vxlan_net, flat_net):
            links.remove_network(network_id)
        sh("ip", "link", "del", dummy, check=False)
    assert names.bridge(vlan_net) not in sh("ip", "-o", "link", "show").stdout
