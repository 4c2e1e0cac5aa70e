"""DHCP for a network: a namespace `qdhcp-<network>` holding the DHCP port (a veth whose other end
is on the network's bridge) and one dnsmasq serving fixed MAC -> address reservations only.

dnsmasq gets `dhcp-range=...,static` per IPv4 DHCP subnet, so a MAC without a reservation gets no
lease. Reservations live in a file of dnsmasq's `--dhcp-hostsdir`, which it watches (inotify) and
reads again when it changes: a new port needs no signal and no restart. SIGHUP is not used: the
dnsmasq of Debian 12 (2.90) crashes (SIGSEGV, seen with strace here) on SIGHUP once it has handed
out a lease. So a reservation going away, new options or a new command line (subnets, lease time,
interface) restart it. dnsmasq is found by its PID file and stopped by that PID.

Metadata: guests reach 169.254.169.254 through their default gateway, the router, whose namespace
runs the proxy (metadata_proxy.py). So DHCP sends no extra route for it; networks without a router
have no metadata. Host routes go out as the classless static route option (121), which replaces
the router option for clients that know it, so it carries the default route too.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import shutil
import signal
import time
from pathlib import Path

from stratus.network.dataplane.linux import links, names, namespaces
from stratus.network.dataplane.linux.commands import in_netns, run
from stratus.network.dataplane.linux.settings import LinuxSettings
from stratus.network.rpc import NetworkDoc, SubnetDoc

log = logging.getLogger("stratus.network.dataplane.linux")

DNSMASQ = "dnsmasq"


class DhcpServers:
    def __init__(self, settings: LinuxSettings) -> None:
        self.settings = settings
        self.root = settings.state_dir / "dhcp"

    def directory(self, network_id: str) -> Path:
        return self.root / network_id

    def pid_file(self, network_id: str) -> Path:
        return self.directory(network_id) / "dnsmasq.pid"

    # --- applying -------------------------------------------------------------------------------

    def apply(self, doc: NetworkDoc, bridge: str) -> bool:
        """Serve DHCP for `doc` (whose `dhcp` is set) on `bridge`; whether the DHCP port is wired."""
        dhcp = doc["dhcp"]
        assert dhcp is not None
        subnets = [s for s in doc["subnets"] if s["enable_dhcp"] and s["ip_version"] == 4]
        netns = names.dhcp_namespace(doc["id"])
        namespaces.ensure(netns)
        inside = names.DHCP_INSIDE + names.short(dhcp["port_id"])
        links.ensure_veth(names.DHCP_OUTSIDE + names.short(dhcp["port_id"]), inside, netns,
                          dhcp["mac_address"], doc["mtu"], bridge)
        by_subnet = {s["id"]: s for s in doc["subnets"]}
        addresses = [f"{a['ip_address']}/{ipaddress.ip_network(by_subnet[a['subnet_id']]['cidr']).prefixlen}"
                     for a in dhcp["addresses"] if a["subnet_id"] in by_subnet]
        namespaces.set_addresses(inside, addresses, netns)
        directory = self.directory(doc["id"])
        (directory / "hosts.d").mkdir(parents=True, exist_ok=True)
        tags = {s["id"]: f"s{i}" for i, s in enumerate(subnets)}
        hosts_file, opts_file = directory / "hosts.d" / "hosts", directory / "opts"
        old_hosts = set(hosts_file.read_text().splitlines()) if hosts_file.exists() else set()
        old_opts = opts_file.read_text() if opts_file.exists() else None
        hosts, opts = _hosts(doc, tags), _options(subnets, tags, doc["mtu"])
        argv = self._argv(doc["id"], inside, subnets, tags)
        fingerprint = hashlib.sha256("\0".join(argv).encode()).hexdigest()
        pid = self.running_pid(doc["id"])
        stamp = directory / "argv.sha256"
        # New reservations only: dnsmasq reads them from its hosts dir by itself (inotify).
        additions_only = (pid is not None and stamp.exists() and stamp.read_text() == fingerprint
                          and old_hosts <= set(hosts.splitlines()) and old_opts == opts)
        _write(hosts_file, hosts, directory)
        _write(opts_file, opts, directory)
        if not additions_only:
            if pid is not None:
                self._stop(pid, doc["id"])
            if subnets:
                run(in_netns(netns, argv))
                stamp.write_text(fingerprint)
        return True

    def _argv(self, network_id: str, interface: str, subnets: list[SubnetDoc], tags: dict[str, str]) -> list[str]:
        directory = self.directory(network_id)
        argv = [DNSMASQ, "--no-hosts", "--no-resolv", "--port=0", "--bind-interfaces",
                f"--interface={interface}", "--except-interface=lo", f"--pid-file={self.pid_file(network_id)}",
                f"--dhcp-hostsdir={directory / 'hosts.d'}", f"--dhcp-optsfile={directory / 'opts'}",
                f"--dhcp-leasefile={directory / 'leases'}", "--dhcp-authoritative", "--dhcp-ignore=tag:!known",
                # The files live in the state dir, which only root may read.
                "--user=root", "--group=root", f"--log-facility={directory / 'log'}"]
        for subnet in subnets:
            net = ipaddress.ip_network(subnet["cidr"])
            argv.append(f"--dhcp-range=set:{tags[subnet['id']]},{net.network_address},static,"
                        f"{net.netmask},{self.settings.dhcp_lease_seconds}s")
        return argv

    # --- processes ------------------------------------------------------------------------------

    def running_pid(self, network_id: str) -> int | None:
        return pid_of(self.pid_file(network_id))

    def _stop(self, pid: int, network_id: str) -> None:
        stop_pid(pid)
        self.pid_file(network_id).unlink(missing_ok=True)

    def remove(self, network_id: str) -> None:
        pid = self.running_pid(network_id)
        if pid is not None:
            self._stop(pid, network_id)
        shutil.rmtree(self.directory(network_id), ignore_errors=True)
        namespaces.delete(names.dhcp_namespace(network_id))

    def served(self) -> list[str]:
        """Networks with a DHCP directory (a dnsmasq running or not)."""
        return sorted(p.name for p in self.root.iterdir()) if self.root.is_dir() else []


def pid_of(pid_file: Path) -> int | None:
    """The PID in `pid_file` if that process is alive and is dnsmasq."""
    try:
        pid = int(pid_file.read_text().strip())
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError):
        return None
    return pid if comm == DNSMASQ and alive(pid) else None


def stop_pid(pid: int, wait: float = 5.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def alive(pid: int) -> bool:
    """Running, and not a zombie: dnsmasq daemonizes, so its parent is PID 1, which in a container
    may never reap it; waiting for /proc/PID to vanish would then always take the whole wait."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _write(path: Path, text: str, scratch: Path) -> None:
    """Replace `path` whole (dnsmasq may read it at any moment); the temporary file is made in
    `scratch`, outside the directory dnsmasq watches."""
    temp = scratch / (".new-" + path.name)
    temp.write_text(text)
    temp.replace(path)


def _hosts(doc: NetworkDoc, tags: dict[str, str]) -> str:
    lines = []
    for host in sorted(doc["dhcp_hosts"], key=lambda h: (h["ip_address"], h["mac_address"])):
        if host["subnet_id"] in tags and ":" not in host["ip_address"]:
            lines.append(f"{host['mac_address']},set:{tags[host['subnet_id']]},{host['ip_address']},{host['hostname']}\n")
    return "".join(lines)


def _options(subnets: list[SubnetDoc], tags: dict[str, str], mtu: int) -> str:
    lines = []
    for subnet in subnets:
        tag = tags[subnet["id"]]
        gateway = subnet["gateway_ip"]
        lines.append(f"tag:{tag},option:router{',' + gateway if gateway else ''}\n")
        if subnet["dns_nameservers"]:
            lines.append(f"tag:{tag},option:dns-server,{','.join(subnet['dns_nameservers'])}\n")
        routes = [(r["destination"], r["nexthop"]) for r in subnet["host_routes"] if ":" not in r["destination"]]
        if routes:
            if gateway:
                routes.append(("0.0.0.0/0", gateway))
            lines.append(f"tag:{tag},option:classless-static-route,"
                         + ",".join(f"{dst},{hop}" for dst, hop in routes) + "\n")
        lines.append(f"tag:{tag},option:mtu,{mtu}\n")
    return "".join(lines)
