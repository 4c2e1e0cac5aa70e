"""The interface a hypervisor driver offers the compute agent.

The agent hands a driver plain documents (JSON-able dicts, as they come over the bus): the
instance (`id`, `name`, `hostname`, `flavor` {vcpus, ram, disk, ephemeral, swap}, `image_ref`,
`user_data`, `key_data`, `metadata`), its network info (a list of ports: `id`, `mac_address`,
`network_id`, `fixed_ips`), and image metadata. A driver raises `DriverError` when the hypervisor
refuses; anything else it raises is treated the same way by the agent.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# Nova's power states, as the API shows them in OS-EXT-STS:power_state.
NOSTATE, RUNNING, PAUSED, SHUTDOWN, CRASHED, SUSPENDED = 0, 1, 3, 4, 6, 7

Doc = dict[str, Any]


class DriverError(Exception):
    """The hypervisor could not do what was asked; the message says why."""


class InstanceNotFound(DriverError):
    pass


@dataclass
class InstanceInfo:
    power_state: int


@dataclass
class HostResources:
    """What a host offers, as its agent reports it."""

    vcpus: int
    memory_mb: int
    local_gb: int
    hypervisor_type: str
    hypervisor_version: int
    hypervisor_hostname: str
    host_ip: str = "127.0.0.1"
    cpu_info: dict[str, Any] | None = None


class Driver(abc.ABC):
    @abc.abstractmethod
    def host_resources(self) -> HostResources: ...

    @abc.abstractmethod
    def list_instances(self) -> list[str]:
        """Ids of the instances the hypervisor runs or keeps (for the agent's resync)."""

    @abc.abstractmethod
    def get_info(self, instance: Doc) -> InstanceInfo: ...

    @abc.abstractmethod
    def spawn(self, instance: Doc, image_meta: Doc, network_info: list[Doc], admin_password: str | None) -> None: ...

    @abc.abstractmethod
    def destroy(self, instance: Doc, network_info: list[Doc]) -> None:
        """Remove the instance and everything it held on this host; no error if it is gone."""

    @abc.abstractmethod
    def reboot(self, instance: Doc, hard: bool) -> None: ...

    @abc.abstractmethod
    def power_off(self, instance: Doc) -> None: ...

    @abc.abstractmethod
    def power_on(self, instance: Doc) -> None: ...

    @abc.abstractmethod
    def pause(self, instance: Doc) -> None: ...

    @abc.abstractmethod
    def unpause(self, instance: Doc) -> None: ...

    @abc.abstractmethod
    def suspend(self, instance: Doc) -> None: ...

    @abc.abstractmethod
    def resume(self, instance: Doc) -> None: ...

    @abc.abstractmethod
    def snapshot(self, instance: Doc) -> tuple[str, Iterator[bytes]]:
        """The root disk as an image: its disk format and its bytes, streamed."""

    @abc.abstractmethod
    def migrate_disk_and_power_off(self, instance: Doc, dest_host: str, new_flavor: Doc) -> None:
        """First half of a resize/migration, on the source host."""

    @abc.abstractmethod
    def finish_migration(self, instance: Doc, image_meta: Doc, network_info: list[Doc]) -> None:
        """Second half, on the destination host: the instance runs there with `instance["flavor"]`."""

    @abc.abstractmethod
    def finish_revert_migration(self, instance: Doc, network_info: list[Doc]) -> None:
        """Back on the source host with the old flavor after a revert."""

    @abc.abstractmethod
    def confirm_migration(self, instance: Doc) -> None:
        """On the source host after a confirm: drop what the resize kept for a revert."""

    @abc.abstractmethod
    def attach_volume(self, instance: Doc, connection: Doc, mountpoint: str) -> None: ...

    @abc.abstractmethod
    def detach_volume(self, instance: Doc, connection: Doc, mountpoint: str) -> None: ...

    @abc.abstractmethod
    def attach_interface(self, instance: Doc, port: Doc) -> None: ...

    @abc.abstractmethod
    def detach_interface(self, instance: Doc, port: Doc) -> None: ...

    @abc.abstractmethod
    def get_console_output(self, instance: Doc) -> str: ...
