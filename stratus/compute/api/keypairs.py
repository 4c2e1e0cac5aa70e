"""/v2.1/os-keypairs: a user's keypairs (another user's for the operator at 2.10)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from stratus.compute import keypairs, models
from stratus.compute.api.deps import Caller, Version, enforce, iso_micro, service
from stratus.compute.api.flavors import Payload, action_body, invalid, limit_and_marker, next_links
from stratus.core import errors
from stratus.core.context import RequestContext

router = APIRouter(prefix="/v2.1", tags=["keypairs"])


def _user(request: Request, ctx: RequestContext, version: Any, wanted: Any) -> str:
    """The user whose keypairs are meant: the caller, or at 2.10 anyone the operator names."""
    if wanted is None or not version.at_least("2.10"):
        return ctx.user_id
    if wanted != ctx.user_id:
        enforce(request, ctx, "keypairs:other_user", {"user_id": wanted, "project_id": ctx.project_id})
    return str(wanted)


def _summary(row: models.KeyPair, version: Any) -> dict[str, Any]:
    view: dict[str, Any] = {"name": row.name, "public_key": row.public_key, "fingerprint": row.fingerprint}
    if version.at_least("2.2"):
        view["type"] = row.type
    return view


@router.get("/os-keypairs")
def list_keypairs(request: Request, ctx: Caller, version: Version) -> dict[str, Any]:
    user_id = _user(request, ctx, version, request.query_params.get("user_id"))
    query = sa.select(models.KeyPair).where(models.KeyPair.user_id == user_id).order_by(models.KeyPair.name)
    paged = version.at_least("2.35")
    limit, marker = limit_and_marker(request) if paged else (0, None)
    with service(request).db.transaction() as session:
        if marker is not None:
            if session.scalar(sa.select(models.KeyPair.id).where(models.KeyPair.user_id == user_id,
                                                                 models.KeyPair.name == marker)) is None:
                raise errors.BadRequest(f"Marker {marker} could not be found.")
            query = query.where(models.KeyPair.name > marker)
        if paged:
            query = query.limit(limit)
        rows = list(session.scalars(query))
    result: dict[str, Any] = {"keypairs": [{"keypair": _summary(row, version)} for row in rows]}
    if paged:
        more = next_links(request, "os-keypairs", len(rows), limit, rows[-1].name if rows else None)
        if more:
            result["keypairs_links"] = more
    return result


@router.get("/os-keypairs/{name}")
def show_keypair(request: Request, name: str, ctx: Caller, version: Version) -> dict[str, Any]:
    user_id = _user(request, ctx, version, request.query_params.get("user_id"))
    with service(request).db.transaction() as session:
        row = keypairs.get_keypair(session, user_id, name)
    view = {**_summary(row, version), "user_id": row.user_id, "deleted": False, "created_at": iso_micro(row.created_at),
            "updated_at": None, "deleted_at": None, "id": row.id}
    return {"keypair": view}


@router.delete("/os-keypairs/{name}")
def delete_keypair(request: Request, name: str, ctx: Caller, version: Version) -> Response:
    user_id = _user(request, ctx, version, request.query_params.get("user_id"))
    with service(request).db.transaction() as session:
        gone = session.execute(sa.delete(models.KeyPair).where(models.KeyPair.user_id == user_id,
                                                               models.KeyPair.name == name))
        if not gone.rowcount:  # type: ignore[attr-defined]
            raise keypairs.not_found(user_id, name)
    return Response(status_code=204 if version.at_least("2.2") else 202)


@router.post("/os-keypairs")
def create_keypair(request: Request, ctx: Caller, version: Version, body: Payload = None) -> Response:
    spec = action_body(body, "keypair")
    known = {"name", "public_key"} | ({"type"} if version.at_least("2.2") else set()) | (
        {"user_id"} if version.at_least("2.10") else set())
    extra = sorted(set(spec) - known)
    if extra:
        raise errors.BadRequest(f"Additional properties are not allowed ({', '.join(map(repr, extra))} "
                                "were unexpected)")
    name = spec.get("name")
    if not isinstance(name, str):
        raise invalid("name", name, "'name' is a required property of type 'string'")
    public_key = spec.get("public_key")
    if public_key is not None and not isinstance(public_key, str):
        raise invalid("public_key", public_key, f"{public_key!r} is not of type 'string'")
    key_type = spec.get("type", "ssh")
    if key_type not in ("ssh", "x509"):
        raise invalid("type", key_type, f"{key_type!r} is not one of ['ssh', 'x509']")
    wanted_user = spec.get("user_id")
    if wanted_user is not None and not isinstance(wanted_user, str):
        raise invalid("user_id", wanted_user, f"{wanted_user!r} is not of type 'string'")
    user_id = _user(request, ctx, version, wanted_user)
    svc = service(request)
    with svc.db.transaction() as session:
        row, private = keypairs.create(session, svc.settings, ctx.project_id or "", user_id, name, key_type,
                                       public_key)
    view: dict[str, Any] = {"name": row.name, "public_key": row.public_key, "fingerprint": row.fingerprint,
                            "user_id": row.user_id}
    if version.at_least("2.2"):
        view["type"] = row.type
    if private is not None:
        view["private_key"] = private
    return JSONResponse({"keypair": view}, status_code=201 if version.at_least("2.2") else 200)
