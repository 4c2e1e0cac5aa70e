"""/v2.0/security-groups and /v2.0/security-group-rules"""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request, Response
from pydantic import Field
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload, subqueryload

from stratus.core.context import RequestContext
from stratus.network import models, quotas, secgroups
from stratus.network.api import listing
from stratus.network.api.deps import (
    Body,
    caller,
    iso,
    owned_by_caller,
    project_for_create,
    service,
    standard_view,
    touch,
)
from stratus.network.errors import (
    InvalidInput,
    SecurityGroupInUse,
    SecurityGroupNotFound,
    SecurityGroupRuleExists,
    SecurityGroupRuleNotFound,
)

router = APIRouter(prefix="/v2.0", tags=["security-groups"])
Caller = Annotated[RequestContext, Depends(caller)]


class GroupFields(Body):
    name: str | None = Field(None, max_length=255)
    description: str | None = Field(None, max_length=255)
    stateful: bool | None = None


class GroupCreate(GroupFields):
    project_id: str | None = None
    tenant_id: str | None = None


class GroupCreateBody(Body):
    security_group: GroupCreate


class GroupUpdateBody(Body):
    security_group: GroupFields


class RuleCreate(Body):
    security_group_id: str = Field(max_length=36)
    direction: str
    # Checked by secgroups.normalize_rule, which gives Neutron's faults for bad values.
    ethertype: Any = None
    protocol: Any = None
    port_range_min: Any = None
    port_range_max: Any = None
    remote_ip_prefix: Any = None
    remote_group_id: str | None = Field(None, max_length=36)
    remote_address_group_id: str | None = None
    description: str | None = Field(None, max_length=255)
    project_id: str | None = None
    tenant_id: str | None = None


class RuleCreateBody(Body):
    security_group_rule: RuleCreate


class RuleUpdate(Body):
    description: str | None = Field(None, max_length=255)


class RuleUpdateBody(Body):
    security_group_rule: RuleUpdate


def rule_view(row: models.SecurityGroupRule, *, in_default_group: bool) -> dict[str, Any]:
    return {
        "id": row.id, "project_id": row.project_id, "tenant_id": row.project_id,
        "security_group_id": row.security_group_id, "direction": row.direction, "ethertype": row.ethertype,
        "protocol": row.protocol, "port_range_min": row.port_range_min, "port_range_max": row.port_range_max,
        "remote_ip_prefix": row.remote_ip_prefix, "remote_group_id": row.remote_group_id,
        "remote_address_group_id": None, "normalized_cidr": secgroups.normalized_cidr(row.remote_ip_prefix),
        "description": row.description or "", "belongs_to_default_sg": in_default_group,
        "created_at": iso(row.created_at), "updated_at": iso(row.updated_at),
        "revision_number": row.revision_number or 0,
    }


def group_view(row: models.SecurityGroup) -> dict[str, Any]:
    view = standard_view(row)
    default = secgroups.is_default(row)
    view.update({"stateful": row.stateful, "shared": False,
                 "security_group_rules": [rule_view(rule, in_default_group=default) for rule in row.rules]})
    return view


def _listed_rule_view(row: models.SecurityGroupRule) -> dict[str, Any]:
    return rule_view(row, in_default_group=secgroups.is_default(row.security_group))


_COMMON = ("id", "description", "project_id", "revision_number", "created_at", "updated_at")

_GROUPS = listing.Collection(
    "security_groups", models.SecurityGroup,
    columns={**{name: getattr(models.SecurityGroup, name) for name in _COMMON},
             "name": models.SecurityGroup.name, "stateful": models.SecurityGroup.stateful},
    view=group_view,
    options=[subqueryload(models.SecurityGroup.rules)])

_RULES = listing.Collection(
    "security_group_rules", models.SecurityGroupRule,
    columns={**{name: getattr(models.SecurityGroupRule, name) for name in _COMMON},
             **{name: getattr(models.SecurityGroupRule, name) for name in (
                 "security_group_id", "direction", "ethertype", "protocol", "port_range_min", "port_range_max",
                 "remote_ip_prefix", "remote_group_id")}},
    view=_listed_rule_view,
    # Many-to-one: joined into the same SELECT, so no statement of its own.
    options=[joinedload(models.SecurityGroupRule.security_group, innerjoin=True)])


def _group(session: Session, ctx: RequestContext, group_id: str, *, rules: bool = True,
           for_update: bool = False) -> models.SecurityGroup:
    stmt = sa.select(models.SecurityGroup).where(models.SecurityGroup.id == group_id)
    scope = owned_by_caller(models.SecurityGroup, ctx)
    if scope is not None:
        stmt = stmt.where(scope)
    if rules:
        stmt = stmt.options(selectinload(models.SecurityGroup.rules))
    if for_update:
        stmt = stmt.with_for_update()
    group = session.scalars(stmt).first()
    if group is None:
        raise SecurityGroupNotFound(group_id)
    return group


def _rule(session: Session, ctx: RequestContext, rule_id: str) -> models.SecurityGroupRule:
    stmt = (sa.select(models.SecurityGroupRule).where(models.SecurityGroupRule.id == rule_id)
            .options(joinedload(models.SecurityGroupRule.security_group, innerjoin=True)))
    scope = owned_by_caller(models.SecurityGroupRule, ctx)
    if scope is not None:
        stmt = stmt.where(scope)
    rule = session.scalars(stmt).first()
    if rule is None:
        raise SecurityGroupRuleNotFound(rule_id)
    return rule


def _refuse_default_name(name: str | None) -> None:
    if name is not None and name.lower() == secgroups.DEFAULT_NAME:
        raise secgroups.SecurityGroupDefaultAlreadyExists()


def _in_use(session: Session, group_id: str) -> bool:
    return session.scalar(sa.select(models.PortSecurityGroup.port_id)
                          .where(models.PortSecurityGroup.security_group_id == group_id).limit(1)) is not None


# --- security groups ---

@router.get("/security-groups")
def list_security_groups(request: Request, ctx: Caller) -> dict[str, Any]:
    params = listing.query_params(request)
    with service(request).db.transaction() as session:
        # Neutron makes a project's `default` group the first time the project looks for its groups.
        wanted = (params.get("project_id") or params.get("tenant_id") or [""])[0]
        project_id = wanted if wanted and ctx.is_admin else ctx.project_id
        if project_id:
            secgroups.ensure_default(session, project_id)
        return listing.list_items(request, session, _GROUPS, owned_by_caller(models.SecurityGroup, ctx))


@router.get("/security-groups/{group_id}")
def show_security_group(request: Request, group_id: str, ctx: Caller) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        if ctx.project_id:
            secgroups.ensure_default(session, ctx.project_id)
        return {"security_group": group_view(_group(session, ctx, group_id))}


@router.post("/security-groups", status_code=201)
def create_security_group(request: Request, body: GroupCreateBody, ctx: Caller) -> dict[str, Any]:
    svc, fields = service(request), body.security_group
    project_id = project_for_create(ctx, fields.project_id, fields.tenant_id)
    _refuse_default_name(fields.name)
    with svc.db.transaction() as session:
        quotas.check(session, svc.settings, project_id, "security_group")
        secgroups.ensure_default(session, project_id)
        # The group's own egress rules count against the rule quota, as in Neutron.
        quotas.check(session, svc.settings, project_id, "security_group_rule", adding=len(secgroups.ETHERTYPES))
        group = models.SecurityGroup(
            id=models.new_id(), project_id=project_id, name=fields.name or "", description=fields.description or "",
            stateful=True if fields.stateful is None else fields.stateful)
        session.add(group)
        session.flush()
        session.add_all(secgroups.egress_rules(group))
        session.flush()
        svc.agents.changed(session, security_groups=[group.id])
        session.refresh(group, attribute_names=["rules"])
        return {"security_group": group_view(group)}


@router.put("/security-groups/{group_id}")
def update_security_group(request: Request, group_id: str, body: GroupUpdateBody, ctx: Caller) -> dict[str, Any]:
    svc, fields = service(request), body.security_group
    given = {key: value for key, value in fields.model_dump(exclude_unset=True).items() if value is not None}
    _refuse_default_name(given.get("name"))
    with svc.db.transaction() as session:
        group = _group(session, ctx, group_id, for_update=True)
        if "name" in given and secgroups.is_default(group):
            raise secgroups.SecurityGroupCannotUpdateDefault()
        if "stateful" in given and given["stateful"] != group.stateful and _in_use(session, group.id):
            raise SecurityGroupInUse(group.id)
        for name, value in given.items():
            setattr(group, name, value)
        touch(group)
        session.flush()
        svc.agents.changed(session, security_groups=[group.id])
        return {"security_group": group_view(group)}


@router.delete("/security-groups/{group_id}", status_code=204)
def delete_security_group(request: Request, group_id: str, ctx: Caller) -> Response:
    svc = service(request)
    with svc.db.transaction() as session:
        # The row lock keeps a port from joining the group between the check and the delete.
        group = _group(session, ctx, group_id, rules=False, for_update=True)
        if _in_use(session, group.id):
            raise SecurityGroupInUse(group.id)
        if secgroups.is_default(group) and not ctx.is_admin:
            raise secgroups.SecurityGroupCannotRemoveDefault()
        rule = models.SecurityGroupRule
        # Rules of other groups that admit this group's members go with it.
        referring = set(session.scalars(sa.select(rule.security_group_id).where(
            rule.remote_group_id == group.id, rule.security_group_id != group.id)))
        session.execute(sa.delete(rule).where(sa.or_(rule.security_group_id == group.id,
                                                     rule.remote_group_id == group.id)))
        session.execute(sa.delete(models.DefaultSecurityGroup)
                        .where(models.DefaultSecurityGroup.security_group_id == group.id))
        session.execute(sa.delete(models.SecurityGroup).where(models.SecurityGroup.id == group.id))
        svc.agents.changed(session, deleted_security_groups=[group.id], security_groups=referring)
    return Response(status_code=204)


# --- rules ---

@router.get("/security-group-rules")
def list_security_group_rules(request: Request, ctx: Caller) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        return listing.list_items(request, session, _RULES, owned_by_caller(models.SecurityGroupRule, ctx))


@router.get("/security-group-rules/{rule_id}")
def show_security_group_rule(request: Request, rule_id: str, ctx: Caller) -> dict[str, Any]:
    with service(request).db.transaction() as session:
        return {"security_group_rule": _listed_rule_view(_rule(session, ctx, rule_id))}


@router.post("/security-group-rules", status_code=201)
def create_security_group_rule(request: Request, body: RuleCreateBody, ctx: Caller) -> dict[str, Any]:
    svc, fields = service(request), body.security_group_rule
    if fields.project_id or fields.tenant_id:
        project_for_create(ctx, fields.project_id, fields.tenant_id)  # only an admin names another project
    if fields.remote_address_group_id is not None:
        raise InvalidInput("remote_address_group_id is not supported: address groups are not implemented")
    spec = secgroups.normalize_rule(
        direction=fields.direction, ethertype=fields.ethertype, protocol=fields.protocol,
        port_range_min=fields.port_range_min, port_range_max=fields.port_range_max,
        remote_ip_prefix=fields.remote_ip_prefix, remote_group_id=fields.remote_group_id)
    with svc.db.transaction() as session:
        group = _group(session, ctx, fields.security_group_id, for_update=True)
        if spec.remote_group_id is not None and spec.remote_group_id != group.id:
            _group(session, ctx, spec.remote_group_id, rules=False)
        # A rule belongs to its group's project, whoever adds it.
        quotas.check(session, svc.settings, group.project_id, "security_group_rule")
        key = spec.fingerprint
        for existing in group.rules:
            if existing.fingerprint == key:
                raise SecurityGroupRuleExists(existing.id)
        row = secgroups.new_rule(group, spec, fields.description or "")
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:
            # The same rule added by a request that committed since the check above.
            winner = session.scalar(sa.select(models.SecurityGroupRule.id).where(
                models.SecurityGroupRule.security_group_id == group.id,
                models.SecurityGroupRule.fingerprint == key))
            if winner is None:
                raise
            raise SecurityGroupRuleExists(winner) from None
        touch(group)
        session.flush()
        svc.agents.changed(session, security_groups=[group.id])
        return {"security_group_rule": rule_view(row, in_default_group=secgroups.is_default(group))}


@router.put("/security-group-rules/{rule_id}")
def update_security_group_rule(request: Request, rule_id: str, body: RuleUpdateBody,
                               ctx: Caller) -> dict[str, Any]:
    fields = body.security_group_rule
    with service(request).db.transaction() as session:
        rule = _rule(session, ctx, rule_id)
        if fields.description is not None:
            rule.description = fields.description
        touch(rule)
        session.flush()
        return {"security_group_rule": _listed_rule_view(rule)}


@router.delete("/security-group-rules/{rule_id}", status_code=204)
def delete_security_group_rule(request: Request, rule_id: str, ctx: Caller) -> Response:
    svc = service(request)
    with svc.db.transaction() as session:
        rule = _rule(session, ctx, rule_id)
        group = _group(session, ctx, rule.security_group_id, rules=False, for_update=True)
        session.execute(sa.delete(models.SecurityGroupRule).where(models.SecurityGroupRule.id == rule.id))
        touch(group)
        svc.agents.changed(session, security_groups=[group.id])
    return Response(status_code=204)
