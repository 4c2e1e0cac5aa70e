"""Filters on what the host is tagged with or can run: its aggregates' metadata against the
flavor's extra specs, and its supported instances against the image's properties."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

from stratus.compute.scheduler.filters.base import BaseHostFilter
from stratus.compute.scheduler.host_state import HostState
from stratus.compute.scheduler.spec import RequestSpec

SCOPE = "aggregate_instance_extra_specs"


def _numeric(compare: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
    def check(value: str, wanted: str) -> bool:
        try:
            return compare(float(value), float(wanted))
        except ValueError:
            return False
    return check


_OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "=": _numeric(operator.ge),  # "at least", as Nova documents it
    "==": _numeric(operator.eq), "!=": _numeric(operator.ne),
    ">=": _numeric(operator.ge), "<=": _numeric(operator.le),
    "s==": operator.eq, "s!=": operator.ne, "s<": operator.lt, "s<=": operator.le, "s>": operator.gt,
    "s>=": operator.ge,
    "<in>": lambda value, wanted: wanted in value,
}


def matches(value: str | None, requirement: str) -> bool:
    """Whether `value` satisfies an extra spec `requirement`: "<op> operand" with the operators
    =, ==, !=, >=, <=, s==, s!=, s<, s<=, s>, s>=, <in>, "<all-in> a b ...", "<or> a <or> b ...";
    anything else must equal the value exactly."""
    words = requirement.split()
    op = words[0] if words else ""
    if op not in _OPERATORS and op not in ("<or>", "<all-in>"):
        return value == requirement
    if value is None or len(words) < 2:
        return False
    if op == "<or>":
        return value in words[1::2]
    if op == "<all-in>":
        return all(word in value for word in words[1:])
    return _OPERATORS[op](value, words[1])


def aggregate_requirements(extra_specs: dict[str, str]) -> list[tuple[str, str]]:
    """(metadata key, requirement) for the extra specs this filter checks: unscoped keys and keys
    scoped `aggregate_instance_extra_specs:`; other scopes (hw:, quota:, ...) belong to others."""
    found = []
    for key, requirement in extra_specs.items():
        scope, sep, rest = key.partition(":")
        if sep:
            if scope != SCOPE:
                continue
            key = rest
        found.append((key, str(requirement)))
    return found


class AggregateInstanceExtraSpecsFilter(BaseHostFilter):
    """Every relevant flavor extra spec is met by some value of that key in the host's aggregates'
    metadata (a host without the key fails)."""

    def applies(self, spec: RequestSpec) -> bool:
        return bool(spec.flavor_extra_specs) and bool(aggregate_requirements(spec.flavor_extra_specs))

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return self._passes(host, aggregate_requirements(spec.flavor_extra_specs))

    def filter_all(self, hosts: list[HostState], spec: RequestSpec) -> list[HostState]:
        wanted = aggregate_requirements(spec.flavor_extra_specs)
        verdicts: dict[int, bool] = {}  # hosts in the same aggregates share one metadata dict
        kept = []
        for host in hosts:
            metadata = host.aggregate_metadata
            verdict = verdicts.get(id(metadata))
            if verdict is None:
                verdict = verdicts[id(metadata)] = self._passes(host, wanted)
            if verdict:
                kept.append(host)
        return kept

    @staticmethod
    def _passes(host: HostState, wanted: list[tuple[str, str]]) -> bool:
        metadata = host.aggregate_metadata
        for key, requirement in wanted:
            values = metadata.get(key)
            if not values or not any(matches(value, requirement) for value in values):
                return False
        return True


_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "x86-64": "x86_64", "i386": "i686", "i486": "i686",
                 "i586": "i686", "arm64": "aarch64", "ppc64el": "ppc64le"}
_MODE_ALIASES = {"hv": "hvm", "baremetal": "hvm", "pv": "xen"}
_VERSION_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt,
    "=": operator.eq}


def _canonical(value: Any, aliases: dict[str, str]) -> str | None:
    if value in (None, ""):
        return None
    text = str(value).strip().lower()
    return aliases.get(text, text)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def hypervisor_version_text(version: int) -> str:
    """Nova's integer hypervisor version (major * 1,000,000 + minor * 1,000 + micro) as "M.m.u"."""
    return f"{version // 1000000}.{version // 1000 % 1000}.{version % 1000}"


def version_satisfies(host_version: int, requested: str) -> bool:
    """`requested` like ">=2.6" or "2.6" (equality) against the host's integer version."""
    if not host_version or not requested:
        return True
    match = re.fullmatch(r"\s*(>=|<=|==|!=|>|<|=)?\s*([\d.]+)\s*", str(requested))
    if match is None:
        return False
    compare = _VERSION_OPS[match.group(1) or "=="]
    wanted = _version(match.group(2))
    have = _version(hypervisor_version_text(host_version))[:len(wanted)]
    return compare(have, wanted)


def image_requirements(props: dict[str, Any]) -> tuple[str | None, str | None, str | None, str | None]:
    """(architecture, hypervisor type, vm mode, requested hypervisor version) an image asks for;
    the legacy names (architecture, hypervisor_type, vm_mode) are read too."""
    arch = _canonical(props.get("hw_architecture") or props.get("architecture"), _ARCH_ALIASES)
    hv_type = _canonical(props.get("img_hv_type") or props.get("hypervisor_type"), {})
    mode = _canonical(props.get("hw_vm_mode") or props.get("vm_mode"), _MODE_ALIASES)
    version = props.get("img_hv_requested_version")
    return arch, hv_type, mode, (str(version) if version else None)


class ImagePropertiesFilter(BaseHostFilter):
    """The host supports the architecture, hypervisor type and vm mode the image asks for (and its
    hypervisor version satisfies img_hv_requested_version)."""

    def applies(self, spec: RequestSpec) -> bool:
        return bool(spec.image_properties) and any(image_requirements(spec.image_properties))

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return self._passes(host, image_requirements(spec.image_properties))

    def filter_all(self, hosts: list[HostState], spec: RequestSpec) -> list[HostState]:
        wanted = image_requirements(spec.image_properties)
        verdicts: dict[tuple[int, int], bool] = {}  # hosts of one kind share one supported_instances
        kept = []
        for host in hosts:
            key = (id(host.supported_instances), host.hypervisor_version)
            verdict = verdicts.get(key)
            if verdict is None:
                verdict = verdicts[key] = self._passes(host, wanted)
            if verdict:
                kept.append(host)
        return kept

    @staticmethod
    def _passes(host: HostState, wanted: tuple[str | None, str | None, str | None, str | None]) -> bool:
        arch, hv_type, mode, version = wanted
        if version is not None and not version_satisfies(host.hypervisor_version, version):
            return False
        if arch is None and hv_type is None and mode is None:
            return True
        for supported in host.supported_instances:
            if ((arch is None or arch == supported[0]) and (hv_type is None or hv_type == supported[1])
                    and (mode is None or mode == supported[2])):
                return True
        return False
