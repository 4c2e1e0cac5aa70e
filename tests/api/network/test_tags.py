"""Tags API on every taggable collection: replace, list, confirm, add, remove one, remove all;
validation; 404 for what the caller cannot see and 403 for what it sees but does not own."""

from __future__ import annotations

from typing import Any

import pytest

from stratus.network import models
from tests.api.network.helpers import create, fault, member_headers
from tests.conftest import NetworkHarness

COLLECTIONS = ("networks", "subnets", "ports", "routers", "floatingips", "security-groups")
NOT_FOUND = {"networks": "NetworkNotFound", "subnets": "SubnetNotFound", "ports": "PortNotFound",
             "routers": "RouterNotFound", "floatingips": "FloatingIPNotFound",
             "security-groups": "SecurityGroupNotFound"}


def _resources(network: NetworkHarness, headers: dict[str, str], **network_fields: Any) -> dict[str, str]:
    """One resource of each collection owned by the caller's project; collection -> id."""
    net = create(network, "network", headers, name="net", **network_fields)
    group = create(network, "security_group", headers, name="web")
    project = net["project_id"]
    with network.service.db.transaction() as session:
        subnet = models.Subnet(id=models.new_id(), project_id=project, network_id=net["id"], cidr="10.0.0.0/24")
        port = models.Port(id=models.new_id(), project_id=project, network_id=net["id"],
                           mac_address=f"fa:16:3e:{models.new_id()[:2]}:{models.new_id()[:2]}:01")
        fip_port = models.Port(id=models.new_id(), project_id=project, network_id=net["id"],
                               mac_address=f"fa:16:3e:{models.new_id()[:2]}:{models.new_id()[:2]}:02",
                               device_owner="network:floatingip")
        router = models.Router(id=models.new_id(), project_id=project, name="r")
        session.add_all([subnet, port, fip_port, router])
        session.flush()
        fip = models.FloatingIP(id=models.new_id(), project_id=project, floating_network_id=net["id"],
                                floating_ip_address="10.0.0.99", floating_port_id=fip_port.id)
        session.add(fip)
    return {"networks": net["id"], "subnets": subnet.id, "ports": port.id, "routers": router.id,
            "floatingips": fip.id, "security-groups": group["id"]}


def _tags_row(network: NetworkHarness, collection: str, resource_id: str) -> tuple[list[str], int]:
    model: Any = {"networks": models.Network, "subnets": models.Subnet, "ports": models.Port, "routers": models.Router,
             "floatingips": models.FloatingIP, "security-groups": models.SecurityGroup}[collection]
    with network.service.db.transaction() as session:
        row = session.get(model, resource_id)
        assert row is not None
        return list(row.tags), row.revision_number


@pytest.mark.parametrize("collection", COLLECTIONS)
def test_tags_are_replaced_listed_confirmed_added_and_removed(network: NetworkHarness, collection: str) -> None:
    alice = member_headers(network)
    resource = _resources(network, alice)[collection]
    url = f"/v2.0/{collection}/{resource}/tags"
    replaced = network.client.put(url, json={"tags": ["red", "blue"]}, headers=alice)
    assert replaced.status_code == 200 and replaced.json() == {"tags": ["red", "blue"]}
    assert network.client.get(url, headers=alice).json() == {"tags": ["red", "blue"]}
    assert network.client.get(f"{url}/red", headers=alice).status_code == 204
    assert fault(network.client.get(f"{url}/green", headers=alice), 404)["type"] == "TagNotFound"
    added = network.client.put(f"{url}/green", headers=alice)
    assert added.status_code == 201 and added.content == b""
    assert network.client.put(f"{url}/green", headers=alice).status_code == 201  # already there: no twin
    assert network.client.get(url, headers=alice).json() == {"tags": ["red", "blue", "green"]}
    assert network.client.delete(f"{url}/red", headers=alice).status_code == 204
    assert fault(network.client.delete(f"{url}/red", headers=alice), 404)["type"] == "TagNotFound"
    assert _tags_row(network, collection, resource) == (["blue", "green"], 3)
    assert network.client.delete(url, headers=alice).status_code == 204
    assert network.client.get(url, headers=alice).json() == {"tags": []}
    assert _tags_row(network, collection, resource)[0] == []


def test_tags_show_on_the_resource_and_filter_lists(network: NetworkHarness) -> None:
    alice = member_headers(network)
    ids = _resources(network, alice)
    other = create(network, "network", alice, name="other")
    network.client.put(f"/v2.0/networks/{ids['networks']}/tags", json={"tags": ["prod", "eu"]}, headers=alice)
    network.client.put(f"/v2.0/networks/{other['id']}/tags", json={"tags": ["dev", "eu"]}, headers=alice)
    shown = network.client.get(f"/v2.0/networks/{ids['networks']}", headers=alice).json()["network"]
    assert shown["tags"] == ["prod", "eu"] and shown["revision_number"] == 1

    def names(query: str) -> set[str]:
        return {n["name"] for n in network.client.get(f"/v2.0/networks?{query}", headers=alice).json()["networks"]}

    assert names("tags=eu") == {"net", "other"}
    assert names("tags=prod,eu") == {"net"}
    assert names("tags-any=prod,dev") == {"net", "other"}
    assert names("not-tags=prod") == {"other"}
    network.client.put(f"/v2.0/security-groups/{ids['security-groups']}/tags/web", headers=alice)
    groups = network.client.get("/v2.0/security-groups?tags=web", headers=alice).json()["security_groups"]
    assert [g["id"] for g in groups] == [ids["security-groups"]] and groups[0]["tags"] == ["web"]


@pytest.mark.parametrize("body", [
    {"tags": ["x" * 256]}, {"tags": ["a", "a"]}, {"tags": "a"}, {"tags": [1]}, {"tag": ["a"]}, ["a"],
])
def test_bad_tags_are_refused_and_change_nothing(network: NetworkHarness, body: Any) -> None:
    alice = member_headers(network)
    net = create(network, "network", alice, name="net")
    url = f"/v2.0/networks/{net['id']}/tags"
    network.client.put(url, json={"tags": ["keep"]}, headers=alice)
    assert fault(network.client.put(url, json=body, headers=alice), 400)
    assert fault(network.client.put(f"{url}/{'y' * 256}", headers=alice), 400)["type"] == "InvalidInput"
    assert network.client.put(f"{url}/{'z' * 255}", headers=alice).status_code == 201
    assert network.client.get(url, headers=alice).json() == {"tags": ["keep", "z" * 255]}


def test_another_project_cannot_see_nor_tag_a_projects_resources(network: NetworkHarness) -> None:
    alice, bob = member_headers(network, "alice"), member_headers(network, "bob")
    ids = _resources(network, alice)
    for collection, resource in ids.items():
        url = f"/v2.0/{collection}/{resource}/tags"
        network.client.put(url, json={"tags": ["alice"]}, headers=alice)
        for method, path in (("GET", url), ("PUT", f"{url}/bob"), ("DELETE", url), ("GET", f"{url}/alice"),
                             ("DELETE", f"{url}/alice")):
            error = fault(network.client.request(method, path, headers=bob), 404)
            assert error["type"] == NOT_FOUND[collection], (method, path)
        assert fault(network.client.put(url, json={"tags": []}, headers=bob), 404)
        assert _tags_row(network, collection, resource)[0] == ["alice"]
        # The operator may tag anything.
        assert network.client.put(f"{url}/ops", headers=network.as_admin()).status_code == 201
    assert fault(network.client.get(f"/v2.0/routers/{models.new_id()}/tags", headers=alice),
                 404)["type"] == "RouterNotFound"


def test_a_shared_networks_tags_are_read_by_all_and_changed_only_by_its_owner(network: NetworkHarness) -> None:
    admin, bob = network.as_admin(), member_headers(network, "bob")
    ids = _resources(network, admin, shared=True)
    for collection in ("networks", "subnets"):
        url = f"/v2.0/{collection}/{ids[collection]}/tags"
        assert network.client.put(url, json={"tags": ["public"]}, headers=admin).status_code == 200
        assert network.client.get(url, headers=bob).json() == {"tags": ["public"]}
        assert network.client.get(f"{url}/public", headers=bob).status_code == 204
        assert network.client.put(f"{url}/mine", headers=bob).status_code == 403
        assert network.client.delete(url, headers=bob).status_code == 403
        assert network.client.put(url, json={"tags": []}, headers=bob).status_code == 403
        assert _tags_row(network, collection, ids[collection])[0] == ["public"]
    # The ports of a shared network are still their owner's.
    assert fault(network.client.get(f"/v2.0/ports/{ids['ports']}/tags", headers=bob), 404)["type"] == "PortNotFound"
