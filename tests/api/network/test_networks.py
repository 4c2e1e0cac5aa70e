"""Networks API: create with tenant or provider segments, show, list semantics, update, delete, isolation."""

from __future__ import annotations

from tests.api.network.helpers import create, fault, member_headers
from tests.conftest import NetworkHarness, make_network


def test_a_project_network_gets_a_vxlan_id_of_its_own_and_the_reference_fields(network: NetworkHarness) -> None:
    alice = member_headers(network)
    first = create(network, "network", alice, name="net-a")
    second = create(network, "network", alice, name="net-b")
    for net in (first, second):
        assert net["status"] == "ACTIVE" and net["admin_state_up"] is True
        assert net["shared"] is False and net["router:external"] is False
        assert net["mtu"] == 1450  # 1500 less VXLAN's 50 bytes
        assert net["port_security_enabled"] is True and net["subnets"] == []
        assert net["project_id"] == net["tenant_id"] and net["revision_number"] == 0
        assert net["created_at"].endswith("Z")
        # Provider attributes are the operator's business.
        assert "provider:network_type" not in net
    admin = network.as_admin()
    ids = {network.client.get(f"/v2.0/networks/{n['id']}", headers=admin).json()["network"]["provider:segmentation_id"]
           for n in (first, second)}
    assert len(ids) == 2 and all(isinstance(i, int) and i >= 1 for i in ids)


def test_vlan_tenant_networks_take_ids_from_the_configured_range_until_it_runs_out(
        network: NetworkHarness, database_url: str) -> None:
    vlan = make_network(network.identity, database_url, tenant_network_types="vlan",
                        vlan_ranges="physnet1:10:11")
    admin = vlan.as_admin()
    seen = set()
    for name in ("one", "two"):
        response = vlan.client.post("/v2.0/networks", json={"network": {"name": name}}, headers=admin)
        assert response.status_code == 201, response.text
        net = response.json()["network"]
        assert net["provider:network_type"] == "vlan" and net["provider:physical_network"] == "physnet1"
        assert net["mtu"] == 1500
        seen.add(net["provider:segmentation_id"])
    assert seen == {10, 11}
    error = fault(vlan.client.post("/v2.0/networks", json={"network": {"name": "three"}}, headers=admin), 409)
    assert error["type"] == "NoNetworkAvailable"
    assert len(vlan.client.get("/v2.0/networks", headers=admin).json()["networks"]) == 2
    # Deleting a network gives its id back.
    gone = vlan.client.get("/v2.0/networks?provider:segmentation_id=10", headers=admin).json()["networks"][0]
    assert vlan.client.delete(f"/v2.0/networks/{gone['id']}", headers=admin).status_code == 204
    again = vlan.client.post("/v2.0/networks", json={"network": {"name": "four"}}, headers=admin)
    assert again.status_code == 201 and again.json()["network"]["provider:segmentation_id"] == 10
    vlan.client.close()
    vlan.bus.close()
    vlan.service.db.dispose()


def test_admin_sets_provider_attributes_and_a_segment_cannot_be_used_twice(network: NetworkHarness) -> None:
    admin = network.as_admin()
    net = create(network, "network", admin, name="vlan-42", **{
        "provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 42})
    assert (net["provider:network_type"], net["provider:physical_network"], net["provider:segmentation_id"]) == (
        "vlan", "physnet1", 42)
    same = {"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 42}
    assert fault(network.client.post("/v2.0/networks", json={"network": {"name": "dup", **same}}, headers=admin),
                 409)["type"] == "SegmentInUse"
    flat = create(network, "network", admin, name="public", **{
        "provider:network_type": "flat", "provider:physical_network": "public", "router:external": True})
    assert flat["provider:segmentation_id"] is None and flat["router:external"] is True
    assert network.client.post("/v2.0/networks", json={"network": {
        "provider:network_type": "flat", "provider:physical_network": "public"}}, headers=admin).status_code == 409
    for bad in ({"provider:network_type": "gre"},
                {"provider:network_type": "vlan"},
                {"provider:network_type": "vlan", "provider:physical_network": "nowhere"},
                {"provider:network_type": "vlan", "provider:physical_network": "physnet1",
                 "provider:segmentation_id": 4095},
                {"provider:network_type": "flat", "provider:physical_network": "physnet1",
                 "provider:segmentation_id": 3},
                {"provider:network_type": "vxlan", "provider:physical_network": "physnet1"}):
        response = network.client.post("/v2.0/networks", json={"network": bad}, headers=admin)
        assert fault(response, 400)["type"] == "InvalidInput", bad
    names = {n["name"] for n in network.client.get("/v2.0/networks", headers=admin).json()["networks"]}
    assert names == {"vlan-42", "public"}


def test_only_an_admin_sets_provider_shared_or_external(network: NetworkHarness) -> None:
    alice = member_headers(network)
    for extra in ({"provider:network_type": "vxlan"}, {"shared": True}, {"router:external": True}):
        response = network.client.post("/v2.0/networks", json={"network": {"name": "x", **extra}}, headers=alice)
        assert response.status_code == 403, extra
    own = create(network, "network", alice, name="mine")
    response = network.client.put(f"/v2.0/networks/{own['id']}", json={"network": {"shared": True}}, headers=alice)
    assert response.status_code == 403
    assert network.client.get("/v2.0/networks", headers=alice).json()["networks"][0]["shared"] is False


def test_private_networks_are_invisible_to_other_projects_but_shared_and_external_ones_are_not(
        network: NetworkHarness) -> None:
    admin, alice, bob = network.as_admin(), member_headers(network, "alice"), member_headers(network, "bob")
    private = create(network, "network", alice, name="alice-private")
    shared = create(network, "network", admin, name="shared", shared=True)
    external = create(network, "network", admin, name="ext", **{"router:external": True})
    create(network, "network", admin, name="admin-private")
    seen = {n["name"] for n in network.client.get("/v2.0/networks", headers=bob).json()["networks"]}
    assert seen == {"shared", "ext"}
    for method, body in (("GET", None), ("PUT", {"network": {"name": "stolen"}}), ("DELETE", None)):
        response = network.client.request(method, f"/v2.0/networks/{private['id']}", json=body, headers=bob)
        assert fault(response, 404)["type"] == "NetworkNotFound", method
    # Seeing a shared network is not owning it.
    assert network.client.put(f"/v2.0/networks/{shared['id']}", json={"network": {"name": "mine"}},
                              headers=bob).status_code == 403
    assert network.client.delete(f"/v2.0/networks/{external['id']}", headers=bob).status_code == 403
    assert network.client.get(f"/v2.0/networks/{private['id']}", headers=alice).json()["network"]["name"] == \
        "alice-private"


def test_list_filters_fields_sorting_and_pages(network: NetworkHarness) -> None:
    admin = network.as_admin()
    made = [create(network, "network", admin, name=f"net-{i}", admin_state_up=i % 2 == 0) for i in range(5)]
    get = network.client.get

    def names(query: str) -> list[str]:
        response = get(f"/v2.0/networks?{query}", headers=admin)
        assert response.status_code == 200, response.text
        return [n["name"] for n in response.json()["networks"]]

    assert names("name=net-1&name=net-3&sort_key=name") == ["net-1", "net-3"]
    assert names("admin_state_up=false&sort_key=name&sort_dir=desc") == ["net-3", "net-1"]
    assert names("admin_state_up=True&sort_key=name") == ["net-0", "net-2", "net-4"]
    only = get("/v2.0/networks?fields=id&fields=name&name=net-0", headers=admin).json()["networks"]
    assert only == [{"id": made[0]["id"], "name": "net-0"}]
    page = get("/v2.0/networks?sort_key=name&limit=2", headers=admin).json()
    assert [n["name"] for n in page["networks"]] == ["net-0", "net-1"]
    next_link = next(link["href"] for link in page["networks_links"] if link["rel"] == "next")
    rest = get(next_link.replace("http://testserver", ""), headers=admin).json()
    assert [n["name"] for n in rest["networks"]] == ["net-2", "net-3"]
    for bad in ("nonsense=1", "admin_state_up=maybe", "mtu=big", "sort_key=nonsense", "limit=-1",
                "sort_key=name&sort_dir=sideways"):
        assert get(f"/v2.0/networks?{bad}", headers=admin).status_code == 400, bad
    assert get(f"/v2.0/networks?marker={made[0]['id']}x&limit=1", headers=admin).status_code == 404


def test_update_changes_what_was_asked_and_bumps_the_revision(network: NetworkHarness) -> None:
    alice = member_headers(network)
    net = create(network, "network", alice, name="before")
    response = network.client.put(f"/v2.0/networks/{net['id']}", json={"network": {
        "name": "after", "description": "d", "admin_state_up": False, "mtu": 1400, "port_security_enabled": False}},
        headers=alice)
    assert response.status_code == 200, response.text
    updated = response.json()["network"]
    assert (updated["name"], updated["description"], updated["admin_state_up"], updated["mtu"],
            updated["port_security_enabled"]) == ("after", "d", False, 1400, False)
    assert updated["revision_number"] == 1
    for bad in ({"mtu": 9000}, {"mtu": 10}, {"provider:segmentation_id": 5}, {"id": "x"}, {"status": "DOWN"},
                {"admin_state_up": "sideways"}):
        response = network.client.put(f"/v2.0/networks/{net['id']}", json={"network": bad}, headers=alice)
        assert response.status_code == 400, (bad, response.text)
    assert network.client.get(f"/v2.0/networks/{net['id']}", headers=alice).json()["network"]["revision_number"] == 1


def test_bad_bodies_are_refused_and_create_nothing(network: NetworkHarness) -> None:
    admin = network.as_admin()
    for body in ({}, {"network": {"nonsense": 1}}, {"network": {"name": 5}}, {"network": {"name": "x" * 256}},
                 {"networks": {"name": "x"}}, {"network": {"mtu": 9999}}):
        response = network.client.post("/v2.0/networks", json=body, headers=admin)
        assert response.status_code == 400, (body, response.text)
        assert "NeutronError" in response.json()
    response = network.client.post("/v2.0/networks", content=b"{not json", headers={
        **admin, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert network.client.get("/v2.0/networks", headers=admin).json()["networks"] == []


def test_discovery_and_extensions(network: NetworkHarness) -> None:
    root = network.client.get("/")
    assert root.status_code == 200 and root.json()["versions"][0]["id"] == "v2.0"
    assert network.client.get("/v2.0/networks").status_code == 401
    admin = network.as_admin()
    aliases = {e["alias"] for e in network.client.get("/v2.0/extensions", headers=admin).json()["extensions"]}
    assert {"provider", "external-net", "router", "security-group", "quotas", "binding"} <= aliases
    assert network.client.get("/v2.0/extensions/provider", headers=admin).json()["extension"]["alias"] == "provider"
    assert network.client.get("/v2.0/extensions/nonsense", headers=admin).status_code == 404
