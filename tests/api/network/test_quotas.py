"""Quotas API: show, defaults, set (validated, checked against usage on request), reset, details,
who may read or change them, and a project over its limit refused with OverQuota."""

from __future__ import annotations

from typing import Any

from tests.api.network.helpers import create, fault, member_headers
from tests.conftest import NetworkHarness

DEFAULTS = {"network": 100, "subnet": 100, "port": 500, "router": 10, "floatingip": 50, "security_group": 10,
            "security_group_rule": 100}


def _project(network: NetworkHarness, headers: dict[str, str]) -> str:
    response = network.client.get("/v2.0/quotas/tenant", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["tenant"]["tenant_id"]  # type: ignore[no-any-return]


def _quota(network: NetworkHarness, project: str, headers: dict[str, str], suffix: str = "") -> dict[str, Any]:
    response = network.client.get(f"/v2.0/quotas/{project}{suffix}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["quota"]  # type: ignore[no-any-return]


def _set(network: NetworkHarness, project: str, /, **limits: Any) -> Any:
    return network.client.put(f"/v2.0/quotas/{project}", json={"quota": limits}, headers=network.as_admin())


def test_a_project_reads_its_own_limits_defaults_and_who_it_is(network: NetworkHarness) -> None:
    alice = member_headers(network)
    project = _project(network, alice)
    assert network.client.get("/v2.0/quotas/project", headers=alice).json() == {"project": {"project_id": project}}
    assert _quota(network, project, alice) == DEFAULTS
    assert _quota(network, project, alice, "/default") == DEFAULTS
    details = _quota(network, project, alice, "/details")
    assert details == {name: {"limit": limit, "used": 0, "reserved": 0} for name, limit in DEFAULTS.items()}
    assert _quota(network, project, alice, "/details.json") == details


def test_only_the_operator_changes_limits_and_a_project_sees_only_its_own(network: NetworkHarness) -> None:
    alice, bob = member_headers(network, "alice"), member_headers(network, "bob")
    alices = _project(network, alice)
    for suffix in ("", "/default", "/details"):
        assert network.client.get(f"/v2.0/quotas/{alices}{suffix}", headers=bob).status_code == 403
    assert network.client.put(f"/v2.0/quotas/{alices}", json={"quota": {"network": 1000}},
                              headers=alice).status_code == 403
    assert network.client.delete(f"/v2.0/quotas/{alices}", headers=alice).status_code == 403
    assert _quota(network, alices, alice) == DEFAULTS
    assert _set(network, alices, network=5).status_code == 200
    assert _set(network, _project(network, bob), router=3).status_code == 200
    everyone = network.client.get("/v2.0/quotas", headers=network.as_admin()).json()["quotas"]
    assert {q["project_id"]: (q["network"], q["router"]) for q in everyone} == {
        alices: (5, 10), _project(network, bob): (100, 3)}
    assert all(q["tenant_id"] == q["project_id"] for q in everyone)
    own = network.client.get("/v2.0/quotas", headers=alice).json()["quotas"]
    assert [q["project_id"] for q in own] == [alices]


def test_setting_a_limit_is_validated_and_a_bad_request_changes_nothing(network: NetworkHarness) -> None:
    alice = member_headers(network)
    project = _project(network, alice)
    updated = _set(network, project, network="5", port=-1, subnet=0)
    assert updated.status_code == 200, updated.text
    assert updated.json()["quota"] == {**DEFAULTS, "network": 5, "port": -1, "subnet": 0}
    for bad in ({"network": "many"}, {"network": -2}, {"network": 2**31}, {"network": True}, {"network": 1.5},
                {"subnetpool": 5}, {"network": 1, "bogus": 1}):
        assert fault(_set(network, project, **bad), 400), bad
    for body in ({}, {"quotas": {"network": 1}}, {"quota": [1]}):
        response = network.client.put(f"/v2.0/quotas/{project}", json=body, headers=network.as_admin())
        assert response.status_code == 400, body
    assert _quota(network, project, alice) == {**DEFAULTS, "network": 5, "port": -1, "subnet": 0}


def test_check_limit_refuses_a_limit_below_what_is_used_unless_forced(network: NetworkHarness) -> None:
    alice = member_headers(network)
    project = _project(network, alice)
    for name in ("a", "b"):
        create(network, "network", alice, name=name)
    # What `openstack quota set --networks 1` sends.
    error = fault(_set(network, project, network=1, check_limit=True), 400)
    assert "already used 2" in error["message"]
    assert fault(_set(network, project, network=1, check_limit="True"), 400)
    assert _quota(network, project, alice)["network"] == 100
    assert _set(network, project, network=2, check_limit=True).status_code == 200
    assert _set(network, project, network=1, force=True).status_code == 200
    assert _quota(network, project, alice)["network"] == 1


def test_a_project_over_its_network_quota_gets_over_quota_and_details_show_the_use(network: NetworkHarness) -> None:
    alice = member_headers(network)
    project = _project(network, alice)
    assert _set(network, project, network=1).status_code == 200
    create(network, "network", alice, name="first")
    error = fault(network.client.post("/v2.0/networks", json={"network": {"name": "second"}}, headers=alice), 409)
    assert error["type"] == "OverQuota" and error["message"] == "Quota exceeded for resources: ['network']."
    assert [n["name"] for n in network.client.get("/v2.0/networks", headers=alice).json()["networks"]] == ["first"]
    assert _quota(network, project, alice, "/details")["network"] == {"limit": 1, "used": 1, "reserved": 0}
    # Unlimited again: creating works.
    assert _set(network, project, network=-1).status_code == 200
    create(network, "network", alice, name="second")


def test_resetting_returns_a_project_to_the_defaults(network: NetworkHarness) -> None:
    alice = member_headers(network)
    project = _project(network, alice)
    admin = network.as_admin()
    assert fault(network.client.delete(f"/v2.0/quotas/{project}", headers=admin), 404)["type"] == "TenantQuotaNotFound"
    assert _set(network, project, network=3, router=1).status_code == 200
    assert network.client.delete(f"/v2.0/quotas/{project}", headers=admin).status_code == 204
    assert _quota(network, project, alice) == DEFAULTS
    assert network.client.get("/v2.0/quotas", headers=admin).json()["quotas"] == []
