"""`stratus ring ...`: make and change the account, container and object rings.

The builder (`<kind>.builder`, JSON) is the operator's copy; `rebalance` writes the ring file
(`<kind>.ring.gz`) that every node and proxy loads. Copy the ring directory (rings and
`hash_path_secret`) to every node after a rebalance.
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from stratus.object.ring.builder import RingBuilder
from stratus.object.ring.ring import RingError
from stratus.object.utils import ensure_hash_secret

KIND = click.Choice(["account", "container", "object"])
# Swift's short form: r1z2-10.0.0.1:6200/sdb
DEV_SPEC = re.compile(r"^(?:r(?P<region>\d+))?z(?P<zone>\d+)-(?P<ip>[^:/]+):(?P<port>\d+)/(?P<device>[^/\s]+)$")


def _dir(ring_dir: str | None) -> Path:
    if ring_dir:
        return Path(ring_dir)
    from stratus.core import config as config_mod
    from stratus.object.node import ring_dir as configured

    return configured(config_mod.load())


def _builder(ring_dir: Path, kind: str) -> RingBuilder:
    try:
        return RingBuilder.load(ring_dir / f"{kind}.builder")
    except RingError as exc:
        raise click.ClickException(str(exc)) from exc


ring_dir_option = click.option("--ring-dir", default=None, type=click.Path(file_okay=False),
                               help="Where the rings live (default: [object] ring_dir, else STATE_DIR/object/rings).")


@click.group("ring")
def ring() -> None:
    """Account, container and object rings."""


@ring.command("create")
@ring_dir_option
@click.argument("kind", type=KIND)
@click.argument("part_power", type=int)
@click.argument("replicas", type=int)
@click.argument("min_part_hours", type=int, default=1)
def create(ring_dir: str | None, kind: str, part_power: int, replicas: int, min_part_hours: int) -> None:
    """Start a new builder: 2^PART_POWER partitions, REPLICAS copies."""
    where = _dir(ring_dir)
    path = where / f"{kind}.builder"
    if path.exists():
        raise click.ClickException(f"{path} exists; remove it first to start over")
    try:
        builder = RingBuilder(part_power, replicas, min_part_hours)
    except RingError as exc:
        raise click.ClickException(str(exc)) from exc
    where.mkdir(parents=True, exist_ok=True)
    ensure_hash_secret(where)
    builder.save(path)
    click.echo(f"{kind}: builder created ({2 ** part_power} partitions, {replicas} replicas)")


@ring.command("add")
@ring_dir_option
@click.argument("kind", type=KIND)
@click.argument("device")
@click.argument("weight", type=float)
def add(ring_dir: str | None, kind: str, device: str, weight: float) -> None:
    """Add DEVICE, written r<region>z<zone>-<ip>:<port>/<device> (e.g. r1z1-10.0.0.1:6200/sdb)."""
    match = DEV_SPEC.match(device)
    if match is None:
        raise click.ClickException(f"bad device {device!r}; expected r1z1-10.0.0.1:6200/sdb")
    where = _dir(ring_dir)
    builder = _builder(where, kind)
    try:
        dev_id = builder.add_dev({"region": int(match["region"] or 1), "zone": int(match["zone"]),
                                  "ip": match["ip"], "port": int(match["port"]), "device": match["device"],
                                  "weight": weight})
    except RingError as exc:
        raise click.ClickException(str(exc)) from exc
    builder.save(where / f"{kind}.builder")
    click.echo(f"{kind}: device d{dev_id} {device} weight {weight} added (rebalance to use it)")


def _one(builder: RingBuilder, search: str) -> int:
    found = builder.search(search)
    if len(found) != 1:
        raise click.ClickException(f"{search!r} matches {len(found)} devices; name exactly one (e.g. d3)")
    return int(found[0]["id"])


@ring.command("remove")
@ring_dir_option
@click.argument("kind", type=KIND)
@click.argument("device")
def remove(ring_dir: str | None, kind: str, device: str) -> None:
    """Remove DEVICE (d<id>, ip:port/device): the next rebalance moves its partitions away."""
    where = _dir(ring_dir)
    builder = _builder(where, kind)
    dev_id = _one(builder, device)
    builder.remove_dev(dev_id)
    builder.save(where / f"{kind}.builder")
    click.echo(f"{kind}: device d{dev_id} marked for removal (rebalance to apply)")


@ring.command("set-weight")
@ring_dir_option
@click.argument("kind", type=KIND)
@click.argument("device")
@click.argument("weight", type=float)
def set_weight(ring_dir: str | None, kind: str, device: str, weight: float) -> None:
    """Give DEVICE a new weight (its share of the partitions)."""
    where = _dir(ring_dir)
    builder = _builder(where, kind)
    dev_id = _one(builder, device)
    try:
        builder.set_dev_weight(dev_id, weight)
    except RingError as exc:
        raise click.ClickException(str(exc)) from exc
    builder.save(where / f"{kind}.builder")
    click.echo(f"{kind}: device d{dev_id} weight {weight} (rebalance to apply)")


@ring.command("rebalance")
@ring_dir_option
@click.argument("kind", type=KIND)
def rebalance(ring_dir: str | None, kind: str) -> None:
    """Place the partitions and write the ring file."""
    where = _dir(ring_dir)
    builder = _builder(where, kind)
    try:
        moved = builder.rebalance()
        builder.get_ring().save(where / f"{kind}.ring.gz")
    except RingError as exc:
        raise click.ClickException(str(exc)) from exc
    builder.save(where / f"{kind}.builder")
    click.echo(f"{kind}: {moved} partition replicas assigned, balance {builder.balance():.2f}%, "
               f"ring {where / (kind + '.ring.gz')}")


@ring.command("show")
@ring_dir_option
@click.argument("kind", type=KIND)
def show(ring_dir: str | None, kind: str) -> None:
    """The builder's devices, their weights and how many partitions each holds."""
    builder = _builder(_dir(ring_dir), kind)
    assigned, desired = builder.assigned_parts(), builder.desired_parts()
    click.echo(f"{kind}: {builder.parts} partitions, {builder.replicas} replicas, min_part_hours "
               f"{builder.min_part_hours}, generation {builder.generation}, balance {builder.balance():.2f}%"
               + (" (changes pending a rebalance)" if builder.dirty else ""))
    click.echo(f"{'id':>4} {'region':>6} {'zone':>4} {'address':<22} {'device':<10} {'weight':>8} "
               f"{'parts':>7} {'want':>8}")
    for dev in builder.devs:
        if dev is None:
            continue
        note = " (removing)" if dev["id"] in builder.to_remove else ""
        click.echo(f"{dev['id']:>4} {dev['region']:>6} {dev['zone']:>4} {dev['ip'] + ':' + str(dev['port']):<22} "
                   f"{dev['device']:<10} {dev['weight']:>8.2f} {assigned.get(dev['id'], 0):>7} "
                   f"{desired.get(dev['id'], 0):>8.1f}{note}")
