"""Account and container listings: the query the nodes get, and the answer as plain text, JSON or XML."""

from __future__ import annotations

import json
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from stratus.object.proxy.request import SwiftError

LISTING_PARAMS = ("prefix", "delimiter", "marker", "end_marker", "limit", "reverse")


def listing_format(query: dict[str, str], headers: dict[str, str]) -> str:
    """plain, json or xml: from ?format=, else from the Accept header (Swift's order)."""
    fmt = query.get("format", "").lower()
    if fmt in ("json", "xml", "plain"):
        return fmt
    if fmt:
        raise SwiftError(400, "Invalid format; use plain, json or xml")
    accept = headers.get("accept", "").lower()
    if "application/json" in accept:
        return "json"
    if "application/xml" in accept or "text/xml" in accept:
        return "xml"
    return "plain"


def backend_query(query: dict[str, str], max_limit: int) -> dict[str, str]:
    out = {"format": "json"}
    for name in LISTING_PARAMS:
        if name in query:
            out[name] = query[name]
    if "limit" in out:
        if not out["limit"].isdigit():
            raise SwiftError(412, "Value of limit must be a non-negative integer")
        if int(out["limit"]) > max_limit:
            raise SwiftError(412, f"Maximum limit is {max_limit}")
    else:
        out["limit"] = str(max_limit)
    if len(out.get("delimiter", "")) > 1:
        raise SwiftError(412, "Bad delimiter")
    return out


def _xml_container_entry(item: dict[str, Any]) -> str:
    if "subdir" in item:
        return f"<subdir name={quoteattr(item['subdir'])}><name>{escape(item['subdir'])}</name></subdir>"
    fields = "".join(f"<{key}>{escape(str(item.get(key, '')))}</{key}>"
                     for key in ("name", "hash", "bytes", "content_type", "last_modified"))
    return f"<object>{fields}</object>"


def _xml_account_entry(item: dict[str, Any]) -> str:
    if "subdir" in item:
        return f"<subdir name={quoteattr(item['subdir'])}><name>{escape(item['subdir'])}</name></subdir>"
    fields = "".join(f"<{key}>{escape(str(item.get(key, '')))}</{key}>"
                     for key in ("name", "count", "bytes", "last_modified"))
    return f"<container>{fields}</container>"


def render(kind: str, name: str, items: list[dict[str, Any]], fmt: str) -> tuple[bytes, str]:
    """The listing body and its content type; `kind` is "account" or "container"."""
    if fmt == "json":
        return json.dumps(items).encode(), "application/json; charset=utf-8"
    if fmt == "xml":
        entry = _xml_account_entry if kind == "account" else _xml_container_entry
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<{kind} name={quoteattr(name)}>'
                + "".join(entry(item) for item in items) + f"</{kind}>")
        return body.encode(), "application/xml; charset=utf-8"
    text = "".join((item.get("subdir") or item.get("name", "")) + "\n" for item in items)
    return text.encode(), "text/plain; charset=utf-8"
