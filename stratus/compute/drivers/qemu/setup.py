"""The qemu driver as the configuration asks for it: where instances live, which accelerator."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from stratus.compute.drivers.qemu.disks import ImageSource
from stratus.compute.drivers.qemu.driver import QemuDriver
from stratus.core.config import Config

log = logging.getLogger("stratus.compute.qemu")


def instances_path(config: Config) -> Path:
    return (config.compute.instances_path or config.server.state_dir / "instances").resolve()


def choose_accel(setting: str) -> str:
    """`kvm` or `tcg` as configured; for `auto`, what the guest package's probe boot found works
    on this host (KVM may open and still hang a guest, so only a real boot decides)."""
    if setting != "auto":
        return setting
    try:
        probe = importlib.import_module("stratus.guest.accel")
    except ImportError:
        log.warning("no accelerator probe available; using TCG emulation")
        return "tcg"
    choice = str(probe.choose())
    return choice if choice in ("kvm", "tcg") else "tcg"


def make_driver(config: Config, host: str, images: ImageSource | None) -> QemuDriver:
    s = config.compute
    return QemuDriver(host, instances_path(config), images, accel=choose_accel(s.qemu_accel),
                      shutdown_timeout=s.qemu_shutdown_timeout, soft_reboot_timeout=s.qemu_soft_reboot_timeout)
