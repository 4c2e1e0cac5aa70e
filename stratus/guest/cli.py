"""`stratus guest ...`: build the guest image and see which accelerator this host gets."""

from __future__ import annotations

import time
from pathlib import Path

import click

from stratus.core.errors import StratusError

cache_dir_option = click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                                help="where built images are kept (default ~/.cache/stratus/guest)")


@click.group()
def guest() -> None:
    """The small guest image VMs are tested with (built from Debian packages)."""


@guest.command("build")
@cache_dir_option
def build_cmd(cache_dir: Path | None) -> None:
    """Build the guest image (or find it in the cache) and print where its files are."""
    from stratus.guest.build import build

    started = time.monotonic()
    try:
        image = build(cache_dir)
    except StratusError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"disk: {image.disk}")
    click.echo(f"kernel: {image.kernel}")
    click.echo(f"initrd: {image.initrd}")
    click.echo(f"cmdline: {image.cmdline}")
    click.echo(f"machine: {image.machine}")
    click.echo(f"recipe: {image.recipe_hash} ({time.monotonic() - started:.1f} s)")


@guest.command("accel")
@cache_dir_option
def accel_cmd(cache_dir: Path | None) -> None:
    """Print the accelerator QEMU gets here: kvm if a probe boot under KVM works, else tcg."""
    from stratus.guest.accel import choose

    try:
        click.echo(choose(cache_dir))
    except StratusError as exc:
        raise click.ClickException(exc.message) from exc
