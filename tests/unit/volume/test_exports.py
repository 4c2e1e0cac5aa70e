"""NBD exports: a qemu-nbd per volume on a free port, started again on another port when the one
picked was taken before qemu-nbd could bind it."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from stratus.volume import exports
from stratus.volume.exports import NbdExports


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    path = tmp_path / "volume.raw"
    path.write_bytes(bytes(1024 * 1024))
    return path


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port bound but not listening, as the source port of an outgoing connection is."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def test_a_taken_port_is_replaced_by_another(volume: Path, taken_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    picks = [taken_port]
    real_free_port = exports._free_port
    monkeypatch.setattr(exports, "_free_port", lambda address: picks.pop() if picks else real_free_port(address))
    nbd = NbdExports("127.0.0.1")
    try:
        export = nbd.export("vol-1", volume, "raw")
        assert export.port != taken_port and export.process.poll() is None
        info = subprocess.run(["qemu-img", "info", "--output=json", f"nbd://127.0.0.1:{export.port}/vol-1"],
                              capture_output=True, text=True, timeout=30)
        assert info.returncode == 0 and '"virtual-size": 1048576' in info.stdout, info.stderr
    finally:
        nbd.close_all()


def test_other_start_failures_are_reported(tmp_path: Path) -> None:
    nbd = NbdExports("127.0.0.1")
    with pytest.raises(RuntimeError, match="qemu-nbd did not start for volume vol-2"):
        nbd.export("vol-2", tmp_path / "missing.raw", "raw")
