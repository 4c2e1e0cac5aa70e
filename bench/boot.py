"""Real VM boots through the cloud: `stratus up` with the qemu driver and the linux data plane boots
`stratus-guest` servers through the compute API, 10 one after another and 10 at once, and we time
each from the create call to ACTIVE and to SSH answering through its floating IP; then the qemu
RSS of each VM. In the same run, the bare QEMU boot of the same image (no cloud, no network) to its
first console marker — the physical limit — one at a time and as many at once as the concurrent
boots, and the ratio of the cloud's SSH-ready time to the matching one.

Every server gets a port made beforehand with a floating IP on it, so the timed part is the boot:
API, scheduler, image cache, disk overlay, QEMU, DHCP, metadata, dropbear. Needs root.

Run:  .venv/bin/python bench/boot.py [--sequential 10] [--concurrent 10] [--bare-runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import peers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from boot_bare import bare_boot  # noqa: E402

from stratus.compute.drivers.qemu import process  # noqa: E402
from stratus.compute.drivers.qemu.setup import choose_accel  # noqa: E402
from stratus.compute.drivers.qemu.spec import InstanceDir  # noqa: E402
from stratus.guest import build  # noqa: E402
from stratus.guest.boot import MARKER, bare_boot_marker_times  # noqa: E402
from stratus.network.dataplane.linux import LinuxDataPlane, LinuxSettings, names  # noqa: E402

PASSWORD = "bench-Admin-pw1"
EXT_CIDR = "198.18.81.0/24"
TIMEOUT = 300.0


class Cloud:
    """`stratus up` with real VMs in a scratch state dir, and its APIs as the admin."""

    def __init__(self, scratch: Path) -> None:
        self.state = scratch / "state"
        self.state.mkdir()
        self.bridge = "stxbn" + uuid.uuid4().hex[:8]
        host = f"bench-{uuid.uuid4().hex[:6]}"
        (self.state / "stratus.toml").write_text(
            f'[compute]\ndriver = "qemu"\nhost = "{host}"\nquota_instances = -1\nquota_cores = -1\n'
            f'quota_ram = -1\n[network]\nagent_dataplane = "linux"\nhost = "{host}"\n'
            f'bridge_mappings = ["public:{self.bridge}"]\nexternal_network_cidr = "{EXT_CIDR}"\n'
            'quota_port = -1\nquota_floatingip = -1\n')
        ports = {name: peers.free_port() for name in ("identity", "image", "network", "compute", "metadata", "object",
                                                      "account", "container", "objnode", "volume", "dashboard")}
        env = {"STRATUS_IDENTITY__PORT": str(ports["identity"]), "STRATUS_IMAGE__PORT": str(ports["image"]),
               "STRATUS_NETWORK__PORT": str(ports["network"]), "STRATUS_COMPUTE__PORT": str(ports["compute"]),
               "STRATUS_COMPUTE__METADATA_PORT": str(ports["metadata"]),
               "STRATUS_OBJECT__PORT": str(ports["object"]), "STRATUS_OBJECT__ACCOUNT_PORT": str(ports["account"]),
               "STRATUS_OBJECT__CONTAINER_PORT": str(ports["container"]),
               "STRATUS_OBJECT__OBJECT_PORT": str(ports["objnode"]), "STRATUS_VOLUME__PORT": str(ports["volume"]),
               "STRATUS_DASHBOARD__PORT": str(ports["dashboard"]), "STRATUS_BOOTSTRAP__ADMIN_PASSWORD": PASSWORD,
               "STRATUS_IDENTITY__BCRYPT_ROUNDS": "4", "STRATUS_SERVER__LOG_LEVEL": "warning"}
        self.log = scratch / "stratus.log"
        stratus = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "stratus"
        self.proc = peers.start([str(stratus), "up", "--state-dir", str(self.state)], self.log, env)
        peers.wait_until(self.proc, lambda: "stratus: ready" in self.log.read_text(errors="replace"), self.log,
                         timeout=300)
        self.urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        self.token = peers.admin_token(f"{self.urls['identity']}/v3", PASSWORD)
        self.http = httpx.Client(timeout=60, headers={"X-Auth-Token": self.token})

    def call(self, method: str, service: str, path: str, **kwargs: Any) -> Any:
        base = self.urls[service] + ("/v2.1" if service == "compute" else "")
        answer = self.http.request(method, base + path, **kwargs)
        if answer.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text[:300]}")
        return answer.json() if answer.content else None

    def wait(self, what: str, check: Any, timeout: float = TIMEOUT, every: float = 0.2) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            time.sleep(every)
        raise RuntimeError(f"{what}: not within {timeout:.0f} s; last lines of the log:\n{peers.log_tail(self.log)}")

    def close(self) -> None:
        peers.stop(self.proc)
        instances = self.state / "instances"
        for path in instances.iterdir() if instances.is_dir() else []:
            if (path / "instance.json").is_file():
                pid = process.find(InstanceDir(instances, path.name))
                if pid is not None:
                    process.kill(pid, path.name)
                for nic in InstanceDir(instances, path.name).load().nics:
                    process.remove_tap(nic.tap)
        plane = LinuxDataPlane(LinuxSettings(state_dir=self.state / "network-linux",
                                             bridge_mappings={"public": self.bridge}), lambda n, a: None, lambda i: "")
        try:
            plane.sync({"networks": [], "ports": [], "routers": [], "security_groups": []})  # type: ignore[typeddict-item]
        finally:
            plane.close()
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        for family, table in (("inet", names.FILTER_TABLE), ("bridge", names.PORT_MARK_TABLE)):
            subprocess.run(["nft", "delete", "table", family, table], capture_output=True)


class Booter:
    """What every boot needs: image, flavor, key, network, a security group allowing SSH."""

    def __init__(self, cloud: Cloud, scratch: Path) -> None:
        self.cloud = cloud
        self.image = cloud.wait("image stratus-guest", lambda: next(
            (i["id"] for i in cloud.call("GET", "image", "/v2/images", params={"name": "stratus-guest"})["images"]
             if i["status"] == "active"), None), every=1.0)
        self.flavor = cloud.call("POST", "compute", "/flavors", json={"flavor": {
            "name": "bench.boot", "ram": 256, "vcpus": 1, "disk": 1}})["flavor"]["id"]
        self.key = scratch / "key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)], check=True)
        cloud.call("POST", "compute", "/os-keypairs",
                   json={"keypair": {"name": "bench", "public_key": (scratch / "key.pub").read_text().strip()}})
        self.network = cloud.wait("the seeded private network", lambda: next(
            iter(cloud.call("GET", "network", "/v2.0/networks", params={"name": "private"})["networks"]), None))["id"]
        self.public = cloud.call("GET", "network", "/v2.0/networks", params={"name": "public"})["networks"][0]["id"]
        group = cloud.call("POST", "network", "/v2.0/security-groups", json={"security_group": {"name": "bench-ssh"}})
        self.group = group["security_group"]["id"]
        cloud.call("POST", "network", "/v2.0/security-group-rules", json={"security_group_rule": {
            "security_group_id": self.group, "direction": "ingress", "protocol": "tcp", "port_range_min": 22,
            "port_range_max": 22, "ethertype": "IPv4"}})

    def prepare(self) -> tuple[str, str]:
        """A port on the private network with a floating IP on it: (port id, floating address)."""
        port = self.cloud.call("POST", "network", "/v2.0/ports", json={"port": {
            "network_id": self.network, "security_groups": [self.group]}})["port"]
        fip = self.cloud.call("POST", "network", "/v2.0/floatingips", json={"floatingip": {
            "floating_network_id": self.public, "port_id": port["id"]}})["floatingip"]
        return port["id"], fip["floating_ip_address"]

    def ssh_answers(self, address: str) -> bool:
        done = subprocess.run(["ssh", "-i", str(self.key), "-o", "StrictHostKeyChecking=no", "-o",
                               "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=2",
                               "-o", "LogLevel=ERROR", f"root@{address}", "true"], capture_output=True, timeout=30)
        return done.returncode == 0

    def boot(self, name: str, port: str, address: str) -> dict[str, Any]:
        """Create a server on `port`; seconds to ACTIVE and to SSH answering, and its qemu RSS."""
        started = time.monotonic()
        server = self.cloud.call("POST", "compute", "/servers", json={"server": {
            "name": name, "imageRef": self.image, "flavorRef": self.flavor,
            "key_name": "bench", "networks": [{"port": port}]}})["server"]

        def active() -> bool:
            shown = self.cloud.call("GET", "compute", f"/servers/{server['id']}")["server"]
            if shown["status"] == "ERROR":
                raise RuntimeError(f"{name} went to ERROR: {shown.get('fault')}")
            return bool(shown["status"] == "ACTIVE")
        self.cloud.wait(f"{name} ACTIVE", active)
        to_active = time.monotonic() - started
        self.cloud.wait(f"SSH to {name}", lambda: self.ssh_answers(address), every=0.0)
        to_ssh = time.monotonic() - started
        pid = process.find(InstanceDir(self.cloud.state / "instances", server["id"]))
        return {"id": server["id"], "active": to_active, "ssh": to_ssh, "rss_mib": _rss_mib(pid)}

    def delete(self, server_id: str) -> None:
        self.cloud.call("DELETE", "compute", f"/servers/{server_id}")

        def gone() -> bool:
            return self.cloud.http.get(f"{self.cloud.urls['compute']}/v2.1/servers/{server_id}").status_code == 404
        self.cloud.wait(f"server {server_id} deleted", gone)


def _rss_mib(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _summary(label: str, results: list[dict[str, Any]]) -> None:
    for key, what in (("active", "create -> ACTIVE"), ("ssh", "create -> SSH answers")):
        values = [r[key] for r in results]
        print(f"{label}: {what}: p50 {statistics.median(values):.2f} s, max {max(values):.2f} s")
    rss = [r["rss_mib"] for r in results]
    print(f"{label}: qemu RSS per VM: p50 {statistics.median(rss):.0f} MiB, max {max(rss):.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequential", type=int, default=10)
    parser.add_argument("--concurrent", type=int, default=10)
    parser.add_argument("--bare-runs", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/boot.py needs root: the linux data plane makes bridges, namespaces and nftables")
    guest, accel = build(), choose_accel("auto")
    print(f"accelerator: {accel}; guest {guest.disk.parent.name}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-boot-") as scratch:
        cloud = Cloud(Path(scratch))
        try:
            booter = Booter(cloud, Path(scratch))
            sequential = []
            for index in range(args.sequential):
                port, address = booter.prepare()
                result = booter.boot(f"seq-{index}", port, address)
                sequential.append(result)
                booter.delete(result["id"])
            _summary(f"{args.sequential} sequential", sequential)
            prepared = [booter.prepare() for _ in range(args.concurrent)]
            with ThreadPoolExecutor(args.concurrent) as pool:
                concurrent = list(pool.map(lambda item: booter.boot(f"con-{item[0]}", *item[1]),
                                           enumerate(prepared)))
            _summary(f"{args.concurrent} concurrent", concurrent)
            for result in concurrent:
                booter.delete(result["id"])
        finally:
            cloud.close()
    bare = bare_boot(guest, accel, args.bare_runs)
    first = statistics.median(bare["first_marker"])
    print(f"bare qemu boot ({accel}, {args.bare_runs} runs one at a time): first marker {MARKER!r} p50 "
          f"{first:.2f} s, ssh ready p50 {statistics.median(bare['ssh_ready']):.2f} s")
    # The physical limit for booting many at once is booting as many bare VMs at once: they share
    # the same cores (and under TCG each guest's CPU is emulated on them).
    with ThreadPoolExecutor(args.concurrent) as pool:
        bare_together = list(pool.map(lambda _: bare_boot_marker_times(guest, accel, [MARKER], timeout=TIMEOUT),
                                      range(args.concurrent)))
    first_together = statistics.median(times[MARKER] for times in bare_together)
    print(f"bare qemu boot ({accel}, {args.concurrent} at once): first marker p50 {first_together:.2f} s, "
          f"max {max(times[MARKER] for times in bare_together):.2f} s")
    seq_ssh = statistics.median(r["ssh"] for r in sequential)
    con_ssh = statistics.median(r["ssh"] for r in concurrent)
    print(f"ratio SSH-ready / bare first marker (target: within 2x): {args.sequential} sequential "
          f"{seq_ssh / first:.2f}x (vs one bare boot); {args.concurrent} concurrent {con_ssh / first_together:.2f}x "
          f"(vs {args.concurrent} bare boots at once; {con_ssh / first:.2f}x vs one bare boot)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
