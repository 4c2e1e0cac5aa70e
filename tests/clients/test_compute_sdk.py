"""openstacksdk's compute proxy against a running `stratus up`: create, wait, delete a server."""

from __future__ import annotations

import openstack
import pytest
from openstack.connection import Connection

from tests.clients.conftest import unique

pytestmark = [pytest.mark.filterwarnings("ignore::openstack.warnings._RemovedInSDKWarning"),
              pytest.mark.filterwarnings("ignore::openstack.warnings.OpenStackDeprecationWarning")]


def test_sdk_create_wait_and_delete_server(conn: Connection) -> None:
    image = conn.image.create_image(name=unique("sdk-boot"), data=bytes(65536), disk_format="raw",
                                    container_format="bare")
    network = conn.network.create_network(name=unique("sdk-net"))
    conn.network.create_subnet(network_id=network.id, cidr="10.79.0.0/24", ip_version=4)
    flavor = next(f for f in conn.compute.flavors() if f.name == "m1.tiny")
    server = conn.compute.create_server(name=unique("sdk-vm"), image_id=image.id, flavor_id=flavor.id,
                                        networks=[{"uuid": network.id}])
    server = conn.compute.wait_for_server(server, status="ACTIVE", wait=60)
    assert server.status == "ACTIVE" and server.flavor.original_name == "m1.tiny"
    assert any(addr["addr"].startswith("10.79.0.") for addr in server.addresses[network.name])
    ports = list(conn.network.ports(device_id=server.id))
    assert len(ports) == 1
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=60)
    assert list(conn.network.ports(device_id=server.id)) == []
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.compute.get_server(server.id)
