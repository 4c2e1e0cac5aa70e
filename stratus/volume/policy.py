"""Block storage policy defaults (Cinder's rule names, shortened). Which rows a project sees is
decided in the queries; these rules decide what a caller may do."""

from __future__ import annotations

from stratus.core.policy import BASE_RULES, RuleDefault

_OWNER_OR_ADMIN = "rule:admin_required or project_id:%(project_id)s"
_MEMBER = "(role:member and project_id:%(project_id)s) or rule:admin_required"
_READER = "(role:reader and project_id:%(project_id)s) or rule:admin_required"
_ADMIN = "rule:admin_required"

_RULES = {
    "admin_or_owner": _OWNER_OR_ADMIN,
    "volume:read": _READER,
    "volume:write": _MEMBER,
    "volume:all_tenants": _ADMIN,
    "volume:reset_status": _ADMIN,
    "volume:host_attribute": _ADMIN,
    "volume:force_delete": _ADMIN,
    # Nova's service user drives attachments of any project's volume.
    "volume:attach": _MEMBER + " or rule:service_role",
    "types:manage": _ADMIN,
    "types:access": _ADMIN,
    "quotas:show": _READER,
    "quotas:update": _ADMIN,
    "services": _ADMIN,
}

DEFAULT_RULES = [*BASE_RULES, *(RuleDefault(name, rule) for name, rule in _RULES.items())]
