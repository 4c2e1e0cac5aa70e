"""Issue 6 acceptance: real VMs through the official `openstack` CLI against `stratus up` with the
qemu compute driver and the linux network data plane, as a user sees them.

One cloud is shared by the whole module and the tests build on each other in file order (TCG boots
cost seconds each): acceptance 1 boots server A in the admin project, 2 toggles ICMP through its
floating IP, 3 adds project B with the same 10.0.0.0/24 and server B, 4 runs the power operations
on A, restarts the whole `stratus up` (agents included; the VMs are separate processes and must
outlive it) and boots a snapshot of A as server C, and 5 deletes everything and lists what is left.

The external network lives on a bridge of this module's own (not br-ex) in a benchmarking range, so
that nothing here touches a real br-ex; everything made is removed at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from stratus.compute.drivers.qemu import process
from stratus.compute.drivers.qemu.spec import InstanceDir
from stratus.network.dataplane.linux import LinuxDataPlane, LinuxSettings, names
from tests.clients.conftest import Cloud, launch, stop
from tests.ports import free_port
from tests.vm import linux_docs as d

NEEDED = ("qemu-system-x86_64", "qemu-img", "ip", "nft", "dnsmasq", "ssh", "ping")
EXT_CIDR = "198.18.80.0/24"
WAIT = 180.0  # a TCG boot on a busy 2-core machine


def _require_host() -> None:
    if os.geteuid() != 0:
        pytest.fail("the VM acceptance tests need root (bridges, taps, namespaces, nftables)")
    missing = [tool for tool in NEEDED if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing tools: {', '.join(missing)} (make install-deb puts them in place)")


def _until(what: str, check: Any, timeout: float = WAIT, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    pytest.fail(f"{what} did not happen within {timeout:g} s")


def sh(*argv: str, check: bool = False, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=timeout)


def host_ping(address: str) -> bool:
    return sh("ping", "-c", "1", "-W", "1", address).returncode == 0


@dataclass
class Server:
    id: str
    name: str
    key: Path
    fixed_ip: str = ""
    floating_ip: str = ""
    port_ids: list[str] = field(default_factory=list)

    def ssh(self, command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """`command` run in the guest as root over SSH through the floating IP."""
        return sh("ssh", "-i", str(self.key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                  "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
                  f"root@{self.floating_ip}", command, timeout=timeout)

    def wait_ssh(self, timeout: float = WAIT) -> None:
        _until(f"SSH to {self.name} at {self.floating_ip}", lambda: self.ssh("true", 15).returncode == 0, timeout, 1.0)


@dataclass
class World:
    cloud: Cloud
    state: Path
    host: str
    bridge: str
    proc: subprocess.Popen[bytes]
    port: int
    servers: dict[str, Server] = field(default_factory=dict)
    made: dict[str, Any] = field(default_factory=dict)  # names and ids the later tests use
    gone: list[tuple[str, str]] = field(default_factory=list)  # (kind, id) of every resource made

    # --- the cloud's APIs over HTTP as the admin: quicker than a CLI call per poll ---------------
    def token(self) -> tuple[str, dict[str, str]]:
        token, body = self.cloud.admin_token()
        urls = {entry["type"]: next(e["url"] for e in entry["endpoints"] if e["interface"] == "public")
                for entry in body["catalog"]}
        return token, urls

    def api(self, method: str, service: str, path: str, **kwargs: Any) -> httpx.Response:
        token, urls = self.token()
        return httpx.request(method, urls[service].rstrip("/") + path, headers={"X-Auth-Token": token},
                             timeout=60, **kwargs)

    def server(self, server_id: str) -> dict[str, Any]:
        answer = self.api("GET", "compute", f"/servers/{server_id}")
        return answer.json()["server"] if answer.status_code == 200 else {}  # type: ignore[no-any-return]

    def wait_status(self, server_id: str, status: str, timeout: float = WAIT) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            shown = self.server(server_id)
            if shown.get("status") == "ERROR":
                pytest.fail(f"server {server_id} went to ERROR: {shown.get('fault')}")
            return shown if shown.get("status") == status and not shown.get("OS-EXT-STS:task_state") else None
        return _until(f"server {server_id} {status}", reached, timeout)  # type: ignore[no-any-return]

    def console(self, server_id: str) -> str:
        return self.cloud.run_raw("console", "log", "show", server_id).stdout

    # --- the cloud's lifetime -----------------------------------------------------------------
    def restart(self) -> None:
        stop(self.proc, self.state)
        self.proc = launch(self.state, self.port, real_vms=True)


def _config(host: str, bridge: str) -> str:
    return (f'[compute]\ndriver = "qemu"\nhost = "{host}"\nqemu_shutdown_timeout = 15.0\n'
            'qemu_soft_reboot_timeout = 15.0\n'
            f'[network]\nagent_dataplane = "linux"\nhost = "{host}"\nbridge_mappings = ["public:{bridge}"]\n'
            f'external_network_cidr = "{EXT_CIDR}"\n')


def _clean_host(state: Path, bridge: str) -> None:
    """Whatever the cloud left on this host: its VMs, the seeded networks' kernel objects, the
    external bridge and the shared firewall tables."""
    instances = state / "instances"
    if instances.is_dir():
        for path in instances.iterdir():
            if (path / "instance.json").is_file():
                pid = process.find(InstanceDir(instances, path.name))
                if pid is not None:
                    process.kill(pid, path.name)
                for nic in InstanceDir(instances, path.name).load().nics:
                    process.remove_tap(nic.tap)
    plane = LinuxDataPlane(LinuxSettings(state_dir=state / "network-linux", bridge_mappings={"public": bridge}),
                           lambda n, a: None, lambda i: "")
    try:
        plane.sync(d.state([], [], [], []))
    finally:
        plane.close()
    sh("ip", "link", "del", bridge)
    for table in (f"inet {names.FILTER_TABLE}", f"bridge {names.PORT_MARK_TABLE}"):
        sh("nft", "delete", "table", *table.split())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    _require_host()
    tmp = tmp_path_factory.mktemp("openstack-vm")
    state = tmp / "state"
    state.mkdir()
    host, bridge = f"vmtest-{uuid.uuid4().hex[:6]}", "stxvm" + uuid.uuid4().hex[:8]
    (state / "stratus.toml").write_text(_config(host, bridge))
    port = free_port()
    proc = launch(state, port, real_vms=True)
    w = World(Cloud(state_dir=state, url=f"http://127.0.0.1:{port}"), state, host, bridge, proc, port)
    try:
        yield w
    finally:
        try:
            if w.proc.poll() is None:
                stop(w.proc, state)
        finally:
            _clean_host(state, bridge)


def _need(world: World, *names_: str) -> None:
    missing = [n for n in names_ if n not in world.servers]
    if missing:
        pytest.fail(f"an earlier acceptance test did not boot server(s) {', '.join(missing)}")


def _cli_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _boot_with_floating_ip(world: World, run: Any, name: str, image: str, network: str, key_name: str,
                           key: Path, group: str, user_data: Path | None = None, nic: str | None = None) -> Server:
    """`server create --wait` with the CLI `run` (the admin's or a project user's), then a
    floating IP from `public` associated to it."""
    args = ["server", "create", "--image", image, "--flavor", world.made["flavor"], "--key-name", key_name,
            "--security-group", group, "--wait"]
    args += ["--nic", nic] if nic else ["--network", network]
    if user_data is not None:
        args += ["--user-data", str(user_data)]
    created = run(*args, name)
    assert created["status"] == "ACTIVE", created
    server = Server(created["id"], name, key)
    world.gone.append(("server", server.id))
    addresses = world.server(server.id)["addresses"]
    server.fixed_ip = addresses[network][0]["addr"] if network in addresses else next(
        iter(addresses.values()))[0]["addr"]
    fip = run("floating", "ip", "create", "public")
    server.floating_ip = fip["floating_ip_address"]
    world.gone.append(("floating ip", fip["id"]))
    run("server", "add", "floating", "ip", server.id, server.floating_ip, json_output=False)
    ports = world.api("GET", "network", "/v2.0/ports", params={"device_id": server.id}).json()["ports"]
    server.port_ids = [p["id"] for p in ports]
    world.servers[name] = server
    return server


def _admin_run(world: World) -> Any:
    def run(*args: str, json_output: bool = True) -> Any:
        if json_output:
            return world.cloud.run(*args)
        world.cloud.run_raw(*args)
        return None
    return run


def _keypair(run: Any, where: Path, name: str) -> Path:
    key = where / name
    run("keypair", "create", "--private-key", str(key), name)
    key.chmod(0o600)
    return key


def test_1_boot_ssh_console_and_user_data_through_the_cli(world: World,
                                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    run = _admin_run(world)
    keys = tmp_path_factory.mktemp("keys")
    _until("image stratus-guest uploaded by stratus up",
           lambda: any(i["Name"] == "stratus-guest" and i["Status"] == "active"
                       for i in world.cloud.run("image", "list")), 300, 2.0)
    flavor = run("flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1", "m1.vmtest")
    world.made["flavor"] = flavor["name"]
    key = _keypair(run, keys, "key-a")
    net = run("network", "create", "net-a")
    subnet = run("subnet", "create", "--network", net["id"], "--subnet-range", "10.0.0.0/24", "subnet-a")
    router = run("router", "create", "router-a")
    run("router", "set", "--external-gateway", "public", router["id"], json_output=False)
    run("router", "add", "subnet", router["id"], subnet["id"], json_output=False)
    group = run("security", "group", "create", "sg-a")
    run("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22", group["id"])
    world.made.update(net_a=net["id"], subnet_a=subnet["id"], router_a=router["id"], sg_a=group["id"])
    world.gone += [("router", router["id"]), ("network", net["id"]), ("security group", group["id"])]
    user_data = keys / "user-data"
    user_data.write_text("#!/bin/sh\necho made-by-user-data > /root/from-user-data\n")

    a = _boot_with_floating_ip(world, run, "server-a", "stratus-guest", "net-a", "key-a", key, group["id"], user_data)
    console = _until("the DHCP address and hostname on the console",
                     lambda: (lambda text: text if "ssh ready" in text else "")(world.console(a.id)), 120, 2.0)
    assert f"STRATUS-GUEST: ip={a.fixed_ip}" in console, console
    assert "STRATUS-GUEST: hostname=server-a" in console, console  # fetched from the metadata service
    a.wait_ssh()
    assert a.ssh("hostname").stdout.strip() == "server-a"
    cpuinfo = a.ssh("cat /proc/cpuinfo")
    assert cpuinfo.returncode == 0 and "processor" in cpuinfo.stdout, cpuinfo.stderr
    assert a.ssh("cat /root/from-user-data").stdout.strip() == "made-by-user-data"


def test_2_ping_through_the_floating_ip_follows_the_icmp_rule(world: World) -> None:
    _need(world, "server-a")
    a, run = world.servers["server-a"], _admin_run(world)
    assert not host_ping(a.floating_ip), "ICMP answered with no rule allowing it"
    rule = run("security", "group", "rule", "create", "--protocol", "icmp", world.made["sg_a"])
    _until("ping through the floating IP", lambda: host_ping(a.floating_ip), 10)
    pinger = subprocess.Popen(["ping", "-D", "-i", "0.2", "-W", "1", a.floating_ip], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        # Removed over HTTP, not with the CLI: its own start-up (seconds on a busy machine) is no
        # part of the cloud's reaction, which counts from the API's answer.
        assert world.api("DELETE", "network", f"/v2.0/security-group-rules/{rule['id']}").status_code == 204
        removed_at = time.time()
        time.sleep(3.0)
    finally:
        pinger.terminate()
        output, _ = pinger.communicate(timeout=5)
    replies = [float(line[1:line.index("]")]) for line in output.splitlines() if "bytes from" in line]
    assert replies, output
    late = [t for t in replies if t > removed_at + 2.0]
    assert not late, f"replies more than 2 s after the ICMP rule went:\n{output}"
    assert not host_ping(a.floating_ip)


def _project_run(world: World, user: str, password: str, project: str) -> Any:
    def run(*args: str, json_output: bool = True) -> Any:
        if json_output:
            return _cli_json(world.cloud.run_as(user, password, project, *args, "-f", "json", check=False))
        done = world.cloud.run_as(user, password, project, *args, check=False)
        assert done.returncode == 0, done.stderr
        return None
    return run


def _guest_ping(server: Server, target: str, source: str = "", tries: int = 1) -> bool:
    """Whether `target` answers a ping sent from inside `server` (of up to `tries`: a busy machine
    may lose the first to ARP; a test expecting silence asks once)."""
    option = f"-I {source} " if source else ""
    return any(server.ssh(f"ping -c 1 -W 2 {option}{target}").returncode == 0 for _ in range(tries))


def test_3_two_projects_with_the_same_subnet_are_isolated_and_forged_sources_dropped(
        world: World, tmp_path_factory: pytest.TempPathFactory) -> None:
    _need(world, "server-a")
    a, admin = world.servers["server-a"], _admin_run(world)
    # Both guests answer pings from anywhere, so that silence below is isolation, not a filter.
    admin("security", "group", "rule", "create", "--protocol", "icmp", world.made["sg_a"])
    project, user, password = f"proj-b-{uuid.uuid4().hex[:6]}", f"user-b-{uuid.uuid4().hex[:6]}", "user-B-pw1"
    made = admin("project", "create", project)
    world.made["project_b"] = made["id"]
    user_made = admin("user", "create", "--password", password, "--project", project, user)
    world.made["user_b"] = user_made["id"]
    admin("role", "add", "--user", user, "--project", project, "member", json_output=False)
    run = _project_run(world, user, password, project)
    key = _keypair(run, tmp_path_factory.mktemp("keys-b"), "key-b")
    net = run("network", "create", "net-b")
    # B's pool starts above anything net-a has handed out, so that net-b's DHCP port cannot take A's address.
    subnet = run("subnet", "create", "--network", net["id"], "--subnet-range", "10.0.0.0/24",
                 "--allocation-pool", "start=10.0.0.100,end=10.0.0.200", "subnet-b")
    router = run("router", "create", "router-b")
    run("router", "set", "--external-gateway", "public", router["id"], json_output=False)
    run("router", "add", "subnet", router["id"], subnet["id"], json_output=False)
    group = run("security", "group", "create", "sg-b")
    run("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22", group["id"])
    run("security", "group", "rule", "create", "--protocol", "icmp", group["id"])
    world.made.update(net_b=net["id"], subnet_b=subnet["id"], router_b=router["id"], sg_b=group["id"])
    b = _boot_with_floating_ip(world, run, "server-b", "stratus-guest", "net-b", "key-b", key, group["id"],
                               nic=f"net-id={net['id']},v4-fixed-ip=10.0.0.50")
    assert b.fixed_ip == "10.0.0.50"
    b.wait_ssh()
    assert b.ssh("hostname").stdout.strip() == "server-b"
    assert a.ssh("hostname").stdout.strip() == "server-a"

    # Each reaches its own gateway and the host; neither the other's fixed address.
    used_in_b = {ip["ip_address"] for p in world.api("GET", "network", "/v2.0/ports",
                                                     params={"network_id": net["id"]}).json()["ports"]
                 for ip in p["fixed_ips"]}
    assert a.fixed_ip not in used_in_b, "server A's address is taken in net-b too: the check below would mean nothing"
    assert _guest_ping(a, "10.0.0.1", tries=3) and _guest_ping(b, "10.0.0.1", tries=3)
    assert host_ping(a.floating_ip) and host_ping(b.floating_ip)
    assert not _guest_ping(a, b.fixed_ip)
    assert not _guest_ping(b, a.fixed_ip)

    # A guest that gives itself another address cannot send with it.
    assert a.ssh("ip addr add 10.0.0.99/24 dev eth0").returncode == 0
    try:
        assert _guest_ping(a, "10.0.0.1", source=a.fixed_ip, tries=3)
        assert not _guest_ping(a, "10.0.0.1", source="10.0.0.99")
    finally:
        a.ssh("ip addr del 10.0.0.99/24 dev eth0")


def _boot_id(server: Server) -> str:
    done = server.ssh("cat /proc/sys/kernel/random/boot_id")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_4_power_operations_a_restarted_cloud_and_a_booted_snapshot(world: World) -> None:
    _need(world, "server-a")
    a, run = world.servers["server-a"], _admin_run(world)
    a.wait_ssh(30)
    first_boot = _boot_id(a)

    run("server", "stop", a.id, json_output=False)
    assert world.wait_status(a.id, "SHUTOFF")["OS-EXT-STS:power_state"] == 4
    assert not host_ping(a.floating_ip)
    run("server", "start", a.id, json_output=False)
    assert world.wait_status(a.id, "ACTIVE")["OS-EXT-STS:power_state"] == 1
    a.wait_ssh()
    after_start = _boot_id(a)
    assert after_start != first_boot

    run("server", "reboot", a.id, json_output=False)
    world.wait_status(a.id, "ACTIVE")
    _until("a new boot after reboot", lambda: a.ssh("cat /proc/sys/kernel/random/boot_id", 15).stdout.strip()
           not in ("", after_start), WAIT, 1.0)
    booted = _boot_id(a)

    run("server", "pause", a.id, json_output=False)
    assert world.wait_status(a.id, "PAUSED")["OS-EXT-STS:power_state"] == 3
    assert not host_ping(a.floating_ip)
    run("server", "unpause", a.id, json_output=False)
    world.wait_status(a.id, "ACTIVE")
    _until("ping after unpause", lambda: host_ping(a.floating_ip), 20)

    run("server", "suspend", a.id, json_output=False)
    world.wait_status(a.id, "SUSPENDED")
    assert not host_ping(a.floating_ip)
    run("server", "resume", a.id, json_output=False)
    world.wait_status(a.id, "ACTIVE")
    a.wait_ssh(60)
    assert _boot_id(a) == booted  # paused and suspended, never rebooted

    # The whole `stratus up` (API, conductor, compute and network agents) stops and starts again:
    # the VM is a process of its own and its network stays up meanwhile.
    where = InstanceDir(world.state / "instances", a.id)
    pid = process.find(where)
    assert pid is not None
    stop(world.proc, world.state)
    assert process.find(where) == pid
    assert a.ssh("hostname").stdout.strip() == "server-a"  # with no cloud running
    world.proc = launch(world.state, world.port, real_vms=True)
    shown = world.wait_status(a.id, "ACTIVE", 60)
    assert shown["OS-EXT-STS:power_state"] == 1
    assert process.find(where) == pid
    assert _boot_id(a) == booted
    run("server", "stop", a.id, json_output=False)  # and the restarted agent still drives it
    world.wait_status(a.id, "SHUTOFF")
    run("server", "start", a.id, json_output=False)
    world.wait_status(a.id, "ACTIVE")
    a.wait_ssh()

    snapshot = run("server", "image", "create", "--name", "snap-a", "--wait", a.id)
    world.made["snapshot"] = snapshot["id"]
    c = _boot_with_floating_ip(world, run, "server-c", snapshot["id"], "net-a", "key-a", a.key, world.made["sg_a"])
    c.wait_ssh()
    assert c.ssh("hostname").stdout.strip() == "server-c"
    # Written by server A's user_data at its first boot: it is on the snapshot's disk.
    assert c.ssh("cat /root/from-user-data").stdout.strip() == "made-by-user-data"


def _dnsmasq_for(network_ids: list[str]) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "dnsmasq" in argv and any(n in argv for n in network_ids):
            found.append(f"dnsmasq pid {proc.name}: {argv[:120]}")
    return found


def _leftovers(world: World, servers: list[Server], networks: list[str], routers: list[str],
               image_files: list[Path]) -> list[str]:
    """Every kernel object, process and file of the given (deleted) resources that still exists."""
    left: list[str] = []
    instances = world.state / "instances"
    for server in servers:
        where = InstanceDir(instances, server.id)
        if process.find(where) is not None:
            left.append(f"qemu process of {server.name}")
        if where.path.exists():
            left.append(f"instance directory {where.path}")
        left += [f"tap {names.tap(p)} of {server.name}" for p in server.port_ids if process.tap_exists(names.tap(p))]
    links = sh("ip", "-o", "link", "show").stdout
    left += [f"bridge {names.bridge(n)}" for n in networks if f" {names.bridge(n)}:" in links]
    namespaces = sh("ip", "netns", "list").stdout
    left += [f"namespace {names.dhcp_namespace(n)}" for n in networks if names.dhcp_namespace(n) in namespaces]
    left += [f"namespace {names.router_namespace(r)}" for r in routers if names.router_namespace(r) in namespaces]
    left += _dnsmasq_for(networks)
    ruleset = sh("nft", "list", "table", "inet", names.FILTER_TABLE).stdout
    left += [f"nftables chains of port {p}" for s in servers for p in s.port_ids if p.replace("-", "_") in ruleset]
    left += [f"image file {f}" for f in image_files if f.exists()]
    return left


def test_5_deleting_everything_leaves_nothing_behind(world: World) -> None:
    _need(world, "server-a", "server-b", "server-c")
    run = _admin_run(world)
    servers = list(world.servers.values())
    networks = [world.made["net_a"], world.made["net_b"]]
    routers = [world.made["router_a"], world.made["router_b"]]
    images = world.state / "images"
    image_files = [p for p in images.rglob("*") if world.made["snapshot"] in p.name] if images.is_dir() else []
    before = _leftovers(world, servers, networks, routers, image_files)
    assert any(item.startswith("qemu process") for item in before), before  # the check sees them

    run("server", "delete", "--wait", *[s.id for s in servers], json_output=False)
    for kind, item in world.gone:
        if kind == "floating ip":
            run("floating", "ip", "delete", item, json_output=False)
    for letter in ("a", "b"):
        router, subnet = world.made[f"router_{letter}"], world.made[f"subnet_{letter}"]
        run("router", "remove", "subnet", router, subnet, json_output=False)
        run("router", "unset", "--external-gateway", router, json_output=False)
        run("router", "delete", router, json_output=False)
        run("network", "delete", world.made[f"net_{letter}"], json_output=False)
        run("security", "group", "delete", world.made[f"sg_{letter}"], json_output=False)
    run("image", "delete", world.made["snapshot"], json_output=False)
    run("user", "delete", world.made["user_b"], json_output=False)
    run("project", "delete", world.made["project_b"], json_output=False)

    found: list[str] = []

    def clean() -> bool:
        found[:] = _leftovers(world, servers, networks, routers, image_files)
        return not found
    deadline = time.monotonic() + 30
    while not clean() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert found == [], "left behind after deleting everything:\n" + "\n".join(found)
    world.servers.clear()
