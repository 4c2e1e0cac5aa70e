"""Coroutines run to their end from synchronous tests."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def run_in_own_thread(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """asyncio.run on a thread of its own (its result, or its exception raised here): an earlier
    test in the session may have left an event loop running in this thread, and asyncio.run
    refuses to nest."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
