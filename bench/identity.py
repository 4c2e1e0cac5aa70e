"""Identity benchmark: token issue and validation rates of Stratus and of the real Keystone, same load.

Run:  .venv/bin/python bench/identity.py [--only stratus|keystone] [--duration 10] [--bcrypt-rounds 12]
                                         [--keystone-cache]

Each server is started alone (so they never share the CPU), measured, and stopped:
- stratus: `.venv/bin/stratus up` on a temporary state dir and a free port.
- keystone: PyPI keystone (pinned below) in `bench/.peers/keystone` (built on first use), Fernet tokens,
  SQLite in a temporary dir, bcrypt at the same cost, served by gunicorn sync workers (one per core).
  Its caching stays at the defaults (`[cache] enabled = false`); `--keystone-cache` adds a second
  Keystone column with the in-process `oslo_cache.dict` backend, closer to a tuned deployment.
Load: wrk (Debian) with 8 connections. issue = POST /v3/auth/tokens (password, project-scoped) 2xx/s;
validate = GET /v3/auth/tokens over a pool of 50 tokens, round robin, 2xx/s; GET /v3/s (the version
document) shows each server's plain per-request cost. Any non-2xx or socket error marks the run FLAGGED.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402

KEYSTONE_REQUIREMENTS = ["keystone==30.0.0", "gunicorn==23.0.0"]
STRATUS = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "stratus"
CONCURRENCY = 8
POOL_SIZE = 50

KEYSTONE_CONF = """\
[database]
connection = sqlite:///{dir}/keystone.db
[token]
provider = fernet
[fernet_tokens]
key_repository = {dir}/fernet-keys
[credential]
key_repository = {dir}/credential-keys
[identity]
password_hash_algorithm = bcrypt
password_hash_rounds = {rounds}
"""
# Only with --keystone-cache. (Left out otherwise: naming a backend with `enabled = false` made every
# validation ~6x slower than Keystone's true defaults in our trial.)
KEYSTONE_CACHE_CONF = """\
[cache]
enabled = true
backend = oslo_cache.dict
"""

# Keystone reads its options from sys.argv, so gunicorn gets no arguments: it finds this file in its cwd.
GUNICORN_CONF = """\
wsgi_app = "keystone.wsgi.api:application"
bind = "127.0.0.1:{port}"
workers = {workers}
"""


def auth_body(password: str) -> dict:
    domain = {"name": "Default"}
    user = {"name": "admin", "domain": domain, "password": password}
    return {"auth": {"identity": {"methods": ["password"], "password": {"user": user}},
                     "scope": {"project": {"name": "admin", "domain": domain}}}}


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start_stratus(tmp: Path, rounds: int, password: str) -> tuple[subprocess.Popen, str]:
    log = tmp / "stratus.log"
    env = peers.stratus_env(BOOTSTRAP__ADMIN_PASSWORD=password, IDENTITY__BCRYPT_ROUNDS=str(rounds))
    port = peers.port_of(env, "IDENTITY__PORT")
    proc = peers.start([str(STRATUS), "up", "--state-dir", str(tmp / "state")], log, env)
    peers.wait_until(proc, lambda: "stratus: ready" in log.read_text(errors="replace"), log, timeout=180)
    return proc, f"http://127.0.0.1:{port}/v3"


def setup_keystone(venv: Path, tmp: Path, rounds: int, password: str, port: int) -> None:
    """Write keystone.conf into `tmp`, create the key repositories and the database, bootstrap admin."""
    write_keystone_conf(tmp, rounds, cache=False)
    manage = [str(venv / "bin" / "keystone-manage"), "--config-file", str(tmp / "keystone.conf")]
    me = ["--keystone-user", str(os.getuid()), "--keystone-group", str(os.getgid())]
    url = f"http://127.0.0.1:{port}/v3"
    steps = [["fernet_setup", *me], ["credential_setup", *me], ["db_sync"],
             ["bootstrap", "--bootstrap-password", password, "--bootstrap-admin-url", url,
              "--bootstrap-public-url", url, "--bootstrap-region-id", "RegionOne"]]
    with open(tmp / "keystone-manage.log", "ab") as log:
        for step in steps:
            if subprocess.run([*manage, *step], stdout=log, stderr=subprocess.STDOUT).returncode != 0:
                raise peers.ServerFailed(f"keystone-manage {step[0]} failed:\n"
                                         + peers.log_tail(tmp / "keystone-manage.log"))


def write_keystone_conf(tmp: Path, rounds: int, cache: bool) -> None:
    text = KEYSTONE_CONF.format(dir=tmp, rounds=rounds) + (KEYSTONE_CACHE_CONF if cache else "")
    (tmp / "keystone.conf").write_text(text)


def serve_keystone(venv: Path, tmp: Path, port: int) -> tuple[subprocess.Popen, str]:
    (tmp / "gunicorn.conf.py").write_text(GUNICORN_CONF.format(port=port, workers=os.cpu_count() or 1))
    log = tmp / "keystone.log"
    proc = peers.start([str(venv / "bin" / "gunicorn")], log, {"OS_KEYSTONE_CONFIG_DIR": str(tmp)}, cwd=tmp)
    url = f"http://127.0.0.1:{port}/v3"
    peers.wait_until(proc, lambda: answers(url), log)
    return proc, url


def issue_tokens(base: str, password: str, count: int) -> list[str]:
    body = auth_body(password)
    with httpx.Client(timeout=120) as client, ThreadPoolExecutor(CONCURRENCY) as pool:
        def one(_: int) -> str:
            response = client.post(f"{base}/auth/tokens", json=body)
            response.raise_for_status()
            return response.headers["X-Subject-Token"]
        return list(pool.map(one, range(count)))


def measure(base: str, password: str, duration: float) -> dict[str, dict[str, float]]:
    """The same load for every server: version document, token issue, token validation."""
    results = {}
    issue_lua = ('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                 f"wrk.body = {lua_string(json.dumps(auth_body(password)))}\n")
    results["token issue/s"] = peers.wrk(f"{base}/auth/tokens", issue_lua, duration, CONCURRENCY)
    admin, *pool = issue_tokens(base, password, POOL_SIZE + 1)
    validate_lua = (f"local tokens = {{{', '.join(lua_string(t) for t in pool)}}}\nlocal i = 0\n"
                    "request = function()\n  i = i % #tokens + 1\n"
                    f'  return wrk.format("GET", nil, {{["X-Auth-Token"] = {lua_string(admin)}, '
                    '["X-Subject-Token"] = tokens[i]})\nend\n')
    results["token validate/s"] = peers.wrk(f"{base}/auth/tokens", validate_lua, duration, CONCURRENCY)
    results["GET /v3/s"] = peers.wrk(base, "", duration, CONCURRENCY)
    return results


def lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string of ASCII text is a valid Lua string literal


def run_target(name: str, args: argparse.Namespace, tmp: Path, password: str,
               keystone: dict) -> dict[str, dict[str, float]]:
    if name == "stratus":
        proc, base = start_stratus(tmp, args.bcrypt_rounds, password)
    else:
        write_keystone_conf(tmp, args.bcrypt_rounds, cache=name == "keystone+cache")
        proc, base = serve_keystone(keystone["venv"], tmp, keystone["port"])
    try:
        print(f"{name}: measuring at {base}", flush=True)
        return measure(base, password, args.duration)
    finally:
        peers.stop(proc)


def report(args: argparse.Namespace, results: dict[str, dict[str, dict[str, float]]]) -> None:
    names = list(results)
    peer_names = [n for n in names if n != "stratus"] if "stratus" in results else []
    print(f"\nidentity benchmark (concurrency {CONCURRENCY}, bcrypt rounds {args.bcrypt_rounds}, "
          f"{args.duration:g} s each)")
    if args.load_before > 0.5:
        print(f"note: load average was {args.load_before:.2f} before the run; figures are low and noisy")
    header = f"{'':18}" + "".join(f"{n:>16}" for n in names)
    print(header + "".join(f"{'ratio' + n.removeprefix('keystone'):>18}" for n in peer_names))
    for row in results[names[0]]:
        line = f"{row:18}" + "".join(f"{results[n][row]['rate']:16.1f}" for n in names)
        for peer in peer_names:
            line += f"{results['stratus'][row]['rate'] / max(results[peer][row]['rate'], 1e-9):17.2f}x"
        print(line)
    errors = [(n, row, r["errors"]) for n in names for row, r in results[n].items() if r["errors"]]
    for name, row, count in errors:
        print(f"FLAGGED: {name} {row}: {count:.0f} errors (non-2xx or socket)")
    print("keystone cache: " + ("defaults ([cache] enabled = false)" if "keystone" in results else "-")
          + (", keystone+cache: oslo_cache.dict" if "keystone+cache" in results else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["stratus", "keystone"])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement (default 10)")
    parser.add_argument("--bcrypt-rounds", type=int, default=12, help="bcrypt cost for both servers (default 12)")
    parser.add_argument("--keystone-cache", action="store_true",
                        help="also measure Keystone with the oslo_cache.dict cache backend")
    args = parser.parse_args()
    args.load_before = os.getloadavg()[0]
    peers.ensure_wrk()
    targets = [t for t in ("stratus", "keystone") if args.only in (None, t)]
    if args.keystone_cache and "keystone" in targets:
        targets.append("keystone+cache")
    keystone: dict = {}
    if "keystone" in targets:
        keystone["venv"] = peers.ensure_venv("keystone", KEYSTONE_REQUIREMENTS)
    password = secrets.token_urlsafe(12)
    results = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-identity-") as tmpdir:
            tmp = Path(tmpdir)
            if "keystone" in targets:
                keystone["port"] = peers.free_port()
                print("keystone: keystone-manage fernet_setup, credential_setup, db_sync, bootstrap", flush=True)
                setup_keystone(keystone["venv"], tmp, args.bcrypt_rounds, password, keystone["port"])
            for name in targets:
                results[name] = run_target(name, args, tmp, password, keystone)
    except peers.ServerFailed as failure:
        print(f"bench: server failed: {failure}", file=sys.stderr)
        return 1
    report(args, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
