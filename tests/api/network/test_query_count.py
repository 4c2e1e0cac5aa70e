"""Lists cost a constant number of SQL statements, whatever the number of rows they return."""

from __future__ import annotations

import pytest

from stratus.network import models
from tests.api.network.helpers import counting
from tests.conftest import NetworkHarness


def _fill(network: NetworkHarness, project_id: str, first: int, count: int) -> None:
    """`count` networks (a subnet each), ports (an address and a group each) and groups (two rules each)."""
    with network.service.db.transaction() as session:
        for i in range(first, first + count):
            net = models.Network(id=models.new_id(), project_id=project_id, name=f"n{i}", network_type="local")
            subnet = models.Subnet(id=models.new_id(), project_id=project_id, network_id=net.id,
                                   cidr="10.0.0.0/16", gateway_ip="10.0.0.1",
                                   allocation_pools=[{"start": "10.0.0.2", "end": "10.0.255.254"}])
            group = models.SecurityGroup(id=models.new_id(), project_id=project_id, name=f"g{i}")
            rules = [models.SecurityGroupRule(id=models.new_id(), project_id=project_id, security_group_id=group.id,
                                              direction=direction, ethertype="IPv4", fingerprint=direction)
                     for direction in ("ingress", "egress")]
            port = models.Port(id=models.new_id(), project_id=project_id, network_id=net.id,
                               mac_address=f"fa:16:3e:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}")
            session.add_all([net, subnet, group, *rules, port])
            session.flush()
            session.add_all([models.IPAllocation(subnet_id=subnet.id, ip_address=f"10.0.{i >> 8 & 255}.{i & 255}",
                                                 port_id=port.id, network_id=net.id),
                             models.PortSecurityGroup(port_id=port.id, security_group_id=group.id)])


@pytest.mark.parametrize("collection", ["networks", "ports", "security-groups"])
def test_a_list_issues_the_same_statements_for_10_and_for_1000_rows(network: NetworkHarness, collection: str) -> None:
    admin = network.as_admin()
    project_id = network.identity.service.config.bootstrap.admin_project  # any project id will do
    counts, filled = {}, 0
    for total in (10, 1000):
        _fill(network, project_id, filled, total - filled)
        filled = total
        network.client.get(f"/v2.0/{collection}", headers=admin)  # warm: token cache, default group
        with counting(network.service.db.engine) as statements:
            response = network.client.get(f"/v2.0/{collection}", headers=admin)
        assert response.status_code == 200, response.text
        key = collection.replace("-", "_")
        assert len(response.json()[key]) >= total
        counts[total] = len(statements)
    assert counts[10] == counts[1000], counts
    assert counts[1000] <= 6, counts
