"""POST /v2.1/servers/{id}/action: one action per request, checked against the server's state here
and carried out by the conductor (`lifecycle.py`)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from stratus.compute import flavors, instance_actions, models, networking, quotas
from stratus.compute.api.deps import Caller, Version, base_url, enforce, service
from stratus.compute.api.servers import check_not_locked, find_instance, render
from stratus.compute.rpc import AGENT_TOPIC, CONDUCTOR_TOPIC
from stratus.compute.servers import image_properties
from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.core.http import request_id

router = APIRouter(prefix="/v2.1", tags=["server actions"])

# API action -> (allowed vm_states, task_state set now, conductor action, instance action name)
_SIMPLE = {
    "os-stop": ({"active", "error"}, "powering-off", "stop", "stop"),
    "os-start": ({"stopped"}, "powering-on", "start", "start"),
    "pause": ({"active"}, "pausing", "pause", "pause"),
    "unpause": ({"paused"}, "unpausing", "unpause", "unpause"),
    "suspend": ({"active"}, "suspending", "suspend", "suspend"),
    "resume": ({"suspended"}, "resuming", "resume", "resume"),
}


class _Action:
    """What one action request knows: the service, the caller, the server id, its arguments."""

    def __init__(self, request: Request, ctx: RequestContext, version: Any, server_id: str, args: Any) -> None:
        self.request, self.ctx, self.version, self.server_id, self.args = request, ctx, version, server_id, args
        self.svc = service(request)
        self.request_id = request_id(request)

    def begin(self, allowed_states: set[str], task_state: str | None, action: str,
              check: Callable[[Any, models.Instance], None] | None = None, *,
              any_task: bool = False) -> models.Instance:
        """Check state and lock, set the task_state and record the instance action, in one transaction."""
        with self.svc.db.transaction() as session:
            row = find_instance(session, self.request, self.ctx, self.server_id, lock=True)
            check_not_locked(self.request, self.ctx, row)
            if row.vm_state not in allowed_states or (row.task_state is not None and not any_task):
                raise errors.Conflict(f"Cannot '{action}' instance {row.id} while it is in vm_state {row.vm_state}"
                                      + (f" and task_state {row.task_state}" if row.task_state else ""))
            if check is not None:
                check(session, row)
            if task_state is not None:
                row.task_state = task_state
            instance_actions.start(session, row.id, action, self.request_id, row.project_id, self.ctx.user_id)
            return row

    def cast(self, action: str, params: dict[str, Any] | None = None) -> None:
        if self.svc.bus is not None:
            self.svc.bus.cast(CONDUCTOR_TOPIC, "instance_action", instance_id=self.server_id, action=action,
                              request_id=self.request_id, params=params or {})


def _accepted() -> Response:
    return Response(status_code=202)


@router.post("/servers/{server_id}/action", response_model=None)
async def server_action(request: Request, server_id: str, ctx: Caller, version: Version) -> Response:
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        raise errors.BadRequest("Malformed request body") from None
    if not isinstance(body, dict) or len(body) != 1:
        raise errors.BadRequest("An action body names exactly one action.")
    (name, args), = body.items()
    handler = _HANDLERS.get(name)
    if handler is None:
        raise errors.BadRequest(f"There is no such action: {name}")
    return await run_in_threadpool(handler, _Action(request, ctx, version, server_id, args))


def _object(args: Any, action: str) -> dict[str, Any]:
    if args is None:
        return {}
    if not isinstance(args, dict):
        raise errors.BadRequest(f"Invalid input for field/attribute {action}. Value: {args!r}. "
                                "It is not an object.")
    return args


def _simple(api_name: str) -> Callable[[_Action], Response]:
    states, task, action, record = _SIMPLE[api_name]

    def handle(act: _Action) -> Response:
        act.begin(states, task, record)
        act.cast(action)
        return _accepted()

    return handle


def _reboot(act: _Action) -> Response:
    args = _object(act.args, "reboot")
    kind = str(args.get("type", "")).upper()
    if kind not in ("SOFT", "HARD"):
        raise errors.BadRequest("Invalid input for field/attribute type. Value: must be one of SOFT, HARD.")
    if kind == "SOFT":
        act.begin({"active"}, "reboot_pending", "reboot")
    else:
        act.begin({"active", "stopped", "paused", "suspended", "error"}, "reboot_pending_hard", "reboot",
                  any_task=False)
    act.cast("reboot", {"hard": kind == "HARD"})
    return _accepted()


def _lock(act: _Action) -> Response:
    args = _object(act.args, "lock")
    with act.svc.db.transaction() as session:
        row = find_instance(session, act.request, act.ctx, act.server_id, lock=True)
        row.locked, row.locked_by = True, "admin" if act.ctx.is_admin else "owner"
        row.locked_reason = args.get("locked_reason")
        instance_actions.start(session, row.id, "lock", act.request_id, row.project_id, act.ctx.user_id)
    return _accepted()


def _unlock(act: _Action) -> Response:
    with act.svc.db.transaction() as session:
        row = find_instance(session, act.request, act.ctx, act.server_id, lock=True)
        if row.locked and row.locked_by == "admin" and not act.ctx.is_admin:
            enforce(act.request, act.ctx, "servers:unlock:override")
        row.locked, row.locked_by, row.locked_reason = False, None, None
        instance_actions.start(session, row.id, "unlock", act.request_id, row.project_id, act.ctx.user_id)
    return _accepted()


def _resize(act: _Action) -> Response:
    args = _object(act.args, "resize")
    flavor_ref = str(args.get("flavorRef") or "").rstrip("/").rsplit("/", 1)[-1]
    if not flavor_ref:
        raise errors.BadRequest("Resize requests require 'flavorRef' attribute.")
    new_flavor: dict[str, Any] = {}

    def check(session: Any, row: models.Instance) -> None:
        try:
            flavor = flavors.find_flavor(session, flavor_ref, act.ctx.project_id or "", act.ctx.is_admin)
        except errors.NotFound:
            raise errors.BadRequest(f"Flavor {flavor_ref} could not be found.") from None
        if flavor.flavorid == row.flavor_id:
            raise errors.BadRequest("When resizing, instances must change flavor!")
        if flavor.root_gb < row.root_gb and flavor.root_gb != 0:
            raise errors.BadRequest("Resizing to a smaller disk flavor is not allowed.")
        quotas.lock_project(session, row.project_id)
        deltas = {"cores": max(0, flavor.vcpus - row.vcpus), "ram": max(0, flavor.memory_mb - row.memory_mb)}
        if any(deltas.values()):
            quotas.check(session, row.project_id, act.svc.settings, deltas)
        new_flavor.update(flavors.flavor_snapshot(session, flavor))

    act.begin({"active", "stopped"}, "resize_prep", "resize", check)
    act.cast("resize", {"flavor": new_flavor, "migration_type": "resize"})
    return _accepted()


def _migrate(act: _Action) -> Response:
    enforce(act.request, act.ctx, "servers:migrate")
    args = _object(act.args, "migrate")
    flavor: dict[str, Any] = {}
    row = act.begin({"active", "stopped"}, "resize_prep", "migrate",
                    lambda session, row: flavor.update(dict(row.flavor)))
    flavor.setdefault("id", row.flavor_id)
    act.cast("resize", {"flavor": flavor, "migration_type": "migration", "host": args.get("host")})
    return _accepted()


def _confirm_resize(act: _Action) -> Response:
    act.begin({"resized"}, None, "confirmResize")
    act.cast("confirm_resize")
    return Response(status_code=204)


def _revert_resize(act: _Action) -> Response:
    act.begin({"resized"}, "resize_reverting", "revertResize")
    act.cast("revert_resize")
    return _accepted()


def _rebuild(act: _Action) -> Response:
    args = _object(act.args, "rebuild")
    image_ref = str(args.get("imageRef") or "").rstrip("/").rsplit("/", 1)[-1]
    if not image_ref:
        raise errors.BadRequest("Could not parse imageRef from request.")
    svc = act.svc
    if svc.image is None:
        raise errors.ServiceUnavailable("The image service is not reachable.")
    try:
        image = svc.image.get_image(image_ref, token=act.ctx.auth_token)
    except errors.NotFound:
        raise errors.BadRequest(f"Image {image_ref} could not be found.") from None
    if image.get("status") != "active":
        raise errors.BadRequest(f"Image {image_ref} is not active.")
    metadata = args.get("metadata")
    if metadata is not None and (not isinstance(metadata, dict) or
                                 not all(isinstance(v, str) for v in metadata.values())):
        raise errors.BadRequest("Invalid input for field/attribute metadata.")
    admin_pass = args.get("adminPass") or secrets.token_urlsafe(9)

    def check(session: Any, row: models.Instance) -> None:
        row.image_ref = image["id"]
        row.system_metadata = image_properties(image)
        if args.get("name"):
            row.name = str(args["name"])[:255]
        if metadata is not None:
            row.metadata_ = dict(metadata)
        if "description" in args and act.version.at_least("2.19"):
            row.description = args["description"]
        for key, attr in (("accessIPv4", "access_ip_v4"), ("accessIPv6", "access_ip_v6")):
            if key in args:
                setattr(row, attr, args[key])

    act.begin({"active", "stopped", "error"}, "rebuilding", "rebuild", check)
    image_meta = {k.removeprefix("image_"): v for k, v in image_properties(image).items()}
    act.cast("rebuild", {"image_meta": image_meta, "admin_password": admin_pass})
    with svc.db.transaction() as session:
        row = find_instance(session, act.request, act.ctx, act.server_id)
        view = render(session, act.request, act.ctx, act.version, [row])[0]
    view["adminPass"] = admin_pass
    return JSONResponse({"server": view}, status_code=202)


def _create_image(act: _Action) -> Response:
    args = _object(act.args, "createImage")
    name = args.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise errors.BadRequest("Invalid input for field/attribute name.")
    metadata = args.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise errors.BadRequest("Invalid input for field/attribute metadata.")
    svc = act.svc
    if svc.image is None:
        raise errors.ServiceUnavailable("The image service is not reachable.")
    with svc.db.transaction() as session:
        row = find_instance(session, act.request, act.ctx, act.server_id)
        base_image = row.image_ref
        source_props = {k.removeprefix("image_"): v for k, v in (row.system_metadata or {}).items()
                        if isinstance(v, str) and k not in ("image_disk_format", "image_container_format")}
    fields = {**source_props, **{str(k): str(v) for k, v in metadata.items()}, "name": name,
              "image_type": "snapshot", "instance_uuid": act.server_id, "base_image_ref": base_image,
              "container_format": "bare", "disk_format": "raw", "visibility": "private"}
    for reserved in ("owner_specified.openstack.md5", "owner_specified.openstack.sha256",
                     "owner_specified.openstack.object"):
        fields.pop(reserved, None)
    image = svc.image.create_image(fields, token=act.ctx.auth_token)
    try:
        act.begin({"active", "stopped", "paused", "suspended"}, "image_snapshot", "createImage")
    except errors.StratusError:
        svc.image.delete_image(image["id"], token=act.ctx.auth_token)
        raise
    act.cast("snapshot", {"image_id": image["id"]})
    location = f"{base_url(act.request)}/images/{image['id']}"
    body = {"image_id": image["id"]} if act.version.at_least("2.45") else None
    response = JSONResponse(body, status_code=202) if body else Response(status_code=202)
    response.headers["Location"] = location
    return response


def _console_output(act: _Action) -> Response:
    args = _object(act.args, "os-getConsoleOutput")
    length = args.get("length")
    if length is not None:
        try:
            length = int(length)
        except (TypeError, ValueError):
            raise errors.BadRequest("Invalid input for field/attribute length.") from None
        if length < -1:
            raise errors.BadRequest("Invalid input for field/attribute length.")
        if length == -1:
            length = None
    with act.svc.db.transaction() as session:
        row = find_instance(session, act.request, act.ctx, act.server_id)
        host, doc = row.host, {"id": row.id}
        if not host or row.vm_state in ("building", "error"):
            raise errors.Conflict(f"Instance {row.id} is not ready: console output is not available yet.")
    if act.svc.bus is None:
        raise errors.ServiceUnavailable("The compute hosts are not reachable.")
    try:
        output = act.svc.bus.call(f"{AGENT_TOPIC}.{host}", "console_output", instance=doc, length=length, timeout=30)
    except errors.StratusError as exc:
        raise errors.Conflict(f"Console output of instance {act.server_id} is not available: {exc.message}") from None
    return JSONResponse({"output": output})


def _security_group(adding: bool) -> Callable[[_Action], Response]:
    def handle(act: _Action) -> Response:
        args = _object(act.args, "addSecurityGroup" if adding else "removeSecurityGroup")
        name = args.get("name")
        if not isinstance(name, str) or not name:
            raise errors.BadRequest("Security group name cannot be empty")
        svc = act.svc
        with svc.db.transaction() as session:
            row = find_instance(session, act.request, act.ctx, act.server_id)
            project_id, info, names = row.project_id, list(row.network_info or []), list(row.security_groups or [])
        if adding and name in names:
            raise errors.BadRequest(f"Security group {name} is already associated with the instance {act.server_id}")
        if not adding and name not in names:
            raise errors.NotFound(f"Security group {name} not associated with the instance {act.server_id}")
        if svc.network is not None:
            (group_id,) = networking.security_group_ids(svc.network, project_id, [name])
            for port in info:
                current = svc.network.get_port(port["port_id"]).get("security_groups", [])
                wanted = sorted(set(current) | {group_id}) if adding else [g for g in current if g != group_id]
                svc.network.update_port(port["port_id"], {"security_groups": wanted})
        with svc.db.transaction() as session:
            row = find_instance(session, act.request, act.ctx, act.server_id, lock=True)
            current_names = list(row.security_groups or [])
            row.security_groups = current_names + [name] if adding else [n for n in current_names if n != name]
        return _accepted()

    return handle


def _reset_state(act: _Action) -> Response:
    enforce(act.request, act.ctx, "servers:reset_state")
    args = _object(act.args, "os-resetState")
    state = args.get("state")
    if state not in ("active", "error"):
        raise errors.BadRequest("Invalid input for field/attribute state. Value: must be 'active' or 'error'.")
    with act.svc.db.transaction() as session:
        row = find_instance(session, act.request, act.ctx, act.server_id, lock=True)
        row.vm_state, row.task_state = state, None
        instance_actions.start(session, row.id, "resetState", act.request_id, row.project_id, act.ctx.user_id)
    return _accepted()


_HANDLERS: dict[str, Callable[[_Action], Response]] = {
    **{name: _simple(name) for name in _SIMPLE},
    "reboot": _reboot, "lock": _lock, "unlock": _unlock, "resize": _resize, "confirmResize": _confirm_resize,
    "revertResize": _revert_resize, "migrate": _migrate, "rebuild": _rebuild, "createImage": _create_image,
    "os-getConsoleOutput": _console_output, "addSecurityGroup": _security_group(True),
    "removeSecurityGroup": _security_group(False), "os-resetState": _reset_state,
}
