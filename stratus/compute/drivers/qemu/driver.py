"""The qemu hypervisor driver: each instance a qemu-system-x86_64 process on this host.

Everything about an instance lives in `<instances>/<uuid>/` (definition, disks, console log, QMP
socket, pid file), so a new agent (a restart) finds running VMs and their power state again from
there alone. Base images are cached in `<instances>/_base/`; a resize keeps the previous disks in
`<instances>/_resize/<uuid>/` until it is confirmed or reverted.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

from stratus.compute.drivers.base import (
    RUNNING,
    Doc,
    Driver,
    DriverError,
    HostResources,
    InstanceInfo,
    InstanceNotFound,
)
from stratus.compute.drivers.qemu import command, devices, disks, process, qmp
from stratus.compute.drivers.qemu.spec import MACHINE, UUID, Disk, InstanceDir, VmSpec
from stratus.compute.drivers.qemu.vm import Connect, Controller

log = logging.getLogger("stratus.compute.qemu")

CONSOLE_TAIL = 100 * 1024
MIB = 1024**2


class QemuDriver(Driver):
    def __init__(self, host: str, instances_path: Path, images: disks.ImageSource | None = None, *,
                 accel: str = "tcg", shutdown_timeout: float = 30.0, soft_reboot_timeout: float = 30.0,
                 binary: str = command.QEMU_BINARY, connect: Connect = qmp.connect) -> None:
        self.host = host
        self.root = instances_path
        self.root.mkdir(parents=True, exist_ok=True)
        self.cache = disks.ImageCache(self.root / "_base", images)
        self.accel = accel
        self.shutdown_timeout = shutdown_timeout
        self.soft_reboot_timeout = soft_reboot_timeout
        self.binary = binary
        self.connect = connect
        self._locks: dict[str, threading.RLock] = {}
        self._locks_guard = threading.Lock()

    # --- helpers ------------------------------------------------------------------------------

    def _lock(self, instance_id: str) -> threading.RLock:
        with self._locks_guard:
            return self._locks.setdefault(instance_id, threading.RLock())

    def _dir(self, instance: Doc) -> InstanceDir:
        try:
            return InstanceDir(self.root, instance["id"])
        except DriverError:
            raise InstanceNotFound(f"instance {instance['id']!r} is not on host {self.host}") from None

    def _existing(self, instance: Doc) -> tuple[InstanceDir, VmSpec, Controller]:
        where = self._dir(instance)
        if not where.exists():
            raise InstanceNotFound(f"instance {instance['id']} is not on host {self.host}")
        return where, where.load(), Controller(where, self.connect, binary=self.binary)

    def _resize_dir(self, instance_id: str) -> Path:
        return self.root / "_resize" / instance_id

    # --- host ---------------------------------------------------------------------------------

    def host_resources(self) -> HostResources:
        memory_kb = 0
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    memory_kb = int(line.split()[1])
        cores = os.cpu_count() or 1
        return HostResources(vcpus=cores, memory_mb=memory_kb // 1024,
                             local_gb=shutil.disk_usage(self.root).total // disks.GIB,
                             hypervisor_type="QEMU", hypervisor_version=qemu_version(self.binary),
                             hypervisor_hostname=self.host,
                             cpu_info={"arch": os.uname().machine, "model": self.accel, "vendor": "QEMU",
                                       "topology": {"cores": cores, "threads": 1, "sockets": 1}})

    def list_instances(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir()
                      if UUID.match(p.name) and (p / "instance.json").is_file())

    def get_info(self, instance: Doc) -> InstanceInfo:
        _, _, vm = self._existing(instance)
        return InstanceInfo(vm.power_state())

    def prune_base_images(self, min_age: float = 0.0) -> list[str]:
        """Remove cached base images no instance (nor a kept resize) uses; returns their ids."""
        return self.cache.prune(self._images_in_use, min_age)

    def _images_in_use(self) -> set[str]:
        used: set[str] = set()
        specs = [self.root / name / "instance.json" for name in self.list_instances()]
        resize_root = self.root / "_resize"
        if resize_root.is_dir():
            specs += [p / "instance.json" for p in resize_root.iterdir()]
        for path in specs:
            try:
                used.update(InstanceDir(path.parent.parent, path.parent.name).load().base_images)
            except (DriverError, OSError, ValueError):
                continue
        return used

    # --- spawn and destroy --------------------------------------------------------------------

    def spawn(self, instance: Doc, image_meta: Doc, network_info: list[Doc], admin_password: str | None) -> None:
        # admin_password: nothing is injected into the guest (it takes keys from the metadata service).
        where = self._dir(instance)
        with self._lock(where.id):
            if where.exists():
                raise DriverError(f"instance {where.id} already exists on host {self.host}")
            try:
                where.path.mkdir(parents=True, exist_ok=True)
                spec = self._define(instance, image_meta, network_info, where)
                Controller(where, self.connect, binary=self.binary).start(spec)
            except Exception:
                self._remove(where, network_info)
                raise

    def _define(self, instance: Doc, image_meta: Doc, network_info: list[Doc], where: InstanceDir) -> VmSpec:
        flavor = instance["flavor"]
        machine = str(image_meta.get("hw_machine_type") or "q35")
        if not MACHINE.match(machine):
            raise DriverError(f"machine type {machine!r} (image property hw_machine_type) is not supported")
        spec = VmSpec(id=where.id, vcpus=int(flavor["vcpus"]), memory_mb=int(flavor["ram"]), machine=machine,
                      accel=self.accel, flavor=dict(flavor),
                      nics=[devices.nic_from_port(port) for port in network_info])
        image_id = str(instance.get("image_ref") or "")
        root_volume = instance.get("root_volume")
        if not image_id and not root_volume:
            raise DriverError("the qemu driver boots from an image or a root volume; this instance has neither")
        spec.rng = image_meta.get("hw_rng_model") == "virtio"
        for key in ("kernel_id", "ramdisk_id"):
            if image_meta.get(key):
                self._check_usable(str(image_meta[key]), instance.get("project_id"), key)
                with self.cache.locked(str(image_meta[key])):
                    cached = self.cache.fetch(str(image_meta[key]))
                    spec.base_images.append(cached.image_id)
                    setattr(spec, "kernel" if key == "kernel_id" else "initrd", str(cached.path))
                    where.save(spec)  # the definition names it before the lock goes: pruning keeps it
        if spec.kernel:
            spec.append = str(image_meta.get("os_command_line") or "")
        if root_volume:
            # Boot from volume: the block storage connection is the root disk the firmware boots.
            volume = devices.volume_from_connection(root_volume["connection"], root_volume["mountpoint"])
            volume.boot = True
            spec.volumes.append(volume)
            where.save(spec)
        else:
            with self.cache.locked(image_id):
                base = self.cache.fetch(image_id)
                root = where.file("disk")
                disks.create_overlay(base, root, int(flavor.get("disk") or 0) * disks.GIB)
                spec.base_images.append(base.image_id)
                spec.disks.append(Disk("root", str(root)))
                where.save(spec)
        self._add_flavor_disks(spec, where, flavor)
        where.save(spec)
        return spec

    def _check_usable(self, image_id: str, project_id: str | None, key: str) -> None:
        """A kernel or ramdisk named by an image property must be one the instance's project may
        use: the download goes with this service's token, which could read any project's image."""
        if self.cache.images is None:
            return
        image = self.cache.images.get_image(image_id)
        if image.get("visibility") in ("public", "community") or (project_id and image.get("owner") == project_id):
            return
        raise DriverError(f"image property {key}: image {image_id} is not one this project may use")

    def _add_flavor_disks(self, spec: VmSpec, where: InstanceDir, flavor: Doc) -> None:
        """The flavor's ephemeral and swap disks, blank (the guest formats them)."""
        for name, file, size in (("eph0", "disk.eph0", int(flavor.get("ephemeral") or 0) * disks.GIB),
                                 ("swap", "disk.swap", int(flavor.get("swap") or 0) * MIB)):
            path = where.file(file)
            spec.disks = [d for d in spec.disks if d.name != name]
            if size <= 0:
                path.unlink(missing_ok=True)
                continue
            if path.exists():
                disks.grow(path, size)
            else:
                disks.create_blank(path, size)
            spec.disks.append(Disk(name, str(path)))

    def destroy(self, instance: Doc, network_info: list[Doc]) -> None:
        try:
            where = self._dir(instance)
        except InstanceNotFound:
            return
        with self._lock(where.id):
            self._remove(where, network_info)
            shutil.rmtree(self._resize_dir(where.id), ignore_errors=True)

    def _remove(self, where: InstanceDir, network_info: list[Doc]) -> None:
        """Kill its QEMU, remove its taps and its directory; whatever of them exists."""
        Controller(where, self.connect, binary=self.binary).stop_process(0)
        taps = {"tap" + str(port.get("id", ""))[:11] for port in network_info if port.get("id")}
        if where.exists():
            try:
                taps |= {nic.tap for nic in where.load().nics}
            except (DriverError, ValueError):
                pass
        for tap in sorted(taps):
            process.remove_tap(tap)
        shutil.rmtree(where.path, ignore_errors=True)

    # --- power --------------------------------------------------------------------------------

    def reboot(self, instance: Doc, hard: bool) -> None:
        where, spec, vm = self._existing(instance)
        with self._lock(where.id):
            if vm.pid() is None:
                self._start(where, spec, vm)
            elif hard:
                vm.run("system_reset", "cont")
            else:
                vm.soft_reboot(self.soft_reboot_timeout)
                if vm.pid() is None:  # the guest powered off rather than rebooting: start it again
                    vm.start(spec)

    def _start(self, where: InstanceDir, spec: VmSpec, vm: Controller) -> None:
        if where.memory_state.exists():
            vm.restore_memory(spec)
        else:
            vm.start(spec)

    def power_off(self, instance: Doc) -> None:
        where, _, vm = self._existing(instance)
        with self._lock(where.id):
            vm.stop_process(self.shutdown_timeout)
            where.memory_state.unlink(missing_ok=True)  # powering off a suspended VM forgets its memory

    def power_on(self, instance: Doc) -> None:
        where, spec, vm = self._existing(instance)
        with self._lock(where.id):
            if vm.pid() is None:
                self._start(where, spec, vm)

    def pause(self, instance: Doc) -> None:
        where, _, vm = self._running(instance)
        with self._lock(where.id):
            vm.run("stop")

    def unpause(self, instance: Doc) -> None:
        where, _, vm = self._running(instance)
        with self._lock(where.id):
            vm.run("cont")

    def suspend(self, instance: Doc) -> None:
        where, _, vm = self._running(instance)
        with self._lock(where.id):
            vm.save_memory()

    def resume(self, instance: Doc) -> None:
        where, spec, vm = self._existing(instance)
        with self._lock(where.id):
            if vm.pid() is not None:
                vm.run("cont")
            elif not where.memory_state.exists():
                raise DriverError(f"instance {where.id} is not suspended")
            else:
                vm.restore_memory(spec)

    def _running(self, instance: Doc) -> tuple[InstanceDir, VmSpec, Controller]:
        where, spec, vm = self._existing(instance)
        if vm.pid() is None:
            raise DriverError(f"instance {where.id} is not running")
        return where, spec, vm

    # --- snapshot -----------------------------------------------------------------------------

    def snapshot(self, instance: Doc) -> tuple[str, Iterator[bytes]]:
        """The root disk with its base image folded in, as one qcow2 file streamed (then removed).
        A running guest is paused while it is copied, so the copy is consistent."""
        where, spec, vm = self._existing(instance)
        root = next(d for d in spec.disks if d.name == "root")
        temp = where.file(f"snapshot-{os.urandom(4).hex()}.qcow2")
        with self._lock(where.id):
            was_running = vm.pid() is not None and vm.power_state() == RUNNING
            if was_running:
                vm.run("stop")  # QEMU flushes the disk when it stops the guest
            try:
                disks.flatten(Path(root.path), temp, force_share=vm.pid() is not None)
            except Exception:
                temp.unlink(missing_ok=True)
                raise
            finally:
                if was_running:
                    vm.run("cont")
        return "qcow2", disks.stream_file(temp)

    # --- resize (on this host) ----------------------------------------------------------------

    def migrate_disk_and_power_off(self, instance: Doc, dest_host: str, new_flavor: Doc) -> None:
        where, _, vm = self._existing(instance)
        if dest_host != self.host:
            raise DriverError(f"the qemu driver resizes on the same host only; {dest_host} is another host")
        with self._lock(where.id):
            vm.stop_process(self.shutdown_timeout)
            where.memory_state.unlink(missing_ok=True)
            keep = self._resize_dir(where.id)
            shutil.rmtree(keep, ignore_errors=True)
            keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(where.path, keep, ignore=shutil.ignore_patterns("*.sock", "pid", "console.log"))

    def finish_migration(self, instance: Doc, image_meta: Doc, network_info: list[Doc]) -> None:
        """The same disks with the new flavor: the root disk grown, ephemeral and swap remade to size."""
        where, spec, vm = self._existing(instance)
        with self._lock(where.id):
            flavor = instance["flavor"]
            spec.vcpus, spec.memory_mb, spec.flavor = int(flavor["vcpus"]), int(flavor["ram"]), dict(flavor)
            root = next(d for d in spec.disks if d.name == "root")
            if int(flavor.get("disk") or 0) > 0:
                disks.grow(Path(root.path), int(flavor["disk"]) * disks.GIB)
            self._add_flavor_disks(spec, where, flavor)
            where.save(spec)
            vm.start(spec)

    def finish_revert_migration(self, instance: Doc, network_info: list[Doc]) -> None:
        where, _, vm = self._existing(instance)
        keep = self._resize_dir(where.id)
        if not (keep / "instance.json").is_file():
            raise DriverError(f"instance {where.id} has no disks kept from before its resize")
        with self._lock(where.id):
            vm.stop_process(0)
            for path in where.path.iterdir():
                if path.name not in ("console.log",):
                    path.unlink()
            for path in keep.iterdir():
                os.replace(path, where.path / path.name)
            keep.rmdir()
            vm.start(where.load())

    def confirm_migration(self, instance: Doc) -> None:
        shutil.rmtree(self._resize_dir(self._dir(instance).id), ignore_errors=True)

    # --- volumes and interfaces ---------------------------------------------------------------

    def attach_volume(self, instance: Doc, connection: Doc, mountpoint: str) -> None:
        where, spec, vm = self._existing(instance)
        volume = devices.volume_from_connection(connection, mountpoint)
        with self._lock(where.id):
            if any(v.name == volume.name for v in spec.volumes):
                raise DriverError(f"instance {where.id} already has a volume at {mountpoint}")
            if vm.pid() is not None:
                with vm.qmp() as monitor:
                    devices.plug_volume(monitor, spec, volume)
            spec.volumes.append(volume)
            where.save(spec)

    def detach_volume(self, instance: Doc, connection: Doc, mountpoint: str) -> None:
        where, spec, vm = self._existing(instance)
        name = devices.volume_from_name(mountpoint)
        with self._lock(where.id):
            volume = next((v for v in spec.volumes if v.name == name), None)
            if volume is None:
                return
            if vm.pid() is not None:
                with vm.qmp() as monitor:
                    devices.unplug_volume(monitor, volume)
            spec.volumes.remove(volume)
            where.save(spec)

    def attach_interface(self, instance: Doc, port: Doc) -> None:
        where, spec, vm = self._existing(instance)
        nic = devices.nic_from_port(port)
        with self._lock(where.id):
            if any(n.port_id == nic.port_id for n in spec.nics):
                return
            process.ensure_tap(nic.tap)
            if vm.pid() is not None:
                with vm.qmp() as monitor:
                    devices.plug_nic(monitor, spec, nic)
            spec.nics.append(nic)
            where.save(spec)

    def detach_interface(self, instance: Doc, port: Doc) -> None:
        where, spec, vm = self._existing(instance)
        with self._lock(where.id):
            nic = next((n for n in spec.nics if n.port_id == port.get("id")), None)
            if nic is None:
                return
            if vm.pid() is not None:
                with vm.qmp() as monitor:
                    devices.unplug_nic(monitor, nic)
            spec.nics.remove(nic)
            where.save(spec)
            process.remove_tap(nic.tap)

    # --- console ------------------------------------------------------------------------------

    def get_console_output(self, instance: Doc) -> str:
        where, _, _ = self._existing(instance)
        try:
            with open(where.console, "rb") as log_file:
                size = log_file.seek(0, os.SEEK_END)
                log_file.seek(max(0, size - CONSOLE_TAIL))
                return log_file.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""


def qemu_version(binary: str = command.QEMU_BINARY) -> int:
    """QEMU's version as Nova reports it: 7.2.22 -> 7002022 (0 when it cannot be run)."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    found = re.search(r"version (\d+)\.(\d+)\.(\d+)", out)
    return int(found[1]) * 1000000 + int(found[2]) * 1000 + int(found[3]) if found else 0

