"""Compute policy defaults (Nova's rule names, shortened). Which rows a project sees is decided in
the queries; these rules decide what a caller may do."""

from __future__ import annotations

from stratus.core.policy import BASE_RULES, RuleDefault

_OWNER_OR_ADMIN = "rule:admin_required or project_id:%(project_id)s"
_ADMIN = "rule:admin_required"

_RULES = {
    "admin_or_owner": _OWNER_OR_ADMIN,
    # Servers: the owner acts on its own; the operator on all, and alone on these.
    "servers:all_tenants": _ADMIN,
    "servers:show:host_status": _ADMIN,
    "servers:create:forced_host": _ADMIN,
    "servers:reset_state": _ADMIN,
    "servers:migrate": _ADMIN,
    "servers:unlock:override": _ADMIN,
    "servers:extended_attributes": _ADMIN,
    # Flavors: everyone reads the public ones; the operator manages them.
    "flavors:manage": _ADMIN,
    "flavors:access:list": _OWNER_OR_ADMIN,
    # Keypairs of another user are the operator's.
    "keypairs:other_user": _ADMIN,
    # The cloud's inventory is the operator's.
    "aggregates": _ADMIN,
    "hypervisors": _ADMIN,
    "availability_zones:detail": _ADMIN,
    "services": _ADMIN,
    "migrations": _ADMIN,
    "instance_actions:events": _ADMIN,
    "quotas:show": _OWNER_OR_ADMIN,
    "quotas:update": _ADMIN,
    "quotas:delete": _ADMIN,
    "usage:list": _ADMIN,
    "usage:show": _OWNER_OR_ADMIN,
    "server_groups:all_projects": _ADMIN,
}

DEFAULT_RULES = [*BASE_RULES, *(RuleDefault(name, rule) for name, rule in _RULES.items())]
