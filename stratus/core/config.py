"""One TOML file read into typed sections; `STRATUS_SECTION__KEY` environment variables override it.

A bad value is refused at start with a message that names the key (`identity.port: ...`).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ENV_PREFIX = "STRATUS_"


class ConfigError(Exception):
    """The configuration cannot be used; the message names the offending key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerConfig(Section):
    state_dir: Path = Path("state")
    bind_host: str = "127.0.0.1"
    # Host name put into the catalog's URLs; clients reach the APIs through it.
    public_host: str = "127.0.0.1"
    # The largest request body any JSON API accepts.
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    log_level: str = "info"


class DatabaseConfig(Section):
    # Empty: one SQLite file per service in the state dir. Otherwise one SQLAlchemy URL shared by
    # every service (each keeps its own tables and its own migration history).
    url: str = ""
    echo: bool = False


class BusConfig(Section):
    url: str = "memory://"
    call_timeout: float = Field(default=60.0, gt=0)


class IdentityConfig(Section):
    port: int = Field(default=5000, ge=0, le=65535)
    token_expiration: int = Field(default=3600, gt=0, description="seconds a token lives")
    bcrypt_rounds: int = Field(default=12, ge=4, le=31)
    # Lockout after this many failed password attempts in a row (0: never).
    lockout_failure_attempts: int = Field(default=0, ge=0)
    lockout_duration: int = Field(default=1800, gt=0)
    # How long a validated token's body is kept in memory (revocations still apply at once).
    token_cache_ttl: float = Field(default=300.0, ge=0)
    # How often a process re-reads the revocation list written by other processes.
    revocation_refresh: float = Field(default=2.0, gt=0)
    # Keys kept in the Fernet repository: one primary, one staged, the rest secondary.
    fernet_max_active_keys: int = Field(default=3, ge=2)
    policy_file: Path | None = None


class ImageConfig(Section):
    port: int = Field(default=9292, ge=0, le=65535)
    # Where image data lives: "file" (the state dir) today; "object" once object storage lands.
    store: str = Field(default="file", pattern="^(file)$")
    file_store_dir: Path | None = None
    # Per-project quotas (0: unlimited).
    quota_images: int = Field(default=100, ge=0)
    quota_bytes: int = Field(default=1024**4, ge=0)
    max_image_size: int = Field(default=1024**4, gt=0)
    policy_file: Path | None = None


class NetworkConfig(Section):
    port: int = Field(default=9696, ge=0, le=65535)
    # Types a project's network gets when no provider attributes are given, tried in order.
    tenant_network_types: list[str] = ["vxlan"]
    # Segmentation ids handed to tenant networks: "physnet:first:last" for VLANs, "first:last" for VXLAN.
    vlan_ranges: list[str] = ["physnet1:100:199"]
    vxlan_ranges: list[str] = ["1:10000"]
    # Physical networks an admin may name for flat or VLAN provider networks.
    physical_networks: list[str] = ["physnet1", "public"]
    # MACs are this prefix plus three random octets.
    base_mac: str = Field(default="fa:16:3e", pattern=r"^[0-9a-f]{2}(:[0-9a-f]{2}){2}$")
    global_physnet_mtu: int = Field(default=1500, ge=68)
    # An agent whose last heartbeat is older than this many seconds is shown dead.
    agent_down_time: int = Field(default=75, gt=0)
    # This node's name for its network agent (empty: the machine's host name), as ports'
    # binding:host_id name it.
    host: str = Field(default="", max_length=255)
    # What the network agent builds with: "noop" records the desired state and builds nothing;
    # "linux" builds bridges, dnsmasq, router namespaces and nftables (needs root); "auto": linux
    # when running as root with its tools installed, else noop (`stratus up` says which).
    agent_dataplane: str = Field(default="auto", pattern="^(auto|noop|linux)$")
    # linux data plane: "physnet:interface" host interfaces for flat/VLAN networks, and
    # "physnet:bridge" existing host bridges used as is by flat networks (the external network).
    physical_interface_mappings: list[str] = []
    bridge_mappings: list[str] = ["public:br-ex"]
    # The address VXLAN tunnels leave from (empty: VXLAN networks stay on this host) and the other
    # hosts' tunnel addresses.
    vxlan_local_ip: str = ""
    vxlan_peers: list[str] = []
    dhcp_lease_duration: int = Field(default=86400, ge=60)
    # With the linux data plane, `stratus up` puts the host on this external network's bridge
    # (first address) and creates the external network "public" on it.
    external_network_cidr: str = "172.24.4.0/24"
    # Seconds between the network agent's heartbeats (keep it well under agent_down_time).
    agent_report_interval: float = Field(default=30.0, gt=0)
    # Default per-project quotas (-1: unlimited).
    quota_network: int = Field(default=100, ge=-1)
    quota_subnet: int = Field(default=100, ge=-1)
    quota_port: int = Field(default=500, ge=-1)
    quota_router: int = Field(default=10, ge=-1)
    quota_floatingip: int = Field(default=50, ge=-1)
    quota_security_group: int = Field(default=10, ge=-1)
    quota_security_group_rule: int = Field(default=100, ge=-1)
    policy_file: Path | None = None

    @field_validator("tenant_network_types", "vlan_ranges", "vxlan_ranges", "physical_networks",
                     "physical_interface_mappings", "bridge_mappings", "vxlan_peers", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        # From the environment a list comes as "a,b,c".
        return [item.strip() for item in value.split(",") if item.strip()] if isinstance(value, str) else value

    @field_validator("physical_interface_mappings", "bridge_mappings")
    @classmethod
    def _mappings(cls, value: list[str]) -> list[str]:
        for item in value:
            name, _, device = item.partition(":")
            if not name or not device or len(device) > 15:
                raise ValueError(f"{item!r} is not physnet:device (a device name has at most 15 characters)")
        return value


class ComputeConfig(Section):
    port: int = Field(default=8774, ge=0, le=65535)
    metadata_port: int = Field(default=8775, ge=0, le=65535)
    # Signs the metadata proxy's X-Instance-ID headers (empty: made once in STATE_DIR/metadata-secret).
    metadata_shared_secret: str = ""
    # The hypervisor driver of this node's compute agent: "fake" keeps instances in memory, "qemu"
    # runs each instance as a qemu-system-x86_64 process; "auto": qemu wherever QEMU is installed,
    # else fake (`stratus up` says which).
    driver: str = Field(default="auto", pattern="^(auto|fake|qemu)$")
    # qemu driver: instance disks, consoles and sockets, and the base image cache (empty:
    # STATE_DIR/instances); the accelerator ("auto": KVM when a probe boot proves it works, else TCG);
    # seconds a guest gets to power off (or to reboot, for a soft reboot) before it is forced.
    instances_path: Path | None = None
    qemu_accel: str = Field(default="auto", pattern="^(auto|kvm|tcg)$")
    qemu_shutdown_timeout: float = Field(default=30.0, ge=0)
    qemu_soft_reboot_timeout: float = Field(default=30.0, ge=0)
    # This node's name (empty: the machine's host name).
    host: str = Field(default="", max_length=255)
    # With the fake driver, `stratus up` runs this many simulated hosts (host name + "-1", ...).
    fake_hosts: int = Field(default=3, ge=1, le=100000)
    # Resources each fake host reports.
    fake_vcpus: int = Field(default=16, ge=1)
    fake_memory_mb: int = Field(default=32768, ge=1)
    fake_disk_gb: int = Field(default=500, ge=1)
    # Fake hosts whose driver fails every spawn (to exercise rescheduling).
    fake_fail_hosts: list[str] = []
    # Scheduler: filters and weighers by name, and how resources may be overcommitted.
    scheduler_filters: list[str] = ["ComputeFilter", "AvailabilityZoneFilter", "RamFilter", "CoreFilter",
                                    "DiskFilter", "AggregateInstanceExtraSpecsFilter",
                                    "ImagePropertiesFilter", "ServerGroupAntiAffinityFilter",
                                    "ServerGroupAffinityFilter", "SameHostFilter", "DifferentHostFilter",
                                    "JsonFilter"]
    scheduler_weighers: list[str] = ["RAMWeigher", "CPUWeigher", "DiskWeigher", "NumInstancesWeigher"]
    ram_weight_multiplier: float = 1.0   # positive: spread, negative: stack
    cpu_weight_multiplier: float = 1.0
    disk_weight_multiplier: float = 1.0
    num_instances_weight_multiplier: float = 0.0
    soft_affinity_weight_multiplier: float = 1.0
    soft_anti_affinity_weight_multiplier: float = 1.0
    cpu_allocation_ratio: float = Field(default=16.0, gt=0)
    ram_allocation_ratio: float = Field(default=1.5, gt=0)
    disk_allocation_ratio: float = Field(default=1.0, gt=0)
    # How many hosts a build tries before the instance goes to ERROR.
    max_attempts: int = Field(default=3, ge=1)
    # Builds and other operations the conductor runs at once (each mostly waits on an agent).
    conductor_workers: int = Field(default=64, ge=1)
    default_availability_zone: str = "nova"
    # Agents heartbeat every report_interval seconds; silent for service_down_time they are down.
    report_interval: float = Field(default=10.0, gt=0)
    service_down_time: float = Field(default=60.0, gt=0)
    # Default per-project quotas (-1: unlimited).
    quota_instances: int = Field(default=10, ge=-1)
    quota_cores: int = Field(default=20, ge=-1)
    quota_ram: int = Field(default=51200, ge=-1)
    quota_key_pairs: int = Field(default=100, ge=-1)
    quota_metadata_items: int = Field(default=128, ge=-1)
    quota_server_groups: int = Field(default=10, ge=-1)
    quota_server_group_members: int = Field(default=10, ge=-1)
    quota_injected_files: int = Field(default=5, ge=-1)
    quota_injected_file_content_bytes: int = Field(default=10240, ge=-1)
    quota_injected_file_path_bytes: int = Field(default=255, ge=-1)
    policy_file: Path | None = None

    @field_validator("fake_fail_hosts", "scheduler_filters", "scheduler_weighers", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return [item.strip() for item in value.split(",") if item.strip()] if isinstance(value, str) else value


class VolumeConfig(Section):
    port: int = Field(default=8776, ge=0, le=65535)
    # This storage node's name for its volume agent (empty: the machine's host name).
    host: str = Field(default="", max_length=255)
    # What the agent stores volumes with: "file" keeps one file per volume under storage_dir.
    backend: str = Field(default="file", pattern="^(file)$")
    storage_dir: Path | None = None  # default STATE_DIR/volumes
    # The format of the file backend's volumes ("qcow2" snapshots are overlays, "raw" copies).
    file_format: str = Field(default="raw", pattern="^(raw|qcow2)$")
    # Capacity the file backend reports (0: the free space of storage_dir's file system).
    capacity_gb: int = Field(default=0, ge=0)
    availability_zone: str = "nova"
    # The address this storage node's NBD exports listen on (what other compute hosts connect to).
    storage_address: str = "127.0.0.1"
    # Thin provisioning: a host may take volumes totalling this many times its capacity.
    max_over_subscription_ratio: float = Field(default=20.0, gt=0)
    default_volume_type: str = "__DEFAULT__"
    # Agents heartbeat every report_interval seconds; silent for service_down_time they are down.
    report_interval: float = Field(default=10.0, gt=0)
    service_down_time: float = Field(default=60.0, gt=0)
    # Seconds the conductor waits for the agent on one operation (a create from a big image is long).
    operation_timeout: float = Field(default=600.0, gt=0)
    # Default per-project quotas (-1: unlimited).
    quota_volumes: int = Field(default=10, ge=-1)
    quota_snapshots: int = Field(default=10, ge=-1)
    quota_gigabytes: int = Field(default=1000, ge=-1)
    quota_per_volume_gigabytes: int = Field(default=-1, ge=-1)
    quota_backups: int = Field(default=10, ge=-1)
    quota_backup_gigabytes: int = Field(default=1000, ge=-1)
    quota_groups: int = Field(default=10, ge=-1)
    policy_file: Path | None = None

    @field_validator("storage_dir", mode="before")
    @classmethod
    def _empty_is_default(cls, value: Any) -> Any:
        return None if value == "" else value


class ObjectConfig(Section):
    # Storage node side (rings, devices, daemons). Empty paths: under STATE_DIR/object/.
    devices_dir: Path | None = None
    ring_dir: Path | None = None
    account_port: int = Field(default=6202, ge=0, le=65535)
    container_port: int = Field(default=6201, ge=0, le=65535)
    object_port: int = Field(default=6200, ge=0, le=65535)
    # The all-in-one cluster that `stratus up` makes on first start.
    replicas: int = Field(default=3, ge=1, le=16)
    part_power: int = Field(default=8, ge=1, le=24)
    devices: int = Field(default=3, ge=1, le=64)
    min_part_hours: int = Field(default=1, ge=0)
    # This node's address as written into the all-in-one rings.
    node_ip: str = "127.0.0.1"
    # Refuse a device that is not a mount point (off for devices that are plain directories).
    mount_check: bool = False
    # Bytes a device keeps free: a write that would eat into them gets 507.
    fallocate_reserve: int = Field(default=0, ge=0)
    # Seconds between passes of the background daemons (0: that daemon does not run).
    replicator_interval: float = Field(default=30.0, ge=0)
    auditor_interval: float = Field(default=300.0, ge=0)
    updater_interval: float = Field(default=30.0, ge=0)
    expirer_interval: float = Field(default=60.0, ge=0)
    reaper_interval: float = Field(default=300.0, ge=0)
    # How fast the auditor reads objects back, so it never starves the servers (0: no limit).
    auditor_bytes_per_second: float = Field(default=10 * 1024 * 1024, ge=0)
    # Timeout of one storage-node-to-storage-node request (updates, replication).
    node_timeout: float = Field(default=10.0, gt=0)

    @field_validator("devices_dir", "ring_dir", mode="before")
    @classmethod
    def _empty_is_default(cls, value: Any) -> Any:
        return None if value == "" else value  # "" would otherwise be Path("."), the working directory
    # Proxy side (Swift API and S3 on one port).
    port: int = Field(default=8080, ge=0, le=65535)
    # TempAuth users, "account:user:key[:group group]" (.admin owns the account, .reseller_admin all).
    tempauth_users: list[str] = []
    # Signs TempAuth tokens (empty: a new secret at each start, so tokens die with the process).
    tempauth_secret: str = ""
    # Keystone roles that make a user the owner of its project's account, and the all-accounts role.
    operator_roles: list[str] = ["admin", "member"]
    reseller_admin_role: str = "ResellerAdmin"
    # Seconds the proxy waits to connect to a storage node, and keeps account/container info.
    conn_timeout: float = Field(default=1.0, gt=0)
    info_cache_ttl: float = Field(default=3.0, ge=0)
    # Origins allowed for every container (besides each container's own CORS metadata).
    cors_allow_origin: list[str] = []
    # Virtual-host-style S3: "s3.example.com" makes BUCKET.s3.example.com name a bucket.
    s3_domain: str = ""

    @field_validator("tempauth_users", "operator_roles", "cors_allow_origin", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return [item.strip() for item in value.split(",") if item.strip()] if isinstance(value, str) else value


class DashboardConfig(Section):
    port: int = Field(default=8000, ge=0, le=65535)
    # Where the dashboard logs users in (empty: the identity endpoint of this process); every other
    # endpoint comes from the catalog of the user's token.
    identity_url: str = ""
    # Signs session cookies (empty: a new secret at each start, so sessions end with the process).
    secret_key: str = ""
    # Send the session cookie only over HTTPS (turn on behind a TLS-terminating proxy).
    secure_cookies: bool = False
    # Seconds the dashboard waits for an API answer (uploads and downloads stream without a limit).
    api_timeout: float = Field(default=30.0, gt=0)
    # A session idle this long ends even if its token is still valid.
    session_idle_timeout: int = Field(default=3600, gt=0)


class BootstrapConfig(Section):
    admin_user: str = "admin"
    admin_project: str = "admin"
    # Empty: generated at the first bootstrap and printed once.
    admin_password: str = ""
    region: str = "RegionOne"
    service_password: str = ""


class AuthConfig(Section):
    # Where services validate tokens (empty: the identity endpoint of this process).
    identity_url: str = ""
    cache_ttl: float = Field(default=30.0, ge=0)


class Config(Section):
    server: ServerConfig = ServerConfig()
    database: DatabaseConfig = DatabaseConfig()
    bus: BusConfig = BusConfig()
    identity: IdentityConfig = IdentityConfig()
    image: ImageConfig = ImageConfig()
    network: NetworkConfig = NetworkConfig()
    compute: ComputeConfig = ComputeConfig()
    volume: VolumeConfig = VolumeConfig()
    object: ObjectConfig = ObjectConfig()
    dashboard: DashboardConfig = DashboardConfig()
    bootstrap: BootstrapConfig = BootstrapConfig()
    auth: AuthConfig = AuthConfig()

    def database_url(self, service: str) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite:///{self.server.state_dir.resolve() / (service + '.sqlite')}"

    def public_url(self, port: int) -> str:
        return f"http://{self.server.public_host}:{port}"


def _env_overrides(environ: dict[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
        out.setdefault(section, {})[key] = value
    return out


def _merge(base: dict[str, Any], extra: dict[str, dict[str, str]]) -> dict[str, Any]:
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in extra.items():
        target = merged.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"{section}: must be a table")
        target.update(values)
    return merged


def load(path: Path | None = None, *, state_dir: Path | None = None,
         environ: dict[str, str] | None = None) -> Config:
    """Read `path` (or `state_dir/stratus.toml` when it exists), then apply env overrides."""
    environ = dict(os.environ) if environ is None else environ
    if path is None and state_dir is not None and (state_dir / "stratus.toml").exists():
        path = state_dir / "stratus.toml"
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path} not found") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    raw = _merge(raw, _env_overrides(environ))
    if state_dir is not None:
        raw.setdefault("server", {})["state_dir"] = str(state_dir)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from exc
