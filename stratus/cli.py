"""The `stratus` command: run a cloud, bootstrap it, migrate its databases, rotate its keys."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import click
import httpx
import yaml

from stratus.core import config as config_mod
from stratus.core.config import Config
from stratus.core.server import Listener, serve_all
from stratus.identity.bootstrap import BootstrapResult, CatalogEntry, bootstrap
from stratus.identity.service import IdentityService

ROLES = ("api",)


def _load(config_path: str | None, state_dir: str | None) -> Config:
    try:
        return config_mod.load(Path(config_path) if config_path else None,
                               state_dir=Path(state_dir) if state_dir else None)
    except config_mod.ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _catalog(cfg: Config) -> list[CatalogEntry]:
    return [CatalogEntry("identity", "keystone", f"{cfg.public_url(cfg.identity.port)}/v3",
                         "Stratus identity service")]


def _identity(cfg: Config) -> tuple[IdentityService, BootstrapResult]:
    svc = IdentityService(cfg)
    svc.setup()
    return svc, bootstrap(svc, _catalog(cfg), service_users=[])


def _write_client_files(cfg: Config, password: str | None) -> None:
    """clouds.yaml and openrc for the admin; kept as they are when we don't know the password."""
    state = cfg.server.state_dir
    auth_url = f"{cfg.public_url(cfg.identity.port)}/v3"
    clouds, openrc = state / "clouds.yaml", state / "openrc"
    if password is None:
        if not clouds.exists():
            return
        current = yaml.safe_load(clouds.read_text())
        password = current["clouds"]["stratus"]["auth"]["password"]
    b = cfg.bootstrap
    auth = {"auth_url": auth_url, "username": b.admin_user, "password": password,
            "project_name": b.admin_project, "user_domain_name": "Default", "project_domain_name": "Default"}
    cloud = {"auth": auth, "region_name": b.region, "identity_api_version": 3, "interface": "public"}
    for path, text in (
        (clouds, yaml.safe_dump({"clouds": {"stratus": cloud}}, sort_keys=False)),
        (openrc, "".join(f"export {k}={v!r}\n" for k, v in (
            ("OS_AUTH_URL", auth_url), ("OS_USERNAME", b.admin_user), ("OS_PASSWORD", password),
            ("OS_PROJECT_NAME", b.admin_project), ("OS_USER_DOMAIN_NAME", "Default"),
            ("OS_PROJECT_DOMAIN_NAME", "Default"), ("OS_REGION_NAME", b.region),
            ("OS_IDENTITY_API_VERSION", "3"), ("OS_INTERFACE", "public")))),
    ):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)


def _listeners(cfg: Config, identity: IdentityService) -> list[Listener]:
    from stratus.identity.api import create_identity_app

    return [Listener("identity", create_identity_app(identity), cfg.identity.port)]


async def _announce_when_answering(cfg: Config, listeners: list[Listener]) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        for item in listeners:
            url = cfg.public_url(item.port)
            response = await client.get(f"http://127.0.0.1:{item.port}/")
            click.echo(f"stratus: {item.name} at {url} (HTTP {response.status_code})")
    click.echo("stratus: ready", nl=True)
    sys.stdout.flush()


def _run(cfg: Config, listeners: list[Listener]) -> None:
    asyncio.run(serve_all(listeners, cfg.server.bind_host, log_level=cfg.server.log_level,
                          on_ready=lambda: _announce_when_answering(cfg, listeners)))


@click.group()
def main() -> None:
    """Stratus: a small cloud that speaks the OpenStack APIs."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


config_option = click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                             help="TOML configuration file (default: STATE_DIR/stratus.toml).")
state_option = click.option("--state-dir", default=None, type=click.Path(file_okay=False),
                            help="Where the cloud keeps its databases, keys and files.")


@main.command()
@config_option
@state_option
def up(config_path: str | None, state_dir: str | None) -> None:
    """Run the whole cloud in this process (bootstraps it on first start)."""
    cfg = _load(config_path, state_dir)
    identity, result = _identity(cfg)
    if result.generated_password:
        click.echo(f"stratus: generated admin password (shown once): {result.generated_password}")
    _write_client_files(cfg, cfg.bootstrap.admin_password or result.generated_password)
    click.echo(f"stratus: clouds.yaml and openrc in {cfg.server.state_dir.resolve()}")
    _run(cfg, _listeners(cfg, identity))


@main.command()
@config_option
@state_option
@click.argument("roles", nargs=-1, required=True)
def serve(config_path: str | None, state_dir: str | None, roles: tuple[str, ...]) -> None:
    """Run chosen roles (for a cloud spread over several machines)."""
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise click.ClickException(f"unknown role(s) {', '.join(unknown)}; known: {', '.join(ROLES)}")
    cfg = _load(config_path, state_dir)
    identity = IdentityService(cfg)
    identity.setup()
    _run(cfg, _listeners(cfg, identity))


@main.command("bootstrap")
@config_option
@state_option
def bootstrap_cmd(config_path: str | None, state_dir: str | None) -> None:
    """Create the Default domain, admin account, roles and catalog (idempotent)."""
    cfg = _load(config_path, state_dir)
    _, result = _identity(cfg)
    if result.generated_password:
        click.echo(f"admin password (shown once): {result.generated_password}")
    _write_client_files(cfg, cfg.bootstrap.admin_password or result.generated_password)
    click.echo(f"bootstrapped: admin user {result.admin_user_id}, project {result.admin_project_id}")


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@config_option
@state_option
def db_upgrade(config_path: str | None, state_dir: str | None) -> None:
    """Bring every service's tables to the newest schema."""
    cfg = _load(config_path, state_dir)
    IdentityService(cfg).setup()
    click.echo("identity: schema up to date")


@main.group()
def fernet() -> None:
    """Token signing keys."""


@fernet.command("setup")
@config_option
@state_option
def fernet_setup(config_path: str | None, state_dir: str | None) -> None:
    """Create the key repository if it has no keys."""
    cfg = _load(config_path, state_dir)
    IdentityService(cfg).keys.setup()


@fernet.command("rotate")
@config_option
@state_option
def fernet_rotate(config_path: str | None, state_dir: str | None) -> None:
    """Promote the staged key to primary, stage a new one, retire the oldest."""
    cfg = _load(config_path, state_dir)
    primary = IdentityService(cfg).keys.rotate()
    click.echo(f"fernet: key {primary} is now primary")


if __name__ == "__main__":
    main()
