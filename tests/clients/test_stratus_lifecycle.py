"""`stratus up` across restarts and `stratus fernet rotate` run beside a live cloud."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.clients.conftest import VENV_BIN, Cloud, _clean_environ, launch, stop, unique
from tests.ports import free_port


def test_restart_keeps_everything_and_rotation_keeps_old_tokens(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    port, image_port = free_port(), free_port()
    process = launch(state_dir, port, image_port)
    cloud = Cloud(state_dir=state_dir, url=f"http://127.0.0.1:{port}")
    try:
        name = unique("kept")
        cloud.run("project", "create", name)
        before_rotation, _ = cloud.admin_token()
        rotated = subprocess.run([str(VENV_BIN / "stratus"), "fernet", "rotate", "--state-dir", str(state_dir)],
                                 env=_clean_environ(), capture_output=True, text=True, timeout=60)
        assert rotated.returncode == 0, rotated.stderr
        assert "is now primary" in rotated.stdout
        # The running server picks up the new keys; the old token still validates.
        assert cloud.validate(before_rotation).status_code == 200
    finally:
        stop(process, state_dir)

    # Same state dir, new process: data, keys and the admin's clouds.yaml are all kept.
    process = launch(state_dir, port, image_port)
    try:
        assert cloud.validate(before_rotation).status_code == 200
        shown = cloud.run("project", "show", name)
        assert shown["name"] == name
        assert httpx.get(f"{cloud.url}/v3").status_code == 200
    finally:
        stop(process, state_dir)
