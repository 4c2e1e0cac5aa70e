"""/v2.1/limits: the caller's project limits and what it uses of them (no rate limits)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from stratus.compute import quotas
from stratus.compute.api.deps import Caller, Version, enforce, service
from stratus.core import errors

router = APIRouter(prefix="/v2.1", tags=["limits"])

_MAX = {"instances": "maxTotalInstances", "cores": "maxTotalCores", "ram": "maxTotalRAMSize",
        "key_pairs": "maxTotalKeypairs", "metadata_items": "maxServerMeta", "server_groups": "maxServerGroups",
        "server_group_members": "maxServerGroupMembers", "injected_files": "maxPersonality",
        "injected_file_content_bytes": "maxPersonalitySize"}
_USED = {"instances": "totalInstancesUsed", "cores": "totalCoresUsed", "ram": "totalRAMUsed",
         "server_groups": "totalServerGroupsUsed"}


@router.get("/limits")
def show_limits(request: Request, ctx: Caller, version: Version) -> dict[str, Any]:
    project_id = request.query_params.get("tenant_id") or ctx.project_id
    if not project_id:
        raise errors.BadRequest("A project-scoped token is needed to show limits.")
    if project_id != ctx.project_id:
        enforce(request, ctx, "quotas:show", {"project_id": project_id})
    svc = service(request)
    with svc.db.transaction() as session:
        limits = quotas.limits(session, project_id, svc.settings)
        used = quotas.usage(session, project_id)
    absolute: dict[str, int] = {key: limits[name] for name, key in _MAX.items()}
    absolute.update({key: used[name] for name, key in _USED.items()})
    if not version.at_least("2.39"):
        absolute["maxImageMeta"] = limits["metadata_items"]
    if not version.at_least("2.36"):
        absolute.update(maxSecurityGroups=-1, maxSecurityGroupRules=-1, maxTotalFloatingIps=-1,
                        totalSecurityGroupsUsed=0, totalFloatingIpsUsed=0)
    return {"limits": {"rate": [], "absolute": dict(sorted(absolute.items()))}}
