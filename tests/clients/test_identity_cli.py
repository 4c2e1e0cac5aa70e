"""The official `openstack` CLI (python-openstackclient) against a running `stratus up`.

Every CLI call costs about two seconds of start-up, so each test walks one resource through its
life and checks the parsed output at every step.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.clients.conftest import Cloud, unique


def _by_name(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    matches = [row for row in rows if row.get("Name", row.get("name")) == name]
    assert len(matches) == 1, f"{name!r} appears {len(matches)} times in {rows}"
    return matches[0]


def _refused(done: Any) -> None:
    """The CLI failed because identity said 401, not for some unrelated reason."""
    assert done.returncode != 0, done.stdout
    assert "HTTP 401" in done.stderr, done.stderr


def test_token_issue_then_revoke_refuses_the_token(cloud: Cloud) -> None:
    issued = cloud.run("token", "issue")
    _, admin = cloud.admin_token()
    assert issued["user_id"] == admin["user"]["id"]
    assert issued["project_id"] == admin["project"]["id"]
    assert issued["expires"] and issued["id"].startswith("gAAAAA")
    by_token = ["--os-auth-type", "token", "--os-token", issued["id"],
                "--os-project-name", "admin", "--os-project-domain-name", "Default"]
    # The token plugin rescopes: the CLI posts the token back to /v3/auth/tokens first.
    listed = cloud.run_with(by_token, "project", "list", "-f", "json")
    assert "admin" in {row["Name"] for row in json.loads(listed.stdout)}
    assert cloud.validate(issued["id"]).status_code == 200

    cloud.run_raw("token", "revoke", issued["id"])
    assert cloud.validate(issued["id"]).status_code == 404
    _refused(cloud.run_with(by_token, "project", "list", check=False))


def test_project_lifecycle_with_tags_and_properties(cloud: Cloud) -> None:
    name = unique("proj")
    created = cloud.run("project", "create", "--domain", "default", "--description", "from the CLI",
                        "--tag", "alpha", "--tag", "beta", "--property", "colour=blue", name)
    assert created["name"] == name and created["domain_id"] == "default"
    assert created["description"] == "from the CLI" and created["enabled"] is True
    assert sorted(created["tags"]) == ["alpha", "beta"]
    assert created["colour"] == "blue"
    assert created["is_domain"] is False and created["parent_id"] == "default"
    tagged = cloud.run("project", "list", "--long", "--tags", "alpha")
    assert tagged == [{"ID": created["id"], "Name": name, "Domain ID": "default",
                       "Description": "from the CLI", "Enabled": True}]

    cloud.run_raw("project", "set", "--disable", "--property", "colour=green", "--name", f"{name}-b", name)
    shown = cloud.run("project", "show", created["id"])
    assert (shown["name"], shown["enabled"], shown["colour"]) == (f"{name}-b", False, "green")
    assert sorted(shown["tags"]) == ["alpha", "beta"] and shown["description"] == "from the CLI"

    cloud.run_raw("project", "delete", created["id"])
    gone = cloud.run_raw("project", "show", created["id"], check=False)
    assert gone.returncode != 0 and created["id"] in gone.stderr


def test_domain_create_list_and_a_project_inside(cloud: Cloud) -> None:
    name = unique("dom")
    domain = cloud.run("domain", "create", "--description", "a second domain", name)
    assert domain["name"] == name and domain["enabled"] is True
    assert domain["description"] == "a second domain" and len(domain["id"]) == 32
    domains = cloud.run("domain", "list")
    row = _by_name(domains, name)
    assert row["ID"] == domain["id"] and row["Enabled"] is True
    assert _by_name(domains, "Default")["ID"] == "default"

    project = cloud.run("project", "create", "--domain", name, unique("inner"))
    assert project["domain_id"] == domain["id"] and project["parent_id"] == domain["id"]
    inside = cloud.run("project", "list", "--domain", name)
    assert [p["ID"] for p in inside] == [project["id"]]


def test_user_password_change_and_login(cloud: Cloud) -> None:
    name = unique("user")
    user = cloud.run("user", "create", "--domain", "default", "--project", "service", "--password", "first-Pw1",
                     "--email", f"{name}@example.org", "--description", "made by the CLI", name)
    assert user["name"] == name and user["domain_id"] == "default" and user["enabled"] is True
    assert user["email"] == f"{name}@example.org" and user["description"] == "made by the CLI"
    assert user["default_project_id"] and "password" not in user
    assert _by_name(cloud.run("user", "list"), name)["ID"] == user["id"]

    cloud.run_raw("user", "set", "--password", "second-Pw2", name)
    _refused(cloud.run_as(name, "first-Pw1", None, "token", "issue", check=False))
    # Self-service, authenticated with the password the admin set: the user changes their own.
    cloud.run_as(name, "second-Pw2", None, "user", "password", "set",
                 "--original-password", "second-Pw2", "--password", "third-Pw3")
    # The user has no role on the default project, so this token is unscoped.
    token = cloud.run_as(name, "third-Pw3", None, "token", "issue", "-f", "json")
    assert json.loads(token.stdout)["user_id"] == user["id"]
    _refused(cloud.run_as(name, "second-Pw2", None, "token", "issue", check=False))


def test_group_membership(cloud: Cloud) -> None:
    group_name, user_name = unique("grp"), unique("member")
    group = cloud.run("group", "create", "--domain", "default", "--description", "testers", group_name)
    assert group["name"] == group_name and group["domain_id"] == "default"
    assert group["description"] == "testers" and len(group["id"]) == 32
    user = cloud.run("user", "create", "--password", "member-Pw1", user_name)

    cloud.run_raw("group", "add", "user", group_name, user_name)
    contains = cloud.run_raw("group", "contains", "user", group_name, user_name)
    assert contains.stdout.strip() == f"{user_name} in group {group_name}"
    assert cloud.run("user", "list", "--group", group_name) == [{"ID": user["id"], "Name": user_name}]

    cloud.run_raw("group", "remove", "user", group_name, user_name)
    after = cloud.run_raw("group", "contains", "user", group_name, user_name)
    assert after.stdout == "" and f"{user_name} not in group {group_name}" in after.stderr


def test_role_assignment_gives_a_project_scoped_login(cloud: Cloud) -> None:
    role_name, user_name, project_name = unique("role"), unique("worker"), unique("work")
    role = cloud.run("role", "create", role_name)
    assert role["name"] == role_name and len(role["id"]) == 32
    assert _by_name(cloud.run("role", "list"), role_name)["ID"] == role["id"]
    project = cloud.run("project", "create", project_name)
    cloud.run("user", "create", "--password", "worker-Pw1", user_name)

    cloud.run_raw("role", "add", "--user", user_name, "--project", project_name, role_name)
    rows = cloud.run("role", "assignment", "list", "--names", "--user", user_name)
    assert rows == [{"Role": role_name, "User": f"{user_name}@Default", "Group": "",
                     "Project": f"{project_name}@Default", "Domain": "", "System": "", "Inherited": False}]
    scoped = cloud.run_as(user_name, "worker-Pw1", project_name, "token", "issue", "-f", "json")
    assert json.loads(scoped.stdout)["project_id"] == project["id"]

    # Without the role the user can no longer scope to the project.
    cloud.run_raw("role", "remove", "--user", user_name, "--project", project_name, role_name)
    _refused(cloud.run_as(user_name, "worker-Pw1", project_name, "token", "issue", check=False))


def test_catalog_region_service_endpoint(cloud: Cloud) -> None:
    region_id, service_name = unique("Region"), unique("svc")
    url = f"http://127.0.0.1:9/{service_name}"
    region = cloud.run("region", "create", "--description", "test region", region_id)
    assert region == {"region": region_id, "description": "test region", "parent_region": None}
    service = cloud.run("service", "create", "--name", service_name, "--description", "a test service",
                        "test-thing")
    assert service["name"] == service_name and service["type"] == "test-thing"
    assert service["enabled"] is True and service["description"] == "a test service"
    endpoint = cloud.run("endpoint", "create", "--region", region_id, service["id"], "public", url)
    assert endpoint["url"] == url and endpoint["interface"] == "public" and endpoint["region"] == region_id
    assert endpoint["service_id"] == service["id"] and endpoint["service_name"] == service_name
    assert endpoint["service_type"] == "test-thing" and endpoint["enabled"] is True

    services = cloud.run("service", "list")
    assert _by_name(services, service_name) == {"ID": service["id"], "Name": service_name, "Type": "test-thing"}
    assert "identity" in {row["Type"] for row in services}
    assert region_id in {row["Region"] for row in cloud.run("region", "list")}
    listed = cloud.run("endpoint", "list", "--service", service["id"])
    assert [(e["ID"], e["Region"], e["Interface"], e["URL"]) for e in listed] == [
        (endpoint["id"], region_id, "public", url)]

    catalog = cloud.run("catalog", "list")
    entry = _by_name(catalog, service_name)
    assert entry["Type"] == "test-thing"
    assert [(e["interface"], e["url"], e["region"]) for e in entry["Endpoints"]] == [("public", url, region_id)]
    identity = [row for row in catalog if row["Type"] == "identity"]
    assert len(identity) == 1 and {e["interface"] for e in identity[0]["Endpoints"]} == {
        "public", "internal", "admin"}


def test_application_credential_login(cloud: Cloud) -> None:
    name = unique("appcred")
    _, admin = cloud.admin_token()
    created = cloud.run("application", "credential", "create", "--description", "for a robot", name)
    assert created["Name"] == name and created["Project ID"] == admin["project"]["id"]
    assert created["Secret"] and created["Description"] == "for a robot"
    assert created["Unrestricted"] is False
    listed = _by_name(cloud.run("application", "credential", "list"), name)
    assert listed["ID"] == created["ID"] and "Secret" not in listed

    app_auth = ["--os-auth-type", "v3applicationcredential", "--os-application-credential-id", created["ID"],
                "--os-application-credential-secret", created["Secret"]]
    token = json.loads(cloud.run_with(app_auth, "token", "issue", "-f", "json").stdout)
    assert (token["user_id"], token["project_id"]) == (admin["user"]["id"], admin["project"]["id"])
    wrong = ["--os-auth-type", "v3applicationcredential", "--os-application-credential-id", created["ID"],
             "--os-application-credential-secret", "not-the-secret"]
    _refused(cloud.run_with(wrong, "token", "issue", check=False))

    cloud.run_raw("application", "credential", "delete", created["ID"])
    _refused(cloud.run_with(app_auth, "token", "issue", check=False))


def test_ec2_credentials(cloud: Cloud) -> None:
    _, admin = cloud.admin_token()
    created = cloud.run("ec2", "credentials", "create")
    assert created["project_id"] == admin["project"]["id"] and created["user_id"] == admin["user"]["id"]
    assert created["access"] and created["secret"] and created["access"] != created["secret"]
    listed = cloud.run("ec2", "credentials", "list")
    row = [r for r in listed if r["Access"] == created["access"]]
    assert row == [{"Access": created["access"], "Secret": created["secret"],
                    "Project ID": admin["project"]["id"], "User ID": admin["user"]["id"]}]

    cloud.run_raw("ec2", "credentials", "delete", created["access"])
    token, _ = cloud.admin_token()
    gone = httpx.get(f"{cloud.auth_url}/users/{admin['user']['id']}/credentials/OS-EC2/{created['access']}",
                     headers={"X-Auth-Token": token})
    assert gone.status_code == 404
