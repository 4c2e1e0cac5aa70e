"""Shared benchmark helpers: peer venvs (the real OpenStack services, pinned), server processes, wrk load.

A peer venv lives in `bench/.peers/<name>` (gitignored), built with `python3 -m venv` + pip the first
time and reused while its pinned requirements are unchanged; `pip freeze` of it is kept in `freeze.txt`.
Load comes from `wrk` (Debian package): a Python client (httpx) tops out near 750 req/s on this kind
of machine, far below what an asyncio server answers, so it would measure itself.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

PEERS_DIR = Path(__file__).resolve().parent / ".peers"

# Appended to every wrk script: prints one JSON line with the counts, parsed by `wrk()` below.
_DONE_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


class ServerFailed(Exception):
    """A server did not start or died; the message carries the tail of its log."""


def ensure_venv(name: str, requirements: list[str]) -> Path:
    """The venv `bench/.peers/<name>` with exactly `requirements` installed (built if missing or stale)."""
    venv = PEERS_DIR / name
    stamp = venv / "bench-requirements.txt"
    wanted = "\n".join(requirements) + "\n"
    if stamp.exists() and stamp.read_text() == wanted:
        return venv
    print(f"peer {name}: building {venv} with {' '.join(requirements)} (first time: a few minutes)", flush=True)
    started = time.monotonic()
    subprocess.run(["python3", "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--progress-bar", "off", *requirements], check=True)
    freeze = subprocess.run([*pip, "freeze"], check=True, capture_output=True, text=True).stdout
    (venv / "freeze.txt").write_text(freeze)
    stamp.write_text(wanted)
    print(f"peer {name}: venv ready in {time.monotonic() - started:.0f} s", flush=True)
    return venv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Every listener of `stratus up`, as the STRATUS_* variable that sets its port.
STRATUS_LISTENERS = ("IDENTITY__PORT", "IMAGE__PORT", "NETWORK__PORT", "COMPUTE__PORT", "COMPUTE__METADATA_PORT",
                     "VOLUME__PORT", "DASHBOARD__PORT", "OBJECT__PORT", "OBJECT__ACCOUNT_PORT",
                     "OBJECT__CONTAINER_PORT", "OBJECT__OBJECT_PORT")


def stratus_env(**settings: str) -> dict[str, str]:
    """The environment of a benchmark's `stratus up`: a free port for every listener (a benchmark
    never collides with another cloud on this machine), none of the caller's OS_/STRATUS_ variables,
    simulated hosts and networks (the API benchmarks need no real VMs), then `settings` (e.g.
    COMPUTE__DRIVER="qemu") as STRATUS_ variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "STRATUS_"))}
    env.update({f"STRATUS_{name}": str(free_port()) for name in STRATUS_LISTENERS})
    env.update({"STRATUS_COMPUTE__DRIVER": "fake", "STRATUS_NETWORK__AGENT_DATAPLANE": "noop"})
    env.update({f"STRATUS_{name}": value for name, value in settings.items()})
    return env


def port_of(env: dict[str, str], listener: str) -> int:
    return int(env[f"STRATUS_{listener}"])


def start(cmd: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen:
    """Start a server with stdout and stderr going to `log`."""
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True)


def wait_until(proc: subprocess.Popen, ready: Callable[[], bool], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.25)
    state = f"exited with {proc.returncode}" if proc.poll() is not None else f"not ready after {timeout:.0f} s"
    raise ServerFailed(f"{proc.args[0]} {state}; last lines of {log}:\n{log_tail(log)}")


def log_tail(log: Path, lines: int = 25) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"


def stop(proc: subprocess.Popen) -> None:
    """Stop a server we started, by its PID (gunicorn's master stops its own workers)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ensure_wrk() -> str:
    if shutil.which("wrk") is None and os.geteuid() == 0:
        print("installing wrk (apt-get install wrk) to generate the load", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], stdout=subprocess.DEVNULL,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return shutil.which("wrk") or sys.exit("bench: needs wrk (apt-get install wrk)")


def wrk(url: str, lua: str, duration: float, connections: int, warmup: float = 2.0) -> dict[str, float]:
    """Run `lua` against `url` with `connections` keep-alive connections: warm up, then measure.

    Returns ok (2xx/3xx responses), errors (other statuses and socket errors) and rate (ok per second).
    """
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(lua + _DONE_LUA)
        script.flush()
        result: dict[str, float] = {}
        for seconds in (warmup, duration):
            cmd = [ensure_wrk(), "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "60s",
                   "-s", script.name, url]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
            counts = json.loads(line.removeprefix("WRKJSON "))
            ok = counts["requests"] - counts["status_errors"]
            result = {"ok": ok, "errors": counts["status_errors"] + counts["socket_errors"],
                      "rate": ok / (counts["duration_us"] / 1e6)}
    return result


def admin_token(auth_url: str, password: str) -> str:
    """A project-scoped token of a Stratus cloud's bootstrap admin."""
    domain = {"name": "Default"}
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": domain, "password": password}}},
        "scope": {"project": {"name": "admin", "domain": domain}}}}
    response = httpx.post(f"{auth_url}/auth/tokens", json=body, timeout=60)
    response.raise_for_status()
    return response.headers["X-Subject-Token"]
