"""The qemu hypervisor driver: real VMs, one qemu-system-x86_64 process per instance."""

from stratus.compute.drivers.qemu.driver import QemuDriver

__all__ = ["QemuDriver"]
