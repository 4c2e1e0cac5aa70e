"""/v2.1/os-migrations: the operator's list of resizes and cold migrations, newest first.

`old_instance_type_id`/`new_instance_type_id` are the flavors' integer keys, as Nova's; `dest_host`
is the address of the destination host. From 2.23 each item names its `migration_type`, and an
in-progress live migration links to its server's migration resource.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request

from stratus.compute import models
from stratus.compute.api.deps import Caller, Version, enforce, iso_micro, links, service
from stratus.compute.api.microversion import APIVersion

router = APIRouter(prefix="/v2.1", tags=["migrations"])

_IN_PROGRESS = ("queued", "preparing", "running", "post-migrating")
_FILTERS = ("status", "migration_type", "source_compute")


def _view(request: Request, row: models.Migration, version: APIVersion, flavor_keys: dict[str, int],
          addresses: dict[str, str]) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row.id, "instance_uuid": row.instance_id, "status": row.status,
        "source_compute": row.source_compute, "source_node": row.source_node,
        "dest_compute": row.dest_compute, "dest_node": row.dest_node,
        "dest_host": addresses.get(row.dest_compute) if row.dest_compute else None,
        "old_instance_type_id": flavor_keys.get(row.old_flavor_id) if row.old_flavor_id else None,
        "new_instance_type_id": flavor_keys.get(row.new_flavor_id) if row.new_flavor_id else None,
        "created_at": iso_micro(row.created_at), "updated_at": iso_micro(row.updated_at)}
    if version.at_least("2.23"):
        view["migration_type"] = row.migration_type
        if row.migration_type == "live-migration" and row.status in _IN_PROGRESS:
            view["links"] = links(request, f"servers/{row.instance_id}/migrations", row.id)
    return view


@router.get("/os-migrations")
def list_migrations(request: Request, ctx: Caller, version: Version) -> dict[str, Any]:
    enforce(request, ctx, "migrations")
    params = request.query_params
    m = models.Migration
    query = sa.select(m).order_by(m.created_at.desc(), m.id.desc())
    if params.get("host"):
        query = query.where(sa.or_(m.source_compute == params["host"], m.dest_compute == params["host"]))
    if params.get("instance_uuid"):
        query = query.where(m.instance_id == params["instance_uuid"])
    for name in _FILTERS:
        if params.get(name):
            query = query.where(getattr(m, name) == params[name])
    if not version.at_least("2.23"):
        # Below 2.23 the list shows no live migrations (Nova's rule).
        query = query.where(m.migration_type != "live-migration")
    with service(request).db.transaction() as session:
        rows = list(session.scalars(query))
        flavor_ids = {f for row in rows for f in (row.old_flavor_id, row.new_flavor_id) if f}
        flavor_keys: dict[str, int] = {}
        if flavor_ids:
            flavor_keys = {str(f): int(k) for f, k in session.execute(
                sa.select(models.Flavor.flavorid, models.Flavor.id).where(models.Flavor.flavorid.in_(flavor_ids)))}
        dests = {row.dest_compute for row in rows if row.dest_compute}
        addresses: dict[str, str] = {}
        if dests:
            node = models.ComputeNode
            addresses = {str(h): str(ip) for h, ip in session.execute(
                sa.select(node.host, node.host_ip).where(node.host.in_(dests)))}
        return {"migrations": [_view(request, row, version, flavor_keys, addresses) for row in rows]}
