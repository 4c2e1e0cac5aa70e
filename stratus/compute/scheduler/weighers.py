"""Host weighers: each gives every candidate a figure; figures are normalized to 0..1 across the
candidates (the least 0, the most 1), times the weigher's multiplier, and summed; the highest sum
wins. For RAM, CPU and disk the figure is what is free, so a positive multiplier spreads instances
and a negative one stacks them. Like Nova's, NumInstancesWeigher's figure is the instance count, so
there a negative multiplier spreads and a positive one stacks.

Custom weighers subclass `BaseWeigher` (registered by class name, like filters).
"""

from __future__ import annotations

from operator import attrgetter
from typing import ClassVar

from stratus.compute.scheduler.filters.base import resolve
from stratus.compute.scheduler.host_state import HostState
from stratus.compute.scheduler.spec import RequestSpec
from stratus.core.config import ComputeConfig


class BaseWeigher:
    """Override `weigh(host, spec)` (and, for speed, `weigh_all(hosts, spec)`); `multiplier_option`
    names the ComputeConfig field holding the multiplier (none: 1.0); `applies(spec)` False skips it.
    A weigher whose figure is one of `host_state.COLUMNS` names it in `column` (read at C speed)."""

    registry: ClassVar[dict[str, type[BaseWeigher]]] = {}
    multiplier_option: ClassVar[str] = ""
    column: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            BaseWeigher.registry[cls.__name__] = cls

    def __init__(self, settings: ComputeConfig) -> None:
        self.settings = settings
        self.name = type(self).__name__
        self.multiplier = float(getattr(settings, self.multiplier_option)) if self.multiplier_option else 1.0

    def applies(self, spec: RequestSpec) -> bool:
        return True

    def weigh(self, host: HostState, spec: RequestSpec) -> float:
        raise NotImplementedError

    def weigh_all(self, hosts: list[HostState], spec: RequestSpec) -> list[float]:
        weigh = self.weigh
        return [weigh(host, spec) for host in hosts]


class _FieldWeigher(BaseWeigher):
    field = ""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.column = cls.field

    def weigh(self, host: HostState, spec: RequestSpec) -> float:
        return float(getattr(host, self.field))

    def weigh_all(self, hosts: list[HostState], spec: RequestSpec) -> list[float]:
        return list(map(attrgetter(self.field), hosts))


class RAMWeigher(_FieldWeigher):
    """Free RAM (MiB, without the allocation ratio)."""

    field, multiplier_option = "free_ram_mb", "ram_weight_multiplier"


class CPUWeigher(_FieldWeigher):
    """Free vCPUs (vcpus * cpu_allocation_ratio - used)."""

    field, multiplier_option = "vcpus_free", "cpu_weight_multiplier"


class DiskWeigher(_FieldWeigher):
    """Free disk (MiB, without the allocation ratio)."""

    field, multiplier_option = "free_disk_mb", "disk_weight_multiplier"


class NumInstancesWeigher(_FieldWeigher):
    """Instances on the host (negative multiplier: prefer fewer)."""

    field, multiplier_option = "num_instances", "num_instances_weight_multiplier"


class _GroupWeigher(BaseWeigher):
    policy = ""
    sign = 1.0

    def applies(self, spec: RequestSpec) -> bool:
        return spec.policy == self.policy

    def weigh(self, host: HostState, spec: RequestSpec) -> float:
        return self.sign * spec.context.group_hosts.get(host.host, 0)

    def weigh_all(self, hosts: list[HostState], spec: RequestSpec) -> list[float]:
        counts, sign = spec.context.group_hosts, self.sign
        if not counts:
            return [0.0] * len(hosts)
        return [sign * counts.get(host.host, 0) for host in hosts]


class ServerGroupSoftAffinityWeigher(_GroupWeigher):
    """Policy soft-affinity: prefer the hosts holding more members of the group."""

    policy, sign, multiplier_option = "soft-affinity", 1.0, "soft_affinity_weight_multiplier"


class ServerGroupSoftAntiAffinityWeigher(_GroupWeigher):
    """Policy soft-anti-affinity: prefer the hosts holding fewer members of the group."""

    policy, sign, multiplier_option = "soft-anti-affinity", -1.0, "soft_anti_affinity_weight_multiplier"


# The soft group policies mean nothing without their weigher: it runs for such a group even when
# scheduler_weighers does not name it.
GROUP_WEIGHERS = ("ServerGroupSoftAffinityWeigher", "ServerGroupSoftAntiAffinityWeigher")


def weigher_class(name: str) -> type[BaseWeigher]:
    cls = resolve(BaseWeigher.registry, name, "weigher")
    if not issubclass(cls, BaseWeigher):
        raise ValueError(f"scheduler weigher {name!r} is not a BaseWeigher")
    return cls
