"""The Identity v2.0 calls old clients still make: `POST /v2.0/tokens` and `GET /v2.0/tenants`.

A v2 request is translated into its v3 equivalent and answered by the same Authenticator, so a
v2 token is an ordinary token that validates on v3 too; only the JSON is reshaped. v2 knows
nothing of domains: it reaches the users and projects of the Default domain only.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Body, Depends, Request

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.core.http import paginate
from stratus.identity.api.auth import scoped_target_ids
from stratus.identity.api.deps import authenticator, caller, service
from stratus.identity.auth import AUTH_FAILED
from stratus.identity.bootstrap import DEFAULT_DOMAIN
from stratus.identity.models import Project

router = APIRouter(tags=["v2"])


def tenant_view(p: Project) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "description": p.description, "enabled": p.enabled}


# -- translating the request --------------------------------------------------------------------
def _string(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise errors.BadRequest(f"{key} must be a string")
    return value


def _password_identity(credentials: Any) -> dict[str, Any]:
    if not isinstance(credentials, dict):
        raise errors.BadRequest("passwordCredentials must be an object")
    username, user_id = _string(credentials, "username"), _string(credentials, "userId")
    if username:
        user: dict[str, Any] = {"name": username, "domain": {"id": DEFAULT_DOMAIN}}
    elif user_id:
        user = {"id": user_id}
    else:
        raise errors.BadRequest("passwordCredentials needs a username or a userId")
    user["password"] = credentials.get("password")
    return {"methods": ["password"], "password": {"user": user}}


def _v3_scope(auth: dict[str, Any]) -> dict[str, Any] | None:
    name, project_id = _string(auth, "tenantName"), _string(auth, "tenantId")
    if name and project_id:
        raise errors.BadRequest("Give tenantName or tenantId, not both.")
    if name:
        return {"project": {"name": name, "domain": {"id": DEFAULT_DOMAIN}}}
    if project_id:
        return {"project": {"id": project_id}}
    return None


def v3_auth_body(body: Any) -> dict[str, Any]:
    """The `POST /v3/auth/tokens` body asking for what a v2 `POST /v2.0/tokens` body asks."""
    auth = body.get("auth") if isinstance(body, dict) else None
    if not isinstance(auth, dict):
        raise errors.BadRequest("Expecting to find auth in the request body.")
    if "passwordCredentials" in auth:
        identity = _password_identity(auth["passwordCredentials"])
    elif "token" in auth:
        identity = {"methods": ["token"], "token": auth["token"]}
    else:
        raise errors.BadRequest("auth needs passwordCredentials or a token.")
    v3: dict[str, Any] = {"identity": identity}
    scope = _v3_scope(auth)
    if scope is not None:
        v3["scope"] = scope
    return {"auth": v3}


# -- shaping the answer -------------------------------------------------------------------------
def v2_catalog(catalog: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """v3 lists one endpoint per interface; v2 one entry per region with a URL per interface."""
    services = []
    for entry in catalog:
        regions: dict[str | None, dict[str, Any]] = {}
        # The public endpoint first, so that it gives its id to its region's entry.
        for ep in sorted(entry["endpoints"], key=lambda e: e["interface"] != "public"):
            merged = regions.setdefault(ep["region_id"], {"id": ep["id"], "region": ep["region_id"]})
            merged[f"{ep['interface']}URL"] = ep["url"]
        # v2 clients read endpoints[0]: a service with no endpoint is left out, as v2 did.
        if regions:
            services.append({"type": entry["type"], "name": entry["name"], "endpoints": list(regions.values()),
                             "endpoints_links": []})
    return services


def _access(token_id: str, token: dict[str, Any], tenant: dict[str, Any] | None) -> dict[str, Any]:
    roles = token.get("roles", [])
    # v2 wrote expiry times to the second.
    summary: dict[str, Any] = {"id": token_id, "expires": token["expires_at"][:19] + "Z",
                               "issued_at": token["issued_at"], "audit_ids": token["audit_ids"]}
    if tenant is not None:
        summary["tenant"] = tenant
    user = token["user"]
    return {"access": {
        "token": summary,
        "user": {"id": user["id"], "name": user["name"], "username": user["name"],
                 "roles": [{"name": r["name"]} for r in roles], "roles_links": []},
        "serviceCatalog": v2_catalog(token.get("catalog", [])),
        "metadata": {"is_admin": 0, "roles": [r["id"] for r in roles]},
    }}


def _default_domain_tenant(request: Request, token: dict[str, Any]) -> dict[str, Any] | None:
    """The token's project as a v2 tenant; 401 when the user or the project is outside the
    Default domain (v2 cannot name another domain)."""
    if token["user"]["domain"]["id"] != DEFAULT_DOMAIN:
        raise errors.Unauthorized(AUTH_FAILED)
    if "project" not in token:
        return None
    with service(request).read() as session:
        project = session.get(Project, token["project"]["id"])
    if project is None or project.domain_id != DEFAULT_DOMAIN:
        raise errors.Unauthorized(AUTH_FAILED)
    return tenant_view(project)


# -- routes -------------------------------------------------------------------------------------
@router.post("/v2.0/tokens")
def issue_token(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    token_id, rendered = authenticator(request).issue(v3_auth_body(body))
    token = json.loads(rendered)["token"]
    return _access(token_id, token, _default_domain_tenant(request, token))


@router.get("/v2.0/tenants")
def list_tenants(request: Request, limit: int | None = None, marker: str | None = None,
                 ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    """The Default-domain projects the token's user holds a role on."""
    if ctx.user_domain_id != DEFAULT_DOMAIN:
        raise errors.Unauthorized(AUTH_FAILED)
    ids = scoped_target_ids(request, ctx, "project")
    with service(request).read() as session:
        rows = session.scalars(sa.select(Project).where(
            Project.id.in_(ids), Project.domain_id == DEFAULT_DOMAIN, Project.enabled.is_(True))
            .order_by(Project.name)).all() if ids else []
        views = [tenant_view(p) for p in rows]
    page, _ = paginate(views, limit=limit, marker=marker)
    return {"tenants": page, "tenants_links": []}
