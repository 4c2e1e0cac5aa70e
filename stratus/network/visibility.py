"""Which rows a caller may see. Another project's private resource is simply not found (404)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from stratus.core.context import RequestContext
from stratus.network import models
from stratus.network.errors import NetworkNotFound, SubnetNotFound


def network_scope(ctx: RequestContext) -> ColumnElement[bool] | None:
    """Networks a caller sees: its own, shared and external ones (all for an admin)."""
    if ctx.is_admin:
        return None
    return sa.or_(models.Network.project_id == (ctx.project_id or ""), models.Network.shared.is_(True),
                  models.Network.external.is_(True))


def visible_network(session: Session, ctx: RequestContext, network_id: str, *,
                    for_update: bool = False) -> models.Network:
    stmt = sa.select(models.Network).where(models.Network.id == network_id)
    scope = network_scope(ctx)
    if scope is not None:
        stmt = stmt.where(scope)
    if for_update:
        stmt = stmt.with_for_update()
    network = session.scalars(stmt).first()
    if network is None:
        raise NetworkNotFound(network_id)
    return network


def subnet_scope(ctx: RequestContext) -> ColumnElement[bool] | None:
    """Subnets a caller sees: those of the networks it sees."""
    scope = network_scope(ctx)
    if scope is None:
        return None
    return models.Subnet.network_id.in_(sa.select(models.Network.id).where(scope))


def visible_subnet(session: Session, ctx: RequestContext, subnet_id: str) -> models.Subnet:
    stmt = sa.select(models.Subnet).where(models.Subnet.id == subnet_id)
    scope = subnet_scope(ctx)
    if scope is not None:
        stmt = stmt.where(scope)
    subnet = session.scalars(stmt).first()
    if subnet is None:
        raise SubnetNotFound(subnet_id)
    return subnet
