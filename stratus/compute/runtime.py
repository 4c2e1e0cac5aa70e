"""What runs beside the compute API in one process: the conductor, the scheduler, and this node's
compute agent(s) — with the fake driver, `fake_hosts` simulated hosts; with the qemu driver, one
agent named after this host."""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass, field

from stratus.compute.agent import ComputeAgent
from stratus.compute.conductor import Conductor
from stratus.compute.drivers.fake import FakeDriver
from stratus.compute.scheduler import Scheduler
from stratus.compute.service import ComputeService
from stratus.core.bus import Bus, RpcServer
from stratus.core.periodic import Periodic
from stratus.image.client import ImageClient

log = logging.getLogger("stratus.compute.runtime")

# The qemu agent drops cached base images no instance used for this long, checking this often.
BASE_IMAGE_MIN_AGE = 3600.0
BASE_IMAGE_PRUNE_INTERVAL = 600.0


@dataclass
class Runtime:
    servers: list[RpcServer] = field(default_factory=list)
    agents: list[ComputeAgent] = field(default_factory=list)
    periodic: list[Periodic] = field(default_factory=list)

    def start(self, work: Periodic) -> None:
        self.periodic.append(work)
        work.start()

    def stop(self) -> None:
        """The conductor and scheduler first, so that the builds they are running still find
        their hosts' agents (a call to a stopped agent waits for the bus timeout); then the agents."""
        for work in self.periodic:
            work.stop()
        for server in self.servers:
            server.stop()
        for agent in self.agents:
            agent.stop()


def node_name(service: ComputeService) -> str:
    return service.settings.host or socket.gethostname()


def fake_host_names(service: ComputeService) -> list[str]:
    base, count = node_name(service), service.settings.fake_hosts
    return [base] if count == 1 else [f"{base}-{index}" for index in range(1, count + 1)]


def start_control(service: ComputeService, bus: Bus, runtime: Runtime) -> None:
    """The conductor and the scheduler, each reporting its own service heartbeat."""
    conductor = Conductor(service, bus)
    runtime.servers.append(conductor.serve())
    runtime.servers.append(Scheduler(service.db, service.settings).serve(bus))
    host = node_name(service)

    def beat() -> None:
        for binary in ("nova-conductor", "nova-scheduler"):
            conductor.report_state(host=host, binary=binary)

    runtime.start(Periodic("compute control heartbeat", beat, service.settings.report_interval, at_once=True))


def start_fake_agents(service: ComputeService, bus: Bus, runtime: Runtime, image: ImageClient | None) -> None:
    s = service.settings
    for host in fake_host_names(service):
        driver = FakeDriver(host, vcpus=s.fake_vcpus, memory_mb=s.fake_memory_mb, local_gb=s.fake_disk_gb,
                            fail_spawn=host in s.fake_fail_hosts)
        agent = ComputeAgent(bus, host, driver, image=image, report_interval=s.report_interval)
        agent.start()
        runtime.agents.append(agent)


def start_qemu_agent(service: ComputeService, bus: Bus, runtime: Runtime, image: ImageClient | None) -> None:
    """This host's one real agent: VMs already running (from before a restart) are found again by
    the agent's resync; unused cached base images are pruned now and then."""
    from stratus.compute.drivers.qemu.setup import make_driver

    host = node_name(service)
    driver = make_driver(service.config, host, image)
    agent = ComputeAgent(bus, host, driver, image=image, report_interval=service.settings.report_interval)
    agent.start()
    runtime.agents.append(agent)

    def prune() -> None:
        removed = driver.prune_base_images(BASE_IMAGE_MIN_AGE)
        if removed:
            log.info("removed unused cached base images: %s", ", ".join(removed))

    runtime.start(Periodic("qemu base image pruning", prune, BASE_IMAGE_PRUNE_INTERVAL, at_once=True))


def start_agents(service: ComputeService, bus: Bus, runtime: Runtime, image: ImageClient | None) -> None:
    """This node's compute agent(s) with the configured driver."""
    if service.settings.driver == "qemu":
        start_qemu_agent(service, bus, runtime, image)
    else:
        start_fake_agents(service, bus, runtime, image)


def start_runtime(service: ComputeService, bus: Bus, *, agents: bool = True) -> Runtime:
    """Everything `stratus up` runs for compute besides the API."""
    runtime = Runtime()
    start_control(service, bus, runtime)
    if agents:
        start_agents(service, bus, runtime, service.image)
    return runtime


def start_guest_upload(service: ComputeService, identity_url: str, user: str, password: str,
                       timeout: float = 600.0) -> threading.Thread:
    """In the background: build the guest image (or find it cached) and put it in the image service
    as public image `stratus-guest`, unless this recipe's guest is there already — so that a cloud
    with real VMs has something to boot on first start. Uploaded as `user` of the service project."""
    import time

    import httpx

    from stratus import guest

    image_url = f"http://127.0.0.1:{service.config.image.port}"

    def upload() -> None:
        deadline = time.monotonic() + timeout
        try:
            built = guest.build()
        except Exception:
            log.exception("could not build the guest image; no stratus-guest image to boot")
            return
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": "service", "domain": {"id": "default"}}}}}
        while True:
            try:
                answer = httpx.post(f"{identity_url}/v3/auth/tokens", json=body, timeout=10)
                answer.raise_for_status()
                image_id = guest.upload(image_url, answer.headers["x-subject-token"], built)
                log.info("guest image stratus-guest is image %s", image_id)
                return
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                if time.monotonic() > deadline:
                    log.error("could not upload the guest image: %s", exc)
                    return
                time.sleep(1.0)
            except Exception:
                log.exception("could not upload the guest image")
                return

    thread = threading.Thread(target=upload, name="guest image upload", daemon=True)
    thread.start()
    return thread
