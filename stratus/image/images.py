"""Image logic the API modules share: the wire view, attribute validation, JSON-patch application."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import Request
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.core.http import paginate
from stratus.image.models import Image, ImageMember
from stratus.image.visibility import can_see, default_listing

DISK_FORMATS = ("ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop")
CONTAINER_FORMATS = ("ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed")
VISIBILITIES = ("public", "private", "shared", "community")
STATUSES = ("queued", "saving", "uploading", "importing", "active", "deactivated", "killed", "deleted",
            "pending_delete")
# Attributes the service computes; a client may read them but never set them.
READ_ONLY = frozenset({"created_at", "updated_at", "status", "checksum", "os_hash_algo", "os_hash_value", "size",
                       "virtual_size", "direct_url", "self", "file", "schema", "id", "stores"})
RESERVED = frozenset({"location", "locations", "deleted", "deleted_at"})
# Attributes a client may set, stored in their own columns (tags and owner are handled apart).
CORE = ("name", "visibility", "protected", "os_hidden", "min_disk", "min_ram", "disk_format", "container_format",
        "owner")
MAX_TAGS = 128
MAX_PROPERTIES = 128
_MAX_INT = 2**31 - 1


def timestamp(value: dt.datetime | None) -> str | None:
    """Glance's time format: UTC, second precision, `Z`."""
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def image_view(request: Request, image: Image) -> dict[str, Any]:
    """The image document exactly as the Image API v2 shows it; custom properties sit at top level."""
    href = f"/v2/images/{image.id}"
    return {
        **(image.properties or {}),
        "id": image.id, "name": image.name, "status": image.status, "visibility": image.visibility,
        "protected": image.protected, "os_hidden": image.os_hidden, "checksum": image.checksum,
        "os_hash_algo": image.os_hash_algo, "os_hash_value": image.os_hash_value, "owner": image.owner,
        "size": image.size, "virtual_size": image.virtual_size, "min_disk": image.min_disk,
        "min_ram": image.min_ram, "container_format": image.container_format, "disk_format": image.disk_format,
        "created_at": timestamp(image.created_at), "updated_at": timestamp(image.updated_at),
        "tags": list(image.tags or []), "self": href, "file": f"{href}/file", "schema": "/v2/schemas/image",
    }


# -- validation ---------------------------------------------------------------------------------
def check_settable(name: str) -> None:
    """403 for the attributes no client may set, with Glance's wording."""
    if name in READ_ONLY:
        raise errors.Forbidden(f"Attribute '{name}' is read-only.")
    if name in RESERVED or name.startswith("os_glance"):
        raise errors.Forbidden(f"Attribute '{name}' is reserved.")


def _enum(name: str, value: Any, allowed: tuple[str, ...], nullable: bool = True) -> Any:
    if (value is None and nullable) or (isinstance(value, str) and value in allowed):
        return value
    raise errors.BadRequest(f"Invalid value '{value}' for {name}: must be one of {', '.join(allowed)}.")


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_INT:
        raise errors.BadRequest(f"Invalid value for {name}: must be an integer between 0 and {_MAX_INT}.")
    return value


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise errors.BadRequest(f"Invalid value for {name}: must be a boolean.")
    return value


def _short_text(name: str, value: Any, nullable: bool = True) -> Any:
    if (value is None and nullable) or (isinstance(value, str) and len(value) <= 255):
        return value
    raise errors.BadRequest(f"Invalid value for {name}: must be a string of at most 255 characters.")


def check_core(name: str, value: Any) -> Any:
    """The value of a core attribute, validated; 400 when its type or range is wrong."""
    if name == "disk_format":
        return _enum(name, value, DISK_FORMATS)
    if name == "container_format":
        return _enum(name, value, CONTAINER_FORMATS)
    if name == "visibility":
        return _enum(name, value, VISIBILITIES, nullable=False)
    if name in ("min_disk", "min_ram"):
        return _count(name, value)
    if name in ("protected", "os_hidden"):
        return _flag(name, value)
    return _short_text(name, value)


def check_tags(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(t, str) and 0 < len(t) <= 255 for t in value):
        raise errors.BadRequest("Invalid value for tags: must be a list of strings of 1 to 255 characters.")
    tags = list(dict.fromkeys(value))
    if len(tags) > MAX_TAGS:
        raise errors.PayloadTooLarge(f"Maximum number of tags exceeded ({MAX_TAGS}).")
    return tags


def check_property(name: str, value: Any) -> str:
    """Custom properties are strings (the image schema's `additionalProperties`)."""
    check_settable(name)
    if not name or len(name) > 255:
        raise errors.BadRequest("Property names must have 1 to 255 characters.")
    if not isinstance(value, str) or len(value) > 65535:
        raise errors.BadRequest(f"Invalid value for property '{name}': must be a string.")
    return value


def check_properties(properties: dict[str, Any]) -> dict[str, str]:
    checked = {name: check_property(name, value) for name, value in properties.items()}
    if len(checked) > MAX_PROPERTIES:
        raise errors.PayloadTooLarge(f"Maximum number of image properties exceeded ({MAX_PROPERTIES}).")
    return checked


def check_image_id(value: Any) -> str:
    try:
        return str(uuid.UUID(value))
    except (TypeError, ValueError, AttributeError):
        raise errors.BadRequest(f"Invalid image id: {value!r} is not a UUID.") from None


# -- JSON patch ---------------------------------------------------------------------------------
PATCH_V21 = "application/openstack-images-v2.1-json-patch"
PATCH_V20 = "application/openstack-images-v2.0-json-patch"


def _attribute(pointer: Any) -> str:
    """The one attribute a JSON pointer names; images have no nested paths."""
    if not isinstance(pointer, str) or not pointer.startswith("/") or len(pointer) < 2:
        raise errors.BadRequest(f"Invalid JSON pointer: {pointer!r}.")
    name = pointer[1:]
    if "/" in name:
        raise errors.BadRequest("Nested paths are not allowed.")
    return name.replace("~1", "/").replace("~0", "~")


def parse_operations(body: Any, media_type: str) -> list[tuple[str, str, Any]]:
    """(op, attribute, value) triples from either patch dialect: 2.1 is RFC 6902 (`{"op", "path"}`),
    2.0 names the op as the key (`{"replace": "/name", "value": ...}`)."""
    if not isinstance(body, list):
        raise errors.BadRequest("The request body must be a JSON array of patch operations.")
    operations = []
    for item in body:
        if not isinstance(item, dict):
            raise errors.BadRequest("Each patch operation must be a JSON object.")
        if media_type == PATCH_V21:
            op, pointer = item.get("op"), item.get("path")
        else:
            ops = [key for key in ("add", "replace", "remove") if key in item]
            op, pointer = (ops[0], item[ops[0]]) if len(ops) == 1 else (None, None)
        if op not in ("add", "replace", "remove"):
            raise errors.BadRequest(f"Invalid patch operation: {item!r}.")
        if op != "remove" and "value" not in item:
            raise errors.BadRequest(f"Operation '{op}' needs a value.")
        operations.append((op, _attribute(pointer), item.get("value")))
    return operations


def apply_patch(image: Image, operations: list[tuple[str, str, Any]]) -> dict[str, Any]:
    """The attributes the operations change (core names, "tags", "properties"), validated; the image
    itself is left untouched so that the caller can check policy before assigning."""
    core = {name: getattr(image, name) for name in CORE}
    tags = list(image.tags or [])
    properties = dict(image.properties or {})
    for op, name, value in operations:
        check_settable(name)
        if name in core or name == "tags":
            if op == "remove":
                raise errors.Forbidden(f"Property '{name}' may not be removed.")
            if name == "tags":
                tags = check_tags(value)
            else:
                core[name] = check_core(name, value)
        elif op != "add" and name not in properties:
            raise errors.Conflict(f"Property {name} does not exist.")
        elif op == "remove":
            del properties[name]
        else:
            properties[name] = check_property(name, value)
    changes = {name: value for name, value in core.items() if value != getattr(image, name)}
    if tags != list(image.tags or []):
        changes["tags"] = tags
    if properties != (image.properties or {}):
        changes["properties"] = check_properties(properties)
    return changes


# -- listing ------------------------------------------------------------------------------------
MEMBER_STATUSES = ("pending", "accepted", "rejected")
SORT_KEYS = frozenset({"name", "status", "container_format", "disk_format", "size", "virtual_size", "id",
                       "created_at", "updated_at", "visibility", "owner", "min_disk", "min_ram", "os_hidden",
                       "protected"})
# Filters that compare a column: equal, or `in:a,b`.
_COLUMNS = {"id": Image.id, "name": Image.name, "status": Image.status, "owner": Image.owner,
            "disk_format": Image.disk_format, "container_format": Image.container_format,
            "checksum": Image.checksum, "os_hash_value": Image.os_hash_value}
_TIMES = {"created_at": Image.created_at, "updated_at": Image.updated_at}
_COMPARE = {"eq": "__eq__", "neq": "__ne__", "gt": "__gt__", "gte": "__ge__", "lt": "__lt__", "lte": "__le__"}
_CONTROL = frozenset({"limit", "marker", "sort", "sort_key", "sort_dir", "visibility", "member_status", "tag",
                      "size_min", "size_max", "protected", "os_hidden", *_COLUMNS, *_TIMES})
DEFAULT_LIMIT, MAX_LIMIT = 25, 1000


def _member_of(ctx: RequestContext, statuses: tuple[str, ...]) -> ColumnElement[bool]:
    return Image.id.in_(sa.select(ImageMember.image_id).where(
        ImageMember.member_id == ctx.project_id, ImageMember.status.in_(statuses)))


def _scope(ctx: RequestContext, visibility: str | None, member_status: str) -> ColumnElement[bool]:
    """Which images a list may show for the `visibility` and `member_status` filters."""
    statuses = MEMBER_STATUSES if member_status == "all" else (member_status,)
    shared_with_me = sa.and_(Image.visibility == "shared", _member_of(ctx, statuses))
    if visibility is None:
        return default_listing(ctx) if ctx.is_admin else sa.or_(
            Image.owner == ctx.project_id, Image.visibility == "public", shared_with_me)
    if visibility == "all":
        return can_see(ctx)
    if ctx.is_admin or visibility in ("public", "community"):
        return Image.visibility == visibility
    if visibility == "shared":
        return sa.or_(sa.and_(Image.visibility == "shared", Image.owner == ctx.project_id), shared_with_me)
    return sa.and_(Image.visibility == "private", Image.owner == ctx.project_id)


def _boolean(name: str, value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise errors.BadRequest(f"Invalid value for {name}: {value!r} is not a boolean.")
    return value.lower() == "true"


def _integer(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise errors.BadRequest(f"Invalid value for {name}: {value!r} is not an integer.") from None


def _time(name: str, value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise errors.BadRequest(f"Invalid time for {name}: {value!r}.") from None
    return parsed.astimezone(dt.UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _column_filters(query: dict[str, str]) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    for name, column in _COLUMNS.items():
        if name in query:
            value = query[name]
            conditions.append(column.in_(value[3:].split(",")) if value.startswith("in:") else column == value)
    for name, time_column in _TIMES.items():
        if name in query:
            op, _, value = query[name].partition(":")
            if op not in _COMPARE:
                raise errors.BadRequest(f"Invalid operator for {name}: use one of {', '.join(_COMPARE)}.")
            conditions.append(getattr(time_column, _COMPARE[op])(_time(name, value)))
    if "size_min" in query:
        conditions.append(Image.size >= _integer("size_min", query["size_min"]))
    if "size_max" in query:
        conditions.append(Image.size <= _integer("size_max", query["size_max"]))
    for name, flag in (("protected", Image.protected), ("os_hidden", Image.os_hidden)):
        if name in query:
            conditions.append(flag.is_(_boolean(name, query[name])))
    if "os_hidden" not in query:
        conditions.append(Image.os_hidden.is_(False))  # hidden images only show when asked for
    return conditions


def _sort_order(params: list[tuple[str, str]]) -> list[tuple[str, bool]]:
    """(key, descending) pairs from `sort=k:dir,...` or repeated `sort_key`/`sort_dir`; ties broken by
    created_at then id, newest first, as Glance does."""
    sort = [v for k, v in params if k == "sort"]
    keys = [v for k, v in params if k == "sort_key"]
    dirs = [v for k, v in params if k == "sort_dir"]
    if sort and (keys or dirs):
        raise errors.BadRequest("The 'sort' parameter cannot be combined with sort_key or sort_dir.")
    if sort:
        pairs = [part.strip().partition(":")[::2] for part in ",".join(sort).split(",")]
        keys, dirs = [k for k, _ in pairs], [d or "desc" for _, d in pairs]
    keys = keys or ["created_at"]
    if len(dirs) <= 1:
        dirs = (dirs or ["desc"]) * len(keys)
    if len(dirs) != len(keys):
        raise errors.BadRequest("The number of sort_dir values must match the number of sort_key values.")
    for key, direction in zip(keys, dirs, strict=True):
        if key not in SORT_KEYS:
            raise errors.BadRequest(f"Invalid sort key: {key}.")
        if direction not in ("asc", "desc"):
            raise errors.BadRequest(f"Invalid sort direction: {direction}.")
    order = [(k, d == "desc") for k, d in zip(keys, dirs, strict=True)]
    return order + [(k, True) for k in ("created_at", "id") if k not in keys]


def _sort(rows: list[Image], order: list[tuple[str, bool]]) -> list[Image]:
    # Sorted here rather than in SQL: NULLs and string collation then order the same on every engine.
    for key, descending in reversed(order):
        rows.sort(key=lambda row: (getattr(row, key) is not None, getattr(row, key)), reverse=descending)
    return rows


def _limit(query: dict[str, str]) -> int:
    limit = _integer("limit", query.get("limit", str(DEFAULT_LIMIT)))
    if limit < 0:
        raise errors.BadRequest("limit param must be positive")
    return min(limit, MAX_LIMIT)


def list_images(session: Session, ctx: RequestContext, params: list[tuple[str, str]]) -> tuple[list[Image], str | None]:
    """One page of the images a list request asks for, and the marker of the next page (None when last)."""
    query = dict(params)
    visibility, member_status = query.get("visibility"), query.get("member_status", "accepted")
    if visibility is not None and visibility not in (*VISIBILITIES, "all"):
        raise errors.BadRequest(f"Invalid visibility value: {visibility}")
    if member_status not in (*MEMBER_STATUSES, "all"):
        raise errors.BadRequest(f"Invalid status value: {member_status}")
    order, limit = _sort_order(params), _limit(query)
    conditions = [_scope(ctx, visibility, member_status), *_column_filters(query)]
    tags = {v for k, v in params if k == "tag"}
    wanted = {k: v for k, v in query.items() if k not in _CONTROL}
    rows = [image for image in session.scalars(sa.select(Image).where(*conditions))
            if tags <= set(image.tags) and all(image.properties.get(k) == v for k, v in wanted.items())]
    page, more = paginate(_sort(rows, order), limit=limit, marker=query.get("marker"), key=lambda image: image.id)
    return page, page[-1].id if more and page else None


def collection_links(path: str, params: list[tuple[str, str]], next_marker: str | None,
                     schema: str) -> dict[str, str]:
    """Glance's `first`/`next`/`schema`: the request's own query, with the marker moved on."""
    kept = [(k, v) for k, v in params if k != "marker"]
    links = {"first": path + (f"?{urlencode(kept)}" if kept else ""), "schema": schema}
    if next_marker:
        links["next"] = f"{path}?{urlencode([*kept, ('marker', next_marker)])}"
    return links
