"""Hot-plug of volumes and NICs into a running VM, as QMP command sequences.

Attach: `blockdev-add` (or `netdev_add`) then `device_add` into a free hot-plug slot. Detach:
`device_del`, wait for the guest to let go (`DEVICE_DELETED`), then `blockdev-del` (`netdev_del`).
A stopped VM only has its definition changed; the next start plugs the device in from the
command line.
"""

from __future__ import annotations

import os
import re
import stat
from typing import Any

from stratus.compute.drivers.base import Doc, DriverError
from stratus.compute.drivers.qemu import command
from stratus.compute.drivers.qemu.qmp import Qmp
from stratus.compute.drivers.qemu.spec import MAC, Nic, VmSpec, Volume, check_id

MOUNTPOINT = re.compile(r"^(/dev/)?(?P<name>[a-z]{2,3}[a-z]{1,2})$")
VOLUME_FORMATS = ("raw", "qcow2")
NBD_EXPORT = re.compile(r"^[A-Za-z0-9._:/-]{1,255}$")
# Seconds a guest gets to release a device being unplugged.
UNPLUG_TIMEOUT = 20.0


def volume_from_name(mountpoint: str) -> str:
    """"/dev/vdb" -> "vdb", the name a volume is known by inside the VM's definition."""
    found = MOUNTPOINT.match(mountpoint or "")
    if found is None:
        raise DriverError(f"mountpoint {mountpoint!r} is not a device name like /dev/vdb")
    return found["name"]


def volume_from_connection(connection: Doc, mountpoint: str) -> Volume:
    """The volume service's connection document as a block device: `local` (a file or block device
    on this host, `device_path`) or `nbd` (`host`, `port`, `export_name`), in `format` raw or qcow2."""
    name = volume_from_name(mountpoint)
    kind, data = connection.get("driver_volume_type"), connection.get("data") or {}
    fmt = str(data.get("format") or "raw")
    if fmt not in VOLUME_FORMATS:
        raise DriverError(f"volume format {fmt!r} is not one the qemu driver attaches ({', '.join(VOLUME_FORMATS)})")
    protocol: dict[str, Any]
    if kind == "local":
        path = str(data.get("device_path") or "")
        if not os.path.isabs(path):
            raise DriverError(f"local volume path {path!r} is not absolute")
        try:
            mode = os.stat(path).st_mode
        except OSError as exc:
            raise DriverError(f"local volume {path}: {exc.strerror}") from None
        protocol = {"driver": "host_device" if stat.S_ISBLK(mode) else "file", "filename": path}
    elif kind == "nbd":
        host, port = str(data.get("host") or ""), data.get("port")
        export = str(data.get("export_name") or data.get("export") or "")
        if not host or not isinstance(port, int) or not 0 < port < 65536:
            raise DriverError("an nbd volume needs a host and a port")
        protocol = {"driver": "nbd", "server": {"type": "inet", "host": host, "port": str(port)}}
        if export:
            if not NBD_EXPORT.match(export):
                raise DriverError(f"nbd export name {export!r} is not acceptable")
            protocol["export"] = export
    else:
        raise DriverError(f"volume connection type {kind!r} is not supported by the qemu driver")
    return Volume(name=name, blockdev={"driver": fmt, "read-only": bool(data.get("read_only")),
                                                "file": protocol})


def nic_from_port(port: Doc) -> Nic:
    port_id = check_id(str(port.get("id")), "port id")
    mac = str(port.get("mac_address") or "").lower()
    if not MAC.match(mac):
        raise DriverError(f"port {port_id} has no usable MAC address ({mac!r})")
    return Nic(port_id=port_id, mac=mac)


def _take_slot(spec: VmSpec) -> str:
    if spec.mmio:
        raise DriverError(f"a {spec.machine} VM cannot take hot-plugged devices; stop it first")
    bus = command.free_bus(spec)
    if not bus:
        raise DriverError(f"instance {spec.id} has no free hot-plug slot left")
    return bus


def _bus_arg(bus: str) -> dict[str, str]:
    return {"bus": bus} if bus and bus != "pci.0" else {}


def plug_volume(qmp: Qmp, spec: VmSpec, volume: Volume) -> None:
    volume.bus = _take_slot(spec)
    qmp.execute("blockdev-add", {**volume.blockdev, "node-name": volume.node_name})
    try:
        qmp.execute("device_add", {"driver": command.device_driver(spec, "blk"), "drive": volume.node_name,
                                   "id": volume.device_id, **_bus_arg(volume.bus)})
    except DriverError:
        qmp.execute("blockdev-del", {"node-name": volume.node_name})
        raise


def unplug(qmp: Qmp, device_id: str) -> None:
    qmp.execute("device_del", {"id": device_id})
    if qmp.wait_event(("DEVICE_DELETED",), UNPLUG_TIMEOUT, {"device": device_id}) is None:
        raise DriverError(f"the guest did not release device {device_id} within {UNPLUG_TIMEOUT:g} s")


def unplug_volume(qmp: Qmp, volume: Volume) -> None:
    unplug(qmp, volume.device_id)
    qmp.execute("blockdev-del", {"node-name": volume.node_name})


def plug_nic(qmp: Qmp, spec: VmSpec, nic: Nic) -> None:
    nic.bus = _take_slot(spec)
    qmp.execute("netdev_add", {"type": "tap", "id": nic.netdev_id, "ifname": nic.tap, "script": "no",
                               "downscript": "no"})
    try:
        qmp.execute("device_add", {"driver": command.device_driver(spec, "net"), "netdev": nic.netdev_id,
                                   "mac": nic.mac, "id": nic.device_id, **_bus_arg(nic.bus)})
    except DriverError:
        qmp.execute("netdev_del", {"id": nic.netdev_id})
        raise


def unplug_nic(qmp: Qmp, nic: Nic) -> None:
    unplug(qmp, nic.device_id)
    qmp.execute("netdev_del", {"id": nic.netdev_id})
