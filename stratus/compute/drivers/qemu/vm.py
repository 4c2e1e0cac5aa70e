"""One VM's life as QMP commands and process signals: start, status, stop, save and restore memory.

`Controller` binds an instance directory to the way the driver opens QMP conversations
(`stratus.compute.drivers.qemu.qmp.connect`, or a recording fake in the unit tests).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from stratus.compute.drivers.base import CRASHED, NOSTATE, PAUSED, RUNNING, SHUTDOWN, SUSPENDED
from stratus.compute.drivers.qemu import command, process
from stratus.compute.drivers.qemu.qmp import Qmp, QmpError
from stratus.compute.drivers.qemu.spec import InstanceDir, VmSpec

log = logging.getLogger("stratus.compute.qemu")

Connect = Callable[[Path], Qmp]

# QEMU run states (query-status) as Nova power states.
POWER_STATES = {
    "running": RUNNING, "paused": PAUSED, "suspended": PAUSED, "debug": PAUSED, "inmigrate": PAUSED,
    "prelaunch": PAUSED, "postmigrate": PAUSED, "finish-migrate": PAUSED, "restore-vm": PAUSED,
    "save-vm": PAUSED, "colo": PAUSED, "shutdown": SHUTDOWN, "guest-panicked": CRASHED,
    "internal-error": CRASHED, "io-error": CRASHED, "watchdog": CRASHED,
}
MIGRATION_TIMEOUT = 600.0


class Controller:
    def __init__(self, where: InstanceDir, connect: Connect, *, binary: str = command.QEMU_BINARY) -> None:
        self.where = where
        self.connect = connect
        self.binary = binary

    def qmp(self) -> Qmp:
        return self.connect(self.where.qmp_socket)

    def pid(self) -> int | None:
        return process.find(self.where)

    def start(self, spec: VmSpec, incoming: str | None = None) -> int:
        for nic in spec.nics:
            process.ensure_tap(nic.tap)
        self.where.qmp_socket.unlink(missing_ok=True)
        return process.launch(command.build(spec, self.where, binary=self.binary, incoming=incoming), self.where)

    def power_state(self) -> int:
        if self.pid() is None:
            return SUSPENDED if self.where.memory_state.exists() else SHUTDOWN
        try:
            with self.qmp() as qmp:
                status = qmp.execute("query-status")["status"]
        except QmpError as exc:
            log.warning("instance %s: no status from QEMU: %s", self.where.id, exc)
            return RUNNING if self.pid() is not None else SHUTDOWN
        return POWER_STATES.get(status, NOSTATE)

    def run(self, *commands: str) -> None:
        """Simple commands (`stop`, `cont`, `system_reset`) on a running VM."""
        with self.qmp() as qmp:
            for name in commands:
                qmp.execute(name)

    def stop_process(self, graceful_timeout: float) -> None:
        """End QEMU: with `graceful_timeout`, first ask the guest to power off (ACPI) and wait;
        then `quit`, then SIGKILL."""
        pid = self.pid()
        if pid is None:
            return
        if graceful_timeout > 0:
            try:
                with self.qmp() as qmp:
                    if qmp.execute("query-status")["status"] != "running":
                        qmp.execute("cont")  # a paused guest cannot hear the power button
                    qmp.execute("system_powerdown")
            except QmpError as exc:
                log.warning("instance %s: power button not pressed: %s", self.where.id, exc)
            if process.wait_gone(pid, self.where.id, graceful_timeout):
                return
            log.info("instance %s: the guest did not power off within %g s; forcing it", self.where.id,
                     graceful_timeout)
        try:
            with self.qmp() as qmp:
                qmp.execute("quit")
        except QmpError:
            pass  # it may be wedged: SIGKILL follows
        if not process.wait_gone(pid, self.where.id, 5.0):
            process.kill(pid, self.where.id)

    def soft_reboot(self, timeout: float) -> None:
        """Ctrl-Alt-Del to the guest, waiting `timeout` s for it to reset — or to power off, which
        its init may do instead (then QEMU is started again, as Nova's soft reboot is a clean
        shutdown and a start). A guest that does not react is reset by force (as Nova falls back
        to a hard reboot)."""
        pid = self.pid()
        with self.qmp() as qmp:
            if qmp.execute("query-status")["status"] != "running":
                qmp.execute("cont")
            try:
                qmp.execute("send-key", {"keys": [{"type": "qcode", "data": key}
                                                  for key in ("ctrl", "alt", "delete")]})
                event = qmp.wait_event(("RESET", "SHUTDOWN"), timeout) if timeout > 0 else None
            except QmpError as exc:  # no keyboard (microvm): only a reset can do it
                log.info("instance %s: no ctrl-alt-del (%s); resetting", self.where.id, exc)
                event = None
            if event is None:
                qmp.execute("system_reset")
                return
        if event["event"] == "SHUTDOWN" and pid is not None:
            if not process.wait_gone(pid, self.where.id, max(timeout, 5.0)):
                process.kill(pid, self.where.id)

    def save_memory(self) -> None:
        """Suspend: stop the guest, write its memory and device state to memory.state, quit QEMU.
        Resume (`restore_memory`) starts QEMU again from that file."""
        pid = self.pid()
        if pid is None:
            return
        partial = self.where.file("memory.state.part")
        with self.qmp() as qmp:
            qmp.execute("stop")
            qmp.execute("migrate", {"uri": command.outgoing_to_file(str(partial))})
            deadline = time.monotonic() + MIGRATION_TIMEOUT
            while True:
                status = qmp.execute("query-migrate").get("status")
                if status == "completed":
                    break
                if status in ("failed", "cancelled") or time.monotonic() > deadline:
                    partial.unlink(missing_ok=True)
                    qmp.execute("cont")
                    raise QmpError(f"instance {self.where.id}: saving its memory {status or 'timed out'}")
                time.sleep(0.05)
            os.replace(partial, self.where.memory_state)
            qmp.execute("quit")
        if not process.wait_gone(pid, self.where.id, 10.0):
            process.kill(pid, self.where.id)

    def restore_memory(self, spec: VmSpec) -> None:
        """Resume: QEMU started with its saved memory coming in, then running again."""
        state = self.where.memory_state
        self.start(spec, incoming=command.incoming_from_file(str(state)))
        deadline = time.monotonic() + MIGRATION_TIMEOUT
        with self.qmp() as qmp:
            while qmp.execute("query-status")["status"] == "inmigrate":
                if time.monotonic() > deadline:
                    raise QmpError(f"instance {self.where.id}: its saved memory did not load")
                time.sleep(0.05)
            qmp.execute("cont")
        state.unlink(missing_ok=True)
