"""How a server looks in the Compute API, by microversion: status from vm_state and task_state,
addresses from the network info cache, the flavor embedded from 2.47, admin-only attributes."""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import Request

from stratus.compute import models
from stratus.compute.api.deps import iso, links
from stratus.compute.api.microversion import APIVersion

# vm_state -> API status, with the task states that override it.
_STATUS = {"building": "BUILD", "active": "ACTIVE", "stopped": "SHUTOFF", "paused": "PAUSED",
           "suspended": "SUSPENDED", "resized": "VERIFY_RESIZE", "error": "ERROR", "deleted": "DELETED",
           "soft-delete": "SOFT_DELETED", "shelved": "SHELVED", "shelved_offloaded": "SHELVED_OFFLOADED",
           "rescued": "RESCUE"}
_TASK_STATUS = {
    "active": {"rebooting": "REBOOT", "reboot_pending": "REBOOT", "reboot_started": "REBOOT",
               "rebooting_hard": "HARD_REBOOT", "reboot_pending_hard": "HARD_REBOOT",
               "reboot_started_hard": "HARD_REBOOT", "rebuilding": "REBUILD", "rebuild_spawning": "REBUILD",
               "resize_prep": "RESIZE", "resize_migrating": "RESIZE", "resize_migrated": "RESIZE",
               "resize_finish": "RESIZE", "migrating": "MIGRATING"},
    "stopped": {"resize_prep": "RESIZE", "resize_migrating": "RESIZE", "rebuilding": "REBUILD"},
    "resized": {"resize_reverting": "REVERT_RESIZE"},
}
# API status -> the vm_states a `status` filter matches.
STATUS_FILTER = {"BUILD": ["building"], "ACTIVE": ["active"], "SHUTOFF": ["stopped"], "PAUSED": ["paused"],
                 "SUSPENDED": ["suspended"], "VERIFY_RESIZE": ["resized"], "ERROR": ["error"],
                 "DELETED": ["deleted"], "SOFT_DELETED": ["soft-delete"], "SHELVED": ["shelved"],
                 "SHELVED_OFFLOADED": ["shelved_offloaded"], "RESCUE": ["rescued"],
                 "REBOOT": ["active"], "HARD_REBOOT": ["active"], "RESIZE": ["active", "stopped"],
                 "REBUILD": ["active", "stopped"], "MIGRATING": ["active"], "REVERT_RESIZE": ["resized"]}


def status(vm_state: str, task_state: str | None) -> str:
    if task_state:
        by_task = _TASK_STATUS.get(vm_state, {}).get(task_state)
        if by_task:
            return by_task
    return _STATUS.get(vm_state, "UNKNOWN")


def host_id(project_id: str, host: str | None) -> str:
    """Nova's hostId: the host hidden behind a per-project hash, so a project can tell its servers
    apart by host without learning host names."""
    return hashlib.sha224((project_id + host).encode()).hexdigest() if host else ""


def addresses(row: models.Instance) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for port in row.network_info or []:
        entries = out.setdefault(port["label"], [])
        for ip in port.get("fixed_ips", []):
            entries.append({"version": 6 if ":" in ip["ip_address"] else 4, "addr": ip["ip_address"],
                            "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]})
        for address in port.get("floating_ips", []):
            entries.append({"version": 6 if ":" in address else 4, "addr": address,
                            "OS-EXT-IPS:type": "floating", "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]})
    return out


def flavor_view(request: Request, row: models.Instance, version: APIVersion) -> dict[str, Any]:
    flavor = row.flavor or {}
    if version.at_least("2.47"):
        return {"vcpus": flavor.get("vcpus", row.vcpus), "ram": flavor.get("ram", row.memory_mb),
                "disk": flavor.get("disk", row.root_gb), "ephemeral": flavor.get("ephemeral", row.ephemeral_gb),
                "swap": flavor.get("swap", 0), "original_name": flavor.get("name", ""),
                "extra_specs": dict(flavor.get("extra_specs", {}))}
    return {"id": row.flavor_id, "links": [{"rel": "bookmark",
                                            "href": f"{str(request.base_url).rstrip('/')}/flavors/{row.flavor_id}"}]}


def fault_view(fault: models.InstanceFault | None, admin: bool) -> dict[str, Any] | None:
    if fault is None:
        return None
    view: dict[str, Any] = {"code": fault.code, "created": iso(fault.created_at), "message": fault.message}
    if admin or fault.code != 500:
        view["details"] = fault.details or ""
    return view


def server_view(request: Request, row: models.Instance, version: APIVersion, *, admin: bool,
                tags: list[str] | None = None, fault: models.InstanceFault | None = None,
                host_up: bool | None = None, volumes: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """The full (detail) view of a server (`volumes`: its volumes_attached)."""
    root = str(request.base_url).rstrip("/")
    view: dict[str, Any] = {
        "id": row.id, "name": row.name, "status": status(row.vm_state, row.task_state),
        "tenant_id": row.project_id, "user_id": row.user_id, "metadata": dict(row.metadata_ or {}),
        "hostId": host_id(row.project_id, row.host),
        "image": {"id": row.image_ref, "links": [{"rel": "bookmark", "href": f"{root}/images/{row.image_ref}"}]}
        if row.image_ref else "",
        "flavor": flavor_view(request, row, version),
        "created": iso(row.created_at), "updated": iso(row.updated_at), "addresses": addresses(row),
        "accessIPv4": row.access_ip_v4 or "", "accessIPv6": row.access_ip_v6 or "",
        "links": links(request, "servers", row.id), "OS-DCF:diskConfig": "MANUAL",
        "progress": row.progress if row.vm_state in ("building", "active") else 0,
        "OS-EXT-AZ:availability_zone": row.availability_zone or "",
        "config_drive": row.config_drive or "", "key_name": row.key_name,
        "OS-SRV-USG:launched_at": row.launched_at.isoformat(timespec="microseconds") if row.launched_at else None,
        "OS-SRV-USG:terminated_at": row.terminated_at.isoformat(timespec="microseconds") if row.terminated_at
        else None,
        "security_groups": [{"name": name} for name in row.security_groups or []],
        "OS-EXT-STS:task_state": row.task_state, "OS-EXT-STS:vm_state": row.vm_state,
        "OS-EXT-STS:power_state": row.power_state,
        "os-extended-volumes:volumes_attached": list(volumes or []),
    }
    if admin:
        view.update({"OS-EXT-SRV-ATTR:host": row.host, "OS-EXT-SRV-ATTR:hypervisor_hostname": row.node,
                     "OS-EXT-SRV-ATTR:instance_name": f"instance-{row.id[:8]}"})
        if version.at_least("2.3"):
            view.update({"OS-EXT-SRV-ATTR:reservation_id": row.reservation_id,
                         "OS-EXT-SRV-ATTR:launch_index": row.launch_index,
                         "OS-EXT-SRV-ATTR:hostname": row.hostname, "OS-EXT-SRV-ATTR:kernel_id": "",
                         "OS-EXT-SRV-ATTR:ramdisk_id": "", "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda",
                         "OS-EXT-SRV-ATTR:user_data": row.user_data})
    if version.at_least("2.9"):
        view["locked"] = bool(row.locked)
    if version.at_least("2.16") and admin and row.host:
        view["host_status"] = "UP" if host_up else ("DOWN" if host_up is False else "UNKNOWN")
    if version.at_least("2.19"):
        view["description"] = row.description
    if version.at_least("2.26"):
        view["tags"] = sorted(tags or [])
    if row.vm_state in ("error", "deleted") and fault is not None:
        view["fault"] = fault_view(fault, admin)
    return view


def server_summary(request: Request, row: models.Instance) -> dict[str, Any]:
    """The list (non-detail) view."""
    return {"id": row.id, "name": row.name, "links": links(request, "servers", row.id)}
