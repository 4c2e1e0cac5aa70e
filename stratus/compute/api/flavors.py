"""/v2.1/flavors: list (and detail), show, create, delete, extra specs and access lists of private
flavors."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from fastapi import Body as JSONBody
from sqlalchemy.orm import Session

from stratus.compute import flavors, models
from stratus.compute.api.deps import Caller, Version, base_url, enforce, links, service
from stratus.core import errors
from stratus.core.context import RequestContext

router = APIRouter(prefix="/v2.1", tags=["flavors"])

MAX_LIMIT = 1000
MAX_INT = 2**31 - 1
MAX_FLOAT = 3.40282e38
_FLAVOR_ID = re.compile(r"^(?! )[a-zA-Z0-9. _-]+(?<! )$")
_SPEC_KEY = re.compile(r"^[a-zA-Z0-9-_:. ]{1,255}$")
_TRUE = {"1", "t", "true", "on", "y", "yes"}
_FALSE = {"0", "f", "false", "off", "n", "no"}
_SORT_COLUMNS: dict[str, Any] = {
    "created_at": models.Flavor.created_at, "description": models.Flavor.description,
    "disabled": models.Flavor.disabled, "ephemeral_gb": models.Flavor.ephemeral_gb,
    "flavorid": models.Flavor.flavorid, "id": models.Flavor.id, "is_public": models.Flavor.is_public,
    "memory_mb": models.Flavor.memory_mb, "name": models.Flavor.name, "root_gb": models.Flavor.root_gb,
    "rxtx_factor": models.Flavor.rxtx_factor, "swap": models.Flavor.swap, "updated_at": models.Flavor.updated_at,
    "vcpu_weight": models.Flavor.id, "vcpus": models.Flavor.vcpus}
Payload = Annotated[Any, JSONBody()]


# -- shared parsing helpers (also used by keypairs, quotas and server groups) --------------------

def to_bool(value: Any) -> bool | None:
    """A boolean as Nova reads one from JSON or a query string (None when it is not one)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    return None


def invalid(field: str, value: Any, reason: str) -> errors.BadRequest:
    return errors.BadRequest(f"Invalid input for field/attribute {field}. Value: {value}. {reason}")


def integer(field: str, value: Any, minimum: int, maximum: int = MAX_INT) -> int:
    """An integer (or a string of digits) within [minimum, maximum], else Nova's 400."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise invalid(field, value, f"{value!r} is not of type 'integer', 'string'")
    try:
        number = int(value)
    except ValueError:
        raise invalid(field, value, f"{value!r} does not match '^-?[0-9]+$'") from None
    if number < minimum:
        raise invalid(field, value, f"{number} is less than the minimum of {minimum}")
    if number > maximum:
        raise invalid(field, value, f"{number} is greater than the maximum of {maximum}")
    return number


def limit_and_marker(request: Request) -> tuple[int, str | None]:
    params = request.query_params
    limit = MAX_LIMIT
    if "limit" in params:
        try:
            limit = int(params["limit"])
        except ValueError:
            raise errors.BadRequest("limit param must be an integer") from None
        if limit < 0:
            raise errors.BadRequest("limit param must be positive")
        limit = min(limit or MAX_LIMIT, MAX_LIMIT)
    return limit, params.get("marker")


def next_links(request: Request, collection: str, count: int, limit: int, last: str | None) -> list[dict[str, str]]:
    """Nova's `next` link: there when a page came back full, pointing past its last item."""
    if last is None or count < limit:
        return []
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "marker"] + [("marker", last)]
    return [{"rel": "next", "href": f"{base_url(request)}/v2.1/{collection}?{urlencode(params)}"}]


def check_name(field: str, value: Any) -> str:
    """Nova's `name`: 1-255 printable characters, no leading or trailing whitespace."""
    if not isinstance(value, str):
        raise invalid(field, value, f"{value!r} is not of type 'string'")
    if not 1 <= len(value) <= 255:
        raise invalid(field, value, "The length must be between 1 and 255 characters.")
    if value != value.strip() or not value.isprintable():
        raise invalid(field, value, "An invalid 'name' value was provided. The name must be printable "
                                    "characters and may not have leading or trailing whitespace.")
    return value


def action_body(body: Any, key: str) -> dict[str, Any]:
    """`{key: {...}}` and nothing else, as Nova's schemas want it."""
    if not isinstance(body, dict) or key not in body:
        raise errors.BadRequest(f"Invalid input for field/attribute {key}. '{key}' is a required property")
    extra = sorted(set(body) - {key})
    if extra:
        raise errors.BadRequest(f"Additional properties are not allowed ({', '.join(map(repr, extra))} "
                                "were unexpected)")
    inner = body[key]
    if not isinstance(inner, dict):
        raise invalid(key, inner, f"{inner!r} is not of type 'object'")
    return inner


# -- views --------------------------------------------------------------------------------------

def flavor_view(request: Request, row: models.Flavor, *, detail: bool = True) -> dict[str, Any]:
    view: dict[str, Any] = {"id": row.flavorid, "name": row.name, "links": links(request, "flavors", row.flavorid)}
    if detail:
        view.update({"ram": row.memory_mb, "vcpus": row.vcpus, "disk": row.root_gb,
                     "swap": row.swap or "", "OS-FLV-EXT-DATA:ephemeral": row.ephemeral_gb,
                     "OS-FLV-DISABLED:disabled": row.disabled, "os-flavor-access:is_public": row.is_public,
                     "rxtx_factor": row.rxtx_factor})
    return view


def _access_view(row: models.Flavor, projects: list[str]) -> dict[str, Any]:
    return {"flavor_access": [{"flavor_id": row.flavorid, "tenant_id": project} for project in projects]}


# -- list, show ---------------------------------------------------------------------------------

def _listing(request: Request, ctx: RequestContext, *, detail: bool) -> dict[str, Any]:
    params = request.query_params
    query = sa.select(models.Flavor)
    if ctx.is_admin:
        raw = params.get("is_public")
        if raw is None:
            query = query.where(flavors.visible_to(ctx.project_id))
        elif raw.strip().lower() != "none":
            public = to_bool(raw)
            if public is None:
                raise errors.BadRequest(f"Invalid is_public filter [{raw}]")
            query = query.where(flavors.visible_to(ctx.project_id) if public
                                else models.Flavor.is_public.is_(False))
    else:
        query = query.where(flavors.visible_to(ctx.project_id), models.Flavor.disabled.is_(False))
    for name, column in (("minRam", models.Flavor.memory_mb), ("minDisk", models.Flavor.root_gb)):
        if name in params:
            try:
                query = query.where(column >= int(params[name]))
            except ValueError:
                raise errors.BadRequest(f"Invalid {name} filter [{params[name]}]") from None
    sort_key, sort_dir = params.get("sort_key") or "flavorid", (params.get("sort_dir") or "asc").lower()
    if sort_key not in _SORT_COLUMNS:
        raise errors.BadRequest(f"Invalid sort_key {sort_key}")
    if sort_dir not in ("asc", "desc"):
        raise errors.BadRequest(f"Invalid sort_dir {sort_dir}")
    column = _SORT_COLUMNS[sort_key]
    order = (column.asc(), models.Flavor.id.asc()) if sort_dir == "asc" else (column.desc(), models.Flavor.id.desc())
    limit, marker = limit_and_marker(request)
    with service(request).db.transaction() as session:
        # Flavors are few: the ordered list is read once and the page cut from it, so that a
        # marker works with any sort key (NULLs included).
        rows = list(session.scalars(query.order_by(*order)))
    start = 0
    if marker is not None:
        ids = [row.flavorid for row in rows]
        if marker not in ids:
            raise errors.BadRequest(f"marker [{marker}] not found")
        start = ids.index(marker) + 1
    page = rows[start:start + limit]
    result: dict[str, Any] = {"flavors": [flavor_view(request, row, detail=detail) for row in page]}
    more = next_links(request, "flavors/detail" if detail else "flavors", len(page), limit,
                      page[-1].flavorid if page else None)
    if more:
        result["flavors_links"] = more
    return result


@router.get("/flavors")
def list_flavors(request: Request, ctx: Caller) -> dict[str, Any]:
    return _listing(request, ctx, detail=False)


@router.get("/flavors/detail")
def list_flavors_detail(request: Request, ctx: Caller) -> dict[str, Any]:
    return _listing(request, ctx, detail=True)


@router.get("/flavors/{flavor_id}")
def show_flavor(request: Request, flavor_id: str, ctx: Caller) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        row = flavors.find_flavor(session, flavor_id, ctx.project_id, ctx.is_admin)
        return {"flavor": flavor_view(request, row)}


# -- create, delete, update ---------------------------------------------------------------------

def _parse_create(body: Any) -> dict[str, Any]:
    spec = dict(action_body(body, "flavor"))
    # A description came with 2.55, beyond the versions served; openstacksdk's cloud layer sends
    # `"description": null` whatever the version, which says nothing and is let through.
    if "description" in spec and spec["description"] is None:
        del spec["description"]
    known = {"name", "ram", "vcpus", "disk", "id", "OS-FLV-EXT-DATA:ephemeral", "swap", "rxtx_factor",
             "os-flavor-access:is_public"}
    extra = sorted(set(spec) - known)
    if extra:
        raise errors.BadRequest(f"Additional properties are not allowed ({', '.join(map(repr, extra))} "
                                "were unexpected)")
    for required in ("name", "ram", "vcpus", "disk"):
        if required not in spec:
            raise errors.BadRequest(f"Invalid input for field/attribute flavor. '{required}' is a required property")
    name = check_name("name", spec["name"])
    flavorid = spec.get("id")
    if flavorid is not None:
        if isinstance(flavorid, bool) or not isinstance(flavorid, (str, int, float)):
            raise invalid("id", flavorid, f"{flavorid!r} is not of type 'string', 'number', 'null'")
        flavorid = str(flavorid)
        if not 1 <= len(flavorid) <= 255 or not _FLAVOR_ID.match(flavorid):
            raise invalid("id", flavorid, "Flavor id may contain letters, digits, '.', '_', '-' and inner spaces.")
    rxtx = spec.get("rxtx_factor", 1.0)
    try:
        if isinstance(rxtx, bool):
            raise ValueError
        rxtx_factor = float(rxtx)
    except (TypeError, ValueError):
        raise invalid("rxtx_factor", rxtx, f"{rxtx!r} is not of type 'number', 'string'") from None
    if not 0 < rxtx_factor <= MAX_FLOAT:
        raise invalid("rxtx_factor", rxtx, f"{rxtx} must be greater than 0 and at most {MAX_FLOAT}")
    public = spec.get("os-flavor-access:is_public", True)
    is_public = to_bool(public)
    if is_public is None:
        raise invalid("os-flavor-access:is_public", public, f"{public!r} is not of type 'boolean'")
    return {"name": name, "flavorid": flavorid or str(uuid.uuid4()),
            "memory_mb": integer("ram", spec["ram"], 1), "vcpus": integer("vcpus", spec["vcpus"], 1),
            "root_gb": integer("disk", spec["disk"], 0),
            "ephemeral_gb": integer("OS-FLV-EXT-DATA:ephemeral", spec.get("OS-FLV-EXT-DATA:ephemeral", 0), 0),
            "swap": integer("swap", spec.get("swap", 0), 0), "rxtx_factor": rxtx_factor, "is_public": is_public}


@router.post("/flavors")
def create_flavor(request: Request, ctx: Caller, body: Payload = None) -> dict[str, Any]:
    enforce(request, ctx, "flavors:manage")
    fields = _parse_create(body)
    with service(request).db.transaction() as session:
        if session.scalar(sa.select(models.Flavor.id).where(models.Flavor.name == fields["name"])) is not None:
            raise errors.Conflict(f"Flavor with name {fields['name']} already exists.")
        if session.scalar(sa.select(models.Flavor.id).where(models.Flavor.flavorid == fields["flavorid"])) is not None:
            raise errors.Conflict(f"Flavor with ID {fields['flavorid']} already exists.")
        row = models.Flavor(disabled=False, **fields)
        session.add(row)
        session.flush()
        return {"flavor": flavor_view(request, row)}


@router.delete("/flavors/{flavor_id}", status_code=202)
def delete_flavor(request: Request, flavor_id: str, ctx: Caller) -> Response:
    enforce(request, ctx, "flavors:manage")
    with service(request).db.transaction() as session:
        row = flavors.find_flavor(session, flavor_id, ctx.project_id, True)
        session.execute(sa.delete(models.FlavorExtraSpec).where(models.FlavorExtraSpec.flavor_id == row.id))
        session.execute(sa.delete(models.FlavorAccess).where(models.FlavorAccess.flavor_id == row.id))
        session.delete(row)
    return Response(status_code=202)


@router.put("/flavors/{flavor_id}")
def update_flavor(flavor_id: str, ctx: Caller) -> dict[str, Any]:
    # Updating a flavor's description came with 2.55, beyond the versions served: Nova answers a
    # method it has not at the requested version with 404.
    raise errors.NotFound("The resource could not be found.")


# -- extra specs --------------------------------------------------------------------------------

def _spec_value(key: str, value: Any) -> str:
    if not isinstance(key, str) or not _SPEC_KEY.match(key):
        raise errors.BadRequest(f"Invalid input for field/attribute extra_specs. Key {key!r} does not match "
                                f"'{_SPEC_KEY.pattern}'")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise invalid(key, value, f"{value!r} is not of type 'string', 'number'")
    text = value if isinstance(value, str) else str(value)
    if len(text) > 255:
        raise invalid(key, value, "The length must be at most 255 characters.")
    return text


def _save_specs(session: Session, row: models.Flavor, specs: dict[str, str]) -> None:
    spec = models.FlavorExtraSpec
    existing = {item.key: item for item in session.scalars(
        sa.select(spec).where(spec.flavor_id == row.id, spec.key.in_(list(specs))).with_for_update())}
    for key, value in specs.items():
        if key in existing:
            existing[key].value = value
        else:
            session.add(spec(flavor_id=row.id, key=key, value=value))
    session.flush()


@router.get("/flavors/{flavor_id}/os-extra_specs")
def list_extra_specs(request: Request, flavor_id: str, ctx: Caller) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        row = flavors.find_flavor(session, flavor_id, ctx.project_id, ctx.is_admin)
        return {"extra_specs": flavors.extra_specs(session, row)}


@router.post("/flavors/{flavor_id}/os-extra_specs")
def create_extra_specs(request: Request, flavor_id: str, ctx: Caller, body: Payload = None) -> dict[str, Any]:
    enforce(request, ctx, "flavors:manage")
    if not isinstance(body, dict) or set(body) != {"extra_specs"} or not isinstance(body["extra_specs"], dict):
        raise errors.BadRequest("Invalid input for field/attribute extra_specs. The body must be "
                                "{\"extra_specs\": {key: value, ...}}.")
    specs = {key: _spec_value(key, value) for key, value in body["extra_specs"].items()}
    with service(request).db.transaction() as session:
        row = flavors.find_flavor(session, flavor_id, ctx.project_id, True)
        _save_specs(session, row, specs)
    return {"extra_specs": specs}


@router.get("/flavors/{flavor_id}/os-extra_specs/{key}")
def show_extra_spec(request: Request, flavor_id: str, key: str, ctx: Caller) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        row = flavors.find_flavor(session, flavor_id, ctx.project_id, ctx.is_admin)
        value = session.scalar(sa.select(models.FlavorExtraSpec.value).where(
            models.FlavorExtraSpec.flavor_id == row.id, models.FlavorExtraSpec.key == key))
    if value is None:
        raise errors.NotFound(f"Flavor {flavor_id} has no extra specs with key {key}.")
    return {key: value}


@router.put("/flavors/{flavor_id}/os-extra_specs/{key}")
def update_extra_spec(request: Request, flavor_id: str, key: str, ctx: Caller, body: Payload = None) -> dict[str, Any]:
    enforce(request, ctx, "flavors:manage")
    if not isinstance(body, dict) or len(body) != 1:
        raise errors.BadRequest("Invalid input for field/attribute body. The body must hold exactly one "
                                "extra spec.")
    if key not in body:
        raise errors.BadRequest("Request body and URI mismatch")
    value = _spec_value(key, body[key])
    with service(request).db.transaction() as session:
        row = flavors.find_flavor(session, flavor_id, ctx.project_id, True)
        _save_specs(session, row, {key: value})
    return {key: value}


@router.delete("/flavors/{flavor_id}/os-extra_specs/{key}")
def delete_extra_spec(request: Request, flavor_id: str, key: str, ctx: Caller) -> Response:
    enforce(request, ctx, "flavors:manage")
    with service(request).db.transaction() as session:
        row = flavors.find_flavor(session, flavor_id, ctx.project_id, True)
        gone = session.execute(sa.delete(models.FlavorExtraSpec).where(
            models.FlavorExtraSpec.flavor_id == row.id, models.FlavorExtraSpec.key == key))
        if not gone.rowcount:  # type: ignore[attr-defined]
            raise errors.NotFound(f"Flavor {flavor_id} has no extra specs with key {key}.")
    return Response(status_code=200)


# -- access to private flavors ------------------------------------------------------------------

@router.get("/flavors/{flavor_id}/os-flavor-access")
def list_flavor_access(request: Request, flavor_id: str, ctx: Caller) -> dict[str, Any]:
    enforce(request, ctx, "flavors:access:list")
    with service(request).db.transaction() as session:
        row = flavors.find_flavor(session, flavor_id, ctx.project_id, ctx.is_admin)
        if row.is_public:
            raise errors.NotFound("Access list not available for public flavors.")
        return _access_view(row, flavors.access_list(session, row))


@router.post("/flavors/{flavor_id}/action")
def flavor_action(request: Request, flavor_id: str, ctx: Caller, version: Version,
                  body: Payload = None) -> dict[str, Any]:
    actions = ("addTenantAccess", "removeTenantAccess")
    if not isinstance(body, dict) or len(body) != 1 or next(iter(body)) not in actions:
        name = next(iter(body)) if isinstance(body, dict) and body else ""
        raise errors.BadRequest(f"There is no such action: {name}" if name else "Malformed request body")
    action = next(iter(body))
    enforce(request, ctx, "flavors:manage")
    args = action_body(body, action)
    extra = sorted(set(args) - {"tenant"})
    if "tenant" not in args or extra:
        raise errors.BadRequest(f"Invalid input for field/attribute {action}. It takes exactly 'tenant'.")
    tenant = args["tenant"]
    if not isinstance(tenant, str) or not 1 <= len(tenant) <= 255:
        raise invalid("tenant", tenant, "The tenant must be a string of 1 to 255 characters.")
    with service(request).db.transaction() as session:
        row = flavors.find_flavor(session, flavor_id, ctx.project_id, True, lock=True)
        existing = session.get(models.FlavorAccess, (row.id, tenant))
        if action == "addTenantAccess":
            if row.is_public and version.at_least("2.7"):
                raise errors.Conflict("Can not add access to a public flavor.")
            if existing is not None:
                raise errors.Conflict(f"Flavor access already exists for flavor {flavor_id} and project "
                                      f"{tenant} combination.")
            session.add(models.FlavorAccess(flavor_id=row.id, project_id=tenant))
        else:
            if existing is None:
                raise errors.NotFound(f"Flavor access not found for {flavor_id} / {tenant} combination.")
            session.delete(existing)
        session.flush()
        return _access_view(row, flavors.access_list(session, row))
