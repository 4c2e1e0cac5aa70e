"""The documents the Block Storage API answers with, per microversion."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from stratus.core.context import RequestContext
from stratus.volume import models
from stratus.volume.api.deps import iso, links
from stratus.volume.api.microversion import APIVersion


def attachment_summary(row: models.Attachment) -> dict[str, Any]:
    """An attachment as a volume lists it."""
    return {"server_id": row.instance_uuid, "attachment_id": row.id, "attached_at": iso(row.attach_time),
            "host_name": row.attached_host, "volume_id": row.volume_id, "device": row.mountpoint, "id": row.volume_id}


def volume(request: Request, ctx: RequestContext, version: APIVersion, row: models.Volume,
           vtype: models.VolumeType | None, attachments: list[models.Attachment]) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row.id, "name": row.name, "description": row.description, "status": row.status, "size": row.size,
        "availability_zone": row.availability_zone, "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "attachments": [attachment_summary(a) for a in attachments if a.attach_status == "attached"],
        "volume_type": vtype.name if vtype else None, "snapshot_id": row.snapshot_id,
        "source_volid": row.source_volid, "metadata": dict(row.metadata_ or {}), "user_id": row.user_id,
        "bootable": "true" if row.bootable else "false", "encrypted": False, "replication_status": None,
        "consistencygroup_id": None, "multiattach": row.multiattach,
        "os-vol-tenant-attr:tenant_id": row.project_id,
        "links": links(request, "volumes", row.id, row.project_id)}
    if row.image_metadata:
        view["volume_image_metadata"] = dict(row.image_metadata)
    if ctx.is_admin:
        view["os-vol-host-attr:host"] = f"{row.host}@file#file" if row.host else None
        view["os-vol-mig-status-attr:migstat"] = row.migration_status
        view["os-vol-mig-status-attr:name_id"] = None
    if version.at_least("3.13"):
        view["group_id"] = None
    if version.at_least("3.21") and ctx.is_admin:
        view["provider_id"] = None
    if version.at_least("3.48"):
        view["service_uuid"] = None
        view["shared_targets"] = False
    if version.at_least("3.61") and ctx.is_admin:
        view["cluster_name"] = None
    if version.at_least("3.63"):
        view["volume_type_id"] = row.volume_type_id
    if version.at_least("3.64"):
        view["encryption_key_id"] = None
    if version.at_least("3.65"):
        view["consumes_quota"] = True
    return view


def volume_summary(request: Request, row: models.Volume) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "links": links(request, "volumes", row.id, row.project_id)}


def snapshot(version: APIVersion, row: models.Snapshot) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row.id, "name": row.name, "description": row.description, "status": row.status, "size": row.size,
        "volume_id": row.volume_id, "created_at": iso(row.created_at), "updated_at": iso(row.updated_at),
        "metadata": dict(row.metadata_ or {}), "os-extended-snapshot-attributes:project_id": row.project_id,
        "os-extended-snapshot-attributes:progress": row.progress}
    if version.at_least("3.14"):
        view["group_snapshot_id"] = None
    if version.at_least("3.41"):
        view["user_id"] = row.user_id
    if version.at_least("3.65"):
        view["consumes_quota"] = True
    return view


def volume_type(row: models.VolumeType, with_specs: bool = True) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "description": row.description, "is_public": row.is_public,
            "os-volume-type-access:is_public": row.is_public, "qos_specs_id": None,
            "extra_specs": dict(row.extra_specs or {}) if with_specs else {}}


def attachment(row: models.Attachment) -> dict[str, Any]:
    return {"id": row.id, "status": row.attach_status, "instance": row.instance_uuid, "volume_id": row.volume_id,
            "attached_at": iso(row.attach_time), "detached_at": None, "attach_mode": row.attach_mode,
            "connection_info": row.connection_info}
