"""Network policy defaults. Which rows a project sees (its own, shared, external) is decided in the
queries; these rules decide what a caller may do with a row it can see."""

from __future__ import annotations

from stratus.core.policy import BASE_RULES, RuleDefault

_OWNER_OR_ADMIN = "rule:admin_required or project_id:%(project_id)s"

_RULES = {
    "admin_or_owner": _OWNER_OR_ADMIN,
    # Provider attributes, sharing a network, making it external and port binding are the operator's.
    "create_network:shared": "rule:admin_required",
    "create_network:router:external": "rule:admin_required",
    "create_network:provider": "rule:admin_required",
    "update_network:shared": "rule:admin_required",
    "update_network:router:external": "rule:admin_required",
    "update_network:provider": "rule:admin_required",
    "create_port:binding": "rule:admin_required or rule:service_role",
    "update_port:binding": "rule:admin_required or rule:service_role",
    "get_port:binding": "rule:admin_required or rule:service_role",
    # A port with a chosen MAC or address, or on another project's (shared) network with a
    # network device owner, is for the network's owner, the operator and the other services.
    "network_owner": "project_id:%(network_project_id)s",
    "create_port:privileged": "rule:admin_required or rule:service_role or rule:network_owner",
    "create_subnet:shared_network": "rule:admin_required or rule:network_owner",
    "get_agent": "rule:admin_required",
    "update_agent": "rule:admin_required",
    "delete_agent": "rule:admin_required",
    "get_quota": "rule:admin_required or project_id:%(project_id)s",
    "update_quota": "rule:admin_required",
    "delete_quota": "rule:admin_required",
}

DEFAULT_RULES = [*BASE_RULES, *(RuleDefault(name, rule) for name, rule in _RULES.items())]
