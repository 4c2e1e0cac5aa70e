"""Who is asking: the request context built from a validated token."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RequestContext:
    user_id: str
    user_name: str = ""
    user_domain_id: str = ""
    project_id: str | None = None
    project_name: str | None = None
    project_domain_id: str | None = None
    domain_id: str | None = None
    domain_name: str | None = None
    system_scope: str | None = None
    roles: list[str] = field(default_factory=list)
    # Roles of the service token sent alongside (X-Service-Token), if any.
    service_roles: list[str] = field(default_factory=list)
    auth_token: str = ""
    audit_ids: list[str] = field(default_factory=list)
    request_id: str = ""
    app_cred_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def policy_credentials(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "project_id": self.project_id, "domain_id": self.domain_id,
                "user_domain_id": self.user_domain_id, "project_domain_id": self.project_domain_id,
                "roles": self.roles, "system_scope": self.system_scope, "is_admin": self.is_admin,
                "service_roles": self.service_roles}

    @classmethod
    def from_token_body(cls, token: dict[str, Any], auth_token: str = "") -> RequestContext:
        """Build from an Identity v3 token body (`{"token": {...}}` content)."""
        user = token.get("user", {})
        project = token.get("project") or {}
        domain = token.get("domain") or {}
        system = token.get("system") or {}
        return cls(
            user_id=user.get("id", ""), user_name=user.get("name", ""),
            user_domain_id=(user.get("domain") or {}).get("id", ""),
            project_id=project.get("id"), project_name=project.get("name"),
            project_domain_id=(project.get("domain") or {}).get("id"),
            domain_id=domain.get("id"), domain_name=domain.get("name"),
            system_scope="all" if system.get("all") else None,
            roles=[r["name"] for r in token.get("roles", [])], auth_token=auth_token,
            audit_ids=list(token.get("audit_ids", [])),
            app_cred_id=(token.get("application_credential") or {}).get("id"))
