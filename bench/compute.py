"""Compute benchmark, in sections.

Run:  .venv/bin/python bench/compute.py [--section scheduler|boot] [--hosts 1000,10000] [--decisions 2000]
           [--boot-hosts 200] [--servers 1000] [--concurrency 16] [--deployment up|split]

- `scheduler`: for each host count, a temporary SQLite database holds that many fake hosts
  (Service + ComputeNode rows, 16 vCPUs / 32 GiB / 500 GB each, heartbeating now), and one
  `Scheduler` with the default filters and weighers loads them. It then measures:
  * the decision time (filters + weighers over the in-memory view, no database): `--decisions`
    requests of mixed flavors, each decision's host charged in memory so that the next one sees the
    change, as a real stream of boots would; p50 / p99 / max and decisions per second;
  * the same with a request that exercises every filter (availability zone, aggregate extra specs,
    image properties, a JSON query, different_host);
  * `select_destination` end to end (decision + the claim's transaction on SQLite): claims per second.
- `boot` (bench/compute_boot.py): servers booted through a real cloud with fake hosts: one
  `stratus up` process, or with `--deployment split` the API and the conductor with the agents in
  processes of their own on PostgreSQL and RabbitMQ.
No peer runs beside it: Nova's scheduler cannot run here without its whole control plane.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import compute_boot  # noqa: E402

from stratus.compute import models  # noqa: E402
from stratus.compute.scheduler import RequestSpec, Scheduler  # noqa: E402
from stratus.compute.service import MIGRATIONS  # noqa: E402
from stratus.core.config import ComputeConfig  # noqa: E402
from stratus.core.db import Database, utcnow  # noqa: E402

FLAVORS = [(1, 512, 1), (1, 2048, 20), (2, 4096, 40), (4, 8192, 80), (8, 16384, 160)]


def fake_cloud(db: Database, count: int, *, vcpus: int = 16, memory_mb: int = 32768, local_gb: int = 500,
               zones: int = 0) -> None:
    """`count` hosts named host-00001... with a nova-compute service seen up now; with `zones`, the
    hosts are spread over that many aggregates with an availability zone and an `ssd` flag."""
    now = utcnow()
    services = [{"uuid": str(uuid.uuid4()), "host": f"host-{i:05d}", "binary": "nova-compute", "topic": "compute",
                 "disabled": False, "forced_down": False, "report_count": 1, "last_seen_up": now,
                 "created_at": now, "updated_at": now} for i in range(1, count + 1)]
    nodes = [{"uuid": str(uuid.uuid4()), "host": s["host"], "hypervisor_hostname": s["host"],
              "hypervisor_type": "fake", "hypervisor_version": 1000, "host_ip": "127.0.0.1", "vcpus": vcpus,
              "memory_mb": memory_mb, "local_gb": local_gb, "vcpus_used": 0, "memory_mb_used": 0,
              "local_gb_used": 0, "running_vms": 0, "cpu_allocation_ratio": 16.0, "ram_allocation_ratio": 1.5,
              "disk_allocation_ratio": 1.0, "cpu_info": {"arch": "x86_64"}, "created_at": now, "updated_at": now}
             for s in services]
    with db.transaction() as session:
        session.execute(sa.insert(models.Service), services)
        session.execute(sa.insert(models.ComputeNode), nodes)
        for z in range(zones):
            aggregate = models.Aggregate(name=f"agg-{z}")
            session.add(aggregate)
            session.flush()
            session.add_all([models.AggregateMetadata(aggregate_id=aggregate.id, key="availability_zone",
                                                      value=f"az{z}"),
                             models.AggregateMetadata(aggregate_id=aggregate.id, key="ssd", value="true")])
            session.execute(sa.insert(models.AggregateHost), [
                {"aggregate_id": aggregate.id, "host": s["host"]} for s in services[z::zones]])


def spec_for(index: int) -> RequestSpec:
    vcpus, memory_mb, disk_gb = FLAVORS[index % len(FLAVORS)]
    return RequestSpec(instance_id=str(uuid.uuid4()), project_id="bench", vcpus=vcpus, memory_mb=memory_mb,
                       disk_gb=disk_gb)


def rich_spec_for(index: int) -> RequestSpec:
    spec = spec_for(index % 3)  # the smaller flavors: a quarter of the hosts take these
    spec.availability_zone = "az1"
    spec.flavor_extra_specs = {"aggregate_instance_extra_specs:ssd": "<or> true <or> yes", "hw:cpu_policy": "shared"}
    spec.image_properties = {"hw_architecture": "x86_64", "img_hv_type": "kvm", "hw_vm_mode": "hvm"}
    spec.hints = {"query": '["and", [">=", "$free_ram_mb", 1024], [">=", "$free_disk_mb", 10240]]'}
    spec.context.different_hosts = frozenset({"host-00002", "host-00004"})
    return spec


def time_decisions(scheduler: Scheduler, make: Callable[[int], RequestSpec], count: int) -> list[float]:
    """Seconds per decision; each chosen host is charged in memory, as the claim would."""
    times = []
    for index in range(count):
        spec = make(index)
        start = time.perf_counter()
        host = scheduler.decide(spec)
        times.append(time.perf_counter() - start)
        state = scheduler.states.by_name[host]
        state.add_used(spec.vcpus, spec.memory_mb, spec.disk_gb)
    return times


def summary(label: str, times: list[float]) -> str:
    ordered = sorted(times)
    p50 = ordered[len(ordered) // 2] * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    rate = len(times) / sum(times)
    return f"  {label:<34} p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   max {ordered[-1] * 1000:6.2f} ms   {rate:8.0f}/s"


def scheduler_section(args: argparse.Namespace) -> None:
    print("scheduler decision time (filters + weighers, in memory, default ComputeConfig)")
    for count in args.hosts:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            db = Database(f"sqlite:///{Path(tmp) / 'compute.sqlite'}")
            db.upgrade("compute", MIGRATIONS)
            started = time.perf_counter()
            fake_cloud(db, count, zones=4)
            made = time.perf_counter() - started
            scheduler = Scheduler(db, ComputeConfig())
            started = time.perf_counter()
            scheduler.states.refresh(full=True)
            loaded = time.perf_counter() - started
            started = time.perf_counter()
            scheduler.states.refresh(full=True)
            checked = time.perf_counter() - started
            print(f"{count} hosts (rows written in {made:.1f} s; first load {loaded * 1000:.0f} ms, "
                  f"periodic full check {checked * 1000:.0f} ms)")
            time_decisions(scheduler, spec_for, 50)  # warm-up
            print(summary("decision, plain request", time_decisions(scheduler, spec_for, args.decisions)))
            scheduler = Scheduler(db, ComputeConfig())  # a fresh view: without the in-memory charges
            scheduler.states.refresh()
            print(summary("decision, every filter in use", time_decisions(scheduler, rich_spec_for,
                                                                          args.decisions)))
            scheduler = Scheduler(db, ComputeConfig())
            claims = min(args.decisions, 1000)
            started = time.perf_counter()
            for index in range(claims):
                scheduler.select_destination(spec_for(index))
            elapsed = time.perf_counter() - started
            print(f"  {'select_destination with claim':<34} {claims / elapsed:8.0f}/s "
                  f"({elapsed / claims * 1000:.2f} ms each, SQLite)")
            with db.transaction() as session:
                over = session.scalar(sa.select(sa.func.count()).select_from(models.ComputeNode).where(
                    (models.ComputeNode.memory_mb_used > models.ComputeNode.memory_mb * 1.5)
                    | (models.ComputeNode.vcpus_used > models.ComputeNode.vcpus * 16)))
            if over:
                print(f"  FLAGGED: {over} hosts over their allocation ratios")
            db.dispose()


SECTIONS: dict[str, Callable[[argparse.Namespace], None]] = {"scheduler": scheduler_section,
                                                             "boot": compute_boot.boot_section}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--section", choices=sorted(SECTIONS), action="append",
                        help="run only this section (repeatable; default: all)")
    parser.add_argument("--hosts", default="1000,10000", type=lambda v: [int(x) for x in v.split(",")],
                        help="host counts for the scheduler section")
    parser.add_argument("--decisions", type=int, default=2000, help="decisions timed per host count")
    parser.add_argument("--dir", default=None, help="where the temporary databases go")
    parser.add_argument("--boot-hosts", type=int, default=200, help="fake hosts for the boot section")
    parser.add_argument("--servers", type=int, default=1000, help="servers the boot section boots")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent server creates")
    parser.add_argument("--deployment", choices=("up", "split"), default="up",
                        help="the boot section's cloud: one `stratus up`, or roles in processes of their own")
    args = parser.parse_args()
    print(f"bench/compute.py at {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
    for name in args.section or list(SECTIONS):
        SECTIONS[name](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
