"""`stratus up` with the linux data plane: the default networks, made through the network API."""

from __future__ import annotations

from stratus.network.dataplane.linux.seed import ensure_networks
from tests.conftest import NetworkHarness


def test_default_networks_are_made_once(network: NetworkHarness) -> None:
    headers = network.as_admin()
    projects = network.identity.client.get("/v3/projects", params={"name": "admin"}, headers=headers).json()
    admin_project = projects["projects"][0]["id"]
    ensure_networks(network.client, headers, admin_project, "172.24.4.0/24")
    ensure_networks(network.client, headers, admin_project, "172.24.4.0/24")  # a restart: nothing new
    nets = {n["name"]: n for n in network.client.get("/v2.0/networks", headers=headers).json()["networks"]}
    assert set(nets) == {"public", "private"}
    assert nets["public"]["router:external"] is True
    assert nets["public"]["provider:physical_network"] == "public"
    assert nets["private"]["project_id"] == admin_project
    subnets = network.client.get("/v2.0/subnets", headers=headers).json()["subnets"]
    assert sorted(s["cidr"] for s in subnets) == ["10.0.0.0/24", "172.24.4.0/24"]
    public_subnet = next(s for s in subnets if s["cidr"] == "172.24.4.0/24")
    assert public_subnet["gateway_ip"] == "172.24.4.1" and public_subnet["enable_dhcp"] is False
    routers = network.client.get("/v2.0/routers", headers=headers).json()["routers"]
    assert len(routers) == 1
    assert routers[0]["external_gateway_info"]["network_id"] == nets["public"]["id"]
    interfaces = network.client.get("/v2.0/ports", headers=headers, params={
        "device_id": routers[0]["id"], "network_id": nets["private"]["id"]}).json()["ports"]
    assert len(interfaces) == 1
