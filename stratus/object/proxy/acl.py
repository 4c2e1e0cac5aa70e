"""Container ACLs (X-Container-Read / X-Container-Write) and the decision who may do what.

Entries are comma-separated: `.r:*` (anyone, by referrer), `.r:host`, `.r:.domain`, `.r:-host`
(refused), `.rlistings` (referrer-granted readers may also list), and names the caller matches:
`project:user`, `project:*`, `*:user`, `*:*` (Keystone ids or names) or TempAuth `account:user`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from stratus.object.proxy.request import Caller, SwiftError, SwiftRequest

READ_ACL = "x-container-sysmeta-acl-read"
WRITE_ACL = "x-container-sysmeta-acl-write"


def parse(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def validate(header: str, value: str) -> str:
    """The ACL as stored; 400 for a malformed one."""
    entries = parse(value)
    for entry in entries:
        if entry.startswith(".r:"):
            if header == "x-container-write":
                raise SwiftError(400, "Referrers are not allowed in a write ACL")
            if not entry[3:] or entry[3:] == "-":
                raise SwiftError(400, f"Referrer ACL entry {entry!r} names no host")
        elif entry.startswith(".") and entry not in (".rlistings",):
            raise SwiftError(400, f"Unknown ACL element {entry!r}")
    return ",".join(entries)


def _host_matches(pattern: str, host: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("."):
        return host.endswith(pattern) or host == pattern[1:]
    return host == pattern


def referrer_allowed(entries: list[str], referer: str | None) -> bool:
    """Whether the `.r:` entries let in a request with this Referer (the last matching entry wins)."""
    host = (urlsplit(referer).hostname or "") if referer else ""
    allowed = False
    for entry in entries:
        if not entry.startswith(".r:"):
            continue
        pattern = entry[3:]
        negative = pattern.startswith("-")
        pattern = pattern[1:] if negative else pattern
        if pattern == "*" or (host and _host_matches(pattern, host)):
            allowed = not negative
    return allowed


def names_allowed(entries: list[str], caller: Caller) -> bool:
    return any(entry in caller.acl_names for entry in entries if not entry.startswith("."))


def _deny(caller: Caller) -> SwiftError:
    if caller.method == "anonymous":
        return SwiftError(401, "Unauthorized", {"www-authenticate": 'Swift realm="stratus"'})
    return SwiftError(403, "Forbidden")


def authorize(req: SwiftRequest, container_headers: dict[str, str] | None) -> None:
    """Raise 401/403 unless the caller may make this request; owners may do anything in their account."""
    caller = req.caller
    if req.internal or caller.owns(req.account):
        return
    if req.container is None or container_headers is None:
        raise _deny(caller)
    method = req.method
    if req.obj is None:
        if method not in ("GET", "HEAD"):
            raise _deny(caller)
        entries = parse(container_headers.get(READ_ACL))
        if names_allowed(entries, caller):
            return
        if ".rlistings" in entries and referrer_allowed(entries, req.headers.get("referer")):
            return
        raise _deny(caller)
    if method in ("GET", "HEAD"):
        entries = parse(container_headers.get(READ_ACL))
        if names_allowed(entries, caller) or referrer_allowed(entries, req.headers.get("referer")):
            return
        raise _deny(caller)
    if method in ("PUT", "POST", "DELETE", "COPY"):
        if names_allowed(parse(container_headers.get(WRITE_ACL)), caller):
            return
    raise _deny(caller)
