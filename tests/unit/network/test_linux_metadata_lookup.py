"""The conductor call a metadata proxy makes: which instance holds an address on a network."""

from __future__ import annotations

from stratus.network.conductor import Conductor
from tests.api.network.helpers import create, member_headers
from tests.conftest import NetworkHarness


def test_find_instance_port_by_network_and_address(network: NetworkHarness) -> None:
    headers = member_headers(network)
    net = create(network, "network", headers, name="n")
    other = create(network, "network", headers, name="other")
    # No DHCP: its port would take a random pool address, maybe the one asked for below.
    sub = create(network, "subnet", headers, network_id=net["id"], cidr="10.0.0.0/24", ip_version=4,
                 enable_dhcp=False)
    create(network, "subnet", headers, network_id=other["id"], cidr="10.0.0.0/24", ip_version=4, enable_dhcp=False)
    vm = create(network, "port", headers, network_id=net["id"], device_owner="compute:nova", device_id="vm-1",
                fixed_ips=[{"subnet_id": sub["id"], "ip_address": "10.0.0.5"}])
    create(network, "port", headers, network_id=net["id"], device_owner="network:router_interface",
           device_id="router-1", fixed_ips=[{"subnet_id": sub["id"], "ip_address": "10.0.0.1"}])
    conductor = Conductor(network.service.db)
    found = conductor.find_instance_port(net["id"], "10.0.0.5")
    assert found == {"port_id": vm["id"], "instance_id": "vm-1", "project_id": vm["project_id"]}
    assert conductor.find_instance_port(other["id"], "10.0.0.5") is None  # same address, other network
    assert conductor.find_instance_port(net["id"], "10.0.0.1") is None  # a router, not an instance
    assert conductor.find_instance_port(net["id"], "10.0.0.9") is None
