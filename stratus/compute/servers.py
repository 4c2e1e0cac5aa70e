"""Creating servers: everything checked before anything is made, then the instances, their quota,
group membership and `create` action in one transaction, and the builds cast to the conductor."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from stratus.compute import (
    block_devices,
    flavors,
    instance_actions,
    keypairs,
    models,
    networking,
    quotas,
    server_groups,
    zones,
)
from stratus.compute.rpc import CONDUCTOR_TOPIC
from stratus.compute.scheduler import RequestSpec
from stratus.compute.service import ComputeService
from stratus.core import errors
from stratus.core.context import RequestContext

MAX_USER_DATA = 65535
_HOSTNAME_BAD = re.compile(r"[^a-z0-9-]+")


@dataclass
class CreateRequest:
    """The server create body, as the API validated its shape."""

    name: str
    image_ref: str | None
    flavor_ref: str
    networks: Any = None  # "auto", "none", a list of dicts, or None (not given)
    key_name: str | None = None
    security_groups: list[str] = field(default_factory=list)
    user_data: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    availability_zone: str | None = None
    min_count: int = 1
    max_count: int = 1
    config_drive: bool = False
    hints: dict[str, Any] = field(default_factory=dict)
    admin_pass: str | None = None
    access_ip_v4: str | None = None
    access_ip_v6: str | None = None
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    block_device_mapping_v2: list[dict[str, Any]] = field(default_factory=list)


def hostname_for(name: str, index: int | None = None) -> str:
    """A DNS label from the display name, as Nova sanitises it."""
    label = _HOSTNAME_BAD.sub("-", name.lower().replace("_", "-").replace(" ", "-")).strip("-.")[:63] or "server"
    return f"{label}-{index}" if index is not None else label


@contextmanager
def _as_bad_request(message: str) -> Iterator[None]:
    """Something the body names that does not exist is a bad request, not a missing resource."""
    try:
        yield
    except errors.NotFound:
        raise errors.BadRequest(message) from None


def _image_from_bdm(bdms: list[dict[str, Any]]) -> str | None:
    """The image of a boot-from-image mapping (source image, destination local, boot index 0)."""
    for bdm in bdms:
        if (bdm.get("source_type") == "image" and (bdm.get("destination_type") or "local") == "local"
                and str(bdm.get("boot_index", "0")) == "0"):
            return str(bdm.get("uuid") or "") or None
    return None


def _boot_volume_source(svc: ComputeService, ctx: RequestContext, boot: block_devices.BootVolume,
                        flavor: models.Flavor) -> dict[str, Any]:
    """What a boot-from-volume server's image properties come from: the image its new volume is
    made of, or the image metadata of the existing bootable volume (checked to be usable)."""
    if svc.volume is None:
        raise errors.ServiceUnavailable("The block storage service is not reachable.")
    if boot.source_type == "image":
        return _check_image(svc, ctx, boot.uuid, flavor, root_disk=False)
    try:
        volume = svc.volume.get_volume(boot.uuid, token=ctx.auth_token)
    except errors.NotFound:
        raise errors.BadRequest(f"Block Device Mapping is Invalid: failed to get volume {boot.uuid}.") from None
    if volume.get("status") != "available":
        raise errors.BadRequest(f"Block Device Mapping is Invalid: volume {boot.uuid} status must be 'available', "
                                f"not '{volume.get('status')}'.")
    if str(volume.get("bootable")).lower() != "true":
        raise errors.BadRequest(f"Block Device Mapping is Invalid: volume {boot.uuid} is not bootable.")
    meta = dict(volume.get("volume_image_metadata") or {})
    return {"id": meta.get("image_id", ""), **{k: v for k, v in meta.items() if k not in ("image_id", "size")}}


def _make_boot_volume(svc: ComputeService, ctx: RequestContext, boot: block_devices.BootVolume, name: str) -> str:
    """The volume a server boots from: made now from the image (as the caller, so it is theirs and
    counts against their volume quota), or the existing one."""
    if boot.source_type != "image":
        return boot.uuid
    assert svc.volume is not None
    volume = svc.volume.create_volume({"size": boot.size_gb, "imageRef": boot.uuid, "name": f"{name}-boot"},
                                      token=ctx.auth_token)
    return str(volume["id"])


def _check_image(svc: ComputeService, ctx: RequestContext, image_ref: str, flavor: models.Flavor, *,
                 root_disk: bool = True) -> dict[str, Any]:
    """The image, usable by the caller with this flavor (`root_disk` False: the root disk is a
    volume, so the flavor's disk need not hold the image)."""
    if svc.image is None:
        raise errors.ServiceUnavailable("The image service is not reachable.")
    image_id = image_ref.rstrip("/").rsplit("/", 1)[-1]
    try:
        image = svc.image.get_image(image_id, token=ctx.auth_token)
    except errors.NotFound:
        raise errors.BadRequest(f"Image {image_id} could not be found.") from None
    if image.get("status") != "active":
        raise errors.BadRequest(f"Image {image_id} is not active.")
    if flavor.memory_mb < int(image.get("min_ram") or 0):
        raise errors.BadRequest("Flavor's memory is too small for requested image.")
    if flavor.root_gb and root_disk:
        if flavor.root_gb < int(image.get("min_disk") or 0):
            raise errors.BadRequest("Flavor's disk is too small for requested image.")
        if int(image.get("size") or 0) > flavor.root_gb * 1024**3:
            raise errors.BadRequest("Flavor's disk is too small for requested image.")
    return image


def image_properties(image: dict[str, Any] | None) -> dict[str, Any]:
    """The image's properties kept on the instance (Nova's `image_*` system metadata)."""
    if image is None:
        return {}
    core = ("id", "name", "status", "visibility", "owner", "checksum", "os_hash_algo", "os_hash_value", "size",
            "virtual_size", "created_at", "updated_at", "file", "schema", "self", "tags", "locations",
            "direct_url", "protected", "os_hidden", "stores")
    props = {k: v for k, v in image.items() if k not in core and v is not None}
    return {f"image_{k}": v for k, v in props.items()}


def _decode_user_data(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise errors.BadRequest("User data needs to be valid base 64.") from None
    if len(raw) > MAX_USER_DATA:
        raise errors.BadRequest(f"User data too large. User data must be no larger than {MAX_USER_DATA} bytes "
                                "once base64 encoded.")
    return value


def _zone_and_host(session: Session, svc: ComputeService, ctx: RequestContext, wanted: str | None,
                   enforce_admin: Any) -> tuple[str | None, str | None]:
    """`zone`, `zone:host` or `zone:host:node`; a host is the operator's to name."""
    if not wanted:
        return None, None
    zone, _, rest = wanted.partition(":")
    host = rest.partition(":")[0] or None
    if host is not None:
        enforce_admin()
    if zone:
        known = set(zones.host_zones(session).values()) | {svc.settings.default_availability_zone}
        if zone not in known:
            raise errors.BadRequest(f"The requested availability zone is not available: {zone}")
    return zone or None, host


def create(svc: ComputeService, ctx: RequestContext, req: CreateRequest, request_id: str,
           enforce_admin: Any) -> tuple[list[models.Instance], str]:
    """Check, then make the instances and cast their builds. Returns them and the admin password."""
    if req.min_count < 1 or req.max_count < req.min_count:
        raise errors.BadRequest("min_count must be at least 1 and no more than max_count.")
    project_id = ctx.project_id
    if not project_id:
        raise errors.BadRequest("A project-scoped token is needed to create a server.")
    user_data = _decode_user_data(req.user_data)
    boot = block_devices.boot_volume(req.block_device_mapping_v2)
    image_ref = req.image_ref or _image_from_bdm(req.block_device_mapping_v2)
    if boot is not None and req.max_count > 1:
        raise errors.BadRequest("Only one server at a time can be booted from a volume.")
    if not image_ref and boot is None:
        raise errors.BadRequest("Missing imageRef attribute.")
    with svc.db.transaction() as session:
        flavor_id = req.flavor_ref.rstrip("/").rsplit("/", 1)[-1]
        with _as_bad_request(f"Flavor {flavor_id} could not be found."):
            flavor = flavors.find_flavor(session, flavor_id, project_id, ctx.is_admin)
        flavor_copy = flavors.flavor_snapshot(session, flavor)
        key_data = None
        if req.key_name:
            with _as_bad_request("Invalid key_name provided."):
                pair = keypairs.get_keypair(session, ctx.user_id, req.key_name)
            key_data = pair.public_key
        zone, forced_host = _zone_and_host(session, svc, ctx, req.availability_zone, enforce_admin)
        group = None
        if req.hints.get("group"):
            with _as_bad_request(f"Server group {req.hints['group']} could not be found."):
                group_row = server_groups.get_group(session, str(req.hints["group"]), project_id, ctx.is_admin)
            group = {"id": group_row.id, "policy": group_row.policy, "rules": dict(group_row.rules or {})}
    if boot is not None:
        image = _boot_volume_source(svc, ctx, boot, flavor)
    else:
        assert image_ref is not None
        image = _check_image(svc, ctx, image_ref, flavor)
    group_names = req.security_groups or [networking.DEFAULT_GROUP]
    requests: list[dict[str, Any]] = []
    group_ids: list[str] = []
    if svc.network is not None:
        requests = networking.resolve_requested(svc.network, project_id, req.networks)
        # As Nova does, the project's default group alone is not looked up: a port the network
        # service makes with no groups named goes into its project's default group (made if
        # missing), and a network without port security takes the port without one.
        if any(not r.get("port") for r in requests) and group_names != [networking.DEFAULT_GROUP]:
            group_ids = networking.security_group_ids(svc.network, project_id, group_names)
    # A volume-backed server's root disk is on the block storage service, not the host.
    disk_gb = (0 if boot else flavor.root_gb) + flavor.ephemeral_gb + -(-flavor.swap // 1024)
    admin_pass = req.admin_pass or secrets.token_urlsafe(9)
    reservation = "r-" + uuid.uuid4().hex[:8]
    made: list[models.Instance] = []
    boot_volume_id = _make_boot_volume(svc, ctx, boot, req.name) if boot is not None else None
    try:
        made = _make_instances(svc, ctx, req, request_id, _Made(
            flavor, flavor_copy, image, zone, forced_host, group, requests, group_ids, key_data, user_data,
            group_names, disk_gb, reservation, boot, boot_volume_id))
    except Exception:
        if boot is not None and boot.source_type == "image" and boot_volume_id and svc.volume is not None:
            svc.volume.delete_volume(boot_volume_id, token=ctx.auth_token)
        raise
    if svc.bus is not None:
        for instance in made:
            svc.bus.cast(CONDUCTOR_TOPIC, "build_instance", instance_id=instance.id, request_id=request_id,
                         admin_password=admin_pass)
    return made, admin_pass


@dataclass
class _Made:
    """What `create` checked and resolved, for the transaction that makes the instances."""

    flavor: models.Flavor
    flavor_copy: dict[str, Any]
    image: dict[str, Any]
    zone: str | None
    forced_host: str | None
    group: dict[str, Any] | None
    requests: list[dict[str, Any]]
    group_ids: list[str]
    key_data: str | None
    user_data: str | None
    group_names: list[str]
    disk_gb: int
    reservation: str
    boot: block_devices.BootVolume | None
    boot_volume_id: str | None


def _make_instances(svc: ComputeService, ctx: RequestContext, req: CreateRequest, request_id: str,
                    m: _Made) -> list[models.Instance]:
    """The instances with their quota, tags, group membership, root volume mapping and `create`
    action, in one transaction."""
    project_id = ctx.project_id or ""
    flavor, flavor_copy, image, zone, group, boot = m.flavor, m.flavor_copy, m.image, m.zone, m.group, m.boot
    made: list[models.Instance] = []
    with svc.db.transaction() as session:
        quotas.lock_project(session, project_id)
        limits = quotas.limits(session, project_id, svc.settings)
        if limits["metadata_items"] >= 0 and len(req.metadata) > limits["metadata_items"]:
            raise errors.OverLimit(f"Quota exceeded for metadata_items: Requested {len(req.metadata)}, "
                                   f"but the limit is {limits['metadata_items']}")
        count = _fitting_count(session, svc, project_id, flavor, req.min_count, req.max_count)
        if group is not None:
            members = session.scalar(sa.select(sa.func.count()).select_from(models.ServerGroupMember).where(
                models.ServerGroupMember.group_id == group["id"])) or 0
            limit = limits["server_group_members"]
            if limit >= 0 and members + count > limit:
                raise errors.OverLimit(f"Quota exceeded for server_group_members: Requested {count}, "
                                       f"but already used {members} of {limit} server_group_members")
        for index in range(count):
            instance = models.Instance(
                project_id=project_id, user_id=ctx.user_id, name=req.name,
                hostname=hostname_for(req.name, index + 1 if count > 1 else None), description=req.description,
                image_ref="" if boot else str(image["id"]), flavor=flavor_copy, flavor_id=flavor.flavorid,
                vcpus=flavor.vcpus,
                memory_mb=flavor.memory_mb, root_gb=flavor.root_gb, ephemeral_gb=flavor.ephemeral_gb,
                vm_state="building", task_state="scheduling", power_state=0, availability_zone=zone,
                key_name=req.key_name, key_data=m.key_data, user_data=m.user_data,
                config_drive="True" if req.config_drive else "", metadata_=dict(req.metadata),
                system_metadata=image_properties(image), security_groups=list(m.group_names),
                access_ip_v4=req.access_ip_v4, access_ip_v6=req.access_ip_v6, reservation_id=m.reservation,
                launch_index=index, network_info=[])
            instance.id = models.new_id()
            spec = RequestSpec(instance_id=instance.id, project_id=project_id, vcpus=flavor.vcpus,
                               memory_mb=flavor.memory_mb, disk_gb=m.disk_gb, availability_zone=zone,
                               flavor_extra_specs=dict(flavor_copy.get("extra_specs", {})),
                               image_properties=dict(image.get("properties", {}) or
                                                     {k: v for k, v in image.items() if k.startswith(("hw_", "img_"))}),
                               group=group, hints={k: v for k, v in req.hints.items() if k != "group"},
                               force_host=m.forced_host)
            instance.request_spec = {"scheduler": spec.to_dict(), "networks": m.requests,
                                     "security_group_ids": m.group_ids,
                                     "boot_volume": boot is not None and m.boot_volume_id is not None}
            session.add(instance)
            session.flush()
            for tag in req.tags:
                session.add(models.InstanceTag(instance_id=instance.id, tag=tag))
            if group is not None:
                session.add(models.ServerGroupMember(group_id=group["id"], instance_id=instance.id))
            if boot is not None and m.boot_volume_id is not None:
                session.add(models.BlockDeviceMapping(
                    instance_id=instance.id, volume_id=m.boot_volume_id, device_name=block_devices.ROOT_DEVICE,
                    boot_index=0, source_type=boot.source_type, delete_on_termination=boot.delete_on_termination,
                    status="attaching"))
            instance_actions.start(session, instance.id, "create", request_id, project_id, ctx.user_id)
            made.append(instance)
    return made


def _fitting_count(session: Session, svc: ComputeService, project_id: str, flavor: models.Flavor,
                   min_count: int, max_count: int) -> int:
    """As many instances as the quota allows between min_count and max_count (Nova's rule)."""
    for count in range(max_count, min_count - 1, -1):
        try:
            quotas.check(session, project_id, svc.settings,
                         {"instances": count, "cores": count * flavor.vcpus, "ram": count * flavor.memory_mb})
            return count
        except errors.OverLimit:
            if count == min_count:
                raise
    return min_count
