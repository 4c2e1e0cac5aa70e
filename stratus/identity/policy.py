"""Identity's default policy. Operators override any rule in their policy file."""

from __future__ import annotations

from stratus.core.policy import BASE_RULES, RuleDefault

_ADMIN = "rule:admin_required"
_ADMIN_OR_OWNER = "rule:admin_required or user_id:%(target.user.id)s"
_ADMIN_OR_READER = "rule:admin_required or rule:reader"

_RULES = {
    # tokens
    "identity:validate_token": "rule:admin_required or rule:service_role or user_id:%(target.token.user_id)s",
    "identity:revoke_token": "rule:admin_required or rule:service_role or user_id:%(target.token.user_id)s",
    # domains
    "identity:get_domain": "rule:admin_required or domain_id:%(target.domain.id)s"
                           " or user_domain_id:%(target.domain.id)s or project_domain_id:%(target.domain.id)s",
    "identity:list_domains": _ADMIN,
    "identity:create_domain": _ADMIN,
    "identity:update_domain": _ADMIN,
    "identity:delete_domain": _ADMIN,
    # projects
    "identity:get_project": "rule:admin_required or project_id:%(target.project.id)s",
    "identity:list_projects": _ADMIN,
    "identity:list_user_projects": _ADMIN_OR_OWNER,
    "identity:create_project": _ADMIN,
    "identity:update_project": _ADMIN,
    "identity:delete_project": _ADMIN,
    "identity:project_tags": _ADMIN,
    # users
    "identity:get_user": _ADMIN_OR_OWNER,
    "identity:list_users": _ADMIN,
    "identity:create_user": _ADMIN,
    "identity:update_user": _ADMIN,
    "identity:delete_user": _ADMIN,
    "identity:change_password": "user_id:%(target.user.id)s",
    # groups
    "identity:get_group": _ADMIN,
    "identity:list_groups": _ADMIN,
    "identity:list_groups_for_user": _ADMIN_OR_OWNER,
    "identity:create_group": _ADMIN,
    "identity:update_group": _ADMIN,
    "identity:delete_group": _ADMIN,
    "identity:list_users_in_group": _ADMIN,
    "identity:add_user_to_group": _ADMIN,
    "identity:remove_user_from_group": _ADMIN,
    "identity:check_user_in_group": _ADMIN,
    # roles and grants
    "identity:get_role": _ADMIN_OR_READER,
    "identity:list_roles": _ADMIN_OR_READER,
    "identity:create_role": _ADMIN,
    "identity:update_role": _ADMIN,
    "identity:delete_role": _ADMIN,
    "identity:implied_roles": _ADMIN,
    "identity:get_implied_role": _ADMIN_OR_READER,
    "identity:list_implied_roles": _ADMIN_OR_READER,
    "identity:list_grants": _ADMIN,
    "identity:check_grant": _ADMIN,
    "identity:create_grant": _ADMIN,
    "identity:revoke_grant": _ADMIN,
    "identity:list_role_assignments": _ADMIN,
    # catalog
    "identity:get_region": "@",
    "identity:list_regions": "@",
    "identity:create_region": _ADMIN,
    "identity:update_region": _ADMIN,
    "identity:delete_region": _ADMIN,
    "identity:get_service": _ADMIN_OR_READER,
    "identity:list_services": _ADMIN_OR_READER,
    "identity:create_service": _ADMIN,
    "identity:update_service": _ADMIN,
    "identity:delete_service": _ADMIN,
    "identity:get_endpoint": _ADMIN_OR_READER,
    "identity:list_endpoints": _ADMIN_OR_READER,
    "identity:create_endpoint": _ADMIN,
    "identity:update_endpoint": _ADMIN,
    "identity:delete_endpoint": _ADMIN,
    # credentials
    "identity:application_credentials": _ADMIN_OR_OWNER,
    "identity:ec2_credentials": _ADMIN_OR_OWNER,
    "identity:get_credential": "rule:admin_required or user_id:%(target.credential.user_id)s",
    "identity:list_credentials": "rule:admin_required or user_id:%(target.credential.user_id)s",
    "identity:create_credential": "rule:admin_required or user_id:%(target.credential.user_id)s",
    "identity:update_credential": "rule:admin_required or user_id:%(target.credential.user_id)s",
    "identity:delete_credential": "rule:admin_required or user_id:%(target.credential.user_id)s",
}

DEFAULT_RULES = [*BASE_RULES, *(RuleDefault(name, rule) for name, rule in _RULES.items())]
