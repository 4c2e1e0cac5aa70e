"""Filters on where other instances are: server group policies and the same_host / different_host
hints. The scheduler looks the hosts up once per request (`spec.context`) before these run."""

from __future__ import annotations

from stratus.compute.scheduler.filters.base import BaseHostFilter
from stratus.compute.scheduler.host_state import HostState
from stratus.compute.scheduler.spec import RequestSpec


def max_server_per_host(spec: RequestSpec) -> int:
    """The anti-affinity rule `max_server_per_host` (microversion 2.64), 1 when not given."""
    rules = (spec.group or {}).get("rules") or {}
    try:
        return max(1, int(rules.get("max_server_per_host", 1)))
    except (TypeError, ValueError):
        return 1


class ServerGroupAffinityFilter(BaseHostFilter):
    """Policy affinity: once a member of the group has a host, every other member goes there too."""

    def applies(self, spec: RequestSpec) -> bool:
        return spec.policy == "affinity" and bool(spec.context.group_hosts)

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        group_hosts = spec.context.group_hosts
        return not group_hosts or host.host in group_hosts

    def filter_all(self, hosts: list[HostState], spec: RequestSpec) -> list[HostState]:
        group_hosts = spec.context.group_hosts
        return [host for host in hosts if host.host in group_hosts]


class ServerGroupAntiAffinityFilter(BaseHostFilter):
    """Policy anti-affinity: a host holds at most max_server_per_host (1) members of the group."""

    def applies(self, spec: RequestSpec) -> bool:
        return spec.policy == "anti-affinity" and bool(spec.context.group_hosts)

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return spec.context.group_hosts.get(host.host, 0) < max_server_per_host(spec)

    def filter_all(self, hosts: list[HostState], spec: RequestSpec) -> list[HostState]:
        group_hosts, limit = spec.context.group_hosts, max_server_per_host(spec)
        full = {name for name, count in group_hosts.items() if count >= limit}
        return [host for host in hosts if host.host not in full]


class SameHostFilter(BaseHostFilter):
    """Hint same_host: the host runs at least one of the named instances."""

    def applies(self, spec: RequestSpec) -> bool:
        return spec.context.same_hosts is not None

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return spec.context.same_hosts is None or host.host in spec.context.same_hosts

    def filter_all(self, hosts: list[HostState], spec: RequestSpec) -> list[HostState]:
        wanted = spec.context.same_hosts or frozenset()
        return [host for host in hosts if host.host in wanted]


class DifferentHostFilter(BaseHostFilter):
    """Hint different_host: the host runs none of the named instances."""

    def applies(self, spec: RequestSpec) -> bool:
        return bool(spec.context.different_hosts)

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return host.host not in (spec.context.different_hosts or ())

    def filter_all(self, hosts: list[HostState], spec: RequestSpec) -> list[HostState]:
        avoid = spec.context.different_hosts or frozenset()
        return [host for host in hosts if host.host not in avoid]
