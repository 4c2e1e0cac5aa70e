"""The qemu-system-x86_64 command line of a VM, built from its `VmSpec`.

Only what the guest needs: `-nodefaults -no-user-config` drop QEMU's default devices (VGA,
floppy, CD-ROM, default NIC), then come virtio disks and NICs, one serial port logged to
console.log, the QMP socket, and — on q35 — a few PCIe root ports that volumes and interfaces can
be hot-plugged into. QEMU daemonizes itself once its devices are up, so it runs outside the agent.
"""

from __future__ import annotations

import shlex
from typing import Any

from stratus.compute.drivers.qemu.spec import InstanceDir, VmSpec

QEMU_BINARY = "qemu-system-x86_64"
# PCIe root ports added on q35 so that devices can be hot-plugged (pcie.0 itself cannot take them).
HOTPLUG_PORTS = 4


def opt(value: str) -> str:
    """A value inside a QEMU `key=value,...` option: commas are doubled."""
    return value.replace(",", ",,")


def hotplug_buses(spec: VmSpec) -> list[str]:
    """Where devices may be hot-plugged: a root port each on q35, the root bus on pc."""
    if spec.mmio:
        return []
    if spec.pcie:
        return [f"hotplug{index}" for index in range(1, HOTPLUG_PORTS + 1)]
    return ["pci.0"]


def free_bus(spec: VmSpec) -> str:
    """A hot-plug slot no volume or NIC uses yet ('' when there is none)."""
    buses = hotplug_buses(spec)
    if buses == ["pci.0"]:
        return "pci.0"
    used = {v.bus for v in spec.volumes} | {n.bus for n in spec.nics}
    return next((bus for bus in buses if bus not in used), "")


def device_driver(spec: VmSpec, kind: str) -> str:
    """virtio-blk / virtio-net / virtio-rng on the VM's bus: `-pci` devices, or `-device` on microvm's MMIO."""
    return f"virtio-{kind}-device" if spec.mmio else f"virtio-{kind}-pci"


def blockdev_arg(blockdev: dict[str, Any]) -> str:
    """A blockdev-add argument (as given to QMP) as a `-blockdev` option, nested keys dotted."""
    parts: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else key, inner)
        elif isinstance(value, bool):
            parts.append(f"{prefix}={'on' if value else 'off'}")
        else:
            parts.append(f"{prefix}={opt(str(value))}")

    walk("", blockdev)
    return ",".join(parts)


def build(spec: VmSpec, where: InstanceDir, *, binary: str = QEMU_BINARY, incoming: str | None = None) -> list[str]:
    """The argv that starts the VM; with `incoming`, one that waits for its saved memory first.

    The QMP socket is named relative to the instance directory (QEMU is started there), because
    the absolute path may be longer than a unix socket address allows."""
    argv = [binary, "-name", f"guest={spec.id}", "-uuid", spec.id,
            "-nodefaults", "-no-user-config", "-display", "none",
            "-machine", spec.machine, "-accel", spec.accel,
            "-smp", str(spec.vcpus), "-m", str(spec.memory_mb),
            "-chardev", f"socket,id=qmp,path={where.qmp_socket.name},server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
            "-chardev", f"file,id=console,path={opt(str(where.console))},append=on",
            "-serial", "chardev:console",
            "-pidfile", str(where.pidfile), "-daemonize"]
    if spec.kernel:
        argv += ["-kernel", spec.kernel]
        if spec.initrd:
            argv += ["-initrd", spec.initrd]
        if spec.append:
            argv += ["-append", spec.append]
    for index, disk in enumerate(spec.disks):
        argv += ["-drive", f"file={opt(disk.path)},format={disk.format},if=none,id=drive-{disk.name},"
                           "discard=unmap"]
        device = f"{device_driver(spec, 'blk')},drive=drive-{disk.name},id={disk.name}"
        if index == 0 and not spec.mmio and not spec.kernel:
            device += ",bootindex=0"  # the firmware boots the root disk
        argv += ["-device", device]
    if spec.rng:
        argv += ["-object", "rng-random,id=rng0,filename=/dev/urandom",
                 "-device", f"{device_driver(spec, 'rng')},rng=rng0"]
    if spec.pcie:
        for number, bus in enumerate(hotplug_buses(spec), start=1):
            argv += ["-device", f"pcie-root-port,id={bus},chassis={number}"]
    for nic in spec.nics:
        argv += ["-netdev", f"tap,id={nic.netdev_id},ifname={nic.tap},script=no,downscript=no",
                 "-device", f"{device_driver(spec, 'net')},netdev={nic.netdev_id},mac={nic.mac},id={nic.device_id}"
                            + (f",bus={nic.bus}" if nic.bus and nic.bus != "pci.0" else "")]
    for volume in spec.volumes:
        argv += ["-blockdev", blockdev_arg({**volume.blockdev, "node-name": volume.node_name}),
                 "-device", f"{device_driver(spec, 'blk')},drive={volume.node_name},id={volume.device_id}"
                            + (f",bus={volume.bus}" if volume.bus and volume.bus != "pci.0" else "")
                            + (",bootindex=0" if volume.boot and not spec.mmio and not spec.kernel else "")]
    if incoming is not None:
        argv += ["-incoming", incoming]
    return argv


def incoming_from_file(path: str) -> str:
    """Load saved memory from a file (QEMU 7 has no `file:` migration URI; `exec:` runs a shell)."""
    return f"exec:cat {shlex.quote(path)}"


def outgoing_to_file(path: str) -> str:
    return f"exec:cat > {shlex.quote(path)}"
