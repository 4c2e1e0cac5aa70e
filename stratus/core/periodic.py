"""Work run every few seconds in a thread of its own until stopped: the agents' and the control
services' heartbeats, the object node's daemons, the qemu agent's cache pruning."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from stratus.core.errors import StratusError

log = logging.getLogger("stratus.periodic")


class Periodic:
    """Runs `work` every `interval` seconds (first at once when `at_once`, else after one interval)
    in a daemon thread named `name`. A pass that raises is logged and the next runs as planned: what
    it reports to may be away for a while (that is said in a line; anything else with its traceback)."""

    def __init__(self, name: str, work: Callable[[], Any], interval: float, *, at_once: bool = False) -> None:
        self.name, self.work, self.interval = name, work, interval
        self._at_once = at_once
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (again, after `stop`)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._stop,), name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self, stop: threading.Event) -> None:
        if self._at_once:
            self._pass()
        while not stop.wait(self.interval):
            self._pass()

    def _pass(self) -> None:
        try:
            self.work()
        except Exception as exc:
            expected = isinstance(exc, StratusError | OSError)  # the bus or a peer is away
            log.warning("%s failed: %s", self.name, exc, exc_info=not expected)
