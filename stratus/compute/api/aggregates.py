"""/v2.1/os-aggregates: groups of compute hosts with metadata, among which the availability zone."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from pydantic import Field, field_validator
from sqlalchemy.orm import Session

from stratus.compute import aggregates, models
from stratus.compute.api.deps import Body, Caller, Version, enforce, iso_micro, service
from stratus.compute.api.microversion import APIVersion
from stratus.compute.api.services import Payload, parse
from stratus.compute.zones import AZ_KEY
from stratus.core import errors
from stratus.core.context import RequestContext

router = APIRouter(prefix="/v2.1", tags=["aggregates"])

_METADATA_KEY = re.compile(r"^[a-zA-Z0-9\-_:. ]{1,255}$")


def _name(value: str) -> str:
    if value != value.strip():
        raise ValueError("may not begin or end with a blank")
    return value


class AggregateCreate(Body):
    name: str = Field(min_length=1, max_length=255)
    availability_zone: str | None = Field(None, min_length=1, max_length=255)

    _check_name = field_validator("name")(_name)


class AggregateCreateBody(Body):
    aggregate: AggregateCreate


class AggregateUpdate(Body):
    name: str | None = Field(None, min_length=1, max_length=255)
    availability_zone: str | None = Field(None, max_length=255)

    _check_name = field_validator("name")(lambda value: value if value is None else _name(value))


class AggregateUpdateBody(Body):
    aggregate: AggregateUpdate


class HostRef(Body):
    host: str = Field(min_length=1, max_length=255)


class MetadataSet(Body):
    metadata: dict[str, str | None]

    @field_validator("metadata")
    @classmethod
    def _keys_and_values(cls, value: dict[str, str | None]) -> dict[str, str | None]:
        for key, item in value.items():
            if not _METADATA_KEY.match(key):
                raise ValueError(f"invalid metadata key {key!r}")
            if item is not None and len(item) > 255:
                raise ValueError(f"the value of {key!r} is longer than 255 characters")
        return value


def _view(row: models.Aggregate, hosts: list[str], metadata: dict[str, str], version: APIVersion,
          *, members: bool = True) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row.id, "name": row.name, "availability_zone": metadata.get(AZ_KEY),
        "created_at": iso_micro(row.created_at), "updated_at": iso_micro(row.updated_at),
        "deleted": False, "deleted_at": None}
    if members:  # the create response leaves these out
        view["hosts"] = list(hosts)
        view["metadata"] = dict(metadata)
    if version.at_least("2.41"):
        view["uuid"] = row.uuid
    return view


def _render(session: Session, row: models.Aggregate, version: APIVersion) -> dict[str, Any]:
    hosts, metadata = aggregates.hosts_and_metadata(session, [row.id])
    return {"aggregate": _view(row, hosts.get(row.id, []), metadata.get(row.id, {}), version)}


def _admin(request: Request, ctx: RequestContext) -> None:
    enforce(request, ctx, "aggregates")


@router.get("/os-aggregates")
def list_aggregates(request: Request, ctx: Caller, version: Version) -> dict[str, Any]:
    _admin(request, ctx)
    with service(request).db.transaction() as session:
        rows = list(session.scalars(sa.select(models.Aggregate).order_by(models.Aggregate.id)))
        hosts, metadata = aggregates.hosts_and_metadata(session, [row.id for row in rows])
        return {"aggregates": [_view(row, hosts.get(row.id, []), metadata.get(row.id, {}), version)
                               for row in rows]}


@router.post("/os-aggregates")
def create_aggregate(request: Request, body: AggregateCreateBody, ctx: Caller, version: Version) -> dict[str, Any]:
    _admin(request, ctx)
    fields = body.aggregate
    if fields.availability_zone is not None:
        aggregates.check_zone_name(fields.availability_zone)
    with service(request).db.transaction() as session:
        if session.scalar(sa.select(models.Aggregate.id).where(models.Aggregate.name == fields.name)) is not None:
            raise errors.Conflict(f"Aggregate {fields.name} already exists.")
        row = models.Aggregate(name=fields.name)
        session.add(row)
        session.flush()
        metadata = {}
        if fields.availability_zone is not None:
            session.add(models.AggregateMetadata(aggregate_id=row.id, key=AZ_KEY, value=fields.availability_zone))
            metadata[AZ_KEY] = fields.availability_zone
        session.flush()
        return {"aggregate": _view(row, [], metadata, version, members=False)}


@router.get("/os-aggregates/{aggregate_id}")
def show_aggregate(request: Request, aggregate_id: str, ctx: Caller, version: Version) -> dict[str, Any]:
    _admin(request, ctx)
    with service(request).db.transaction() as session:
        return _render(session, aggregates.get(session, aggregate_id), version)


@router.put("/os-aggregates/{aggregate_id}")
def update_aggregate(request: Request, aggregate_id: str, body: AggregateUpdateBody, ctx: Caller,
                     version: Version) -> dict[str, Any]:
    _admin(request, ctx)
    fields = body.aggregate
    given = fields.model_fields_set
    if not given:
        raise errors.BadRequest("Invalid input for field/attribute aggregate: it needs a name or an "
                                "availability_zone.")
    with service(request).db.transaction() as session:
        row = aggregates.get(session, aggregate_id, lock=True)
        if "name" in given and fields.name is not None and fields.name != row.name:
            if session.scalar(sa.select(models.Aggregate.id).where(models.Aggregate.name == fields.name)) is not None:
                raise errors.Conflict(f"Aggregate {fields.name} already exists.")
            row.name = fields.name
        if "availability_zone" in given:
            aggregates.apply_metadata(session, row, {AZ_KEY: fields.availability_zone}, "update")
        session.flush()
        return _render(session, row, version)


@router.delete("/os-aggregates/{aggregate_id}")
def delete_aggregate(request: Request, aggregate_id: str, ctx: Caller) -> Response:
    _admin(request, ctx)
    with service(request).db.transaction() as session:
        row = aggregates.get(session, aggregate_id, lock=True)
        if session.scalar(sa.select(sa.func.count()).select_from(models.AggregateHost)
                          .where(models.AggregateHost.aggregate_id == row.id)):
            raise errors.BadRequest(f"Cannot delete aggregate {aggregate_id}. Reason: Host aggregate is not empty.")
        session.execute(sa.delete(models.AggregateMetadata).where(models.AggregateMetadata.aggregate_id == row.id))
        session.delete(row)
    return Response(status_code=200)


_ACTIONS = ("add_host", "remove_host", "set_metadata")


@router.post("/os-aggregates/{aggregate_id}/action")
def aggregate_action(request: Request, aggregate_id: str, payload: Payload, ctx: Caller,
                     version: Version) -> dict[str, Any]:
    _admin(request, ctx)
    if len(payload) != 1 or next(iter(payload)) not in _ACTIONS:
        raise errors.BadRequest("The action must be exactly one of add_host, remove_host, set_metadata.")
    action, args = next(iter(payload.items()))
    with service(request).db.transaction() as session:
        if action == "set_metadata":
            changes = parse(MetadataSet, args).metadata
            row = aggregates.get(session, aggregate_id, lock=True)
            aggregates.apply_metadata(session, row, changes, "update metadata of")
        else:
            host = parse(HostRef, args).host
            row = aggregates.get(session, aggregate_id, lock=True)
            if action == "add_host":
                aggregates.add_host(session, row, host)
            else:
                aggregates.remove_host(session, row, host)
        return _render(session, row, version)
