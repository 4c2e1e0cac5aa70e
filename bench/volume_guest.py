"""The in-guest half of bench/volume.py: sequential write and read MB/s inside a real VM on an
attached volume.

A `stratus up` with the qemu driver and the linux data plane (as bench/boot.py runs it, root)
boots one `stratus-guest` server on the seeded private network (the network is there for the
metadata service: user_data reaches the guest only through it). A volume of the measured size is
made on the same host as the compute node, so QEMU opens its backing file directly (a local
connection, not NBD) and the figure compares like with like against the host's dd on a backing
file. The server's user_data waits for /dev/vdb, runs busybox dd with O_DIRECT in 1 MiB blocks
(write, then read) and prints on the console the bytes and the guest's /proc/uptime before and
after each; the bench reads those lines back through os-getConsoleOutput.

Debian's busybox dd prints no rate (its third status line is compiled out), hence /proc/uptime
(10 ms resolution). Under TCG every guest instruction is emulated: the guest figure is bounded
by the emulated CPU driving virtio, not by the disk, and QEMU opens the file with its default
cache mode (writeback), so the guest's O_DIRECT skips only the guest's page cache.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import peers
from boot import PASSWORD, Cloud

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stratus.compute.drivers.qemu.setup import choose_accel  # noqa: E402

EXT_CIDR = "198.18.83.0/24"  # a benchmarking range of its own (bench/boot.py and the VM tests use others)
BOOT_TIMEOUT = 300.0
NEEDED = ("qemu-system-x86_64", "qemu-img", "ip", "nft", "dnsmasq")
TAG = "STRATUS-VOLBENCH"
RESULT = re.compile(rf"{TAG} (write|read) bytes=(\d+) start=([\d.]+) end=([\d.]+)")
FAILED = re.compile(rf"{TAG} failed: (.*)")


def check_host() -> None:
    """Exit with a plain message before anything starts when this machine cannot run the guest half."""
    if os.geteuid() != 0:
        sys.exit("bench/volume.py: the in-guest measurement needs root (the linux data plane makes bridges, "
                 "namespaces and nftables); run as root or pass --no-guest")
    missing = [tool for tool in NEEDED if shutil.which(tool) is None]
    if missing:
        sys.exit(f"bench/volume.py: the in-guest measurement needs {', '.join(missing)} (make install-deb); "
                 "or pass --no-guest")


def guest_script(mib: int) -> str:
    """The user_data: in the background (the guest's boot goes on to start SSH), wait for the
    hot-plugged disk, then time an O_DIRECT write and read of `mib` MiB on it."""
    return f"""#!/bin/sh
(
    say() {{ echo "{TAG} $*" > /dev/console; }}
    waited=0
    while [ ! -b /dev/vdb ]; do
        [ $waited -ge 900 ] && {{ say "failed: no /dev/vdb after $waited s"; exit 1; }}
        sleep 1
        waited=$((waited + 1))
    done
    now() {{ cut -d ' ' -f 1 /proc/uptime; }}
    start=$(now)
    out=$(dd if=/dev/zero of=/dev/vdb bs=1M count={mib} oflag=direct conv=fsync 2>&1) ||
        {{ say "failed: write: $out"; exit 1; }}
    end=$(now)
    say "write bytes=$(({mib} * 1048576)) start=$start end=$end"
    start=$(now)
    out=$(dd if=/dev/vdb of=/dev/null bs=1M count={mib} iflag=direct 2>&1) ||
        {{ say "failed: read: $out"; exit 1; }}
    end=$(now)
    say "read bytes=$(({mib} * 1048576)) start=$start end=$end"
) &
"""


class GuestCloud(Cloud):
    """bench/boot.py's cloud (real VMs, linux data plane, its own external bridge, cleaned up by
    `close`), with the storage node named as the compute node so volumes attach as local files."""

    def __init__(self, scratch: Path) -> None:  # noqa: D107 (the class says it)
        self.state = scratch / "state"
        self.state.mkdir()
        self.bridge = "stxvb" + uuid.uuid4().hex[:8]
        host = f"bench-vol-{uuid.uuid4().hex[:6]}"
        (self.state / "stratus.toml").write_text(
            f'[compute]\ndriver = "qemu"\nhost = "{host}"\n[volume]\nhost = "{host}"\n'
            f'quota_volumes = -1\nquota_gigabytes = -1\n[network]\nagent_dataplane = "linux"\nhost = "{host}"\n'
            f'bridge_mappings = ["public:{self.bridge}"]\nexternal_network_cidr = "{EXT_CIDR}"\n')
        # The TOML above chooses the driver and the data plane: the environment must not override them.
        env = {k: v for k, v in peers.stratus_env(BOOTSTRAP__ADMIN_PASSWORD=PASSWORD, IDENTITY__BCRYPT_ROUNDS="4",
                                                  SERVER__LOG_LEVEL="warning").items()
               if k not in ("STRATUS_COMPUTE__DRIVER", "STRATUS_NETWORK__AGENT_DATAPLANE")}
        self.log = scratch / "stratus.log"
        stratus = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "stratus"
        self.proc = peers.start([str(stratus), "up", "--state-dir", str(self.state)], self.log, env)
        peers.wait_until(self.proc, lambda: "stratus: ready" in self.log.read_text(errors="replace"), self.log,
                         timeout=BOOT_TIMEOUT)
        self.urls = {name: f"http://127.0.0.1:{peers.port_of(env, listener)}" for name, listener in (
            ("identity", "IDENTITY__PORT"), ("image", "IMAGE__PORT"), ("network", "NETWORK__PORT"),
            ("compute", "COMPUTE__PORT"), ("volume", "VOLUME__PORT"))}
        self.token = peers.admin_token(f"{self.urls['identity']}/v3", PASSWORD)
        self.http = httpx.Client(timeout=60, headers={"X-Auth-Token": self.token})


def _volume_status(cloud: GuestCloud, volume_id: str) -> str:
    status = str(cloud.call("GET", "volume", f"/v3/volumes/{volume_id}")["volume"]["status"])
    if status.startswith("error"):
        raise RuntimeError(f"volume {volume_id} went to {status}")
    return status


def _server_status(cloud: GuestCloud, server_id: str) -> str:
    shown = cloud.call("GET", "compute", f"/servers/{server_id}")["server"]
    if shown["status"] == "ERROR":
        raise RuntimeError(f"server {server_id} went to ERROR: {shown.get('fault')}")
    return str(shown["status"])


def _console(cloud: GuestCloud, server_id: str) -> str:
    answer = cloud.call("POST", "compute", f"/servers/{server_id}/action", json={"os-getConsoleOutput": {}})
    return str(answer.get("output", ""))


def _connection_type(cloud: GuestCloud, volume_id: str) -> str:
    """How QEMU reached the attached volume, as the block storage service handed it over
    ("local": the backing file itself; "nbd": through an export)."""
    attached = cloud.call("GET", "volume", f"/v3/volumes/{volume_id}")["volume"]["attachments"]
    if not attached:
        return "not attached"
    shown = cloud.call("GET", "volume", f"/v3/attachments/{attached[0]['attachment_id']}",
                       headers={"OpenStack-API-Version": "volume 3.27"})["attachment"]
    return str((shown.get("connection_info") or {}).get("driver_volume_type", "unknown"))


def _figures(cloud: GuestCloud, server_id: str) -> dict[str, float] | None:
    """{write/read: MB/s} once both lines are on the console; a failure line raises."""
    console = _console(cloud, server_id)
    failed = FAILED.search(console)
    if failed:
        raise RuntimeError(f"the guest says: {failed.group(1)}")
    found = {m.group(1): int(m.group(2)) / (float(m.group(4)) - float(m.group(3))) / 1e6
             for m in RESULT.finditer(console) if float(m.group(4)) > float(m.group(3))}
    return found if len(found) == 2 else None


def guest_rates(mib: int, where: Path) -> tuple[dict[str, float], float, str]:
    """Boot, attach, measure: ({write, read}: MB/s in the guest, seconds from create to the
    figures, the volume's connection type)."""
    with tempfile.TemporaryDirectory(dir=where, prefix=".bench-volume-guest-") as scratch:
        cloud = GuestCloud(Path(scratch))
        try:
            image = cloud.wait("image stratus-guest uploaded by stratus up", lambda: next(
                (i["id"] for i in cloud.call("GET", "image", "/v2/images", params={"name": "stratus-guest"})["images"]
                 if i["status"] == "active"), None), every=1.0)
            network = cloud.wait("the seeded private network", lambda: next(
                iter(cloud.call("GET", "network", "/v2.0/networks", params={"name": "private"})["networks"]), None))
            flavor = cloud.call("POST", "compute", "/flavors", json={"flavor": {
                "name": "bench.volume", "ram": 256, "vcpus": 1, "disk": 1}})["flavor"]["id"]
            volume = cloud.call("POST", "volume", "/v3/volumes", json={"volume": {
                "size": max(1, -(-mib // 1024)), "name": "bench-guest-dd"}})["volume"]["id"]
            started = time.monotonic()
            server = cloud.call("POST", "compute", "/servers", json={"server": {
                "name": "bench-volume", "imageRef": image, "flavorRef": flavor, "networks": [{"uuid": network["id"]}],
                "user_data": base64.b64encode(guest_script(mib).encode()).decode()}})["server"]["id"]
            cloud.wait("the volume available", lambda: _volume_status(cloud, volume) == "available")
            cloud.wait("the server ACTIVE", lambda: _server_status(cloud, server) == "ACTIVE", BOOT_TIMEOUT)
            cloud.call("POST", "compute", f"/servers/{server}/os-volume_attachments",
                       json={"volumeAttachment": {"volumeId": volume}})
            # Boot, DHCP and metadata first, then the dd: at a floor of ~1 MB/s under TCG.
            try:
                figures = cloud.wait("the guest's dd figures on the console", lambda: _figures(cloud, server),
                                     BOOT_TIMEOUT + 2 * mib, every=2.0)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}\nend of the server's console:\n{_console(cloud, server)[-1500:]}") from None
            seconds = time.monotonic() - started
            connection = _connection_type(cloud, volume)
            cloud.call("DELETE", "compute", f"/servers/{server}")
            cloud.wait("the server deleted", lambda: cloud.http.get(
                f"{cloud.urls['compute']}/v2.1/servers/{server}").status_code == 404)
            cloud.wait("the volume detached", lambda: _volume_status(cloud, volume) == "available")
            cloud.call("DELETE", "volume", f"/v3/volumes/{volume}")
            return figures, seconds, connection
        finally:
            cloud.close()


def report(mib: int, host_write: float, host_read: float, where: Path) -> None:
    """Measure in a guest and print its figures next to the host's, with the ratio guest / host;
    the cloud's state (the volume's backing file) under `where`, as the host's measurement was."""
    accel = choose_accel("auto")
    try:
        figures, seconds, connection = guest_rates(mib, where)
    except (RuntimeError, peers.ServerFailed, subprocess.SubprocessError) as exc:
        print(f"guest, attached volume: FAILED: {exc}")
        raise SystemExit(1) from None
    print(f"guest ({accel}, volume connection {connection}), O_DIRECT 1 MiB blocks, {mib} MiB: "
          f"write {figures['write']:.0f} MB/s, read {figures['read']:.0f} MB/s "
          f"({seconds:.0f} s from server create to the figures)")
    print(f"guest / host: write {figures['write'] / host_write:.2f}x, read {figures['read'] / host_read:.2f}x"
          + (" (TCG: every guest instruction is emulated, so the guest side is CPU-bound)" if accel == "tcg" else ""))
    print("note: QEMU opens the volume with its default writeback cache, so the guest's O_DIRECT skips only "
          "the guest's page cache: its reads come from the host's page cache, which the host's O_DIRECT read skips")
