"""Neutron list semantics shared by every collection.

`GET /v2.0/ports?network_id=A&network_id=B&fields=id&sort_key=name&limit=10&marker=X`: filters on
any attribute (repeated = any of), `fields` to trim each item, `sort_key`/`sort_dir` pairs,
`limit`/`marker`/`page_reverse` paging with `<collection>_links`, and the tag filters. Filters on
columns go into the one SQL query; the rest (tags, computed attributes) are applied to the views.
Unknown filters are refused with 400, as Neutron does with filter validation on.

Loading is one SELECT plus one per eager-loaded relationship, whatever the number of rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from fastapi import Request
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from stratus.core import errors

_PAGING = {"limit", "marker", "page_reverse", "sort_key", "sort_dir", "fields"}
_TAG_FILTERS = {"tags", "tags-any", "not-tags", "not-tags-any"}
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def to_bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise errors.BadRequest(f"'{value}' cannot be converted to boolean")


@dataclass
class Collection:
    """How one collection is listed.

    `columns` maps API attribute names to the SQL columns they filter and sort on; `view` turns a
    loaded row into the API dictionary; `options` are the loader options the view
    needs so that it never issues a query of its own (subqueryload: one statement per
    relationship whatever the number of rows, where selectinload issues one per 500 rows).
    """

    name: str  # "networks"
    model: type[Any]
    columns: Mapping[str, Any]
    view: Callable[[Any], dict[str, Any]]
    options: Sequence[Any] = ()
    # Attribute filters that need their own SQL (e.g. a port's `fixed_ips=ip_address=...`).
    special_filters: Mapping[str, Callable[[list[str]], ColumnElement[bool]]] = field(default_factory=dict)


def _coerce(column: Any, value: str) -> Any:
    python_type: Any
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return value
    if python_type is bool:
        return to_bool(value)
    if python_type is int:
        try:
            return int(value)
        except ValueError:
            raise errors.BadRequest(f"'{value}' is not an integer") from None
    return value


def _matches_view(value: Any, wanted: list[str]) -> bool:
    if isinstance(value, bool):
        return any(w.lower() in (_TRUE if value else _FALSE) for w in wanted)
    if isinstance(value, list):
        return any(str(v) in wanted for v in value)
    return ("" if value is None else str(value)) in wanted


def _tags_match(tags: list[str], params: dict[str, list[str]]) -> bool:
    def split(name: str) -> set[str]:
        return {t for v in params.get(name, []) for t in v.split(",") if t}

    have = set(tags)
    if "tags" in params and not split("tags") <= have:
        return False
    if "tags-any" in params and not split("tags-any") & have:
        return False
    if "not-tags" in params and split("not-tags") <= have:
        return False
    return not ("not-tags-any" in params and split("not-tags-any") & have)


def query_params(request: Request) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key, []).append(value)
    return params


def list_items(request: Request, session: Session, collection: Collection,
               scope: ColumnElement[bool] | None = None) -> dict[str, Any]:
    """The response body of a list call: `{name: [...], name_links: [...]}` (links when paged)."""
    params = query_params(request)
    stmt = sa.select(collection.model).options(*collection.options)
    if scope is not None:
        stmt = stmt.where(scope)
    view_filters: dict[str, list[str]] = {}
    for key, values in params.items():
        if key in _PAGING or key in _TAG_FILTERS:
            continue
        column_key = "project_id" if key == "tenant_id" else key
        if column_key in collection.special_filters:
            stmt = stmt.where(collection.special_filters[column_key](values))
        elif column_key in collection.columns:
            column = collection.columns[column_key]
            stmt = stmt.where(column.in_([_coerce(column, v) for v in values]))
        else:
            view_filters[key] = values
    stmt = stmt.order_by(*_order(params, collection))
    items = [collection.view(row) for row in session.scalars(stmt).unique()]
    if view_filters and items:
        unknown = sorted(k for k in view_filters if k not in items[0])
        if unknown:
            raise errors.BadRequest(f"{unknown[0]} is invalid attribute for filtering")
        items = [item for item in items if all(_matches_view(item.get(k), v) for k, v in view_filters.items())]
    if _TAG_FILTERS & params.keys():
        items = [item for item in items if _tags_match(item.get("tags", []), params)]
    page, links = _page(request, params, items, collection.name)
    fields = [f for value in params.get("fields", []) for f in value.split(",") if f]
    if fields:
        page = [{k: v for k, v in item.items() if k in fields} for item in page]
    body: dict[str, Any] = {collection.name: page}
    if links:
        body[f"{collection.name}_links"] = links
    return body


def _order(params: dict[str, list[str]], collection: Collection) -> list[Any]:
    keys, dirs = params.get("sort_key", []), params.get("sort_dir", [])
    if dirs and len(dirs) != len(keys):
        raise errors.BadRequest("The number of sort_keys and sort_dirs must be same")
    order = []
    for index, key in enumerate(keys):
        column = collection.columns.get("project_id" if key == "tenant_id" else key)
        if column is None:
            raise errors.BadRequest(f"{key} is invalid attribute for sort_key")
        direction = dirs[index] if dirs else "asc"
        if direction not in ("asc", "desc"):
            raise errors.BadRequest(f"{direction} is invalid value for sort_dir")
        order.append(column.desc() if direction == "desc" else column.asc())
    order.append(collection.model.id.asc())
    return order


def _page(request: Request, params: dict[str, list[str]], items: list[dict[str, Any]],
          name: str) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    limit_values, markers = params.get("limit"), params.get("marker")
    reverse = to_bool(params["page_reverse"][-1]) if "page_reverse" in params else False
    if not limit_values and not markers:
        return items, []
    limit = None
    if limit_values:
        try:
            limit = int(limit_values[-1])
        except ValueError:
            raise errors.BadRequest(f"'{limit_values[-1]}' is not an integer") from None
        if limit < 0:
            raise errors.BadRequest(f"Limit must be an integer 0 or greater and not '{limit}'")
        limit = limit or None  # Neutron reads limit=0 as "no limit"
    ordered = list(reversed(items)) if reverse else items
    start = 0
    if markers:
        ids = [item["id"] for item in ordered]
        if markers[-1] not in ids:
            raise errors.NotFound(f"Marker {markers[-1]} could not be found.")
        start = ids.index(markers[-1]) + 1
    page = ordered[start:] if limit is None else ordered[start:start + limit]
    links = []
    base = str(request.url.remove_query_params(["marker", "page_reverse"]))
    joiner = "&" if "?" in base else "?"
    if limit is not None and start + limit < len(ordered) and page:
        links.append({"rel": "next", "href": f"{base}{joiner}marker={page[-1]['id']}"})
    if markers and page:
        links.append({"rel": "previous", "href": f"{base}{joiner}marker={page[0]['id']}&page_reverse=True"})
    return (list(reversed(page)) if reverse else page), links
