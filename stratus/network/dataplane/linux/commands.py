"""Running the host's networking tools: `ip` (iproute2, JSON output), `nft` and processes inside a
network namespace.

Subprocesses rather than netlink from Python: every change here is a handful of commands per port
or router, `ip -j` and `nft -f` give exact, documented behaviour (and `nft -f` one atomic
transaction), and no extra dependency is needed. Errors carry the command and its stderr.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Sequence
from typing import Any

log = logging.getLogger("stratus.network.dataplane.linux")


class CommandFailed(RuntimeError):
    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        super().__init__(f"{' '.join(argv)} failed ({returncode}): {stderr.strip()}")
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr


def run(argv: Sequence[str], *, stdin: str | None = None, check: bool = True, timeout: float = 30.0) -> str:
    """Run `argv`; its stdout. With check, a non-zero exit raises CommandFailed."""
    done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise CommandFailed(argv, done.returncode, done.stderr)
    return done.stdout


def in_netns(namespace: str | None, argv: Sequence[str]) -> list[str]:
    """`argv` run inside `namespace` (None: the host's)."""
    return ["ip", "netns", "exec", namespace, *argv] if namespace else list(argv)


def ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    return run(["ip", *(["-n", netns] if netns else []), *args], check=check)


def ip_json(*args: str, netns: str | None = None) -> list[dict[str, Any]]:
    out = run(["ip", "-j", *(["-n", netns] if netns else []), *args])
    return json.loads(out) if out.strip() else []


def ip_quiet(*args: str, netns: str | None = None, ignore: Sequence[str] = ()) -> bool:
    """Run `ip ARGS`; False (not an error) when it failed with one of the `ignore` messages."""
    try:
        ip(*args, netns=netns)
        return True
    except CommandFailed as exc:
        if any(text in exc.stderr for text in ignore):
            return False
        raise


def nft(script: str, netns: str | None = None) -> None:
    """Apply `script` with `nft -f -`: one transaction, all of it or nothing."""
    run(in_netns(netns, ["nft", "-f", "-"]), stdin=script)


def nft_json(*args: str, netns: str | None = None) -> list[dict[str, Any]]:
    out = run(in_netns(netns, ["nft", "-j", *args]))
    items = json.loads(out).get("nftables", []) if out.strip() else []
    return [item for item in items if "metainfo" not in item]


def quote(name: str) -> str:
    """A device name as an nft string literal (names here are [A-Za-z0-9_.-] only)."""
    return '"' + name + '"'
