"""The `stratus` command: run a cloud, bootstrap it, migrate its databases, rotate its keys."""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import shutil
import sys
from pathlib import Path

import click
import httpx
import yaml

from stratus.compute.service import ComputeService
from stratus.core import config as config_mod
from stratus.core.bus import Bus
from stratus.core.config import Config
from stratus.core.server import Listener, run, serve_all
from stratus.identity.bootstrap import BootstrapResult, CatalogEntry, bootstrap
from stratus.identity.client import REVOCATION_EVENT, IdentityClient, ServiceCredentials
from stratus.identity.service import IdentityService
from stratus.image.service import ImageService
from stratus.network.service import NetworkService

# What `stratus serve ROLE...` can run; `stratus up` runs them all. "api" serves the public APIs,
# "conductor" the network and compute conductors and the compute scheduler, "compute" this node's
# compute agent(s), "network-agent" this node's network agent, "volume" this node's volume agent.
ROLES = ("api", "conductor", "compute", "network-agent", "object-proxy", "metadata", "volume")
# Roles that need no database, bus or identity: `stratus serve` runs them on their own.
# "object-node" is a storage node: account, container and object servers plus their daemons;
# "dashboard" the web UI, which reaches everything through the public APIs.
STANDALONE_ROLES = ("object-node", "dashboard")


def _load(config_path: str | None, state_dir: str | None) -> Config:
    try:
        cfg = config_mod.load(Path(config_path) if config_path else None,
                              state_dir=Path(state_dir) if state_dir else None)
    except config_mod.ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    return cfg


# What the real backends need on this machine.
QEMU_TOOLS = ("qemu-system-x86_64", "qemu-img")
LINUX_NETWORK_TOOLS = ("ip", "nft", "dnsmasq")


def _choose_backends(cfg: Config) -> None:
    """Settle `auto` for the hypervisor driver and the network data plane: real VMs and networks
    wherever this machine can run them, the simulated ones otherwise — and then say so plainly."""
    if cfg.compute.driver == "auto":
        missing = [tool for tool in QEMU_TOOLS if shutil.which(tool) is None]
        cfg.compute.driver = "fake" if missing else "qemu"
        if missing:
            click.echo(f"stratus: no QEMU here ({', '.join(missing)} not found): servers run on the fake "
                       "driver and are NOT real VMs (apt-get install qemu-system-x86 qemu-utils for real ones)")
    if cfg.network.agent_dataplane == "auto":
        missing = [tool for tool in LINUX_NETWORK_TOOLS if shutil.which(tool) is None]
        reason = "not running as root" if os.geteuid() != 0 else (f"{', '.join(missing)} not found" if missing
                                                                    else "")
        cfg.network.agent_dataplane = "noop" if reason else "linux"
        if reason:
            click.echo(f"stratus: {reason}: networks are NOT built on this host (the noop data plane records "
                       "them only); run as root with iproute2, nftables and dnsmasq for real ones")


# The services that run beside identity, each with a user of its own in the service project.
SERVICE_USERS = {"image": "glance", "network": "neutron", "compute": "nova", "object": "swift",
                 "volume": "cinder"}


def _catalog(cfg: Config) -> list[CatalogEntry]:
    return [CatalogEntry("identity", "keystone", f"{cfg.public_url(cfg.identity.port)}/v3",
                         "Stratus identity service"),
            CatalogEntry("image", "glance", cfg.public_url(cfg.image.port), "Stratus image service"),
            CatalogEntry("network", "neutron", cfg.public_url(cfg.network.port), "Stratus networking service"),
            CatalogEntry("compute", "nova", f"{cfg.public_url(cfg.compute.port)}/v2.1", "Stratus compute service"),
            # openstacksdk and the CLI look for block-storage; older tools for volumev3.
            CatalogEntry("block-storage", "cinder", f"{cfg.public_url(cfg.volume.port)}/v3/%(project_id)s",
                         "Stratus block storage"),
            CatalogEntry("volumev3", "cinderv3", f"{cfg.public_url(cfg.volume.port)}/v3/%(project_id)s",
                         "Stratus block storage"),
            # Identity fills in the token's project: each project's account is AUTH_<project id>.
            CatalogEntry("object-store", "swift", f"{cfg.public_url(cfg.object.port)}/v1/AUTH_%(project_id)s",
                         "Stratus object storage")]


def _service_password(cfg: Config) -> str:
    """The service users' password: from the configuration, else made once and kept (0600)."""
    if cfg.bootstrap.service_password:
        return cfg.bootstrap.service_password
    path = cfg.server.state_dir / "service-password"
    if not path.exists():
        cfg.server.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(24))
    return path.read_text().strip()


def _identity(cfg: Config) -> tuple[IdentityService, BootstrapResult]:
    svc = IdentityService(cfg)
    svc.setup()
    cfg.bootstrap.service_password = _service_password(cfg)
    return svc, bootstrap(svc, _catalog(cfg), service_users=list(SERVICE_USERS.values()))


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


def _identity_client(cfg: Config, service: str, bus: Bus) -> IdentityClient:
    """How `service` validates tokens; revocations announced on the bus empty its cache."""
    url = cfg.auth.identity_url or f"http://127.0.0.1:{cfg.identity.port}"
    client = IdentityClient(url, ServiceCredentials(SERVICE_USERS[service], _service_password(cfg), "service"),
                            cache_ttl=cfg.auth.cache_ttl)
    bus.listen_notifications(client.forget, event_types=[REVOCATION_EVENT])
    return client


def _listeners(cfg: Config, identity: IdentityService | None, bus: Bus,
               roles: tuple[str, ...] = ROLES) -> list[Listener]:
    from stratus.identity.api import create_identity_app
    from stratus.image.api import create_image_app
    from stratus.network.api import create_network_app

    listeners = []
    if identity is not None and "api" in roles:
        identity.revocations.listeners.append(
            lambda event: bus.notify(REVOCATION_EVENT, {"audit_id": event.audit_id, "user_id": event.user_id}))
        listeners.append(Listener("identity", create_identity_app(identity), cfg.identity.port))
    image = ImageService(cfg)
    image.setup()
    network = NetworkService(cfg, bus=bus)
    network.setup()
    compute = _compute_service(cfg, bus)
    if "api" in roles:
        listeners.append(Listener("image", create_image_app(image, _identity_client(cfg, "image", bus)),
                                  cfg.image.port))
        listeners.append(Listener("network", create_network_app(network, _identity_client(cfg, "network", bus)),
                                  cfg.network.port))
        listeners.append(_compute_api(cfg, compute, bus))
    if "conductor" in roles:
        _start_network_conductor(network, bus)
        _start_compute_control(compute, bus)
    if "network-agent" in roles:
        _start_network_agent(cfg, bus)
        if "api" in roles and cfg.network.agent_dataplane == "linux":
            from stratus.network.dataplane.linux.seed import start_seeding

            start_seeding(cfg, SERVICE_USERS["network"], _service_password(cfg))
    if "compute" in roles:
        _start_compute_agents(compute, bus)
        if "api" in roles and cfg.compute.driver == "qemu":
            from stratus.compute.runtime import start_guest_upload

            start_guest_upload(compute, cfg.auth.identity_url or f"http://127.0.0.1:{cfg.identity.port}",
                               SERVICE_USERS["compute"], _service_password(cfg))
    if "metadata" in roles:
        from stratus.compute.metadata import create_metadata_app
        listeners.append(Listener("metadata", create_metadata_app(compute), cfg.compute.metadata_port))
    if "object-proxy" in roles:
        listeners.append(_object_proxy(cfg, bus))
    if {"api", "conductor", "volume"} & set(roles):
        listeners += _volume_roles(cfg, bus, roles)
    return listeners


def _volume_roles(cfg: Config, bus: Bus, roles: tuple[str, ...]) -> list[Listener]:
    """The block storage API, its conductor and this node's volume agent (file backend under the
    state dir), as the roles ask; the conductor and agent stop at exit."""
    from stratus.core.service_client import ServiceAuth
    from stratus.image.client import ImageClient
    from stratus.volume.runtime import Runtime, start_agent, start_control
    from stratus.volume.service import VolumeService

    identity_url = cfg.auth.identity_url or f"http://127.0.0.1:{cfg.identity.port}"
    auth = ServiceAuth(identity_url, SERVICE_USERS["volume"], _service_password(cfg))
    volume = VolumeService(cfg, bus=bus, image=ImageClient(f"http://127.0.0.1:{cfg.image.port}", auth))
    if {"api", "conductor"} & set(roles):  # a storage node alone never touches the database
        volume.setup()
    runtime = Runtime()
    atexit.register(runtime.stop)
    if "conductor" in roles:
        start_control(volume, bus, runtime)
    if "volume" in roles:
        # The agent registers with the conductor at start; with both in this process, in a thread,
        # so that the API starts meanwhile.
        import threading

        threading.Thread(target=start_agent, args=(volume, bus, runtime, volume.image), name="volume agent start",
                         daemon=True).start()
    if "api" not in roles:
        return []
    from stratus.volume.api import create_volume_app

    return [Listener("volume", create_volume_app(volume, _identity_client(cfg, "volume", bus)), cfg.volume.port)]


def _object_proxy(cfg: Config, bus: Bus) -> Listener:
    """The Swift proxy (and its S3 front) over the rings in the object ring dir."""
    from stratus.object.node import ring_dir
    from stratus.object.proxy.service import create_from_config

    app = create_from_config(cfg, _identity_client(cfg, "object", bus), ring_dir(cfg))
    return Listener("object", app, cfg.object.port)


def _local_object_node(cfg: Config) -> list[Listener]:
    """`stratus up`'s storage node: its devices and rings are made on first start."""
    from stratus.object.node import ensure_local_cluster, start_node

    ensure_local_cluster(cfg)
    return start_node(cfg)


def _proxy_calls_node_directly(cfg: Config, services: list[Listener], node: list[Listener]) -> None:
    """The proxy reaches this process's storage servers without HTTP (see object/proxy/local.py)."""
    from stratus.object.proxy.app import ProxyApp

    proxy = next(item.app for item in services if isinstance(item.app, ProxyApp))
    for item in node:
        proxy.proxy.cluster.local.add(cfg.object.node_ip, item.port, item.app)


def _start_network_conductor(network: NetworkService, bus: Bus) -> None:
    """The network agents' way to the database (it stops with the bus)."""
    from stratus.network.conductor import Conductor

    Conductor(network.db).serve(bus)


def _start_network_agent(cfg: Config, bus: Bus) -> None:
    """This host's network agent; it stops at exit."""
    from stratus.network import agent, dataplane

    node_agent = agent.from_config(bus, cfg.network, dataplane.load(cfg.network.agent_dataplane, cfg, bus))
    node_agent.start()
    atexit.register(node_agent.stop, 5.0)


def _compute_service(cfg: Config, bus: Bus) -> ComputeService:
    """The compute service with its ways to the network, image and block storage APIs (over HTTP,
    with the compute service user's token)."""
    from stratus.core.service_client import ServiceAuth
    from stratus.image.client import ImageClient
    from stratus.network.client import NetworkClient
    from stratus.volume.client import VolumeClient

    identity_url = cfg.auth.identity_url or f"http://127.0.0.1:{cfg.identity.port}"
    auth = ServiceAuth(identity_url, SERVICE_USERS["compute"], _service_password(cfg))
    compute = ComputeService(cfg, bus=bus, network=NetworkClient(f"http://127.0.0.1:{cfg.network.port}", auth),
                             image=ImageClient(f"http://127.0.0.1:{cfg.image.port}", auth),
                             volume=VolumeClient(f"http://127.0.0.1:{cfg.volume.port}", auth))
    compute.setup()
    return compute


def _compute_api(cfg: Config, compute: ComputeService, bus: Bus) -> Listener:
    from stratus.compute import flavors
    from stratus.compute.api import create_compute_app

    with compute.db.transaction() as session:
        flavors.seed_default_flavors(session)
    return Listener("compute", create_compute_app(compute, _identity_client(cfg, "compute", bus)), cfg.compute.port)


def _start_compute_control(compute: ComputeService, bus: Bus) -> None:
    """The compute conductor and scheduler; they stop at exit."""
    from stratus.compute.runtime import Runtime, start_control

    runtime = Runtime()
    start_control(compute, bus, runtime)
    atexit.register(runtime.stop)


def _start_compute_agents(compute: ComputeService, bus: Bus) -> None:
    """This node's compute agent(s) (with the fake driver, `fake_hosts` of them; with qemu, one);
    they stop at exit."""
    from stratus.compute.runtime import Runtime, start_agents

    runtime = Runtime()
    start_agents(compute, bus, runtime, compute.image)
    atexit.register(runtime.stop)


async def _announce_when_answering(cfg: Config, listeners: list[Listener]) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        for item in listeners:
            url = cfg.public_url(item.port)
            response = await client.get(f"http://127.0.0.1:{item.port}/")
            click.echo(f"stratus: {item.name} at {url} (HTTP {response.status_code})")
    click.echo("stratus: ready", nl=True)
    sys.stdout.flush()


def _run(cfg: Config, listeners: list[Listener]) -> None:
    run(serve_all(listeners, cfg.server.bind_host, log_level=cfg.server.log_level,
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
    _choose_backends(cfg)
    click.echo(f"stratus: compute driver {cfg.compute.driver}, network data plane {cfg.network.agent_dataplane}")
    identity, result = _identity(cfg)
    if result.generated_password:
        click.echo(f"stratus: generated admin password (shown once): {result.generated_password}")
    _write_client_files(cfg, cfg.bootstrap.admin_password or result.generated_password)
    click.echo(f"stratus: clouds.yaml and openrc in {cfg.server.state_dir.resolve()}")
    bus = Bus(cfg.bus.url)
    try:
        node, services = _local_object_node(cfg), _listeners(cfg, identity, bus)
        _proxy_calls_node_directly(cfg, services, node)
        _run(cfg, node + services + [_dashboard(cfg)])
    finally:
        bus.close()


@main.command()
@config_option
@state_option
@click.argument("roles", nargs=-1, required=True)
def serve(config_path: str | None, state_dir: str | None, roles: tuple[str, ...]) -> None:
    """Run chosen roles (for a cloud spread over several machines)."""
    unknown = sorted(set(roles) - set(ROLES) - set(STANDALONE_ROLES))
    if unknown:
        raise click.ClickException(f"unknown role(s) {', '.join(unknown)}; "
                                   f"known: {', '.join(ROLES + STANDALONE_ROLES)}")
    cfg = _load(config_path, state_dir)
    _choose_backends(cfg)
    standalone = _standalone_listeners(cfg, roles)
    roles = tuple(role for role in roles if role not in STANDALONE_ROLES)
    if not roles:
        _run(cfg, standalone)
        return
    identity = IdentityService(cfg)
    identity.setup()
    bus = Bus(cfg.bus.url)
    try:
        _run(cfg, _listeners(cfg, identity, bus, roles) + standalone)
    finally:
        bus.close()


def _standalone_listeners(cfg: Config, roles: tuple[str, ...]) -> list[Listener]:
    listeners: list[Listener] = []
    if "object-node" in roles:
        from stratus.object.node import start_node

        listeners += start_node(cfg)
    if "dashboard" in roles:
        listeners.append(_dashboard(cfg))
    return listeners


def _dashboard(cfg: Config) -> Listener:
    from stratus.dashboard.app import from_config

    return Listener("dashboard", from_config(cfg), cfg.dashboard.port)


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


def _add_ring_commands() -> None:
    from stratus.object.ring_cli import ring

    main.add_command(ring)


_add_ring_commands()


def _add_guest_commands() -> None:
    from stratus.guest.cli import guest

    main.add_command(guest)


_add_guest_commands()


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
    ImageService(cfg).setup()
    NetworkService(cfg).setup()
    ComputeService(cfg).setup()
    from stratus.volume.service import VolumeService

    VolumeService(cfg).setup()
    click.echo("identity, image, network, compute, volume: schemas up to date")


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
