"""The fake hypervisor: instances are entries in a dict, every operation is instant.

It proves the control plane at scale (many fake hosts in one process) and lets tests inject
failures (`fail_spawn`). Nothing runs; the console log records what was asked.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from stratus.compute.drivers.base import (
    PAUSED,
    RUNNING,
    SHUTDOWN,
    SUSPENDED,
    Doc,
    Driver,
    DriverError,
    HostResources,
    InstanceInfo,
    InstanceNotFound,
)

SNAPSHOT_BYTES = 1024 * 1024


@dataclass
class _FakeInstance:
    power_state: int
    flavor: Doc
    console: list[str] = field(default_factory=list)
    volumes: dict[str, Doc] = field(default_factory=dict)
    ports: dict[str, Doc] = field(default_factory=dict)


class FakeDriver(Driver):
    def __init__(self, host: str, *, vcpus: int = 16, memory_mb: int = 32768, local_gb: int = 500,
                 fail_spawn: bool = False) -> None:
        self.host = host
        self.resources = HostResources(vcpus=vcpus, memory_mb=memory_mb, local_gb=local_gb, hypervisor_type="fake",
                                       hypervisor_version=1000, hypervisor_hostname=host,
                                       cpu_info={"arch": "x86_64", "model": "fake", "vendor": "stratus",
                                                 "topology": {"cores": vcpus, "threads": 1, "sockets": 1}})
        self.fail_spawn = fail_spawn
        self._instances: dict[str, _FakeInstance] = {}
        self._lock = threading.Lock()

    def _get(self, instance: Doc) -> _FakeInstance:
        found = self._instances.get(instance["id"])
        if found is None:
            raise InstanceNotFound(f"instance {instance['id']} is not on fake host {self.host}")
        return found

    def _set(self, instance: Doc, state: int, line: str) -> None:
        with self._lock:
            found = self._get(instance)
            found.power_state = state
            found.console.append(line)

    def host_resources(self) -> HostResources:
        return self.resources

    def list_instances(self) -> list[str]:
        with self._lock:
            return list(self._instances)

    def get_info(self, instance: Doc) -> InstanceInfo:
        with self._lock:
            return InstanceInfo(self._get(instance).power_state)

    def spawn(self, instance: Doc, image_meta: Doc, network_info: list[Doc], admin_password: str | None) -> None:
        if self.fail_spawn:
            raise DriverError(f"fake host {self.host} is set to fail every spawn")
        addresses = ", ".join(ip["ip_address"] for port in network_info for ip in port.get("fixed_ips", []))
        console = [f"fake boot of {instance['hostname'] or instance['id']} on {self.host}",
                   f"network: {addresses or 'none'}", "login:"]
        with self._lock:
            self._instances[instance["id"]] = _FakeInstance(RUNNING, dict(instance["flavor"]), console,
                                                            ports={p["id"]: p for p in network_info})
            root_volume = instance.get("root_volume")
            if root_volume:  # boot from volume: the root disk is the volume's connection
                self._instances[instance["id"]].volumes[root_volume["mountpoint"]] = root_volume["connection"]

    def destroy(self, instance: Doc, network_info: list[Doc]) -> None:
        with self._lock:
            self._instances.pop(instance["id"], None)

    def reboot(self, instance: Doc, hard: bool) -> None:
        self._set(instance, RUNNING, f"{'hard' if hard else 'soft'} reboot")

    def power_off(self, instance: Doc) -> None:
        self._set(instance, SHUTDOWN, "power off")

    def power_on(self, instance: Doc) -> None:
        self._set(instance, RUNNING, "power on")

    def pause(self, instance: Doc) -> None:
        self._set(instance, PAUSED, "paused")

    def unpause(self, instance: Doc) -> None:
        self._set(instance, RUNNING, "unpaused")

    def suspend(self, instance: Doc) -> None:
        self._set(instance, SUSPENDED, "suspended")

    def resume(self, instance: Doc) -> None:
        self._set(instance, RUNNING, "resumed")

    def snapshot(self, instance: Doc) -> tuple[str, Iterator[bytes]]:
        with self._lock:
            self._get(instance).console.append("snapshot")

        def chunks() -> Iterator[bytes]:
            # A raw disk of zeros: the image service accepts it as raw.
            for _ in range(SNAPSHOT_BYTES // 65536):
                yield bytes(65536)

        return "raw", chunks()

    def migrate_disk_and_power_off(self, instance: Doc, dest_host: str, new_flavor: Doc) -> None:
        self._set(instance, SHUTDOWN, f"migrating to {dest_host}")

    def finish_migration(self, instance: Doc, image_meta: Doc, network_info: list[Doc]) -> None:
        with self._lock:
            self._instances[instance["id"]] = _FakeInstance(RUNNING, dict(instance["flavor"]),
                                                            ["arrived by migration"],
                                                            ports={p["id"]: p for p in network_info})

    def finish_revert_migration(self, instance: Doc, network_info: list[Doc]) -> None:
        with self._lock:
            found = self._instances.get(instance["id"])
            if found is None:
                found = self._instances[instance["id"]] = _FakeInstance(RUNNING, dict(instance["flavor"]))
            found.power_state, found.flavor = RUNNING, dict(instance["flavor"])
            found.console.append("resize reverted")

    def confirm_migration(self, instance: Doc) -> None:
        with self._lock:
            self._instances.pop(instance["id"], None)

    def attach_volume(self, instance: Doc, connection: Doc, mountpoint: str) -> None:
        with self._lock:
            self._get(instance).volumes[mountpoint] = connection

    def detach_volume(self, instance: Doc, connection: Doc, mountpoint: str) -> None:
        with self._lock:
            self._get(instance).volumes.pop(mountpoint, None)

    def attach_interface(self, instance: Doc, port: Doc) -> None:
        with self._lock:
            self._get(instance).ports[port["id"]] = port

    def detach_interface(self, instance: Doc, port: Doc) -> None:
        with self._lock:
            self._get(instance).ports.pop(port["id"], None)

    def get_console_output(self, instance: Doc) -> str:
        with self._lock:
            return "\n".join(self._get(instance).console) + "\n"
