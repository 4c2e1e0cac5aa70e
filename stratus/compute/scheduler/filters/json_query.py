"""JsonFilter: the `query` scheduler hint, Nova's small JSON query language over host state.

A query is a JSON list `[operator, argument, ...]`; an argument is a literal, a nested query, or a
`$variable` naming a host figure ($free_ram_mb, $free_disk_mb, $vcpus_total, $vcpus_used,
$total_usable_ram_mb, $total_usable_disk_gb, $num_instances, $host, $hypervisor_type, ... and dotted
paths into $cpu_info, $service, $aggregate_metadata). Unknown variables drop out of the arguments.
Operators: `=` (all equal the first), `<` and `>` (the first below / above every other), `<=`,
`>=`, `in` (the first is one of the others), `not` (each negated), `or`, `and`. The host passes
when the result is true (a list: when any item is).

    ["and", [">=", "$free_ram_mb", 1024], ["in", "$hypervisor_type", "kvm", "fake"]]
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from typing import Any

from stratus.compute.scheduler.filters.base import BaseHostFilter
from stratus.compute.scheduler.host_state import HostState
from stratus.compute.scheduler.spec import NO_VALID_HOST, NoValidHost, RequestSpec

Evaluator = Callable[[HostState], Any]

VARIABLES: dict[str, Callable[[HostState], Any]] = {
    "host": lambda h: h.host,
    "nodename": lambda h: h.nodename,
    "free_ram_mb": lambda h: h.free_ram_mb,
    "free_disk_mb": lambda h: h.free_disk_mb,
    "total_usable_ram_mb": lambda h: h.memory_mb,
    "total_usable_disk_gb": lambda h: h.local_gb,
    "memory_mb": lambda h: h.memory_mb,
    "memory_mb_used": lambda h: h.memory_mb_used + h.pending_memory_mb,
    "local_gb": lambda h: h.local_gb,
    "local_gb_used": lambda h: h.local_gb_used + h.pending_disk_gb,
    "disk_mb_used": lambda h: (h.local_gb_used + h.pending_disk_gb) * 1024,
    "vcpus_total": lambda h: h.vcpus,
    "vcpus_used": lambda h: h.vcpus_used + h.pending_vcpus,
    "num_instances": lambda h: h.num_instances,
    "num_io_ops": lambda h: 0,
    "hypervisor_type": lambda h: h.hypervisor_type,
    "hypervisor_version": lambda h: h.hypervisor_version,
    "hypervisor_hostname": lambda h: h.nodename,
    "cpu_allocation_ratio": lambda h: h.cpu_allocation_ratio,
    "ram_allocation_ratio": lambda h: h.ram_allocation_ratio,
    "disk_allocation_ratio": lambda h: h.disk_allocation_ratio,
    "availability_zone": lambda h: h.zone,
    "cpu_info": lambda h: h.cpu_info,
    "service": lambda h: {"disabled": h.disabled, "forced_down": h.forced_down, "host": h.host},
    "aggregate_metadata": lambda h: {k: sorted(v) for k, v in h.aggregate_metadata.items()},
}


def _comparison(test: Callable[[Any, Any], Any]) -> Callable[[list[Any]], bool]:
    """The first argument against every other one (False with fewer than two, or on a type clash)."""
    def compare(args: list[Any]) -> bool:
        if len(args) < 2:
            return False
        first = args[0]
        try:
            for other in args[1:]:
                if not test(first, other):
                    return False
        except TypeError:  # a number against a string
            return False
        return True
    return compare


OPERATORS: dict[str, Callable[[list[Any]], Any]] = {
    "=": _comparison(operator.eq),
    "<": _comparison(operator.lt),
    ">": _comparison(operator.gt),
    "<=": _comparison(operator.le),
    ">=": _comparison(operator.ge),
    "in": lambda args: len(args) >= 2 and args[0] in args[1:],
    "not": lambda args: [not arg for arg in args],
    "or": lambda args: any(args),
    "and": lambda args: all(args),
}


def _variable(path: str) -> Evaluator:
    name, *rest = path.split(".")
    getter = VARIABLES.get(name)
    if getter is None:
        return lambda host: None
    if not rest:
        return getter

    def value(host: HostState) -> Any:
        found = getter(host)
        for key in rest:
            found = found.get(key) if isinstance(found, dict) else None
        return found
    return value


def _argument(arg: Any) -> Evaluator:
    if isinstance(arg, list):
        return compile_query(arg)
    if isinstance(arg, str) and arg.startswith("$"):
        return _variable(arg[1:])
    return lambda host: arg


def compile_query(query: Any) -> Evaluator:
    """The query (JSON text or the decoded list) as a function of a host; ValueError when malformed."""
    if isinstance(query, str):
        try:
            query = json.loads(query) if query.strip() else []
        except json.JSONDecodeError as exc:
            raise ValueError(f"the query hint is not JSON: {exc}") from None
    if not isinstance(query, list):
        raise ValueError("the query hint must be a JSON list")
    if not query:
        return lambda host: True
    op = OPERATORS.get(query[0]) if isinstance(query[0], str) else None
    if op is None:
        raise ValueError(f"unknown operator {query[0]!r} in the query hint")
    args = tuple(_argument(arg) for arg in query[1:])

    def evaluate(host: HostState) -> Any:
        values = []
        for arg in args:
            value = arg(host)
            if value is not None:  # unknown variables drop out
                values.append(value)
        return op(values)
    return evaluate


def passes(evaluator: Evaluator, host: HostState) -> bool:
    result = evaluator(host)
    return any(result) if isinstance(result, list) else bool(result)


class JsonFilter(BaseHostFilter):
    """The host satisfies the `query` scheduler hint."""

    def applies(self, spec: RequestSpec) -> bool:
        return bool(spec.hints.get("query"))

    def _compiled(self, spec: RequestSpec) -> Evaluator:
        try:
            return compile_query(spec.hints["query"])
        except ValueError as exc:
            raise NoValidHost(f"{NO_VALID_HOST} Invalid query scheduler hint: {exc}") from None

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return passes(self._compiled(spec), host)

    def filter_all(self, hosts: list[HostState], spec: RequestSpec) -> list[HostState]:
        evaluator = self._compiled(spec)
        return [host for host in hosts if passes(evaluator, host)]
