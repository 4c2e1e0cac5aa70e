"""/v2.1/os-services: the compute, scheduler and conductor services, their state and their switches.

Below 2.53 a service is named by host + binary (PUT /os-services/enable, /disable,
/disable-log-reason, /force-down) and its id is the integer key; from 2.53 it is named by its uuid
(PUT /os-services/{uuid}), which is also its id.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, TypeVar

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from fastapi import Body as JSONBody
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, StrictBool, ValidationError
from sqlalchemy.orm import Session

from stratus.compute import liveness, models, zones
from stratus.compute.api.deps import Body, Caller, Version, enforce, iso_micro, service
from stratus.compute.api.microversion import APIVersion
from stratus.core import errors

router = APIRouter(prefix="/v2.1", tags=["services"])
Payload = Annotated[dict[str, Any], JSONBody()]
M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], payload: Any) -> M:
    """A body whose schema depends on the path or the microversion, checked like a declared one."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


class HostBinary(Body):
    host: str = Field(min_length=1, max_length=255)
    binary: str = Field(min_length=1, max_length=255)
    disabled_reason: str | None = Field(None, min_length=1, max_length=255)


class ForceDown(Body):
    host: str = Field(min_length=1, max_length=255)
    binary: str = Field(min_length=1, max_length=255)
    forced_down: StrictBool


class ServiceUpdate(Body):
    status: str | None = Field(None, pattern="^(enabled|disabled)$")
    disabled_reason: str | None = Field(None, min_length=1, max_length=255)
    forced_down: StrictBool | None = None


def service_view(row: models.Service, zone: str, version: APIVersion, down_time: float) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row.uuid if version.at_least("2.53") else row.id, "binary": row.binary, "host": row.host,
        "zone": zone, "status": "disabled" if row.disabled else "enabled",
        "state": liveness.state(row, down_time), "updated_at": iso_micro(row.updated_at),
        "disabled_reason": row.disabled_reason}
    if version.at_least("2.11"):
        view["forced_down"] = row.forced_down
    return view


@router.get("/os-services")
def list_services(request: Request, ctx: Caller, version: Version) -> dict[str, Any]:
    enforce(request, ctx, "services")
    svc = service(request)
    params = request.query_params
    query = sa.select(models.Service).order_by(models.Service.id)
    if params.get("host"):
        query = query.where(models.Service.host == params["host"])
    if params.get("binary"):
        query = query.where(models.Service.binary == params["binary"])
    with svc.db.transaction() as session:
        rows = list(session.scalars(query))
        found = zones.service_zones(session, rows, svc.settings.default_availability_zone)
        down_time = svc.settings.service_down_time
        return {"services": [service_view(row, found[row.id], version, down_time) for row in rows]}


def _by_host_binary(session: Session, host: str, binary: str) -> models.Service:
    row = session.scalar(sa.select(models.Service).where(models.Service.host == host,
                                                         models.Service.binary == binary).with_for_update())
    if row is None:
        raise errors.NotFound(f"Compute host {host} with binary {binary} could not be found.")
    return row


def _set_disabled(row: models.Service, disabled: bool, reason: str | None) -> None:
    row.disabled = disabled
    row.disabled_reason = reason if disabled else None


def _legacy_action(request: Request, action: str, version: APIVersion, payload: dict[str, Any]) -> dict[str, Any]:
    """PUT /os-services/{enable|disable|disable-log-reason|force-down} (below 2.53)."""
    if action == "force-down" and not version.at_least("2.11"):
        raise errors.NotFound("Unknown action")
    if action not in ("enable", "disable", "disable-log-reason", "force-down"):
        raise errors.NotFound("Unknown action")
    if action == "force-down":
        forced = parse(ForceDown, payload)
        with service(request).db.transaction() as session:
            row = _by_host_binary(session, forced.host, forced.binary)
            row.forced_down = forced.forced_down
            return {"service": {"host": row.host, "binary": row.binary, "forced_down": row.forced_down}}
    body = parse(HostBinary, payload)
    if action == "disable-log-reason" and body.disabled_reason is None:
        raise errors.BadRequest("Missing disabled reason field")
    with service(request).db.transaction() as session:
        row = _by_host_binary(session, body.host, body.binary)
        # The schema admits a reason with every action; only disable-log-reason records it.
        _set_disabled(row, action != "enable", body.disabled_reason if action == "disable-log-reason" else None)
        view: dict[str, Any] = {"host": row.host, "binary": row.binary,
                                "status": "disabled" if row.disabled else "enabled"}
        if action == "disable-log-reason":
            view["disabled_reason"] = row.disabled_reason
        return {"service": view}


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise errors.BadRequest(f"Invalid uuid {value}") from None


@router.put("/os-services/{service_id}")
def update_service(request: Request, service_id: str, payload: Payload, ctx: Caller,
                   version: Version) -> dict[str, Any]:
    enforce(request, ctx, "services")
    if not version.at_least("2.53"):
        return _legacy_action(request, service_id, version, payload)
    wanted = _uuid(service_id)
    body = parse(ServiceUpdate, payload)
    if body.status is None and body.forced_down is None:
        raise errors.BadRequest("No updates were requested. Fields 'status' or 'forced_down' should be specified.")
    if body.disabled_reason is not None and body.status != "disabled":
        raise errors.BadRequest("Specifying 'disabled_reason' with status 'enabled' is invalid."
                                if body.status == "enabled" else
                                "'disabled_reason' is only supported when 'status' is 'disabled'.")
    svc = service(request)
    with svc.db.transaction() as session:
        row = session.scalar(sa.select(models.Service).where(models.Service.uuid == wanted).with_for_update())
        if row is None:
            raise errors.NotFound(f"Service {service_id} could not be found.")
        if row.binary != zones.COMPUTE_BINARY:
            raise errors.BadRequest(f"Updating a {row.binary} service is not supported. Only nova-compute "
                                    "services can be updated.")
        if body.status is not None:
            _set_disabled(row, body.status == "disabled", body.disabled_reason)
        if body.forced_down is not None:
            row.forced_down = body.forced_down
        session.flush()
        zone = zones.service_zones(session, [row], svc.settings.default_availability_zone)[row.id]
        return {"service": service_view(row, zone, version, svc.settings.service_down_time)}


@router.delete("/os-services/{service_id}", status_code=204)
def delete_service(request: Request, service_id: str, ctx: Caller, version: Version) -> Response:
    """A service goes with its compute node and its aggregate memberships; never while its host still
    carries instances."""
    enforce(request, ctx, "services")
    if version.at_least("2.53"):
        where = models.Service.uuid == _uuid(service_id)
    else:
        try:
            where = models.Service.id == int(service_id)
        except ValueError:
            raise errors.BadRequest(f"Invalid ID {service_id}") from None
    with service(request).db.transaction() as session:
        row = session.scalar(sa.select(models.Service).where(where).with_for_update())
        if row is None:
            raise errors.NotFound(f"Service {service_id} not found.")
        if row.binary == zones.COMPUTE_BINARY:
            hosting = session.scalar(sa.select(sa.func.count()).select_from(models.Instance).where(
                models.Instance.host == row.host, models.Instance.deleted.is_(False)))
            if hosting:
                raise errors.Conflict("Unable to delete compute service that is hosting instances. Migrate or "
                                      "delete the instances first.")
            session.execute(sa.delete(models.ComputeNode).where(models.ComputeNode.host == row.host))
            session.execute(sa.delete(models.AggregateHost).where(models.AggregateHost.host == row.host))
        session.delete(row)
    return Response(status_code=204)
