"""The compute scheduler: picks a host for an instance and claims its resources there.

    scheduler = Scheduler(db, settings)
    host = scheduler.select_destination(RequestSpec(...))  # or over the bus:
    bus.call("compute-scheduler", "select_destination", spec=spec.to_dict())

Filters (`filters/`) and weighers (`weighers.py`) are configured by class name in ComputeConfig;
custom ones subclass `BaseHostFilter` / `BaseWeigher`. Host state is kept in memory
(`host_state.py`); the claim in the database (`stratus.compute.claims`) has the last word.
"""

from stratus.compute.scheduler.filters import BaseHostFilter
from stratus.compute.scheduler.host_state import HostState
from stratus.compute.scheduler.manager import Scheduler
from stratus.compute.scheduler.spec import NoValidHost, RequestSpec, SchedulingContext
from stratus.compute.scheduler.weighers import BaseWeigher

__all__ = ["BaseHostFilter", "BaseWeigher", "HostState", "NoValidHost", "RequestSpec", "Scheduler",
           "SchedulingContext"]
