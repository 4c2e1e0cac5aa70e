"""Serve several ASGI apps, each on its own port, from one asyncio loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from stratus.core.inprocess import LOCAL_APPS

log = logging.getLogger("stratus.server")

# Idle keep-alive connections are closed after this long. Clients (ours: service_client.py) let
# theirs go sooner, so none sends a request on a connection the server is closing at that moment.
KEEP_ALIVE_SECONDS = 75


@dataclass
class Listener:
    name: str
    app: ASGIApp
    port: int


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` (`serve_all`) to its end on uvloop where it is installed (uvicorn[standard]
    brings it), else on asyncio's own loop. uvicorn's `loop` setting applies only to loops uvicorn
    makes itself; ours is made here."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


class _Server(uvicorn.Server):
    # One loop serves many servers: signals are handled once, for all of them, by `serve_all`.
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve_all(listeners: list[Listener], host: str, *, log_level: str = "info",
                    on_ready: Callable[[], Awaitable[None]] | None = None) -> None:
    """Run until SIGINT/SIGTERM; `on_ready` runs once every listener accepts connections."""
    servers = [
        _Server(uvicorn.Config(item.app, host=host, port=item.port, log_level=log_level, loop="none",
                               http="httptools", lifespan="off", access_log=False, server_header=False,
                                timeout_keep_alive=KEEP_ALIVE_SECONDS))
        for item in listeners
    ]
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()

    def stop() -> None:
        stopped.set()
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    while not all(server.started for server in servers):
        if any(task.done() for task in tasks):
            stop()
            break
        await asyncio.sleep(0.02)
    else:
        LOCAL_APPS.serve(loop, {item.port: item.app for item in listeners})
        if on_ready is not None:
            await on_ready()
    try:
        if not servers:  # roles without a listener (agents) run until told to stop
            await stopped.wait()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        LOCAL_APPS.clear()
    for task in tasks:
        if task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    if any(not server.started for server in servers):
        raise SystemExit("stratus: a listener failed to start (is its port in use?)")
