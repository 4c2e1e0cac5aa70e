"""Host filters, registered by class name (see `BaseHostFilter`)."""

from stratus.compute.scheduler.filters.affinity import (
    DifferentHostFilter,
    SameHostFilter,
    ServerGroupAffinityFilter,
    ServerGroupAntiAffinityFilter,
)
from stratus.compute.scheduler.filters.base import BaseHostFilter, resolve
from stratus.compute.scheduler.filters.core import (
    AvailabilityZoneFilter,
    ComputeFilter,
    CoreFilter,
    DiskFilter,
    RamFilter,
)
from stratus.compute.scheduler.filters.json_query import JsonFilter
from stratus.compute.scheduler.filters.metadata import AggregateInstanceExtraSpecsFilter, ImagePropertiesFilter


def filter_class(name: str) -> type[BaseHostFilter]:
    cls = resolve(BaseHostFilter.registry, name, "filter")
    if not issubclass(cls, BaseHostFilter):
        raise ValueError(f"scheduler filter {name!r} is not a BaseHostFilter")
    return cls


__all__ = ["AggregateInstanceExtraSpecsFilter", "AvailabilityZoneFilter", "BaseHostFilter", "ComputeFilter",
           "CoreFilter", "DifferentHostFilter", "DiskFilter", "ImagePropertiesFilter", "JsonFilter", "RamFilter",
           "SameHostFilter", "ServerGroupAffinityFilter", "ServerGroupAntiAffinityFilter", "filter_class"]
