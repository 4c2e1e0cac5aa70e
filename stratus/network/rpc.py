"""Placeholder until the agent contract lands."""

from __future__ import annotations

from typing import Any


def publish(db: Any, bus: Any, changes: Any) -> None:
    return None
