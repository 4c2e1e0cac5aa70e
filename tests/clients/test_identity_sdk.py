"""openstacksdk against a running `stratus up`, and the raw v2.0 token call of old clients."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openstack
import pytest
from openstack.config.loader import OpenStackConfig
from openstack.connection import Connection
from openstack.identity.v3._proxy import Proxy as IdentityV3

from tests.clients.conftest import ADMIN_PASSWORD, Cloud, unique

# The SDK warns about its own future API changes; they are not findings about Stratus.
pytestmark = [pytest.mark.filterwarnings("ignore::openstack.warnings._RemovedInSDKWarning"),
              pytest.mark.filterwarnings("ignore::openstack.warnings.OpenStackDeprecationWarning")]


@pytest.fixture(scope="module")
def conn(cloud: Cloud) -> Iterator[Connection]:
    # Only the clouds.yaml that stratus wrote: no OS_* variable or ~/.config/openstack file of the machine.
    config = OpenStackConfig(config_files=[str(cloud.clouds_yaml)], load_envvars=False)
    region = config.get_one(cloud="stratus")
    connection = Connection(config=region)
    yield connection
    connection.close()


@pytest.fixture
def identity(conn: Connection) -> IdentityV3:
    proxy = conn.identity
    assert isinstance(proxy, IdentityV3), "the SDK chose an identity API other than v3"
    return proxy


def test_sdk_lists_projects_and_reads_the_catalog(conn: Connection, identity: IdentityV3) -> None:
    names = {project.name for project in identity.projects()}
    assert {"admin", "service"} <= names
    admin = identity.find_project("admin", domain_id="default")
    assert admin is not None and admin.domain_id == "default" and admin.is_enabled is True
    assert conn.current_project_id == admin.id
    assert "identity" in {service.type for service in identity.services()}


def test_sdk_user_create_update_delete(identity: IdentityV3) -> None:
    name = unique("sdkuser")
    user = identity.create_user(name=name, password="sdk-Secret1", domain_id="default",
                                email=f"{name}@example.org", description="via the SDK")
    assert user.id and user.name == name and user.is_enabled is True and user.domain_id == "default"
    found = identity.find_user(name, domain_id="default")
    assert found is not None and found.id == user.id and found.email == f"{name}@example.org"

    updated = identity.update_user(user, is_enabled=False, description="disabled")
    assert updated.is_enabled is False and updated.description == "disabled"
    assert identity.get_user(user.id).is_enabled is False

    identity.delete_user(user)
    assert identity.find_user(name, domain_id="default") is None
    with pytest.raises(openstack.exceptions.NotFoundException):
        identity.get_user(user.id)


def test_sdk_project_create_update_delete(identity: IdentityV3) -> None:
    name = unique("sdkproj")
    project = identity.create_project(name=name, domain_id="default", description="d", tags=["x"])
    assert project.name == name and project.tags == ["x"] and project.is_enabled is True
    updated = identity.update_project(project, is_enabled=False, description="changed")
    assert updated.is_enabled is False and updated.description == "changed"
    identity.delete_project(project)
    assert identity.find_project(name, domain_id="default") is None


def test_sdk_group_and_role_grant(identity: IdentityV3) -> None:
    user = identity.create_user(name=unique("sdkmember"), password="sdk-Secret2", domain_id="default")
    group = identity.create_group(name=unique("sdkgroup"), domain_id="default")
    role = identity.create_role(name=unique("sdkrole"))
    project = identity.create_project(name=unique("sdkgrant"), domain_id="default")

    identity.add_user_to_group(user, group)
    assert identity.check_user_in_group(user, group) is True
    identity.assign_project_role_to_group(project, group, role)
    assert identity.validate_group_has_project_role(project, group, role) is True
    effective = list(identity.role_assignments(user_id=user.id, effective=True))
    assert [(a.role["id"], a.scope["project"]["id"]) for a in effective] == [(role.id, project.id)]

    identity.remove_user_from_group(user, group)
    assert identity.check_user_in_group(user, group) is False
    assert list(identity.role_assignments(user_id=user.id, effective=True)) == []
    identity.delete_group(group)
    identity.delete_user(user)
    identity.delete_role(role)
    identity.delete_project(project)


def test_v2_token_request(cloud: Cloud) -> None:
    body = {"auth": {"passwordCredentials": {"username": "admin", "password": ADMIN_PASSWORD},
                     "tenantName": "admin"}}
    response = httpx.post(f"{cloud.url}/v2.0/tokens", json=body)
    assert response.status_code == 200, response.text
    access = response.json()["access"]
    assert access["token"]["id"] and access["token"]["expires"]
    assert access["token"]["tenant"]["name"] == "admin"
    assert access["user"]["name"] == "admin"
    assert "admin" in {role["name"] for role in access["user"]["roles"]}
    assert "identity" in {entry["type"] for entry in access["serviceCatalog"]}

    tenants = httpx.get(f"{cloud.url}/v2.0/tenants", headers={"X-Auth-Token": access["token"]["id"]})
    assert tenants.status_code == 200, tenants.text
    assert "admin" in {tenant["name"] for tenant in tenants.json()["tenants"]}
    assert cloud.validate(access["token"]["id"]).status_code == 200

    wrong = httpx.post(f"{cloud.url}/v2.0/tokens", json={"auth": {"passwordCredentials": {
        "username": "admin", "password": "wrong"}, "tenantName": "admin"}})
    assert wrong.status_code == 401
