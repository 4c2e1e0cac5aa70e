"""Each host filter on hand-made host states (no database): host_passes, filter_all and the column
form the scheduler uses must agree."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stratus.compute import liveness, models
from stratus.compute.scheduler import HostState, RequestSpec
from stratus.compute.scheduler.filters import (
    AggregateInstanceExtraSpecsFilter,
    AvailabilityZoneFilter,
    BaseHostFilter,
    ComputeFilter,
    CoreFilter,
    DifferentHostFilter,
    DiskFilter,
    ImagePropertiesFilter,
    JsonFilter,
    RamFilter,
    SameHostFilter,
    ServerGroupAffinityFilter,
    ServerGroupAntiAffinityFilter,
    filter_class,
)
from stratus.compute.scheduler.filters.json_query import compile_query, passes
from stratus.compute.scheduler.filters.metadata import matches, version_satisfies
from stratus.compute.scheduler.host_state import epoch, supported_instances
from stratus.compute.scheduler.spec import NoValidHost
from stratus.core.config import ComputeConfig

SETTINGS = ComputeConfig()
NOW = 1_000_000.0


def state(name: str, *, vcpus: int = 4, memory_mb: int = 4096, local_gb: int = 40, vcpus_used: int = 0,
          memory_mb_used: int = 0, local_gb_used: int = 0, running_vms: int = 0, cpu_ratio: float = 1.0,
          ram_ratio: float = 1.0, disk_ratio: float = 1.0, up: bool = True, disabled: bool = False,
          forced_down: bool = False, zone: str = "nova", metadata: dict[str, set[str]] | None = None,
          hypervisor_type: str = "fake", hypervisor_version: int = 1000,
          cpu_info: dict[str, Any] | None = None) -> HostState:
    host = HostState(name, zone)
    host.vcpus, host.memory_mb, host.local_gb = vcpus, memory_mb, local_gb
    host.vcpus_used, host.memory_mb_used, host.local_gb_used = vcpus_used, memory_mb_used, local_gb_used
    host.running_vms = running_vms
    host.cpu_allocation_ratio, host.ram_allocation_ratio, host.disk_allocation_ratio = cpu_ratio, ram_ratio, disk_ratio
    host.hypervisor_type, host.hypervisor_version = hypervisor_type, hypervisor_version
    host.cpu_info = cpu_info or {"arch": "x86_64"}
    host.supported_instances = supported_instances(hypervisor_type, host.cpu_info)
    host.disabled, host.forced_down = disabled, forced_down
    host.up_until = NOW + 30 if up and not disabled and not forced_down else float("-inf")
    host.aggregate_metadata = {k: frozenset(v) for k, v in (metadata or {}).items()}
    host.derive()
    return host


def spec(**fields: Any) -> RequestSpec:
    context = fields.pop("context", {})
    made = RequestSpec(**{"instance_id": "i-1", "project_id": "p", "vcpus": 1, "memory_mb": 512, "disk_gb": 1,
                          **fields})
    made.context.now = NOW
    for name, value in context.items():
        setattr(made.context, name, value)
    return made


def kept(host_filter: BaseHostFilter, hosts: list[HostState], request: RequestSpec) -> list[str]:
    """The names filter_all keeps, after checking that host_passes and the column form agree."""
    by_list = [h.host for h in host_filter.filter_all(hosts, request)]
    assert by_list == [h.host for h in hosts if host_filter.host_passes(h, request)]
    test = host_filter.column_test(request)
    if test is not None:
        column, op, value = test
        assert by_list == [h.host for h in hosts if op(value, getattr(h, column))]
    return by_list


def test_compute_filter_keeps_enabled_hosts_heard_from_recently() -> None:
    hosts = [state("ok"), state("silent", up=False), state("off", disabled=True), state("forced", forced_down=True)]
    f = ComputeFilter(SETTINGS)
    assert kept(f, hosts, spec()) == ["ok"]
    late = spec()
    late.context.now = NOW + 31  # the last heartbeat is now older than service_down_time
    assert kept(f, hosts, late) == []


def test_resource_filters_use_the_allocation_ratios_and_pending_claims() -> None:
    hosts = [state("roomy", memory_mb=4096, memory_mb_used=1024),
             state("overcommit", memory_mb=2048, memory_mb_used=2048, ram_ratio=2.0),
             state("full", memory_mb=2048, memory_mb_used=1600)]
    assert kept(RamFilter(SETTINGS), hosts, spec(memory_mb=2048)) == ["roomy", "overcommit"]
    hosts[0].add_pending(0, 1500, 0)  # a decision made a moment ago, its claim not yet committed
    assert kept(RamFilter(SETTINGS), hosts, spec(memory_mb=2048)) == ["overcommit"]

    cpus = [state("a", vcpus=2, vcpus_used=2, cpu_ratio=16.0), state("b", vcpus=2, vcpus_used=2)]
    assert kept(CoreFilter(SETTINGS), cpus, spec(vcpus=4)) == ["a"]
    disks = [state("a", local_gb=40, local_gb_used=30), state("b", local_gb=40, local_gb_used=30, disk_ratio=1.5)]
    assert kept(DiskFilter(SETTINGS), disks, spec(disk_gb=20)) == ["b"]
    assert kept(DiskFilter(SETTINGS), disks, spec(disk_gb=10)) == ["a", "b"]
    assert not DiskFilter(SETTINGS).applies(spec(disk_gb=0))  # nothing asked: skipped


def test_availability_zone_filter() -> None:
    hosts = [state("a", zone="nova"), state("b", zone="az2"), state("c", zone="az2")]
    f = AvailabilityZoneFilter(SETTINGS)
    assert not f.applies(spec())
    assert kept(f, hosts, spec(availability_zone="az2")) == ["b", "c"]
    assert kept(f, hosts, spec(availability_zone="elsewhere")) == []


@pytest.mark.parametrize(("value", "requirement", "expected"), [
    ("true", "true", True), ("True", "true", False),
    ("4", "= 4", True), ("8", "= 4", True), ("2", "= 4", False),  # "=": at least
    ("4", "== 4.0", True), ("5", "!= 4", True), ("4", ">= 4", True), ("3", ">= 4", False), ("3", "<= 4", True),
    ("abc", ">= 1", False),  # not a number
    ("ssd", "s== ssd", True), ("ssd", "s!= ssd", False), ("b", "s> a", True), ("a", "s< b", True),
    ("b", "s>= b", True), ("a", "s<= a", True),
    ("fast-ssd", "<in> ssd", True), ("hdd", "<in> ssd", False),
    ("aes mmx sse", "<all-in> aes sse", True), ("aes", "<all-in> aes sse", False),
    ("gpu", "<or> fpga <or> gpu", True), ("cpu", "<or> fpga <or> gpu", False),
    (None, "<or> a", False), ("x", "<or>", False),
])
def test_extra_spec_operators(value: str | None, requirement: str, expected: bool) -> None:
    assert matches(value, requirement) is expected


def test_aggregate_instance_extra_specs_filter() -> None:
    hosts = [state("ssd", metadata={"ssd": {"true"}, "gpus": {"4"}}),
             state("two-aggs", metadata={"ssd": {"false", "true"}}),
             state("hdd", metadata={"ssd": {"false"}}),
             state("plain")]
    f = AggregateInstanceExtraSpecsFilter(SETTINGS)
    assert kept(f, hosts, spec(flavor_extra_specs={"aggregate_instance_extra_specs:ssd": "true"})) == [
        "ssd", "two-aggs"]
    # unscoped keys count too; other scopes (hw:, quota:) are not this filter's
    assert kept(f, hosts, spec(flavor_extra_specs={"ssd": "<or> false <or> no"})) == ["two-aggs", "hdd"]
    assert not f.applies(spec(flavor_extra_specs={"hw:cpu_policy": "dedicated", "quota:cpu_shares": "10"}))
    assert kept(f, hosts, spec(flavor_extra_specs={"aggregate_instance_extra_specs:gpus": ">= 2",
                                                   "ssd": "true", "hw:mem_page_size": "large"})) == ["ssd"]


def test_image_properties_filter() -> None:
    hosts = [state("fake"), state("arm", cpu_info={"arch": "aarch64"}), state("kvm", hypervisor_type="kvm",
                                                                           hypervisor_version=6002000),
             state("listed", cpu_info={"supported_instances": [["x86_64", "xen", "xen"]]})]
    f = ImagePropertiesFilter(SETTINGS)
    assert not f.applies(spec(image_properties={"os_distro": "debian"}))
    assert kept(f, hosts, spec(image_properties={"hw_architecture": "x86_64"})) == ["fake", "kvm", "listed"]
    assert kept(f, hosts, spec(image_properties={"architecture": "arm64"})) == ["arm"]  # legacy name, alias
    assert kept(f, hosts, spec(image_properties={"img_hv_type": "fake"})) == ["fake", "arm"]
    assert kept(f, hosts, spec(image_properties={"img_hv_type": "qemu", "hw_vm_mode": "hvm"})) == [
        "fake", "arm", "kvm"]
    assert kept(f, hosts, spec(image_properties={"hw_vm_mode": "xen"})) == ["listed"]
    assert kept(f, hosts, spec(image_properties={"img_hv_type": "kvm", "img_hv_requested_version": ">=6.1"})) == [
        "kvm"]
    assert version_satisfies(6002000, ">= 6.2") and not version_satisfies(6002000, "<6")
    assert version_satisfies(6002000, "6.2") and not version_satisfies(6002000, "nonsense")


def test_server_group_filters() -> None:
    hosts = [state("a"), state("b"), state("c")]
    anti, affinity = ServerGroupAntiAffinityFilter(SETTINGS), ServerGroupAffinityFilter(SETTINGS)
    group = {"id": "g", "policy": "anti-affinity", "rules": {}}
    assert not anti.applies(spec(group=group))  # no member placed yet
    assert kept(anti, hosts, spec(group=group, context={"group_hosts": {"a": 1, "c": 1}})) == ["b"]
    two_per_host = {**group, "rules": {"max_server_per_host": 2}}
    assert kept(anti, hosts, spec(group=two_per_host, context={"group_hosts": {"a": 2, "c": 1}})) == ["b", "c"]
    assert not anti.applies(spec(group={**group, "policy": "soft-anti-affinity"}, context={"group_hosts": {"a": 1}}))
    together = {"id": "g", "policy": "affinity", "rules": {}}
    assert not affinity.applies(spec(group=together))
    assert kept(affinity, hosts, spec(group=together, context={"group_hosts": {"b": 2}})) == ["b"]


def test_same_and_different_host_filters() -> None:
    hosts = [state("a"), state("b"), state("c")]
    same, different = SameHostFilter(SETTINGS), DifferentHostFilter(SETTINGS)
    assert not same.applies(spec()) and not different.applies(spec())
    assert kept(same, hosts, spec(context={"same_hosts": frozenset({"b"})})) == ["b"]
    assert kept(same, hosts, spec(context={"same_hosts": frozenset()})) == []  # the instance has no host
    assert kept(different, hosts, spec(context={"different_hosts": frozenset({"a", "c"})})) == ["b"]


def test_json_query_language() -> None:
    big = state("big", memory_mb=8192, vcpus=16, vcpus_used=2, local_gb=400, hypervisor_type="kvm")
    small = state("small", memory_mb=1024, vcpus=2, vcpus_used=2, local_gb=20, running_vms=3)

    def hosts_for(query: Any) -> list[str]:
        evaluator = compile_query(query if isinstance(query, str) else json.dumps(query))
        return [h.host for h in (big, small) if passes(evaluator, h)]

    assert hosts_for([">=", "$free_ram_mb", 2048]) == ["big"]
    assert hosts_for(["<", "$free_ram_mb", 2048]) == ["small"]
    assert hosts_for(["=", "$vcpus_used", 2]) == ["big", "small"]
    assert hosts_for(["and", [">", "$vcpus_total", 4], [">=", "$free_disk_mb", 100 * 1024]]) == ["big"]
    assert hosts_for(["or", ["=", "$host", "small"], ["in", "$hypervisor_type", "kvm", "qemu"]]) == ["big", "small"]
    assert hosts_for(["not", ["=", "$num_instances", 0]]) == ["small"]
    assert hosts_for(["<=", "$total_usable_ram_mb", 1024]) == ["small"]
    assert hosts_for(["=", "$cpu_info.arch", "x86_64"]) == ["big", "small"]
    assert hosts_for(["=", "$service.disabled", False]) == ["big", "small"]
    assert hosts_for(["=", "$no_such_variable", 1]) == []  # unknown variables drop out
    assert hosts_for([">", "$host", 3]) == []  # a string against a number is false, not an error
    assert hosts_for([]) == ["big", "small"]
    for bad in ("not json", '{"a": 1}', '["nope", 1]'):
        with pytest.raises(ValueError):
            compile_query(bad)


def test_json_filter_uses_the_query_hint() -> None:
    hosts = [state("a", memory_mb=8192), state("b", memory_mb=1024)]
    f = JsonFilter(SETTINGS)
    assert not f.applies(spec())
    assert kept(f, hosts, spec(hints={"query": '[">=", "$free_ram_mb", 4096]'})) == ["a"]
    with pytest.raises(NoValidHost, match="Invalid query scheduler hint"):
        f.filter_all(hosts, spec(hints={"query": "[broken"}))


def test_custom_filters_register_by_class_name() -> None:
    class OddHostsOnlyFilter(BaseHostFilter):
        def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
            return host.host.endswith(("1", "3"))

    assert filter_class("OddHostsOnlyFilter") is OddHostsOnlyFilter
    hosts = [state("h1"), state("h2"), state("h3")]
    assert kept(OddHostsOnlyFilter(SETTINGS), hosts, spec()) == ["h1", "h3"]
    with pytest.raises(ValueError, match="unknown scheduler filter 'NoSuchFilter'"):
        filter_class("NoSuchFilter")
    assert filter_class("stratus.compute.scheduler.filters.RamFilter") is RamFilter


def test_host_states_keep_the_column_lists_in_step() -> None:
    # Built by the scheduler's HostStates; checked here on its own: any change of a figure reaches
    # the shared columns.
    host = state("a")
    table: dict[str, list[Any]] = {name: [None] for name in ("up_until", "ram_free", "vcpus_free", "disk_free",
                                                             "free_ram_mb", "free_disk_mb", "num_instances",
                                                             "zone")}
    host.table, host.pos = table, 0
    host.add_pending(1, 100, 1)
    assert table["ram_free"] == [host.ram_free] == [3996]
    host.add_used(1, 100, 1)
    host.add_pending(1, 100, 1, sign=-1)
    assert table["num_instances"] == [1] and table["free_ram_mb"] == [3996]
    host.set_service(False, False, None, 60)
    assert table["up_until"] == [float("-inf")]


@given(seen_ago=st.one_of(st.none(), st.integers(min_value=-5000, max_value=200_000).map(lambda ms: ms / 1000)),
       down_time=st.integers(min_value=1, max_value=120).map(float), disabled=st.booleans(),
       forced_down=st.booleans())
@settings(max_examples=200, deadline=None)
def test_compute_filter_agrees_with_the_services_liveness(seen_ago: float | None, down_time: float, disabled: bool,
                                                          forced_down: bool) -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, 0)
    last_seen = None if seen_ago is None else now - dt.timedelta(seconds=seen_ago)
    service = models.Service(host="h", binary="nova-compute", disabled=disabled, forced_down=forced_down,
                             last_seen_up=last_seen)
    host = state("h")
    host.set_service(disabled, forced_down, last_seen, down_time)
    request = spec()
    request.context.now = epoch(now)
    expected = liveness.is_up(service, down_time, now) and not disabled
    assert ComputeFilter(SETTINGS).host_passes(host, request) is expected
