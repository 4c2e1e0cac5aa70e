"""Short QMP conversations with one VM, over its control socket, with PyPI `qemu.qmp`.

`qemu.qmp` is asyncio; the driver is called from the agent's worker threads, some of which may
already run an event loop. So each conversation runs its own loop in a private thread, and the
calling thread waits for each command's answer: `with Monitor(path) as qmp: qmp.execute(...)`.

The socket lives in the instance directory, whose path may be longer than a unix socket address
allows (108 bytes); we reach it through `/proc/self/fd/<directory fd>/<name>`, which is short.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Protocol, TypeVar

from qemu.qmp import EventListener, ExecuteError, QMPClient, QMPError

from stratus.compute.drivers.base import DriverError

T = TypeVar("T")

# qemu.qmp logs every connection's end at INFO; for an agent that talks to many VMs that is noise.
logging.getLogger("qemu.qmp").setLevel(logging.WARNING)

# Events a conversation records, so that a caller can wait for one after a command.
WATCHED_EVENTS = ("RESET", "SHUTDOWN", "STOP", "RESUME", "DEVICE_DELETED", "MIGRATION")


class QmpError(DriverError):
    """QEMU answered a command with an error, or could not be reached."""


class Qmp(Protocol):
    """What the driver needs of a conversation (the unit tests give a recording fake)."""

    def __enter__(self) -> Qmp: ...

    def __exit__(self, *exc_info: object) -> None: ...

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any: ...

    def wait_event(self, names: tuple[str, ...], timeout: float,
                   data: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The first event named in `names` (whose data include `data`) since the conversation began,
        or None after `timeout` seconds."""


class Monitor:
    """One connection to a VM's QMP socket, for the length of a `with` block."""

    def __init__(self, socket_path: Path, timeout: float = 10.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"qmp {socket_path.parent.name}",
                                        daemon=True)
        self._client = QMPClient(socket_path.parent.name)
        self._events = EventListener(WATCHED_EVENTS)
        self._dir_fd: int | None = None

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise QmpError(f"QEMU did not answer on {self.socket_path} within {timeout:g} s") from None

    def __enter__(self) -> Monitor:
        try:
            self._dir_fd = os.open(self.socket_path.parent, os.O_PATH | os.O_DIRECTORY)
        except OSError as exc:
            raise QmpError(f"no QMP socket at {self.socket_path}: {exc.strerror}") from None
        self._thread.start()
        self._client.register_listener(self._events)
        address = f"/proc/self/fd/{self._dir_fd}/{self.socket_path.name}"
        try:
            self._run(self._client.connect(address), self.timeout)
        except (QMPError, OSError) as exc:
            self.close()
            raise QmpError(f"cannot talk to QEMU on {self.socket_path}: {exc}") from None
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._thread.is_alive():
            try:
                self._run(self._client.disconnect(), 5.0)
            except (QMPError, OSError, EOFError):
                pass  # QEMU may have quit under us (after `quit`): nothing left to close
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if not self._loop.is_running():
            self._loop.close()
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        try:
            return self._run(self._client.execute(command, arguments), self.timeout)
        except ExecuteError as exc:
            raise QmpError(f"QEMU refused {command}: {exc.error_class}: {exc}") from None
        except (QMPError, OSError) as exc:
            raise QmpError(f"QMP {command} failed: {exc}") from None

    def wait_event(self, names: tuple[str, ...], timeout: float,
                   data: dict[str, Any] | None = None) -> dict[str, Any] | None:
        async def first() -> dict[str, Any] | None:
            try:
                async with asyncio.timeout(timeout):
                    while True:
                        event = await self._events.get()
                        found: dict[str, Any] = dict(event)
                        got: dict[str, Any] = found.get("data") or {}
                        if found.get("event") in names and all(got.get(k) == v for k, v in (data or {}).items()):
                            return found
            except TimeoutError:
                return None

        return self._run(first(), timeout + 5.0)


def connect(socket_path: Path, timeout: float = 10.0) -> Qmp:
    return Monitor(socket_path, timeout)
