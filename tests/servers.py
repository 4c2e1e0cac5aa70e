"""ASGI apps served over real HTTP from a thread of the test process."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn

from stratus.core.server import KEEP_ALIVE_SECONDS


class Served:
    """`app` on 127.0.0.1:`port`, started and stopped at will (a test may restart it).

    Idle connections are kept as long as `stratus up` keeps them: with uvicorn's own 5 s, a client
    whose pool also keeps them 5 s (httpx's default) could send on one the server was closing at that
    moment and get "Server disconnected" (CI once failed so after a test slept 4 s)."""

    def __init__(self, app: Any, port: int) -> None:
        self.app, self.port = app, port
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> Served:
        self.server = uvicorn.Server(uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off", loop="asyncio",
            interface="asgi3", timeout_keep_alive=KEEP_ALIVE_SECONDS))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.server.started, f"a test server did not start on port {self.port}"
        return self

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(10)
        self.server = self.thread = None
