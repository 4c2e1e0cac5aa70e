"""`/v3/credentials`, the EC2 view of the same store (`/v3/users/{id}/credentials/OS-EC2`) and
`POST /v3/ec2tokens`."""

from __future__ import annotations

import json
import secrets
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Body as JSONBody
from pydantic import Field

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.identity import credentials as store
from stratus.identity.api.deps import (
    Body,
    allowed,
    authenticator,
    caller,
    collection_links,
    enforce,
    extra_fields,
    link,
    page_of,
    service,
)
from stratus.identity.api.users import get_user_or_404
from stratus.identity.models import Credential, Project, new_id

router = APIRouter(tags=["credentials"])
JSON = "application/json"
ShortId = Field(None, max_length=64)
# Keys the API renders itself; a client sending them does not get them stored as extras.
_RENDERED = {"id", "links"}


class CredentialFields(Body):
    user_id: str | None = ShortId
    project_id: str | None = ShortId
    type: str | None = Field(None, min_length=1, max_length=255)
    blob: str | None = None


class CredentialBody(Body):
    credential: CredentialFields


class EC2Body(Body):
    tenant_id: str | None = ShortId


def credential_view(request: Request, cred: Credential, blob: str) -> dict[str, Any]:
    return {**cred.extra, "id": cred.id, "user_id": cred.user_id, "project_id": cred.project_id,
            "type": cred.type, "blob": blob, "links": link(request, f"/v3/credentials/{cred.id}")}


def _extras(fields: CredentialFields) -> dict[str, Any]:
    return {k: v for k, v in extra_fields(fields).items() if k not in _RENDERED}


def _target(user_id: str) -> dict[str, Any]:
    return {"target.credential.user_id": user_id}


def _check_project(session: Any, project_id: str | None) -> None:
    if project_id is not None and session.get(Project, project_id) is None:
        raise errors.NotFound(f"Could not find project: {project_id}.")


def _visible(request: Request, ctx: RequestContext, session: Any, credential_id: str) -> Credential:
    """The credential if the caller may see it; 404 otherwise, so others' ids leak nothing."""
    cred = session.get(Credential, credential_id)
    if cred is None or not allowed(request, ctx, "identity:get_credential", _target(cred.user_id)):
        raise store.not_found(credential_id)
    return cred


def _ec2_checked(ctx: RequestContext, blob: str, project_id: str | None) -> tuple[str, str]:
    """An ec2 credential's (id, blob): the id follows from the access key, a project is required."""
    if not project_id:
        raise errors.BadRequest("An ec2 credential needs a project_id.")
    blob = store.stamp_app_cred(blob, ctx.app_cred_id)
    return store.ec2_id(store.parse_ec2_blob(blob)["access"]), blob


# -- /v3/credentials ----------------------------------------------------------------------------
@router.post("/v3/credentials", status_code=201)
def create_credential(request: Request, body: CredentialBody,
                      ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    f = body.credential
    if not f.user_id or not f.type or f.blob is None:
        raise errors.BadRequest("credential.user_id, credential.type and credential.blob are required")
    enforce(request, ctx, "identity:create_credential", _target(f.user_id))
    credential_id, blob = new_id(), f.blob
    if f.type == store.EC2:
        credential_id, blob = _ec2_checked(ctx, blob, f.project_id)
    svc = service(request)
    encrypted = store.encrypt_blob(svc, blob)
    with svc.write() as session:
        get_user_or_404(session, f.user_id)
        _check_project(session, f.project_id)
        if session.get(Credential, credential_id) is not None:
            raise errors.Conflict("Conflict occurred attempting to store credential - Duplicate entry.")
        cred = Credential(id=credential_id, user_id=f.user_id, project_id=f.project_id, type=f.type,
                          encrypted_blob=encrypted, extra=_extras(f))
        session.add(cred)
        session.flush()
        return {"credential": credential_view(request, cred, blob)}


@router.get("/v3/credentials")
def list_credentials(request: Request, user_id: str | None = None,
                     cred_type: str | None = Query(None, alias="type"),
                     limit: int | None = None, marker: str | None = None,
                     ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:list_credentials", _target(user_id or ctx.user_id))
    query = sa.select(Credential).order_by(Credential.id)
    if user_id is not None:
        query = query.where(Credential.user_id == user_id)
    if cred_type is not None:
        query = query.where(Credential.type == cred_type)
    svc = service(request)
    with svc.read() as session:
        rows = [c for c in session.scalars(query)
                if allowed(request, ctx, "identity:list_credentials", _target(c.user_id))]
        views = [credential_view(request, c, store.decrypt_blob(svc, c)) for c in rows]
    return page_of(request, "credentials", views, limit, marker)


@router.get("/v3/credentials/{credential_id}")
def show_credential(request: Request, credential_id: str, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    svc = service(request)
    with svc.read() as session:
        cred = _visible(request, ctx, session, credential_id)
        return {"credential": credential_view(request, cred, store.decrypt_blob(svc, cred))}


@router.patch("/v3/credentials/{credential_id}")
def update_credential(request: Request, credential_id: str, body: CredentialBody,
                      ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    f = body.credential
    svc = service(request)
    with svc.write() as session:
        cred = _visible(request, ctx, session, credential_id)
        enforce(request, ctx, "identity:update_credential", _target(cred.user_id))
        if f.user_id is not None and f.user_id != cred.user_id:
            # Handing a credential to another user needs the right to create one for them.
            enforce(request, ctx, "identity:create_credential", _target(f.user_id))
            get_user_or_404(session, f.user_id)
            cred.user_id = f.user_id
        if "project_id" in f.model_fields_set:
            _check_project(session, f.project_id)
            cred.project_id = f.project_id
        cred.type = f.type or cred.type
        blob = f.blob if f.blob is not None else store.decrypt_blob(svc, cred)
        if cred.type == store.EC2:
            expected, blob = _ec2_checked(ctx, blob, cred.project_id)
            if expected != cred.id:
                raise errors.BadRequest("The access key of an ec2 credential cannot change: its id is derived "
                                        "from it.")
        cred.encrypted_blob = store.encrypt_blob(svc, blob)
        cred.extra = {**cred.extra, **_extras(f)}
        return {"credential": credential_view(request, cred, blob)}


@router.delete("/v3/credentials/{credential_id}", status_code=204)
def delete_credential(request: Request, credential_id: str, ctx: RequestContext = Depends(caller)) -> Response:
    with service(request).write() as session:
        cred = _visible(request, ctx, session, credential_id)
        enforce(request, ctx, "identity:delete_credential", _target(cred.user_id))
        session.delete(cred)
    return Response(status_code=204)


# -- EC2 key pairs: the ec2 credentials of one user, seen by access key ---------------------------
def ec2_view(request: Request, cred: Credential, blob: dict[str, Any]) -> dict[str, Any]:
    access = blob["access"]
    return {"user_id": cred.user_id, "tenant_id": cred.project_id, "access": access, "secret": blob["secret"],
            "trust_id": blob.get("trust_id"),
            "links": link(request, f"/v3/users/{cred.user_id}/credentials/OS-EC2/{access}")}


def _ec2_of(session: Any, user_id: str, access: str) -> Credential:
    cred = session.get(Credential, store.ec2_id(access))
    if cred is None or cred.user_id != user_id or cred.type != store.EC2:
        raise store.not_found(access)
    return cred


@router.post("/v3/users/{user_id}/credentials/OS-EC2", status_code=201)
def create_ec2(request: Request, user_id: str, body: EC2Body, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:ec2_credentials", {"target.user.id": user_id})
    if not body.tenant_id:
        raise errors.BadRequest("tenant_id is required")
    access = secrets.token_hex(16)
    blob = store.stamp_app_cred(json.dumps({"access": access, "secret": secrets.token_hex(16)}), ctx.app_cred_id)
    svc = service(request)
    with svc.write() as session:
        get_user_or_404(session, user_id)
        _check_project(session, body.tenant_id)
        cred = Credential(id=store.ec2_id(access), user_id=user_id, project_id=body.tenant_id, type=store.EC2,
                          encrypted_blob=store.encrypt_blob(svc, blob), extra={})
        session.add(cred)
        session.flush()
        return {"credential": ec2_view(request, cred, json.loads(blob))}


@router.get("/v3/users/{user_id}/credentials/OS-EC2")
def list_ec2(request: Request, user_id: str, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:ec2_credentials", {"target.user.id": user_id})
    svc = service(request)
    with svc.read() as session:
        get_user_or_404(session, user_id)
        rows = session.scalars(sa.select(Credential).where(Credential.user_id == user_id, Credential.type == store.EC2)
                               .order_by(Credential.id)).all()
        views = [ec2_view(request, c, store.ec2_blob(svc, c)) for c in rows]
    return {"credentials": views, "links": collection_links(request)}


@router.get("/v3/users/{user_id}/credentials/OS-EC2/{access}")
def show_ec2(request: Request, user_id: str, access: str, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    enforce(request, ctx, "identity:ec2_credentials", {"target.user.id": user_id})
    svc = service(request)
    with svc.read() as session:
        cred = _ec2_of(session, user_id, access)
        return {"credential": ec2_view(request, cred, store.ec2_blob(svc, cred))}


@router.delete("/v3/users/{user_id}/credentials/OS-EC2/{access}", status_code=204)
def delete_ec2(request: Request, user_id: str, access: str, ctx: RequestContext = Depends(caller)) -> Response:
    enforce(request, ctx, "identity:ec2_credentials", {"target.user.id": user_id})
    with service(request).write() as session:
        session.delete(_ec2_of(session, user_id, access))
    return Response(status_code=204)


# -- tokens for EC2-signed requests ----------------------------------------------------------------
@router.post("/v3/ec2tokens")
def ec2_tokens(request: Request, body: dict[str, Any] = JSONBody(...)) -> Response:
    token, rendered = store.ec2_token(service(request), authenticator(request), body)
    return Response(rendered, media_type=JSON, headers={"X-Subject-Token": token})
