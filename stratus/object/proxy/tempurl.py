"""Temporary URLs: `?temp_url_sig=...&temp_url_expires=...` grant one method on one object (or on
every object under `temp_url_prefix`) until the expiry, to anyone holding the URL.

The signature is an HMAC of "METHOD\\nEXPIRES\\nPATH" (or "...\\nprefix:PATH" with a prefix) under one
of the account's keys (X-Account-Meta-Temp-URL-Key[-2]) or the container's
(X-Container-Meta-Temp-URL-Key[-2]); SHA-1, SHA-256 and SHA-512 as hex, or `alg:base64`.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import hmac
import time
from typing import TYPE_CHECKING

from stratus.object.proxy.request import Caller, SwiftError, SwiftRequest

if TYPE_CHECKING:
    from stratus.object.proxy.server import Proxy

METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE")
DIGESTS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
_HEX_LENGTHS = {40: "sha1", 64: "sha256", 128: "sha512"}


def applies(req: SwiftRequest) -> bool:
    return "temp_url_sig" in req.query or "temp_url_expires" in req.query


def _expires(value: str) -> int:
    if value.isdigit():
        return int(value)
    try:  # ISO 8601 form, as `swift tempurl --iso8601` writes it
        return calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        raise SwiftError(401, "Invalid temp_url_expires") from None


def _signature(value: str) -> tuple[str, bytes]:
    if ":" in value:
        algorithm, _, encoded = value.partition(":")
        if algorithm not in DIGESTS:
            raise SwiftError(401, "Unsupported temp URL digest")
        try:
            return algorithm, base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            raise SwiftError(401, "Invalid temp URL signature") from None
    algorithm = _HEX_LENGTHS.get(len(value), "")
    try:
        return algorithm, bytes.fromhex(value)
    except ValueError:
        raise SwiftError(401, "Invalid temp URL signature") from None


async def authorize(proxy: Proxy, req: SwiftRequest) -> None:
    """Mark the request as allowed when its temp URL is valid; 401 otherwise."""
    deny = SwiftError(401, "Temp URL invalid", {"www-authenticate": 'Swift realm="stratus"'})
    sig, expires_text = req.query.get("temp_url_sig", ""), req.query.get("temp_url_expires", "")
    if req.obj is None or req.container is None or not sig or not expires_text:
        raise deny
    expires = _expires(expires_text)
    if expires < time.time():
        raise SwiftError(401, "Temp URL expired", {"www-authenticate": 'Swift realm="stratus"'})
    algorithm, given = _signature(sig)
    if algorithm not in DIGESTS or req.method not in METHODS:
        raise deny
    account_headers = (await proxy.cluster.account_info(req.account))["headers"]
    container_headers = (await proxy.cluster.container_info(req.account, req.container))["headers"]
    keys = [h.get(name) for h, name in ((account_headers, "x-account-meta-temp-url-key"),
                                        (account_headers, "x-account-meta-temp-url-key-2"),
                                        (container_headers, "x-container-meta-temp-url-key"),
                                        (container_headers, "x-container-meta-temp-url-key-2"))]
    prefix = req.query.get("temp_url_prefix")
    if prefix is not None and not req.obj.startswith(prefix):
        raise deny
    path = f"prefix:/v1/{req.account}/{req.container}/{prefix}" if prefix is not None else req.path
    # A HEAD may use a signature made for GET, PUT or POST (Swift allows the same).
    methods = [req.method] + (["GET", "PUT", "POST"] if req.method == "HEAD" else [])
    for key in filter(None, keys):
        for method in methods:
            expected = hmac.new(key.encode(), f"{method}\n{expires_text}\n{path}".encode(),
                                DIGESTS[algorithm]).digest()
            if hmac.compare_digest(expected, given):
                req.caller = Caller(method="tempurl", user_id="tempurl")
                req.internal = True
                return
    raise deny


def download_headers(req: SwiftRequest) -> dict[str, str]:
    """Content-Disposition for `filename=` / `inline` on a temp URL GET."""
    if "filename" in req.query:
        name = req.query["filename"].replace('"', "")
        kind = "inline" if "inline" in req.query else "attachment"
        return {"content-disposition": f'{kind}; filename="{name}"'}
    if "inline" in req.query:
        return {"content-disposition": "inline"}
    if req.obj is not None:
        name = req.obj.rsplit("/", 1)[-1].replace('"', "")
        return {"content-disposition": f'attachment; filename="{name}"'}
    return {}
