"""Small builders the identity API tests share."""

from __future__ import annotations

from typing import Any

from tests.conftest import IdentityHarness

MEMBER_PASSWORD = "member-Pw-123456"


def create(identity: IdentityHarness, kind: str, **fields: Any) -> dict[str, Any]:
    """POST /v3/{kind}s as the admin; the created resource."""
    response = identity.client.post(f"/v3/{kind}s", json={kind: fields}, headers=identity.as_admin())
    assert response.status_code == 201, response.text
    return response.json()[kind]  # type: ignore[no-any-return]


def role_id(identity: IdentityHarness, name: str) -> str:
    roles = identity.client.get(f"/v3/roles?name={name}", headers=identity.as_admin()).json()["roles"]
    return roles[0]["id"]  # type: ignore[no-any-return]


def error_message(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    return response.json()["error"]["message"]  # type: ignore[no-any-return]


def add_member(identity: IdentityHarness, name: str, project_name: str) -> tuple[str, str]:
    """A Default-domain user (password MEMBER_PASSWORD) holding `member` on a new project, which is
    also its default project; returns (user_id, project_id)."""
    project_id = create(identity, "project", name=project_name)["id"]
    user_id = create(identity, "user", name=name, password=MEMBER_PASSWORD, default_project_id=project_id)["id"]
    granted = identity.client.put(f"/v3/projects/{project_id}/users/{user_id}/roles/{role_id(identity, 'member')}",
                                  headers=identity.as_admin())
    assert granted.status_code == 204, granted.text
    return user_id, project_id
