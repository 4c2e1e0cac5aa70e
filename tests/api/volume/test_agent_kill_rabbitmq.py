"""Acceptance 3 with a real agent process: the volume agent runs as its own process (bus on the
local RabbitMQ, an exchange of this run's own), is SIGKILLed while it clones a volume, and a new
agent process on the same storage directory settles the record: `error`, no partial file, and
every file has its record. RabbitMQ not answering is a failure."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from stratus.core import config as config_mod
from stratus.core.bus import Bus
from stratus.volume import models
from stratus.volume.conductor import Conductor
from stratus.volume.service import VolumeService
from tests.backends.rabbitmq import reachable_rabbitmq

RUN_EXCHANGE = f"stratus-volume-kill-{uuid.uuid4().hex[:8]}"
HOST = f"storage-{uuid.uuid4().hex[:6]}"
pytestmark = pytest.mark.backend

_AGENT = """
import sys, threading
from pathlib import Path
from stratus.core.bus import Bus
from stratus.volume.agent import VolumeAgent
from stratus.volume.backends.file import FileBackend

bus = Bus(sys.argv[1], exchange=sys.argv[2], default_timeout=20)
agent = VolumeAgent(bus, sys.argv[3], FileBackend(Path(sys.argv[4]), capacity_gb=100), report_interval=1)
agent.start()
print("ready", flush=True)
threading.Event().wait()
"""


@pytest.fixture(scope="module")
def rabbitmq() -> Iterator[str]:
    yield from reachable_rabbitmq(RUN_EXCHANGE)


def _agent(url: str, storage: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    process = subprocess.Popen([sys.executable, "-c", _AGENT, url, RUN_EXCHANGE, HOST, str(storage)], env=env,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready", "the agent process did not start"
    return process


def test_agent_process_killed_mid_clone_leaves_error_and_no_stray_file(rabbitmq: str, tmp_path: Path) -> None:
    storage = tmp_path / "volumes"
    storage.mkdir()
    cfg = config_mod.load(state_dir=tmp_path / "state", environ={
        "STRATUS_DATABASE__URL": f"sqlite:///{tmp_path / 'volume.sqlite'}", "STRATUS_VOLUME__OPERATION_TIMEOUT": "8"})
    bus = Bus(rabbitmq, exchange=RUN_EXCHANGE, default_timeout=20)
    service = VolumeService(cfg, bus=bus)
    service.setup()
    conductor = Conductor(service, bus)
    server = conductor.serve()
    agents: list[subprocess.Popen[str]] = []
    try:
        agents.append(_agent(rabbitmq, storage))
        source, clone = str(uuid.uuid4()), str(uuid.uuid4())
        # A source with real data, so that the clone takes long enough to be killed in the middle.
        with open(storage / f"volume-{source}", "wb") as handle:
            for _ in range(192):
                handle.write(os.urandom(1024 * 1024))
        with service.db.transaction() as session:
            session.add(models.Volume(id=source, project_id="p", size=1, status="available", availability_zone="nova",
                                      host=HOST))
            session.add(models.Volume(id=clone, project_id="p", size=1, status="creating", availability_zone="nova",
                                      source_volid=source))
        creating = threading.Thread(target=conductor.create_volume, args=(clone,))
        creating.start()
        deadline = time.monotonic() + 30
        while not (storage / f"volume-{clone}.part").exists():
            assert time.monotonic() < deadline and creating.is_alive(), "the clone never started"
            time.sleep(0.005)
        os.kill(agents[0].pid, signal.SIGKILL)
        agents[0].wait(timeout=10)
        assert (storage / f"volume-{clone}.part").exists()

        agents.append(_agent(rabbitmq, storage))  # resyncs before it reports ready
        with service.db.transaction() as session:
            row = session.get(models.Volume, clone)
            assert row is not None and row.status == "error" and row.host == HOST
        creating.join(timeout=30)  # the conductor's call to the dead agent times out; nothing changes
        with service.db.transaction() as session:
            rows = {r.id: r for r in session.scalars(sa.select(models.Volume))}
        assert rows[clone].status == "error" and rows[source].status == "available"
        on_disk = {p.name for p in storage.iterdir()}
        assert on_disk == {f"volume-{source}"}, on_disk
    finally:
        for process in agents:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            if process.stdout is not None:
                process.stdout.close()
        server.stop()
        bus.close()
        service.db.dispose()
