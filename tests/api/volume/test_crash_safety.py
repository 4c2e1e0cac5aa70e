"""Acceptance 3: an agent killed mid-create leaves the volume in `error` (or finished) once it is
back, never a file without a record nor a record pointing at nothing.

The agent's backend work runs in a real child process killed with SIGKILL at the worst moments:
while an image streams into a new volume, and after a volume file was complete but before the
conductor heard of it. A fresh agent then starts on the same storage directory and resyncs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from stratus.volume import models
from stratus.volume.runtime import Runtime, start_agent, start_control
from tests.conftest import ImageHarness, make_volume

# The child: the file backend making a volume from an "image" that streams slowly and forever, or
# making an empty volume and then hanging before it could report.
_CHILD = """
import sys, time
from pathlib import Path
from stratus.volume.backends.file import FileBackend

root, mode, volume_id = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
backend = FileBackend(root)

def slow_image():
    while True:
        yield b"\\1" * 65536
        time.sleep(0.01)

if mode == "image":
    backend.create_from_image(volume_id, 1, slow_image(), "raw")
else:
    backend.create(volume_id, 1)
    print("made", flush=True)
    time.sleep(3600)
"""


def _record(harness: object, volume_id: str, status: str, host: str = "storage-1") -> None:
    """The row as the conductor writes it before it asks the agent (host set, still creating)."""
    with harness.service.db.transaction() as session:  # type: ignore[attr-defined]
        session.add(models.Volume(id=volume_id, project_id="p", size=1, status=status, availability_zone="nova",
                                  host=host))


def _kill_when(process: subprocess.Popen[str], ready: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():  # type: ignore[operator]
        assert process.poll() is None, "the child ended before it could be killed"
        assert time.monotonic() < deadline, "the child never reached the point to kill it at"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def test_agent_killed_mid_create_leaves_error_or_finished_and_no_stray_file(image: ImageHarness,
                                                                            database_url: str) -> None:
    harness = make_volume(image, database_url, start=False)
    runtime = Runtime()
    try:
        storage = harness.service.storage_dir()
        storage.mkdir(parents=True, exist_ok=True)
        start_control(harness.service, harness.bus, runtime)
        streaming, finished, lost, orphan = (str(uuid.uuid4()) for _ in range(4))
        _record(harness, streaming, "creating")
        _record(harness, finished, "creating")
        _record(harness, lost, "available")  # its file vanished while the agent was away
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}

        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(storage), "image", streaming], env=env,
                                 stdout=subprocess.PIPE, text=True)
        # Killed while the image streams in: a partial download exists, no volume file.
        _kill_when(child, lambda: any(p.name.startswith(".download-") and p.stat().st_size > 1 << 20
                                      for p in storage.iterdir()))
        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(storage), "empty", finished], env=env,
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        _kill_when(child, lambda: child.stdout.readline().strip() == "made")  # type: ignore[union-attr]
        (storage / f"volume-{orphan}").write_bytes(b"\0" * 4096)  # a file no record claims
        assert (storage / f"volume-{finished}").exists()

        start_agent(harness.service, harness.bus, runtime, None)

        with harness.service.db.transaction() as session:
            rows = {row.id: row for row in session.scalars(sa.select(models.Volume))}
        assert rows[streaming].status == "error" and rows[streaming].fault
        assert rows[finished].status == "available"
        assert rows[lost].status == "error"
        on_disk = {p.name for p in storage.iterdir()}
        assert on_disk == {f"volume-{finished}"}, on_disk
        # The invariant: every file has a record, every record that is not in error has its file.
        for name in on_disk:
            assert name.removeprefix("volume-") in rows
        for row_id, row in rows.items():
            assert row.status == "error" or f"volume-{row_id}" in on_disk
    finally:
        runtime.stop()
        harness.close()
