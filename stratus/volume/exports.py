"""NBD exports of volumes for compute hosts other than the storage host: one `qemu-nbd` per
exported volume, bound to the storage network address, serving until the connection is
terminated (or the agent stops)."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_READY_TIMEOUT = 10.0
_START_ATTEMPTS = 3


@dataclass
class Export:
    process: subprocess.Popen[bytes]
    address: str
    port: int
    name: str


def _free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def _listening(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.2):
            return True
    except OSError:
        return False


def _wait_serving(process: subprocess.Popen[bytes], address: str, port: int) -> str | None:
    """None once `process` listens on the port (and is still running), else why it did not."""
    deadline = time.monotonic() + _READY_TIMEOUT
    while not (_listening(address, port) and process.poll() is None):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            return process.communicate()[1].decode(errors="replace").strip()[:200] or "no message"
        time.sleep(0.02)
    return None


class NbdExports:
    def __init__(self, address: str) -> None:
        self.address = address
        self._exports: dict[str, Export] = {}
        self._lock = threading.Lock()

    def export(self, volume_id: str, path: Path, disk_format: str) -> Export:
        """The volume's export, started if it is not running (several attachments share it)."""
        with self._lock:
            current = self._exports.get(volume_id)
            if current is not None and current.process.poll() is None:
                return current
            for attempt in range(_START_ATTEMPTS):
                # The port was free when picked; something else may bind it before qemu-nbd does.
                port = _free_port(self.address)
                process = subprocess.Popen(
                    ["qemu-nbd", "--persistent", "--shared=8", "--cache=none", "--format", disk_format,
                     "--bind", self.address, "--port", str(port), "--export-name", volume_id, str(path)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                failure = _wait_serving(process, self.address, port)
                if failure is None:
                    break
                if "in use" not in failure or attempt == _START_ATTEMPTS - 1:
                    raise RuntimeError(f"qemu-nbd did not start for volume {volume_id}: {failure}")
            export = Export(process, self.address, port, volume_id)
            self._exports[volume_id] = export
            return export

    def close(self, volume_id: str) -> bool:
        with self._lock:
            export = self._exports.pop(volume_id, None)
        if export is None:
            return False
        export.process.terminate()
        try:
            export.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            export.process.kill()
            export.process.wait()
        if export.process.stderr is not None:
            export.process.stderr.close()
        return True

    def close_all(self) -> None:
        for volume_id in list(self._exports):
            self.close(volume_id)
