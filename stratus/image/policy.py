"""Image policy defaults (who may do what; which images a project sees is decided in the queries)."""

from __future__ import annotations

from stratus.core.policy import BASE_RULES, RuleDefault

_OWNER_OR_ADMIN = "rule:admin_required or project_id:%(owner)s"

_RULES = {
    "image:publicize_image": "rule:admin_required",
    "image:communitize_image": _OWNER_OR_ADMIN,
    "image:add_image": "rule:admin_required or role:member",
    "image:modify_image": _OWNER_OR_ADMIN,
    "image:delete_image": _OWNER_OR_ADMIN,
    "image:upload_image": _OWNER_OR_ADMIN,
    "image:download_image": "@",
    "image:deactivate": _OWNER_OR_ADMIN,
    "image:reactivate": _OWNER_OR_ADMIN,
    "image:add_member": _OWNER_OR_ADMIN,
    "image:delete_member": _OWNER_OR_ADMIN,
    "image:modify_member": "rule:admin_required or project_id:%(member_id)s",
}

DEFAULT_RULES = [*BASE_RULES, *(RuleDefault(name, rule) for name, rule in _RULES.items())]
