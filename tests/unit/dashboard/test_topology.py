"""The topology picture's layout: which networks are drawn and where each port's line goes."""

from __future__ import annotations

from stratus.dashboard.topology import layout


def test_layout_links_routers_and_servers_to_their_networks() -> None:
    networks = [{"id": "n-ext", "name": "public", "router:external": True},
                {"id": "n-priv", "name": "private"},
                {"id": "n-unused-ext", "name": "other-public", "router:external": True}]
    subnets = [{"network_id": "n-priv", "cidr": "10.0.0.0/24"}, {"network_id": "n-ext", "cidr": "203.0.113.0/24"}]
    routers = [{"id": "r1", "name": "edge", "external_gateway_info": {"network_id": "n-ext"}}]
    servers = [{"id": "s1", "name": "web", "status": "ACTIVE"}]
    ports = [{"device_id": "r1", "network_id": "n-priv", "fixed_ips": [{"ip_address": "10.0.0.1"}]},
             {"device_id": "r1", "network_id": "n-ext", "fixed_ips": [{"ip_address": "203.0.113.5"}]},
             {"device_id": "s1", "network_id": "n-priv", "fixed_ips": [{"ip_address": "10.0.0.7"}]}]
    picture = layout(networks, subnets, routers, servers, ports)
    # External networks nothing uses are left out; external ones come first.
    assert [b.name for b in picture.bars] == ["public", "private"]
    assert picture.bars[1].cidrs == "10.0.0.0/24"
    rows = {b.name: b.y for b in picture.bars}
    router, server = picture.boxes
    assert (router.kind, server.kind) == ("router", "server")
    assert sorted(router.links) == sorted([(rows["private"], "10.0.0.1"), (rows["public"], "203.0.113.5")])
    assert server.links == [(rows["private"], "10.0.0.7")]
    assert server.x > router.x and picture.width >= server.x + picture.box_w


def test_layout_of_an_empty_project() -> None:
    picture = layout([], [], [], [], [])
    assert picture.bars == [] and picture.boxes == [] and picture.width > 0 and picture.height > 0
