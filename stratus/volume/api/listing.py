"""List queries shared by volumes and snapshots: filters, `sort`, `limit`/`marker`, next links."""

from __future__ import annotations

import ast
import json
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import Request

from stratus.core import errors
from stratus.core.http import paginate
from stratus.volume.api.deps import base_url

MAX_LIMIT = 1000


def sort_keys(params: dict[str, str], allowed: set[str]) -> list[tuple[str, str]]:
    """`sort=name:asc,size` or `sort_key=name&sort_dir=asc`; default newest first."""
    spec: list[tuple[str, str]] = []
    if params.get("sort"):
        for part in params["sort"].split(","):
            key, _, direction = part.strip().partition(":")
            spec.append((key, direction or "desc"))
    elif params.get("sort_key"):
        directions = params.get("sort_dir", "desc").split(",")
        for index, key in enumerate(params["sort_key"].split(",")):
            spec.append((key.strip(), directions[min(index, len(directions) - 1)].strip()))
    for key, direction in spec:
        if key not in allowed:
            raise errors.BadRequest(f"Invalid sort key {key!r}.")
        if direction not in ("asc", "desc"):
            raise errors.BadRequest(f"Invalid sort direction {direction!r}.")
    return spec or [("created_at", "desc")]


def order_by(model: Any, spec: list[tuple[str, str]]) -> list[Any]:
    columns = []
    for key, direction in spec:
        column = getattr(model, "metadata_" if key == "metadata" else key)
        columns.append(column.asc() if direction == "asc" else column.desc())
    columns.append(model.id.desc() if spec[-1][1] == "desc" else model.id.asc())
    return columns


def limit_of(params: dict[str, str]) -> int | None:
    raw = params.get("limit")
    if raw is None:
        return None
    if not raw.isdigit():
        raise errors.BadRequest("limit must be a non-negative integer.")
    return min(int(raw), MAX_LIMIT)


def metadata_filter(raw: str) -> dict[str, str]:
    """`metadata={"k": "v"}` (JSON, or the Python-literal form the CLI sends)."""
    try:
        value = json.loads(raw)
    except ValueError:
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            raise errors.BadRequest("The metadata filter must be a JSON object.") from None
    if not isinstance(value, dict):
        raise errors.BadRequest("The metadata filter must be a JSON object.")
    return {str(k): str(v) for k, v in value.items()}


def page(request: Request, rows: list[Any], params: dict[str, str],
         collection: str) -> tuple[list[Any], list[dict[str, str]]]:
    """The page `limit`/`marker`/`offset` ask for, and its next link when more follow."""
    offset = params.get("offset")
    if offset is not None:
        if not offset.isdigit():
            raise errors.BadRequest("offset must be a non-negative integer.")
        rows = rows[int(offset):]
    limit = limit_of(params)
    chosen, more = paginate(rows, limit=limit, marker=params.get("marker"), key=lambda row: row.id)
    if not more or not chosen:
        return chosen, []
    query = {k: v for k, v in params.items() if k not in ("marker", "offset")}
    query["marker"] = chosen[-1].id
    return chosen, [{"rel": "next", "href": f"{base_url(request)}{request.url.path}?{urlencode(query)}"}]


def like(column: Any, value: str) -> sa.ColumnElement[bool]:
    """The `name~=part` filters of 3.34: a substring match."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(f"%{escaped}%", escape="\\")  # type: ignore[no-any-return]
