"""Free loopback ports for the servers tests start.

A port the kernel picks with bind(port 0) comes from the ephemeral range, the same range it picks
source ports of outgoing connections from: between the check and the server's own bind, a client
connection somewhere in the suite can take it (CI once failed so, "address already in use").
Ports below that range are only ever taken by a listener that asks for them by number.
"""

from __future__ import annotations

import random
import socket
import threading

_LOW, _HIGH = 20000, 32767  # below Linux's default ephemeral range, 32768-60999
_handed_out: set[int] = set()
_lock = threading.Lock()


def free_port() -> int:
    """A loopback port nothing listens on, never handed out twice in one test run."""
    with _lock:
        for _ in range(1000):
            port = random.randint(_LOW, _HIGH)
            if port in _handed_out:
                continue
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free loopback port in {_LOW}-{_HIGH}")
