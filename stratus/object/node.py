"""A storage node: the account, container and object servers and the background daemons.

`stratus serve object-node` (and `stratus up`, through the proxy's wiring) calls `start_node`;
`ensure_local_cluster` makes the all-in-one layout on first start: `devices` directories under
`devices_dir`, one zone each, and the three rings over them on this node's ports.
"""

from __future__ import annotations

import atexit
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stratus.core.config import Config
from stratus.core.periodic import Periodic
from stratus.core.server import Listener
from stratus.object.ring.builder import RingBuilder
from stratus.object.utils import ensure_hash_secret, load_hash_secret

log = logging.getLogger("stratus.object.node")
KINDS = ("account", "container", "object")


def devices_dir(cfg: Config) -> Path:
    return Path(cfg.object.devices_dir or cfg.server.state_dir / "object" / "devices")


def ring_dir(cfg: Config) -> Path:
    return Path(cfg.object.ring_dir or cfg.server.state_dir / "object" / "rings")


def node_port(cfg: Config, kind: str) -> int:
    return int(getattr(cfg.object, f"{kind}_port"))


def ensure_local_cluster(cfg: Config) -> Path:
    """Devices and rings for a one-node cloud, made once; later starts only follow port changes."""
    devices, rings = devices_dir(cfg), ring_dir(cfg)
    names = [f"d{i}" for i in range(1, cfg.object.devices + 1)]
    for name in names:
        (devices / name).mkdir(parents=True, exist_ok=True)
    ensure_hash_secret(rings)
    for kind in KINDS:
        port = node_port(cfg, kind)
        builder_file, ring_file = rings / f"{kind}.builder", rings / f"{kind}.ring.gz"
        if builder_file.exists():
            builder = RingBuilder.load(builder_file)
            moved = False
            for dev in builder.devs:
                # The all-in-one devices follow the configured port (tests run on free ports).
                if dev is not None and dev["ip"] == cfg.object.node_ip and dev["port"] != port \
                        and dev["device"] in names:
                    dev["port"] = port
                    moved = True
            if moved or not ring_file.exists():
                builder.save(builder_file)
                builder.get_ring().save(ring_file)
            continue
        builder = RingBuilder(cfg.object.part_power, min(cfg.object.replicas, len(names)),
                              cfg.object.min_part_hours)
        for zone, name in enumerate(names, start=1):
            builder.add_dev({"region": 1, "zone": zone, "ip": cfg.object.node_ip, "port": port,
                             "device": name, "weight": 100.0})
        builder.rebalance()
        builder.save(builder_file)
        builder.get_ring().save(ring_file)
        log.info("made the %s ring: %d devices, 2^%d partitions, %d replicas", kind, len(names),
                 builder.part_power, builder.replicas)
    return rings


class _QuietDaemonRequests(logging.Filter):
    """httpx logs every request at INFO; the daemons' routine requests would flood the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.threadName or "").startswith("object-") or record.levelno > logging.INFO


_QUIET = _QuietDaemonRequests()


def make_daemons(cfg: Config) -> list[Periodic]:
    from stratus.object.auditor import DatabaseAuditor, ObjectAuditor
    from stratus.object.db_replicator import DatabaseReplicator
    from stratus.object.diskfile import DiskFileManager
    from stratus.object.expirer import ObjectExpirer
    from stratus.object.reaper import AccountReaper
    from stratus.object.replicator import ObjectReplicator
    from stratus.object.updater import Updater

    logging.getLogger("httpx").addFilter(_QUIET)  # (adding the same filter twice is a no-op)
    section = cfg.object
    devices, rings = devices_dir(cfg), ring_dir(cfg)
    manager = DiskFileManager(devices, hash_secret=load_hash_secret(rings), mount_check=section.mount_check,
                              reserve=section.fallocate_reserve)
    ips = {section.node_ip}
    timeout = section.node_timeout
    object_replicator = ObjectReplicator(manager, rings, ips=ips, port=section.object_port, timeout=timeout)
    container_replicator = DatabaseReplicator("container", devices, rings, ips=ips, port=section.container_port,
                                              mount_check=section.mount_check, timeout=timeout)
    account_replicator = DatabaseReplicator("account", devices, rings, ips=ips, port=section.account_port,
                                            mount_check=section.mount_check, timeout=timeout)

    object_auditor = ObjectAuditor(manager, bytes_per_second=section.auditor_bytes_per_second)
    db_auditor = DatabaseAuditor(devices, mount_check=section.mount_check)

    def audit() -> None:
        object_auditor.run_once()
        db_auditor.run_once()

    def replicate() -> None:
        object_replicator.run_once()
        container_replicator.run_once()
        account_replicator.run_once()

    candidates: list[tuple[str, Callable[[], Any], float]] = [
        ("replicator", replicate, section.replicator_interval),
        ("auditor", audit, section.auditor_interval),
        ("updater", Updater(devices, rings, timeout=timeout).run_once, section.updater_interval),
        ("expirer", ObjectExpirer(manager, rings, timeout=timeout).run_once, section.expirer_interval),
        ("reaper", AccountReaper(devices, rings, ips=ips, port=section.account_port,
                                 mount_check=section.mount_check, timeout=timeout).run_once, section.reaper_interval),
    ]
    return [Periodic(f"object-{name}", work, interval) for name, work, interval in candidates if interval > 0]


def make_apps(cfg: Config) -> dict[str, Any]:
    from stratus.object.diskfile import DiskFileManager
    from stratus.object.servers.account import AccountServer
    from stratus.object.servers.container import ContainerServer
    from stratus.object.servers.object import ObjectServer

    section = cfg.object
    devices, secret = devices_dir(cfg), load_hash_secret(ring_dir(cfg))
    options: dict[str, Any] = {"mount_check": section.mount_check, "reserve": section.fallocate_reserve}
    manager = DiskFileManager(devices, hash_secret=secret, **options)
    object_server = ObjectServer(manager, node_timeout=section.node_timeout)
    container_server = ContainerServer(devices, secret, node_timeout=section.node_timeout, **options)
    # Object rows for this node's own container server skip HTTP (three per object PUT or DELETE).
    object_server.local_containers[f"{section.node_ip}:{section.container_port}"] = container_server
    return {
        "object": object_server,
        "container": container_server,
        "account": AccountServer(devices, secret, node_timeout=section.node_timeout, **options),
    }


def start_node(cfg: Config, *, daemons: bool = True) -> list[Listener]:
    """The three servers as listeners for `serve_all`; the daemons start now and stop at exit."""
    devices = devices_dir(cfg)
    devices.mkdir(parents=True, exist_ok=True)
    if not (ring_dir(cfg) / "object.ring.gz").exists():
        log.warning("no rings in %s yet: make them with `stratus ring ...`", ring_dir(cfg))
    apps = make_apps(cfg)
    if daemons:
        for daemon in make_daemons(cfg):
            daemon.start()
            atexit.register(daemon.stop)
    return [Listener(f"{kind}-server", apps[kind], node_port(cfg, kind)) for kind in KINDS]

