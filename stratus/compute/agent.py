"""The compute node agent: runs one host's hypervisor driver for the conductor.

It listens on `compute.<host>` and answers each call with what the driver now sees (the power
state), so the conductor can write it down. It never touches the database: heartbeats (with the
host's resources) and, at start, the power states of the instances it finds go to the conductor.
Disk images travel between the host and the image service directly, streamed.
"""

from __future__ import annotations

from stratus.compute.drivers.base import NOSTATE, Doc, Driver, InstanceNotFound
from stratus.compute.rpc import AGENT_BINARY, AGENT_TOPIC, CONDUCTOR_TOPIC
from stratus.core.bus import Bus, RpcServer
from stratus.core.periodic import Periodic
from stratus.image.client import ImageClient


class ComputeAgent:
    """The bus endpoint of one host. Public methods are what the conductor may call."""

    def __init__(self, bus: Bus, host: str, driver: Driver, *, image: ImageClient | None = None,
                 report_interval: float = 10.0) -> None:
        self.host = host
        self._bus, self._driver, self._image = bus, driver, image
        self._server: RpcServer | None = None
        self._heartbeat = Periodic(f"compute heartbeat {host}", self.report, report_interval)

    # --- life -------------------------------------------------------------------------------

    def start(self) -> None:
        """Serve, report once (which registers the host), resync, then heartbeat in the background."""
        self._server = self._bus.serve(AGENT_TOPIC, self, host=self.host)
        self.report()
        self.resync()
        self._heartbeat.start()

    def stop(self) -> None:
        self._heartbeat.stop()
        if self._server is not None:
            self._server.stop()
            self._server = None

    def report(self) -> None:
        res = self._driver.host_resources()
        self._bus.call(CONDUCTOR_TOPIC, "report_state", host=self.host, binary=AGENT_BINARY,
                       resources={"vcpus": res.vcpus, "memory_mb": res.memory_mb, "local_gb": res.local_gb,
                                  "hypervisor_type": res.hypervisor_type,
                                  "hypervisor_version": res.hypervisor_version,
                                  "hypervisor_hostname": res.hypervisor_hostname, "host_ip": res.host_ip,
                                  "cpu_info": res.cpu_info or {}})

    def resync(self) -> None:
        """Tell the conductor the power state of every instance it places here, as the driver sees it."""
        expected: list[str] = self._bus.call(CONDUCTOR_TOPIC, "instances_on_host", host=self.host)
        running = set(self._driver.list_instances())
        states = {}
        for instance_id in expected:
            if instance_id in running:
                states[instance_id] = self._driver.get_info({"id": instance_id}).power_state
            else:
                states[instance_id] = NOSTATE
        if states:
            self._bus.call(CONDUCTOR_TOPIC, "sync_power_states", host=self.host, states=states)

    # --- what the conductor calls -------------------------------------------------------------

    def _state(self, instance: Doc) -> int:
        try:
            return self._driver.get_info(instance).power_state
        except InstanceNotFound:
            return NOSTATE

    def spawn(self, instance: Doc, image_meta: Doc, network_info: list[Doc], admin_password: str | None = None) -> int:
        self._driver.spawn(instance, image_meta, network_info, admin_password)
        return self._state(instance)

    def destroy(self, instance: Doc, network_info: list[Doc]) -> int:
        self._driver.destroy(instance, network_info)
        return NOSTATE

    def reboot(self, instance: Doc, hard: bool = False) -> int:
        self._driver.reboot(instance, hard)
        return self._state(instance)

    def power(self, instance: Doc, operation: str) -> int:
        """power_off, power_on, pause, unpause, suspend or resume."""
        if operation not in ("power_off", "power_on", "pause", "unpause", "suspend", "resume"):
            raise ValueError(f"unknown power operation {operation!r}")
        getattr(self._driver, operation)(instance)
        return self._state(instance)

    def snapshot(self, instance: Doc, image_id: str) -> str:
        """Stream the instance's disk into image `image_id` (queued, made by the API); returns the
        disk format the driver produced."""
        if self._image is None:
            raise RuntimeError(f"compute agent {self.host} has no image service to upload to")
        disk_format, chunks = self._driver.snapshot(instance)
        self._image.set_formats(image_id, disk_format, "bare")
        self._image.upload(image_id, chunks)
        return disk_format

    def rebuild(self, instance: Doc, image_meta: Doc, network_info: list[Doc],
                admin_password: str | None = None) -> int:
        self._driver.destroy(instance, network_info)
        self._driver.spawn(instance, image_meta, network_info, admin_password)
        return self._state(instance)

    def migrate_out(self, instance: Doc, dest_host: str, new_flavor: Doc) -> int:
        self._driver.migrate_disk_and_power_off(instance, dest_host, new_flavor)
        return self._state(instance)

    def migrate_in(self, instance: Doc, image_meta: Doc, network_info: list[Doc]) -> int:
        self._driver.finish_migration(instance, image_meta, network_info)
        return self._state(instance)

    def confirm_migration(self, instance: Doc) -> int:
        self._driver.confirm_migration(instance)
        return NOSTATE

    def revert_migration(self, instance: Doc, network_info: list[Doc]) -> int:
        self._driver.finish_revert_migration(instance, network_info)
        return self._state(instance)

    def console_output(self, instance: Doc, length: int | None = None) -> str:
        text = self._driver.get_console_output(instance)
        if length is not None:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-length:]) if length > 0 else ""
        return text

    def attach_interface(self, instance: Doc, port: Doc) -> None:
        self._driver.attach_interface(instance, port)

    def detach_interface(self, instance: Doc, port: Doc) -> None:
        self._driver.detach_interface(instance, port)

    def attach_volume(self, instance: Doc, connection: Doc, mountpoint: str) -> None:
        """Hot-plug the block storage connection (a local path or an NBD export) at `mountpoint`."""
        self._driver.attach_volume(instance, connection, mountpoint)

    def detach_volume(self, instance: Doc, connection: Doc, mountpoint: str) -> None:
        self._driver.detach_volume(instance, connection, mountpoint)
