"""Filters on the host itself: alive and enabled, room for the flavor, and availability zone.

The resource filters run over the whole list at C speed (map/compress over attribute getters), so
that a decision at 10,000 hosts spends microseconds, not milliseconds, in each of them.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import compress, repeat
from operator import attrgetter, eq, le
from typing import Any

from stratus.compute.scheduler.filters.base import BaseHostFilter
from stratus.compute.scheduler.host_state import HostState
from stratus.compute.scheduler.spec import RequestSpec


def _at_least(hosts: list[HostState], field: str, need: float) -> list[HostState]:
    """The hosts whose `field` is >= `need`."""
    return list(compress(hosts, map(le, repeat(need), map(attrgetter(field), hosts))))


class ComputeFilter(BaseHostFilter):
    """The host's compute service is enabled, not forced down, and heard from within service_down_time."""

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return host.up_until >= spec.context.now

    def column_test(self, spec: RequestSpec) -> tuple[str, Callable[[Any, Any], Any], Any] | None:
        return "up_until", le, spec.context.now

    def filter_all(self, hosts: list[HostState], spec: RequestSpec) -> list[HostState]:
        return _at_least(hosts, "up_until", spec.context.now)


class _ResourceFilter(BaseHostFilter):
    field = ""

    def need(self, spec: RequestSpec) -> int:
        raise NotImplementedError

    def applies(self, spec: RequestSpec) -> bool:
        return self.need(spec) > 0

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return bool(getattr(host, self.field) >= self.need(spec))

    def column_test(self, spec: RequestSpec) -> tuple[str, Callable[[Any, Any], Any], Any] | None:
        return self.field, le, self.need(spec)

    def filter_all(self, hosts: list[HostState], spec: RequestSpec) -> list[HostState]:
        return _at_least(hosts, self.field, self.need(spec))


class RamFilter(_ResourceFilter):
    """memory_mb_used + the flavor's RAM <= memory_mb * ram_allocation_ratio."""

    field = "ram_free"

    def need(self, spec: RequestSpec) -> int:
        return spec.memory_mb


class CoreFilter(_ResourceFilter):
    """vcpus_used + the flavor's vCPUs <= vcpus * cpu_allocation_ratio."""

    field = "vcpus_free"

    def need(self, spec: RequestSpec) -> int:
        return spec.vcpus


class DiskFilter(_ResourceFilter):
    """local_gb_used + the flavor's disk (root, ephemeral, swap) <= local_gb * disk_allocation_ratio."""

    field = "disk_free"

    def need(self, spec: RequestSpec) -> int:
        return spec.disk_gb


class AvailabilityZoneFilter(BaseHostFilter):
    """The host is in the requested zone (its aggregates' availability_zone, else the default zone)."""

    def applies(self, spec: RequestSpec) -> bool:
        return bool(spec.availability_zone)

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return host.zone == spec.availability_zone

    def column_test(self, spec: RequestSpec) -> tuple[str, Callable[[Any, Any], Any], Any] | None:
        return "zone", eq, spec.availability_zone

    def filter_all(self, hosts: list[HostState], spec: RequestSpec) -> list[HostState]:
        zone = spec.availability_zone
        return [host for host in hosts if host.zone == zone]
