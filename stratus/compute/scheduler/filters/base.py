"""The one base class of host filters; every subclass is registered under its class name, so a
plugin module only needs to be imported (or named as "package.module.ClassName" in the config)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, ClassVar

from stratus.compute.scheduler.host_state import HostState
from stratus.compute.scheduler.spec import RequestSpec
from stratus.core.config import ComputeConfig


class BaseHostFilter:
    """Keeps the hosts a request may land on.

    Override `host_passes(host, spec)`; for speed at thousands of hosts, also `filter_all(hosts,
    spec)` (one pass over the list); and `applies(spec)` returning False when the request has nothing
    for this filter (then it is skipped, costing nothing per host). `spec.context` holds what the
    scheduler looked up for this request (the clock, the server group's hosts, the hinted hosts).

    A filter that only compares one of the host figures in `host_state.COLUMNS` with a value may
    also say so in `column_test(spec)`: (column, operator, value), keeping the hosts for which
    `operator(value, host's figure)` is true; the scheduler then runs it over that column's list.
    """

    registry: ClassVar[dict[str, type[BaseHostFilter]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            BaseHostFilter.registry[cls.__name__] = cls

    def __init__(self, settings: ComputeConfig) -> None:
        self.settings = settings
        self.name = type(self).__name__

    def applies(self, spec: RequestSpec) -> bool:
        return True

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        raise NotImplementedError

    def column_test(self, spec: RequestSpec) -> tuple[str, Callable[[Any, Any], Any], Any] | None:
        return None

    def filter_all(self, hosts: list[HostState], spec: RequestSpec) -> list[HostState]:
        passes = self.host_passes
        return [host for host in hosts if passes(host, spec)]


def resolve(registry: dict[str, type], name: str, kind: str) -> type:
    """The registered class called `name`, importing "package.module.ClassName" names first."""
    if name not in registry and "." in name:
        module, _, cls_name = name.rpartition(".")
        cls = getattr(importlib.import_module(module), cls_name, None)
        if isinstance(cls, type):
            return cls
    try:
        return registry[name]
    except KeyError:
        raise ValueError(f"unknown scheduler {kind} {name!r}; known: {', '.join(sorted(registry))}") from None
