"""The guest image booted for real: DHCP, metadata, user_data, SSH with the key from metadata, and both
ways of powering off (poweroff inside, ACPI system_powerdown over QMP); the build cache, the
accelerator probe and the DHCP script's routes."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from stratus.cli import main
from stratus.guest import GuestImage, accel, bare_boot_seconds, build, debian, upload
from stratus.guest.boot import direct_boot_args
from stratus.guest.build import prune
from stratus.guest.debian import GuestBuildError
from stratus.guest.kernel import has_pvh_entry
from stratus.guest.recipe import FILES_DIR
from tests.conftest import ImageHarness
from tests.ports import free_port

HOSTNAME = "guest-under-test"
USER_DATA = "#!/bin/sh\necho made-by-user-data > /root/user_data_ran\n"


class Metadata(http.server.BaseHTTPRequestHandler):
    """The EC2 and OpenStack paths the guest's init fetches, answered as the metadata service does."""

    files: dict[str, str] = {}

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        body = self.files.get(self.path)
        self.send_response(200 if body is not None else 404)
        data = (body or "not found").encode()
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Guest:
    """One QEMU process booting the guest image, its console in a file, QMP on a unix socket."""

    def __init__(self, image: GuestImage, accel_name: str, workdir: Path, netdev: str | None,
                 disk: Path | None = None, reboots: bool = False) -> None:
        self.console = workdir / "console.log"
        self.qmp_path = workdir / "qmp.sock"
        drive = (f"file={disk},if=virtio,format=qcow2" if disk
                 else f"file={image.disk},if=virtio,format=qcow2,snapshot=on")
        command = [*direct_boot_args(image, accel_name), "-serial", f"file:{self.console}",
                   "-qmp", f"unix:{self.qmp_path},server=on,wait=off", "-device", "virtio-rng-pci", "-drive", drive]
        if reboots:  # a guest reboot resets the VM instead of ending QEMU
            command.remove("-no-reboot")
        if netdev is None:
            command += ["-nic", "none"]
        else:
            command += ["-netdev", netdev, "-device", "virtio-net-pci,netdev=net0"]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)

    def text(self) -> str:
        return self.console.read_text(errors="replace") if self.console.exists() else ""

    def wait_for(self, marker: str, timeout: float = 90.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in self.text():
                return self.text()
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        stderr = self.process.stderr.read().decode() if self.process.poll() is not None and self.process.stderr else ""
        pytest.fail(f"no {marker!r} on the guest console within {timeout:.0f} s; qemu stderr: {stderr}\n"
                    f"console:\n{self.text()[-3000:]}")

    def qmp(self, command: str, arguments: dict[str, object] | None = None) -> dict[str, object]:
        deadline = time.monotonic() + 10
        while not self.qmp_path.exists() and time.monotonic() < deadline:  # QEMU is still starting
            time.sleep(0.05)
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(str(self.qmp_path))
            stream = sock.makefile("rw")
            json.loads(stream.readline())  # the greeting
            for execute, args in (("qmp_capabilities", {}), (command, arguments or {})):
                stream.write(json.dumps({"execute": execute, "arguments": args}) + "\n")
                stream.flush()
                while True:
                    reply = json.loads(stream.readline())
                    if "return" in reply or "error" in reply:
                        break
            return reply  # type: ignore[no-any-return]

    def exits_within(self, seconds: float) -> bool:
        try:
            self.process.wait(timeout=seconds)
            return True
        except subprocess.TimeoutExpired:
            return False

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()


@pytest.fixture
def metadata_server() -> Iterator[tuple[int, dict[str, str]]]:
    files: dict[str, str] = {}
    handler = type("Handler", (Metadata,), {"files": files})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], files
    server.shutdown()
    server.server_close()


@pytest.fixture
def ssh_key(tmp_path: Path) -> Path:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def _ssh(key: Path, port: int, command: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    args = ["ssh", "-i", str(key), "-p", str(port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR",
            "root@127.0.0.1", command]
    deadline = time.monotonic() + timeout
    while True:
        result = subprocess.run(args, capture_output=True, text=True, timeout=60)
        if result.returncode != 255 or time.monotonic() > deadline:  # 255: ssh itself failed (not up yet)
            return result
        time.sleep(1)


def _user_network(metadata_port: int, ssh_port: int | None = None) -> str:
    """User-mode networking on the link-local network, so that 169.254.169.254 is on the guest's link
    and its connections there are handed to our metadata server; restrict=on keeps the guest off
    every other address."""
    forward = f"hostfwd=tcp:127.0.0.1:{ssh_port}-:22," if ssh_port else ""
    return (f"user,id=net0,net=169.254.0.0/16,host=169.254.0.2,dhcpstart=169.254.0.15,restrict=on,{forward}"
            f"guestfwd=tcp:169.254.169.254:80-cmd:/bin/busybox nc 127.0.0.1 {metadata_port}")


def test_guest_gets_dhcp_address_metadata_and_user_data_and_accepts_the_metadata_key_over_ssh(
        guest_image: GuestImage, guest_accel: str, metadata_server: tuple[int, dict[str, str]], ssh_key: Path,
        tmp_path: Path) -> None:
    port, files = metadata_server
    files["/latest/meta-data/hostname"] = f"{HOSTNAME}.novalocal"
    files["/latest/meta-data/public-keys/0/openssh-key"] = (ssh_key.with_suffix(".pub")).read_text()
    files["/openstack/latest/user_data"] = USER_DATA
    files["/latest/meta-data/instance-id"] = "i-0000002a"
    ssh_port = free_port()
    netdev = _user_network(port, ssh_port)
    # The root disk is an overlay larger than the image, as a flavor's would be: the guest grows into it.
    overlay = tmp_path / "root.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(guest_image.disk), "-F", "qcow2",
                    str(overlay), "512M"], check=True)
    guest = Guest(guest_image, guest_accel, tmp_path, netdev, disk=overlay, reboots=True)
    try:
        console = guest.wait_for("STRATUS-GUEST: ssh ready", timeout=100)
        assert "STRATUS-GUEST: booted" in console
        assert "STRATUS-GUEST: ip=169.254.0.15" in console
        assert f"STRATUS-GUEST: hostname={HOSTNAME}" in console
        assert "STRATUS-GUEST: public key installed" in console
        assert "STRATUS-GUEST: user_data ran (exit 0)" in console

        result = _ssh(ssh_key, ssh_port, "hostname; cat /root/user_data_ran")
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [HOSTNAME, "made-by-user-data"]
        guest.wait_for("STRATUS-GUEST: root file system grown", timeout=30)
        root_kib = int(_ssh(ssh_key, ssh_port, "df -k / | tail -n 1").stdout.split()[1])
        assert root_kib > 400 * 1024, f"the root file system did not grow to the 512 MiB disk: {root_kib} KiB"

        # After a reboot the guest is set up again, but user_data does not run a second time.
        subprocess.run(["ssh", "-i", str(ssh_key), "-p", str(ssh_port), "-o", "BatchMode=yes",
                        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                        "root@127.0.0.1", "reboot"], capture_output=True, timeout=60)
        deadline = time.monotonic() + 100
        while guest.text().count("STRATUS-GUEST: ssh ready") < 2 and time.monotonic() < deadline:
            assert guest.process.poll() is None, "QEMU ended instead of the guest rebooting"
            time.sleep(0.2)
        after_reboot = guest.text().split("STRATUS-GUEST: shutting down")[-1]
        assert "STRATUS-GUEST: ssh ready" in after_reboot and f"hostname={HOSTNAME}" in after_reboot
        assert "STRATUS-GUEST: user_data already ran for this instance" in after_reboot
        assert "user_data ran" not in after_reboot

        # poweroff typed inside the guest ends the QEMU process (busybox init runs the shutdown first).
        subprocess.run(["ssh", "-i", str(ssh_key), "-p", str(ssh_port), "-o", "BatchMode=yes",
                        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                        "root@127.0.0.1", "poweroff"], capture_output=True, timeout=60)
        assert guest.exits_within(30), "poweroff inside the guest did not end QEMU within 30 s"
        assert "STRATUS-GUEST: shutting down" in guest.text()
    finally:
        guest.kill()


def test_guest_waits_for_a_late_dhcp_lease_and_then_reads_its_metadata(
        guest_image: GuestImage, guest_accel: str, metadata_server: tuple[int, dict[str, str]],
        tmp_path: Path) -> None:
    """The cloud may set up the port's DHCP after the VM starts: here the NIC's link is down first."""
    port, files = metadata_server
    files["/latest/meta-data/hostname"] = "late-lease"
    guest = Guest(guest_image, guest_accel, tmp_path, _user_network(port))
    try:
        assert guest.qmp("set_link", {"name": "net0", "up": False}) == {"return": {}}
        guest.wait_for("STRATUS-GUEST: no DHCP lease on eth0 yet", timeout=100)
        time.sleep(2)
        assert "STRATUS-GUEST: ip=" not in guest.text()
        assert guest.qmp("set_link", {"name": "net0", "up": True}) == {"return": {}}
        console = guest.wait_for("STRATUS-GUEST: ssh ready", timeout=60)
        assert "STRATUS-GUEST: ip=169.254.0.15" in console
        assert "STRATUS-GUEST: hostname=late-lease" in console
        assert "STRATUS-GUEST: no public key in metadata" in console and "STRATUS-GUEST: no user_data" in console
    finally:
        guest.kill()


def test_guest_without_network_says_so_reboots_on_ctrl_alt_del_and_acpi_powerdown_powers_it_off(
        guest_image: GuestImage, guest_accel: str, tmp_path: Path) -> None:
    guest = Guest(guest_image, guest_accel, tmp_path, None, reboots=True)
    try:
        console = guest.wait_for("STRATUS-GUEST: ssh ready", timeout=100)
        assert "STRATUS-GUEST: failed: no network interface eth0" in console
        # Ctrl-Alt-Del (the qemu driver's soft reboot) reboots the guest cleanly: it boots again.
        keys = [{"type": "qcode", "data": key} for key in ("ctrl", "alt", "delete")]
        assert guest.qmp("send-key", {"keys": keys}) == {"return": {}}
        guest.wait_for("STRATUS-GUEST: rebooting", timeout=30)
        deadline = time.monotonic() + 100
        while guest.text().count("STRATUS-GUEST: ssh ready") < 2 and time.monotonic() < deadline:
            assert guest.process.poll() is None, "QEMU ended instead of the guest rebooting"
            time.sleep(0.2)
        assert guest.text().count("STRATUS-GUEST: booted") == 2, guest.text()
        assert guest.text().count("STRATUS-GUEST: ssh ready") == 2, guest.text()
        # The ACPI power button (what the qemu driver's power off sends before it kills) powers it off.
        assert guest.qmp("system_powerdown") == {"return": {}}
        assert guest.exits_within(30), "system_powerdown did not power the guest off within 30 s"
        text = guest.text()
        assert "STRATUS-GUEST: power button pressed" in text
        assert text.count("STRATUS-GUEST: shutting down") == 2  # the reboot's, and the poweroff's
    finally:
        guest.kill()


def test_build_is_cached_by_recipe_and_makes_a_qcow2_a_pvh_kernel_and_an_initrd(
        guest_image: GuestImage, guest_cache_dir: Path) -> None:
    started = time.monotonic()
    again = build(guest_cache_dir)
    assert time.monotonic() - started < 10, "a second build of the same recipe must come from the cache"
    assert again == guest_image
    assert guest_image.disk.parent == guest_cache_dir / guest_image.recipe_hash
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(guest_image.disk)],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["format"] == "qcow2"
    assert info["virtual-size"] >= 64 * 1024 * 1024
    assert has_pvh_entry(guest_image.kernel.read_bytes())
    with guest_image.initrd.open("rb") as f:
        assert f.read(2) == b"\x1f\x8b"  # gzip-compressed cpio
    assert guest_image.machine == "q35"
    assert "console=ttyS0" in guest_image.cmdline and "root=/dev/vda" in guest_image.cmdline


def test_a_missing_package_or_module_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GuestBuildError, match="apt-get install no-such-package-here"):
        debian.package_version("no-such-package-here")
    (tmp_path / "modules.dep").write_text("kernel/a.ko: kernel/b.ko kernel/c.ko\nkernel/b.ko: kernel/c.ko\n"
                                          "kernel/c.ko:\nkernel/d-e.ko.xz:\n")
    (tmp_path / "modules.builtin").write_text("kernel/builtin.ko\n")
    order = debian.module_load_order(tmp_path, ["a", "d_e", "builtin"])
    assert [p.relative_to(tmp_path).as_posix() for p in order] == [
        "kernel/c.ko", "kernel/b.ko", "kernel/a.ko", "kernel/d-e.ko.xz"]
    with pytest.raises(GuestBuildError, match="nope"):
        debian.module_load_order(tmp_path, ["nope"])


def test_only_the_newest_recipes_are_kept(tmp_path: Path) -> None:
    for age, name in enumerate(["newest", "newer", "older", "oldest"]):
        (tmp_path / name).mkdir()
        (tmp_path / name / "guest.json").write_text("{}")
        os.utime(tmp_path / name / "guest.json", (time.time() - age * 60, time.time() - age * 60))
    (tmp_path / "accel-x.json").write_text("{}")
    (tmp_path / ".build-in-progress").mkdir()
    (tmp_path / ".build-in-progress" / "guest.json").write_text("{}")
    os.utime(tmp_path / ".build-in-progress" / "guest.json", (0, 0))
    assert prune(tmp_path, keep=3) == [tmp_path / "oldest"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".build-in-progress", "accel-x.json", "newer", "newest",
                                                         "older"]


def test_stratus_guest_build_prints_the_files(guest_image: GuestImage, guest_cache_dir: Path) -> None:
    result = CliRunner().invoke(main, ["guest", "build", "--cache-dir", str(guest_cache_dir)])
    assert result.exit_code == 0, result.output
    lines = dict(line.split(": ", 1) for line in result.output.splitlines())
    assert Path(lines["disk"]) == guest_image.disk and Path(lines["kernel"]) == guest_image.kernel
    assert Path(lines["initrd"]) == guest_image.initrd and lines["cmdline"] == guest_image.cmdline
    assert lines["machine"] == "q35"


def test_dhcp_script_installs_classless_static_routes_and_ignores_the_router_option(tmp_path: Path) -> None:
    """The guest's udhcpc script, run with busybox's own ip in a scratch network namespace."""
    namespace = f"stratus-guest-t{os.getpid()}"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for applet in ("ip", "grep"):
        (bin_dir / applet).symlink_to("/bin/busybox")
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        def in_ns(*command: str, env: dict[str, str] | None = None) -> str:
            environment = ["env", "-i", *(f"{key}={value}" for key, value in (env or {}).items())] if env else []
            return subprocess.run(["ip", "netns", "exec", namespace, *environment, *command], capture_output=True,
                                  text=True, check=True).stdout

        in_ns("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
        in_ns("ip", "link", "set", "peer0", "up")
        lease = {"PATH": str(bin_dir), "STRATUS_RESOLV_CONF": str(tmp_path / "resolv.conf"),
                 "STRATUS_RUN_DIR": str(tmp_path), "interface": "eth0", "ip": "10.0.0.5", "mask": "24",
                 "router": "10.0.0.99", "dns": "10.0.0.3 10.0.0.4", "domain": "example.org", "mtu": "1450",
                 "staticroutes": "169.254.169.254/32 10.0.0.2 0.0.0.0/0 10.0.0.1 10.9.0.0/16 0.0.0.0"}
        script = str(FILES_DIR / "udhcpc-script")
        in_ns("/bin/busybox", "sh", script, "deconfig", env=lease)
        in_ns("/bin/busybox", "sh", script, "bound", env=lease)
        routes = in_ns("ip", "-4", "route").splitlines()
        assert "default via 10.0.0.1 dev eth0" in [r.strip() for r in routes]
        assert any(r.startswith("169.254.169.254 via 10.0.0.2 dev eth0") for r in routes)
        assert any(r.startswith("10.9.0.0/16 dev eth0") for r in routes)
        assert any(r.startswith("10.0.0.0/24 dev eth0") for r in routes)
        assert "10.0.0.99" not in "\n".join(routes)  # RFC 3442: the router option is ignored
        assert "mtu 1450" in in_ns("ip", "link", "show", "eth0")
        assert (tmp_path / "resolv.conf").read_text() == (
            "search example.org\nnameserver 10.0.0.3\nnameserver 10.0.0.4\n")
        assert (tmp_path / "net.address").read_text() == "10.0.0.5\n"

        # Without option 121 the router option gives the default route.
        plain = {k: v for k, v in lease.items() if k != "staticroutes"} | {"ip": "10.0.0.6"}
        in_ns("/bin/busybox", "sh", script, "bound", env=plain)
        routes = [r.strip() for r in in_ns("ip", "-4", "route").splitlines()]
        assert "default via 10.0.0.99 dev eth0" in routes
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=False)


def test_accelerator_probe_sees_the_kernel_boot_under_tcg_and_the_choice_is_cached(
        guest_image: GuestImage, guest_cache_dir: Path, guest_accel: str) -> None:
    assert accel.probe(guest_image.kernel, "tcg", guest_cache_dir)
    assert guest_accel in ("kvm", "tcg")
    started = time.monotonic()
    assert accel.choose(guest_cache_dir) == guest_accel
    assert time.monotonic() - started < 10, "the accelerator choice must be cached per host"


def test_bare_boot_reaches_the_first_console_marker(guest_image: GuestImage, guest_accel: str) -> None:
    seconds = bare_boot_seconds(guest_image, guest_accel)
    assert 0 < seconds < 90


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The upload test needs one image service, not one per database engine."""
    return f"sqlite:///{tmp_path / 'identity.sqlite'}"


def test_upload_makes_kernel_ramdisk_and_disk_images_once_per_recipe(
        guest_image: GuestImage, image: ImageHarness) -> None:
    token = image.as_admin()["X-Auth-Token"]
    guest_id = upload("http://testserver", token, guest_image, http=image.client)
    admin = image.as_admin()
    disk = image.client.get(f"/v2/images/{guest_id}", headers=admin).json()
    assert disk["name"] == "stratus-guest" and disk["status"] == "active" and disk["visibility"] == "public"
    assert (disk["disk_format"], disk["container_format"]) == ("qcow2", "bare")
    assert disk["size"] == guest_image.disk.stat().st_size
    assert disk["os_command_line"] == guest_image.cmdline and disk["hw_machine_type"] == guest_image.machine
    assert disk["stratus_guest_recipe"] == guest_image.recipe_hash
    kernel = image.client.get(f"/v2/images/{disk['kernel_id']}", headers=admin).json()
    ramdisk = image.client.get(f"/v2/images/{disk['ramdisk_id']}", headers=admin).json()
    assert (kernel["disk_format"], kernel["status"], kernel["size"]) == (
        "aki", "active", guest_image.kernel.stat().st_size)
    assert (ramdisk["disk_format"], ramdisk["status"], ramdisk["size"]) == (
        "ari", "active", guest_image.initrd.stat().st_size)

    count = len(image.client.get("/v2/images", headers=admin).json()["images"])
    assert upload("http://testserver", token, guest_image, http=image.client) == guest_id
    assert len(image.client.get("/v2/images", headers=admin).json()["images"]) == count
