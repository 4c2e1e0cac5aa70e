"""/v2.1/servers: create, list (and detail), show, update, delete."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from typing import Any, Literal
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from pydantic import Field
from sqlalchemy.orm import Session, load_only

from stratus.compute import block_devices, instance_actions, liveness, models, networking, servers
from stratus.compute.api.deps import Body, Caller, Version, allowed, enforce, links, service
from stratus.compute.rpc import CONDUCTOR_TOPIC
from stratus.compute.views import STATUS_FILTER, server_summary, server_view
from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.core.db import utcnow
from stratus.core.http import request_id

router = APIRouter(prefix="/v2.1", tags=["servers"])

_SORT_KEYS = {"created_at", "updated_at", "display_name", "name", "vm_state", "task_state", "power_state",
              "host", "node", "uuid", "launched_at", "terminated_at", "availability_zone", "key_name",
              "project_id", "user_id", "hostname", "image_ref", "flavor_id"}
_SORT_COLUMNS = {"display_name": "name", "uuid": "id", "flavor_id": "flavor_id"}
MAX_LIMIT = 1000


class NetworkRequest(Body):
    uuid: str | None = None
    port: str | None = None
    fixed_ip: str | None = None
    tag: str | None = None


class SecurityGroupRef(Body):
    name: str = Field(min_length=1, max_length=255)


class ServerCreate(Body):
    name: str = Field(min_length=1, max_length=255)
    imageRef: str | None = None  # noqa: N815 (the API's name)
    flavorRef: str = Field(min_length=1)  # noqa: N815
    networks: Literal["auto", "none"] | list[NetworkRequest] | None = None
    key_name: str | None = Field(None, max_length=255)
    security_groups: list[SecurityGroupRef] | None = None
    user_data: str | None = None
    metadata: dict[str, str] | None = None
    availability_zone: str | None = Field(None, max_length=255)
    min_count: int = Field(1, ge=1)
    max_count: int | None = Field(None, ge=1)
    return_reservation_id: bool = False
    config_drive: bool | str = False
    adminPass: str | None = None  # noqa: N815
    accessIPv4: str | None = None  # noqa: N815
    accessIPv6: str | None = None  # noqa: N815
    description: str | None = Field(None, max_length=255)
    tags: list[str] | None = None
    block_device_mapping_v2: list[dict[str, Any]] | None = None
    block_device_mapping: list[dict[str, Any]] | None = None
    disk_config: str | None = Field(None, alias="OS-DCF:diskConfig")
    personality: list[dict[str, str]] | None = None


class ServerCreateBody(Body):
    server: ServerCreate
    scheduler_hints: dict[str, Any] | None = Field(None, alias="os:scheduler_hints")
    scheduler_hints_old: dict[str, Any] | None = Field(None, alias="OS-SCH-HNT:scheduler_hints")


class ServerUpdate(Body):
    name: str | None = Field(None, min_length=1, max_length=255)
    description: str | None = Field(None, max_length=255)
    accessIPv4: str | None = None  # noqa: N815
    accessIPv6: str | None = None  # noqa: N815
    disk_config: str | None = Field(None, alias="OS-DCF:diskConfig")


class ServerUpdateBody(Body):
    server: ServerUpdate


def find_instance(session: Session, request: Request, ctx: RequestContext, server_id: str,
                  *, lock: bool = False) -> models.Instance:
    """The caller's server (any server for the operator); 404 otherwise, also across projects."""
    query = sa.select(models.Instance).where(models.Instance.id == server_id, models.Instance.deleted.is_(False))
    if lock:
        query = query.with_for_update()
    row = session.scalar(query)
    if row is None or (row.project_id != ctx.project_id and not allowed(request, ctx, "admin_or_owner",
                                                                           {"project_id": row.project_id})):
        raise errors.NotFound(f"Instance {server_id} could not be found.")
    return row


def _tags_and_faults(session: Session, ids: list[str]) -> tuple[dict[str, list[str]], dict[str, models.InstanceFault]]:
    tags: dict[str, list[str]] = defaultdict(list)
    faults: dict[str, models.InstanceFault] = {}
    if not ids:
        return tags, faults
    for instance_id, tag in session.execute(sa.select(models.InstanceTag.instance_id, models.InstanceTag.tag)
                                            .where(models.InstanceTag.instance_id.in_(ids))):
        tags[instance_id].append(tag)
    for fault in session.scalars(sa.select(models.InstanceFault).where(models.InstanceFault.instance_id.in_(ids))
                                 .order_by(models.InstanceFault.id)):
        faults[fault.instance_id] = fault  # the newest wins
    return tags, faults


def _hosts_up(session: Session, request: Request, hosts: set[str]) -> dict[str, bool]:
    if not hosts:
        return {}
    down_time = service(request).settings.service_down_time
    rows = session.scalars(sa.select(models.Service).where(models.Service.host.in_(hosts),
                                                           models.Service.binary == "nova-compute"))
    return {row.host: liveness.is_up(row, down_time) and not row.disabled for row in rows}


def render(session: Session, request: Request, ctx: RequestContext, version: Any,
           rows: list[models.Instance]) -> list[dict[str, Any]]:
    """Detail views of `rows` with their tags, faults and host states read in bulk."""
    admin = allowed(request, ctx, "servers:extended_attributes")
    tags, faults = _tags_and_faults(session, [row.id for row in rows])
    up = _hosts_up(session, request, {row.host for row in rows if row.host}) if admin else {}
    volumes = block_devices.volumes_attached(session, [row.id for row in rows])
    return [server_view(request, row, version, admin=admin, tags=tags.get(row.id), fault=faults.get(row.id),
                        host_up=up.get(row.host) if row.host else None, volumes=volumes.get(row.id))
            for row in rows]


@router.post("/servers", status_code=202)
def create_server(request: Request, body: ServerCreateBody, ctx: Caller, version: Version,
                  response: Response) -> dict[str, Any]:
    svc = service(request)
    fields = body.server
    if fields.networks is None and version.at_least("2.37"):
        raise errors.BadRequest("Invalid input for field/attribute server: 'networks' is a required property")
    if fields.tags is not None and not version.at_least("2.52"):
        raise errors.BadRequest("Additional properties are not allowed ('tags' was unexpected)")
    networks: Any = fields.networks
    if isinstance(networks, list):
        for item in networks:
            if not item.uuid and not item.port:
                raise errors.BadRequest("Each network needs a uuid or a port.")
        networks = [item.model_dump() for item in networks]
    hints = body.scheduler_hints or body.scheduler_hints_old or {}
    req = servers.CreateRequest(
        name=fields.name, image_ref=fields.imageRef, flavor_ref=fields.flavorRef, networks=networks,
        key_name=fields.key_name, security_groups=[g.name for g in fields.security_groups or []],
        user_data=fields.user_data, metadata=fields.metadata or {}, availability_zone=fields.availability_zone,
        min_count=fields.min_count, max_count=fields.max_count or fields.min_count,
        config_drive=fields.config_drive in (True, "true", "True", "1"), hints=dict(hints),
        admin_pass=fields.adminPass, access_ip_v4=fields.accessIPv4, access_ip_v6=fields.accessIPv6,
        description=fields.description, tags=list(fields.tags or []),
        block_device_mapping_v2=list(fields.block_device_mapping_v2 or []))
    made, admin_pass = servers.create(svc, ctx, req, request_id(request),
                                      lambda: enforce(request, ctx, "servers:create:forced_host"))
    if fields.return_reservation_id:
        return {"reservation_id": made[0].reservation_id}
    first = made[0]
    response.headers["Location"] = links(request, "servers", first.id)[0]["href"]
    return {"server": {"id": first.id, "links": links(request, "servers", first.id), "OS-DCF:diskConfig": "MANUAL",
                       "security_groups": [{"name": name} for name in first.security_groups], "adminPass": admin_pass}}


def _regex(value: str, what: str) -> re.Pattern[str]:
    try:
        return re.compile(value)
    except re.error:
        raise errors.BadRequest(f"Invalid {what} filter: {value}") from None


def _list(request: Request, ctx: RequestContext, version: Any, detail: bool) -> dict[str, Any]:
    svc = service(request)
    params = request.query_params
    m = models.Instance
    query = sa.select(m)
    all_tenants = params.get("all_tenants") not in (None, "0", "false", "False")
    if all_tenants:
        enforce(request, ctx, "servers:all_tenants")
        project = params.get("project_id") or params.get("tenant_id")
        if project:
            query = query.where(m.project_id == project)
    else:
        query = query.where(m.project_id == (ctx.project_id or ""))
    admin = allowed(request, ctx, "servers:all_tenants")
    changes_since = params.get("changes-since")
    if changes_since:
        query = query.where(m.updated_at >= _time(changes_since, "changes-since"))
    if params.get("changes-before"):
        query = query.where(m.updated_at <= _time(params["changes-before"], "changes-before"))
    deleted = params.get("deleted") in ("true", "True", "1") and admin
    if deleted:
        query = query.where(m.deleted.is_(True))
    elif not changes_since:
        query = query.where(m.deleted.is_(False))
    if "status" in params:
        states = [s for value in params.getlist("status") for s in STATUS_FILTER.get(value.upper(), ["-"])]
        query = query.where(m.vm_state.in_(states))
    for name, column in (("image", m.image_ref), ("flavor", m.flavor_id), ("reservation_id", m.reservation_id),
                         ("key_name", m.key_name), ("availability_zone", m.availability_zone)):
        if name in params:
            value = params[name].rstrip("/").rsplit("/", 1)[-1] if name in ("image", "flavor") else params[name]
            query = query.where(column == value)
    if admin:
        for name, column in (("host", m.host), ("node", m.node), ("user_id", m.user_id)):
            if name in params:
                query = query.where(column == params[name])
    query = _tag_filters(query, params)
    query = query.order_by(*_ordering(params))
    name_re = _regex(params["name"], "name") if "name" in params else None
    ip_re = _regex(params["ip"], "ip") if "ip" in params else None
    ip6_re = _regex(params["ip6"], "ip6") if "ip6" in params else None
    limit = _limit(params.get("limit"))
    marker = params.get("marker")
    if not detail:
        # The summary shows id, name and links: the rest of each row (JSON columns above all) is
        # left unread unless an address filter needs the network info.
        query = query.options(load_only(m.id, m.name, *([m.network_info] if ip_re or ip6_re else [])))
    with svc.db.transaction() as session:
        rows = list(session.scalars(query))
        if name_re or ip_re or ip6_re:
            rows = [row for row in rows if _matches(row, name_re, ip_re, ip6_re)]
        if marker:
            ids = [row.id for row in rows]
            if marker not in ids:
                raise errors.BadRequest(f"marker [{marker}] not found")
            rows = rows[ids.index(marker) + 1:]
        more = limit is not None and len(rows) > limit
        rows = rows[:limit] if limit is not None else rows
        items = render(session, request, ctx, version, rows) if detail else [server_summary(request, r) for r in rows]
    body: dict[str, Any] = {"servers": items}
    if more and rows:
        query_items = [(k, v) for k, v in params.multi_items() if k != "marker"] + [("marker", rows[-1].id)]
        path = "servers/detail" if detail else "servers"
        body["servers_links"] = [{"rel": "next",
                                  "href": f"{str(request.base_url).rstrip('/')}/v2.1/{path}?{urlencode(query_items)}"}]
    return body


def _matches(row: models.Instance, name_re: Any, ip_re: Any, ip6_re: Any) -> bool:
    if name_re is not None and not name_re.search(row.name):
        return False
    addresses = [ip["ip_address"] for port in row.network_info or [] for ip in port.get("fixed_ips", [])]
    addresses += [fip for port in row.network_info or [] for fip in port.get("floating_ips", [])]
    if ip_re is not None and not any(ip_re.match(a) for a in addresses if ":" not in a):
        return False
    return not (ip6_re is not None and not any(ip6_re.match(a) for a in addresses if ":" in a))


def _time(value: str, name: str) -> Any:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise errors.BadRequest(f"Invalid input for query parameters {name}. Value: {value}. "
                                "It is not a valid ISO 8601 date-time.") from None
    return parsed.astimezone(dt.UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _limit(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        limit = int(value)
    except ValueError:
        raise errors.BadRequest(f"Invalid input for query parameters limit. Value: {value}.") from None
    if limit < 0:
        raise errors.BadRequest(f"Invalid input for query parameters limit. Value: {value}.")
    return min(limit, MAX_LIMIT)


def _ordering(params: Any) -> list[Any]:
    keys = params.getlist("sort_key") or ["created_at"]
    dirs = params.getlist("sort_dir")
    out = []
    for index, key in enumerate(keys):
        if key not in _SORT_KEYS:
            raise errors.BadRequest(f"Invalid input for query parameters sort_key. Value: {key}.")
        direction = dirs[index] if index < len(dirs) else (dirs[-1] if dirs else "desc")
        if direction not in ("asc", "desc"):
            raise errors.BadRequest(f"Invalid input for query parameters sort_dir. Value: {direction}.")
        column = getattr(models.Instance, _SORT_COLUMNS.get(key, key))
        out.append(column.asc() if direction == "asc" else column.desc())
    out.append(models.Instance.id.desc())  # a stable order for the marker
    return out


def _tag_filters(query: Any, params: Any) -> Any:
    tag = models.InstanceTag

    def split(name: str) -> list[str]:
        return [t for value in params.getlist(name) for t in value.split(",") if t]

    with_tag = sa.select(tag.instance_id)
    for value in split("tags"):
        query = query.where(models.Instance.id.in_(with_tag.where(tag.tag == value)))
    if split("tags-any"):
        query = query.where(models.Instance.id.in_(with_tag.where(tag.tag.in_(split("tags-any")))))
    not_all = split("not-tags")
    if not_all:
        having_all = (sa.select(tag.instance_id).where(tag.tag.in_(not_all)).group_by(tag.instance_id)
                      .having(sa.func.count() == len(set(not_all))))
        query = query.where(models.Instance.id.not_in(having_all))
    if split("not-tags-any"):
        query = query.where(models.Instance.id.not_in(with_tag.where(tag.tag.in_(split("not-tags-any")))))
    return query


@router.get("/servers")
def list_servers(request: Request, ctx: Caller, version: Version) -> dict[str, Any]:
    return _list(request, ctx, version, detail=False)


@router.get("/servers/detail")
def list_servers_detail(request: Request, ctx: Caller, version: Version) -> dict[str, Any]:
    return _list(request, ctx, version, detail=True)


@router.get("/servers/{server_id}")
def show_server(request: Request, server_id: str, ctx: Caller, version: Version) -> dict[str, Any]:
    svc = service(request)
    with svc.db.transaction() as session:
        row = find_instance(session, request, ctx, server_id)
        cached, instance_id = list(row.network_info or []), row.id
    if svc.network is not None and cached and row.vm_state not in ("building", "error"):
        # Addresses as the network service has them now (a floating IP may have been associated).
        try:
            fresh = networking.refresh(svc.network, instance_id, cached)
        except errors.StratusError:
            fresh = cached
        if fresh != cached:
            with svc.db.transaction() as session:
                current = session.get(models.Instance, instance_id)
                if current is not None:
                    current.network_info = fresh
    with svc.db.transaction() as session:
        row = find_instance(session, request, ctx, server_id)
        return {"server": render(session, request, ctx, version, [row])[0]}


@router.put("/servers/{server_id}")
def update_server(request: Request, server_id: str, body: ServerUpdateBody, ctx: Caller,
                  version: Version) -> dict[str, Any]:
    fields = body.server
    if fields.description is not None and not version.at_least("2.19"):
        raise errors.BadRequest("Additional properties are not allowed ('description' was unexpected)")
    with service(request).db.transaction() as session:
        row = find_instance(session, request, ctx, server_id)
        given = fields.model_fields_set
        if "name" in given and fields.name is not None:
            row.name = fields.name
        if "description" in given:
            row.description = fields.description
        if "accessIPv4" in given:
            row.access_ip_v4 = fields.accessIPv4
        if "accessIPv6" in given:
            row.access_ip_v6 = fields.accessIPv6
        row.updated_at = utcnow()
        session.flush()
        return {"server": render(session, request, ctx, version, [row])[0]}


def check_not_locked(request: Request, ctx: RequestContext, row: models.Instance) -> None:
    if row.locked and not allowed(request, ctx, "servers:unlock:override"):
        raise errors.Conflict(f"Instance {row.id} is locked")


@router.delete("/servers/{server_id}", status_code=204)
def delete_server(request: Request, server_id: str, ctx: Caller) -> Response:
    svc = service(request)
    with svc.db.transaction() as session:
        row = find_instance(session, request, ctx, server_id, lock=True)
        check_not_locked(request, ctx, row)
        row.task_state = "deleting"
        instance_actions.start(session, row.id, "delete", request_id(request), row.project_id, ctx.user_id)
    if svc.bus is not None:
        svc.bus.cast(CONDUCTOR_TOPIC, "delete_instance", instance_id=server_id, request_id=request_id(request))
    return Response(status_code=204)
