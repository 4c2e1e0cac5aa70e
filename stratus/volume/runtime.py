"""What runs beside the block storage API: the conductor (with its heartbeat as the scheduler's
service row) and this node's volume agent with its backend."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from stratus.core.bus import Bus, RpcServer
from stratus.core.periodic import Periodic
from stratus.image.client import ImageClient
from stratus.volume.agent import VolumeAgent
from stratus.volume.backends.file import FileBackend
from stratus.volume.conductor import Conductor
from stratus.volume.rpc import SCHEDULER_BINARY
from stratus.volume.service import VolumeService


@dataclass
class Runtime:
    servers: list[RpcServer] = field(default_factory=list)
    agents: list[VolumeAgent] = field(default_factory=list)
    periodic: list[Periodic] = field(default_factory=list)

    def stop(self) -> None:
        for work in self.periodic:
            work.stop()
        for agent in self.agents:
            agent.stop()
        for server in self.servers:
            server.stop()


def node_name(service: VolumeService) -> str:
    return service.settings.host or socket.gethostname()


def start_control(service: VolumeService, bus: Bus, runtime: Runtime) -> Conductor:
    conductor = Conductor(service, bus)
    runtime.servers.append(conductor.serve())
    host = node_name(service)

    def beat() -> None:
        conductor.report_state(host=host, binary=SCHEDULER_BINARY, availability_zone=service.settings.availability_zone)

    heartbeat = Periodic("volume control heartbeat", beat, service.settings.report_interval, at_once=True)
    runtime.periodic.append(heartbeat)
    heartbeat.start()
    return conductor


def start_agent(service: VolumeService, bus: Bus, runtime: Runtime, image: ImageClient | None) -> VolumeAgent:
    s = service.settings
    backend = FileBackend(service.storage_dir(), s.file_format, s.capacity_gb)
    agent = VolumeAgent(bus, node_name(service), backend, availability_zone=s.availability_zone, image=image,
                        report_interval=s.report_interval, storage_address=s.storage_address)
    agent.start()
    runtime.agents.append(agent)
    return agent


def start_runtime(service: VolumeService, bus: Bus, *, agent: bool = True) -> Runtime:
    """Everything `stratus up` runs for block storage besides the API."""
    runtime = Runtime()
    start_control(service, bus, runtime)
    if agent:
        start_agent(service, bus, runtime, service.image)
    return runtime
