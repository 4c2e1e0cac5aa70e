"""Security groups and rules: the default group, rule validation and normalization, duplicates,
groups in use, isolation between projects, quotas, what the agents are told, constant-cost lists."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from stratus.network import models
from stratus.network.notify import Changes
from tests.api.network.helpers import counting, create, fault, member_headers
from tests.conftest import NetworkHarness

GROUPS, RULES = "/v2.0/security-groups", "/v2.0/security-group-rules"


def _project(network: NetworkHarness, headers: dict[str, str]) -> str:
    response = network.client.get("/v2.0/quotas/tenant", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["tenant"]["tenant_id"]  # type: ignore[no-any-return]


def _groups(network: NetworkHarness, headers: dict[str, str], query: str = "") -> list[dict[str, Any]]:
    response = network.client.get(f"{GROUPS}{query}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["security_groups"]  # type: ignore[no-any-return]


def _rule(network: NetworkHarness, headers: dict[str, str], group_id: str, **fields: Any) -> Any:
    return network.client.post(RULES, json={"security_group_rule": {
        "security_group_id": group_id, "direction": "ingress", **fields}}, headers=headers)


def _shape(rule: dict[str, Any]) -> tuple[Any, ...]:
    return (rule["direction"], rule["ethertype"], rule["protocol"], rule["remote_ip_prefix"],
            rule["remote_group_id"])


@pytest.fixture
def sent(network: NetworkHarness) -> Iterator[list[Changes]]:
    """What each committed transaction told the agents."""
    record: list[Changes] = []
    network.service.agents.send = record.append  # type: ignore[method-assign,assignment]
    yield record


def test_a_projects_default_group_is_made_once_on_first_look_with_the_reference_rules(
        network: NetworkHarness) -> None:
    alice = member_headers(network)
    listed = _groups(network, alice)
    assert [g["name"] for g in listed] == ["default"]
    default = listed[0]
    assert default["description"] == "Default security group" and default["stateful"] is True
    assert default["shared"] is False and default["tags"] == [] and default["project_id"] == _project(network, alice)
    shapes = sorted(_shape(rule) for rule in default["security_group_rules"])
    assert shapes == sorted([("egress", "IPv4", None, None, None), ("egress", "IPv6", None, None, None),
                             ("ingress", "IPv4", None, None, default["id"]),
                             ("ingress", "IPv6", None, None, default["id"])])
    assert all(rule["belongs_to_default_sg"] for rule in default["security_group_rules"])
    # Looking again (or showing it) makes no second one.
    assert [g["id"] for g in _groups(network, alice)] == [default["id"]]
    shown = network.client.get(f"{GROUPS}/{default['id']}", headers=alice).json()["security_group"]
    assert shown["id"] == default["id"] and len(shown["security_group_rules"]) == 4
    rules = network.client.get(RULES, headers=alice).json()["security_group_rules"]
    assert {rule["id"] for rule in rules} == {rule["id"] for rule in default["security_group_rules"]}


def test_a_new_group_gets_an_egress_rule_per_ethertype_and_the_reference_fields(network: NetworkHarness) -> None:
    alice = member_headers(network)
    group = create(network, "security_group", alice, name="web", description="web servers")
    assert group["name"] == "web" and group["description"] == "web servers" and group["stateful"] is True
    assert group["project_id"] == group["tenant_id"] == _project(network, alice)
    assert group["revision_number"] == 0 and group["created_at"].endswith("Z") and group["shared"] is False
    assert sorted(_shape(rule) for rule in group["security_group_rules"]) == [
        ("egress", "IPv4", None, None, None), ("egress", "IPv6", None, None, None)]
    for rule in group["security_group_rules"]:
        assert rule["security_group_id"] == group["id"] and rule["belongs_to_default_sg"] is False
        assert rule["port_range_min"] is None and rule["normalized_cidr"] is None
        assert rule["remote_address_group_id"] is None
    # Creating a group made the project's default group too.
    assert sorted(g["name"] for g in _groups(network, alice)) == ["default", "web"]
    stateless = create(network, "security_group", alice, name="fast", stateful=False)
    assert stateless["stateful"] is False
    updated = network.client.put(f"{GROUPS}/{group['id']}", json={"security_group": {
        "name": "www", "description": "changed"}}, headers=alice)
    assert updated.status_code == 200, updated.text
    assert updated.json()["security_group"]["name"] == "www"
    assert updated.json()["security_group"]["revision_number"] == 1
    assert fault(network.client.put(f"{GROUPS}/{group['id']}", json={"security_group": {"id": "x"}},
                                    headers=alice), 400)
    assert network.client.delete(f"{GROUPS}/{group['id']}", headers=alice).status_code == 204
    assert fault(network.client.get(f"{GROUPS}/{group['id']}", headers=alice), 404)["type"] == "SecurityGroupNotFound"
    assert all(r["security_group_id"] != group["id"]
               for r in network.client.get(RULES, headers=alice).json()["security_group_rules"])


def test_the_default_group_keeps_its_name_and_only_an_admin_removes_it(network: NetworkHarness) -> None:
    alice = member_headers(network)
    default = _groups(network, alice)[0]
    rename = network.client.put(f"{GROUPS}/{default['id']}", json={"security_group": {"name": "other"}},
                                headers=alice)
    assert fault(rename, 409)["type"] == "SecurityGroupCannotUpdateDefault"
    described = network.client.put(f"{GROUPS}/{default['id']}", json={"security_group": {"description": "mine"}},
                                   headers=alice)
    assert described.status_code == 200 and described.json()["security_group"]["description"] == "mine"
    assert fault(network.client.delete(f"{GROUPS}/{default['id']}", headers=alice),
                 409)["type"] == "SecurityGroupCannotRemoveDefault"
    for name in ("default", "Default"):
        response = network.client.post(GROUPS, json={"security_group": {"name": name}}, headers=alice)
        assert fault(response, 409)["type"] == "SecurityGroupDefaultAlreadyExists"
    other = create(network, "security_group", alice, name="other")
    response = network.client.put(f"{GROUPS}/{other['id']}", json={"security_group": {"name": "default"}},
                                  headers=alice)
    assert fault(response, 409)["type"] == "SecurityGroupDefaultAlreadyExists"
    assert sorted(g["name"] for g in _groups(network, alice)) == ["default", "other"]
    # The operator may remove it; the project gets a new one when it next looks.
    assert network.client.delete(f"{GROUPS}/{default['id']}", headers=network.as_admin()).status_code == 204
    again = [g for g in _groups(network, alice) if g["name"] == "default"]
    assert len(again) == 1 and again[0]["id"] != default["id"]


def test_rules_are_stored_normalized_and_a_rule_that_matches_the_same_traffic_is_refused(
        network: NetworkHarness) -> None:
    alice = member_headers(network)
    group = create(network, "security_group", alice, name="web")
    ssh = _rule(network, alice, group["id"], protocol="tcp", port_range_min=22, port_range_max=22,
                remote_ip_prefix="10.0.0.5/24", description="ssh")
    assert ssh.status_code == 201, ssh.text
    rule = ssh.json()["security_group_rule"]
    assert (rule["protocol"], rule["port_range_min"], rule["port_range_max"]) == ("tcp", 22, 22)
    assert rule["remote_ip_prefix"] == "10.0.0.5/24" and rule["normalized_cidr"] == "10.0.0.0/24"
    assert rule["ethertype"] == "IPv4" and rule["description"] == "ssh" and rule["project_id"] == group["project_id"]
    # The same traffic, said differently: protocol by number, the prefix's network, ports as strings.
    same = _rule(network, alice, group["id"], protocol="6", port_range_min="22", port_range_max=22,
                 remote_ip_prefix="10.0.0.0/24", ethertype="ipv4")
    error = fault(same, 409)
    assert error["type"] == "SecurityGroupRuleExists" and rule["id"] in error["message"]
    # ICMP: the "ports" are type and code; in IPv6 every spelling of ICMP is ipv6-icmp.
    ping = _rule(network, alice, group["id"], protocol="icmp", port_range_min=8, port_range_max=0)
    assert ping.status_code == 201, ping.text
    assert (ping.json()["security_group_rule"]["port_range_min"],
            ping.json()["security_group_rule"]["port_range_max"]) == (8, 0)
    v6 = _rule(network, alice, group["id"], protocol="icmp", ethertype="IPv6")
    assert v6.status_code == 201, v6.text
    assert v6.json()["security_group_rule"]["protocol"] == "ipv6-icmp"
    for spelling in ("icmpv6", "ipv6-icmp", "58", "1"):
        dup = _rule(network, alice, group["id"], protocol=spelling, ethertype="IPv6")
        assert fault(dup, 409)["type"] == "SecurityGroupRuleExists", spelling
    # "Anywhere" is no prefix at all: the group's own egress rule already says it.
    anywhere = network.client.post(RULES, json={"security_group_rule": {
        "security_group_id": group["id"], "direction": "egress", "remote_ip_prefix": "0.0.0.0/0"}}, headers=alice)
    assert fault(anywhere, 409)["type"] == "SecurityGroupRuleExists"
    # A bare address is a /32; "any" protocol is no protocol.
    host = _rule(network, alice, group["id"], protocol="any", remote_ip_prefix="192.0.2.7")
    assert host.status_code == 201, host.text
    assert host.json()["security_group_rule"]["remote_ip_prefix"] == "192.0.2.7/32"
    assert host.json()["security_group_rule"]["protocol"] is None
    by_number = _rule(network, alice, group["id"], protocol=132, port_range_min=1, port_range_max=65535)
    assert by_number.status_code == 201 and by_number.json()["security_group_rule"]["protocol"] == "132"
    shown = network.client.get(f"{GROUPS}/{group['id']}", headers=alice).json()["security_group"]
    assert len(shown["security_group_rules"]) == 2 + 5
    assert shown["revision_number"] == 5  # each rule added is a revision of its group
    listed = network.client.get(f"{RULES}?security_group_id={group['id']}&protocol=tcp", headers=alice).json()
    assert [r["id"] for r in listed["security_group_rules"]] == [rule["id"]]
    # Only the description of a rule changes after creation.
    updated = network.client.put(f"{RULES}/{rule['id']}", json={"security_group_rule": {"description": "SSH"}},
                                 headers=alice)
    assert updated.status_code == 200 and updated.json()["security_group_rule"]["description"] == "SSH"
    assert fault(network.client.put(f"{RULES}/{rule['id']}", json={"security_group_rule": {"protocol": "udp"}},
                                    headers=alice), 400)
    assert network.client.delete(f"{RULES}/{rule['id']}", headers=alice).status_code == 204
    assert fault(network.client.get(f"{RULES}/{rule['id']}", headers=alice),
                 404)["type"] == "SecurityGroupRuleNotFound"
    again = _rule(network, alice, group["id"], protocol="tcp", port_range_min=22, port_range_max=22,
                  remote_ip_prefix="10.0.0.0/24")
    assert again.status_code == 201, again.text


@pytest.mark.parametrize(("fields", "kind"), [
    ({"direction": "sideways"}, "SecurityGroupRuleInvalidDirection"),
    ({"ethertype": "IPv5"}, "SecurityGroupRuleInvalidEtherType"),
    ({"protocol": "tcpx"}, "SecurityGroupRuleInvalidProtocol"),
    ({"protocol": 256}, "SecurityGroupRuleInvalidProtocol"),
    ({"protocol": "tcp", "port_range_min": 70000, "port_range_max": 70000}, "SecurityGroupInvalidPortValue"),
    ({"protocol": "tcp", "port_range_min": "ssh", "port_range_max": 22}, "SecurityGroupInvalidPortValue"),
    ({"protocol": "tcp", "port_range_min": 0, "port_range_max": 22}, "SecurityGroupInvalidPortValue"),
    ({"protocol": "tcp", "port_range_min": 80, "port_range_max": 22}, "SecurityGroupInvalidPortRange"),
    ({"protocol": "udp", "port_range_min": 80}, "SecurityGroupInvalidPortRange"),
    ({"port_range_min": 22, "port_range_max": 22}, "SecurityGroupProtocolRequiredWithPorts"),
    ({"protocol": "gre", "port_range_min": 22, "port_range_max": 22}, "SecurityGroupInvalidProtocolForPort"),
    ({"protocol": "icmp", "port_range_min": 256}, "SecurityGroupInvalidIcmpValue"),
    ({"protocol": "icmp", "port_range_min": 8, "port_range_max": 256}, "SecurityGroupInvalidIcmpValue"),
    ({"protocol": "icmp", "port_range_max": 0}, "SecurityGroupMissingIcmpType"),
    ({"protocol": "ipv6-icmp"}, "SecurityGroupEthertypeConflictWithProtocol"),
    ({"remote_ip_prefix": "2001:db8::/64"}, "SecurityGroupRuleParameterConflict"),
    ({"remote_ip_prefix": "10.0.0.0/33"}, "InvalidCIDR"),
    ({"remote_ip_prefix": "not-an-address"}, "InvalidCIDR"),
    ({"remote_ip_prefix": "10.0.0.0/8", "remote_group_id": "SELF"}, "SecurityGroupRemoteGroupAndRemoteIpPrefix"),
    ({"remote_address_group_id": "00000000-0000-0000-0000-000000000000"}, "InvalidInput"),
    ({"port": 22}, None),
])
def test_a_bad_rule_is_refused_with_neutrons_fault_and_adds_nothing(
        network: NetworkHarness, fields: dict[str, Any], kind: str | None) -> None:
    alice = member_headers(network)
    group = create(network, "security_group", alice, name="web")
    if fields.get("remote_group_id") == "SELF":
        fields = {**fields, "remote_group_id": group["id"]}
    error = fault(_rule(network, alice, group["id"], **fields), 400)
    if kind is not None:
        assert error["type"] == kind, error
    shown = network.client.get(f"{GROUPS}/{group['id']}", headers=alice).json()["security_group"]
    assert len(shown["security_group_rules"]) == 2 and shown["revision_number"] == 0


def test_a_rule_may_admit_members_of_a_group_and_goes_when_that_group_goes(network: NetworkHarness) -> None:
    alice = member_headers(network)
    web, db = (create(network, "security_group", alice, name=name) for name in ("web", "db"))
    from_web = _rule(network, alice, db["id"], protocol="tcp", port_range_min=5432, port_range_max=5432,
                     remote_group_id=web["id"])
    assert from_web.status_code == 201, from_web.text
    assert from_web.json()["security_group_rule"]["remote_group_id"] == web["id"]
    assert fault(_rule(network, alice, db["id"], remote_group_id="no-such-group"), 404)["type"] == (
        "SecurityGroupNotFound")
    assert network.client.delete(f"{GROUPS}/{web['id']}", headers=alice).status_code == 204
    rules = network.client.get(f"{GROUPS}/{db['id']}", headers=alice).json()["security_group"]["security_group_rules"]
    assert all(rule["remote_group_id"] is None for rule in rules) and len(rules) == 2


def test_a_group_in_use_by_a_port_is_not_deleted_nor_made_stateless(network: NetworkHarness) -> None:
    alice = member_headers(network)
    group = create(network, "security_group", alice, name="web")
    net = create(network, "network", alice, name="net")
    with network.service.db.transaction() as session:
        port = models.Port(id=models.new_id(), project_id=group["project_id"], network_id=net["id"],
                           mac_address="fa:16:3e:00:00:01")
        session.add(port)
        session.flush()
        session.add(models.PortSecurityGroup(port_id=port.id, security_group_id=group["id"]))
    error = fault(network.client.delete(f"{GROUPS}/{group['id']}", headers=alice), 409)
    assert error["type"] == "SecurityGroupInUse" and group["id"] in error["message"]
    stateless = network.client.put(f"{GROUPS}/{group['id']}", json={"security_group": {"stateful": False}},
                                   headers=alice)
    assert fault(stateless, 409)["type"] == "SecurityGroupInUse"
    # Renaming is fine while in use.
    assert network.client.put(f"{GROUPS}/{group['id']}", json={"security_group": {"name": "www"}},
                              headers=alice).status_code == 200
    with network.service.db.transaction() as session:
        session.query(models.PortSecurityGroup).delete()
    assert network.client.delete(f"{GROUPS}/{group['id']}", headers=alice).status_code == 204


def test_another_project_neither_sees_nor_uses_a_projects_groups_and_rules(network: NetworkHarness) -> None:
    alice, bob = member_headers(network, "alice"), member_headers(network, "bob")
    group = create(network, "security_group", alice, name="private")
    rule = _rule(network, alice, group["id"], protocol="tcp", port_range_min=80, port_range_max=80).json()[
        "security_group_rule"]
    for method, url, body in (
            ("GET", f"{GROUPS}/{group['id']}", None),
            ("PUT", f"{GROUPS}/{group['id']}", {"security_group": {"name": "mine"}}),
            ("DELETE", f"{GROUPS}/{group['id']}", None),
            ("GET", f"{RULES}/{rule['id']}", None),
            ("PUT", f"{RULES}/{rule['id']}", {"security_group_rule": {"description": "mine"}}),
            ("DELETE", f"{RULES}/{rule['id']}", None)):
        response = network.client.request(method, url, json=body, headers=bob)
        assert response.status_code == 404, (method, url, response.text)
    assert fault(_rule(network, bob, group["id"], protocol="udp"), 404)["type"] == "SecurityGroupNotFound"
    bobs = create(network, "security_group", bob, name="bobs")
    use_remote = _rule(network, bob, bobs["id"], remote_group_id=group["id"])
    assert fault(use_remote, 404)["type"] == "SecurityGroupNotFound"
    assert {g["name"] for g in _groups(network, bob)} == {"default", "bobs"}
    bob_rules = network.client.get(RULES, headers=bob).json()["security_group_rules"]
    assert bob_rules and all(r["project_id"] == bobs["project_id"] for r in bob_rules)
    assert network.client.get(f"{GROUPS}?name=private", headers=bob).json()["security_groups"] == []
    # A member cannot create a group for another project; the operator can, and sees everything.
    response = network.client.post(GROUPS, json={"security_group": {"name": "x", "project_id": group["project_id"]}},
                                   headers=bob)
    assert response.status_code == 403
    admin = network.as_admin()
    for_alice = create(network, "security_group", admin, name="ops", project_id=group["project_id"])
    assert for_alice["project_id"] == group["project_id"]
    assert {"private", "bobs", "ops"} <= {g["name"] for g in _groups(network, admin)}
    assert "ops" in {g["name"] for g in _groups(network, alice)}
    unchanged = network.client.get(f"{GROUPS}/{group['id']}", headers=alice).json()["security_group"]
    assert unchanged["name"] == "private" and len(unchanged["security_group_rules"]) == 3


def test_groups_and_rules_count_against_the_projects_quotas(network: NetworkHarness) -> None:
    alice = member_headers(network)
    project = _project(network, alice)
    admin = network.as_admin()
    response = network.client.put(f"/v2.0/quotas/{project}", json={"quota": {
        "security_group": 2, "security_group_rule": 7}}, headers=admin)
    assert response.status_code == 200, response.text
    group = create(network, "security_group", alice, name="one")  # with the default group: 2 groups, 6 rules
    over = network.client.post(GROUPS, json={"security_group": {"name": "two"}}, headers=alice)
    assert fault(over, 409)["type"] == "OverQuota"
    assert _rule(network, alice, group["id"], protocol="tcp").status_code == 201
    error = fault(_rule(network, alice, group["id"], protocol="udp"), 409)
    assert error["type"] == "OverQuota" and "security_group_rule" in error["message"]
    details = network.client.get(f"/v2.0/quotas/{project}/details", headers=alice).json()["quota"]
    assert details["security_group"] == {"limit": 2, "used": 2, "reserved": 0}
    assert details["security_group_rule"] == {"limit": 7, "used": 7, "reserved": 0}


def test_the_agents_are_told_about_every_change_to_a_group(network: NetworkHarness, sent: list[Changes]) -> None:
    alice = member_headers(network)
    web = create(network, "security_group", alice, name="web")
    db = create(network, "security_group", alice, name="db")
    assert web["id"] in sent[-2].security_groups and db["id"] in sent[-1].security_groups
    sent.clear()
    rule = _rule(network, alice, db["id"], protocol="tcp", remote_group_id=web["id"]).json()["security_group_rule"]
    assert [c.security_groups for c in sent] == [{db["id"]}]
    fault(_rule(network, alice, db["id"], protocol="tcp", remote_group_id=web["id"]), 409)
    assert len(sent) == 1  # a refused change tells nobody
    assert network.client.delete(f"{RULES}/{rule['id']}", headers=alice).status_code == 204
    assert sent[-1].security_groups == {db["id"]}
    _rule(network, alice, db["id"], protocol="tcp", remote_group_id=web["id"])
    assert network.client.delete(f"{GROUPS}/{web['id']}", headers=alice).status_code == 204
    assert sent[-1].deleted_security_groups == {web["id"]} and sent[-1].security_groups == {db["id"]}


def test_listing_rules_issues_the_same_statements_for_10_and_for_300_rules(network: NetworkHarness) -> None:
    admin = network.as_admin()
    unlimited = network.client.put(f"/v2.0/quotas/{_project(network, admin)}",
                                   json={"quota": {"security_group_rule": -1}}, headers=admin)
    assert unlimited.status_code == 200, unlimited.text
    group = create(network, "security_group", admin, name="many")
    counts = {}
    for total, start in ((10, 1), (300, 9)):
        for port in range(start, total - 1):
            assert _rule(network, admin, group["id"], protocol="tcp", port_range_min=port,
                         port_range_max=port).status_code == 201
        network.client.get(RULES, headers=admin)  # warm the token cache
        with counting(network.service.db.engine) as statements:
            response = network.client.get(f"{RULES}?security_group_id={group['id']}", headers=admin)
        assert len(response.json()["security_group_rules"]) == total
        counts[total] = len(statements)
    assert counts[10] == counts[300] <= 2, counts
