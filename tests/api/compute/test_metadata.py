"""The metadata service: each guest gets its own documents, found by signed proxy headers or by its
source address, and never by what it claims about itself."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.testclient import TestClient

from stratus.compute.metadata import create_metadata_app, proxy_signature
from stratus.compute.models import Instance
from tests.conftest import ComputeHarness

SECRET = "test-metadata-secret"
USER_DATA = b"#cloud-config\nruncmd: [echo hi]\n\x00\xff binary tail"


@dataclass
class World:
    compute: ComputeHarness
    network: dict[str, Any]
    subnet: dict[str, Any]
    alice: str   # instance ids
    bob: str

    def client(self, address: str = "192.0.2.200") -> TestClient:
        return TestClient(create_metadata_app(self.compute.service, SECRET), client=(address, 40000))


def _post(compute: ComputeHarness, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    response = compute.network.client.post(f"/v2.0/{kind}s", json={kind: body}, headers=compute.as_admin())
    assert response.status_code == 201, response.text
    return response.json()[kind]  # type: ignore[no-any-return]


def _instance(compute: ComputeHarness, *, project_id: str, name: str, ips: list[str], network_id: str,
              subnet_id: str, **fields: Any) -> str:
    instance_id = str(uuid.uuid4())
    port_id = str(uuid.uuid4())
    info = [{"port_id": port_id, "network_id": network_id, "label": "private", "mac_address": "fa:16:3e:00:00:01",
             "fixed_ips": [{"ip_address": ip, "subnet_id": subnet_id} for ip in ips],
             "floating_ips": fields.pop("floating_ips", [])}]
    with compute.service.db.transaction() as session:
        session.add(Instance(id=instance_id, project_id=project_id, user_id="u", name=name, hostname=name,
                             flavor={"name": "m1.small"}, flavor_id="2", vm_state="active", network_info=info,
                             availability_zone="nova", **fields))
    return instance_id


@pytest.fixture
def world(compute: ComputeHarness) -> Iterator[World]:
    network = _post(compute, "network", {"name": "private"})
    subnet = _post(compute, "subnet", {"network_id": network["id"], "cidr": "10.0.0.0/24", "ip_version": 4,
                                       "gateway_ip": "10.0.0.1", "dns_nameservers": ["10.0.0.2", "9.9.9.9"],
                                       "host_routes": [{"destination": "192.168.0.0/16", "nexthop": "10.0.0.254"}]})
    common = {"network_id": network["id"], "subnet_id": subnet["id"]}
    alice = _instance(compute, project_id="p-alice", name="alice-vm", ips=["10.0.0.5"], key_name="alice-key",
                      key_data="ssh-ed25519 AAAAalice alice@laptop", metadata_={"role": "web"},
                      user_data=base64.b64encode(USER_DATA).decode(), security_groups=["default", "web"],
                      floating_ips=["203.0.113.7"], reservation_id="r-abc123", image_ref=str(uuid.uuid4()),
                      **common)
    bob = _instance(compute, project_id="p-bob", name="bob-vm", ips=["10.0.0.6"], **common)
    yield World(compute, network, subnet, alice, bob)


def _signed(instance_id: str, tenant: str, secret: str = SECRET) -> dict[str, str]:
    return {"X-Instance-ID": instance_id, "X-Tenant-ID": tenant,
            "X-Instance-ID-Signature": proxy_signature(secret, instance_id)}


def test_version_lists_need_no_identification(world: World) -> None:
    client = world.client()
    root = client.get("/")
    assert root.status_code == 200 and root.text.splitlines()[-2:] == ["2009-04-04", "latest"]
    versions = client.get("/openstack").text.splitlines()
    assert versions[0] == "2012-08-10" and "2018-08-27" in versions and versions[-1] == "latest"


def test_signed_headers_get_that_instances_meta_data(world: World) -> None:
    response = world.client().get("/openstack/latest/meta_data.json", headers=_signed(world.alice, "p-alice"))
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["uuid"] == world.alice and doc["name"] == "alice-vm" and doc["hostname"] == "alice-vm"
    assert doc["project_id"] == "p-alice" and doc["availability_zone"] == "nova" and doc["launch_index"] == 0
    assert doc["public_keys"] == {"alice-key": "ssh-ed25519 AAAAalice alice@laptop"}
    assert doc["keys"] == [{"name": "alice-key", "type": "ssh", "data": "ssh-ed25519 AAAAalice alice@laptop"}]
    assert doc["meta"] == {"role": "web"} and doc["devices"] == []
    assert len(base64.b64decode(doc["random_seed"])) == 512
    assert "admin_pass" not in doc
    bob = world.client().get("/openstack/latest/meta_data.json", headers=_signed(world.bob, "p-bob")).json()
    assert bob["uuid"] == world.bob and "public_keys" not in bob


def test_wrong_signature_is_403(world: World) -> None:
    client = world.client()
    headers = _signed(world.alice, "p-alice", secret="not-the-secret")
    assert client.get("/openstack/latest/meta_data.json", headers=headers).status_code == 403
    missing = {"X-Instance-ID": world.alice, "X-Tenant-ID": "p-alice"}
    assert client.get("/openstack/latest/meta_data.json", headers=missing).status_code == 403


def test_another_instances_id_with_a_borrowed_signature_gets_nothing(world: World) -> None:
    # Bob's guest knows Alice's instance id and a genuine signature (of its own id).
    headers = {"X-Instance-ID": world.alice, "X-Tenant-ID": "p-alice",
               "X-Instance-ID-Signature": proxy_signature(SECRET, world.bob)}
    response = world.client("10.0.0.6").get("/openstack/latest/meta_data.json", headers=headers)
    assert response.status_code == 403
    assert world.alice not in response.text and "alice" not in response.text


def test_signed_headers_must_name_the_instances_project(world: World) -> None:
    response = world.client().get("/openstack/latest/meta_data.json", headers=_signed(world.alice, "p-bob"))
    assert response.status_code == 404
    gone = world.client().get("/latest/meta-data/instance-id", headers=_signed(str(uuid.uuid4()), "p-alice"))
    assert gone.status_code == 404


def test_signed_headers_must_agree_with_network_and_address(world: World) -> None:
    client = world.client()
    good = {**_signed(world.alice, "p-alice"), "X-Neutron-Network-ID": world.network["id"],
            "X-Forwarded-For": "10.0.0.5"}
    assert client.get("/openstack/latest/meta_data.json", headers=good).status_code == 200
    other_net = {**good, "X-Neutron-Network-ID": str(uuid.uuid4())}
    assert client.get("/openstack/latest/meta_data.json", headers=other_net).status_code == 404
    other_ip = {**good, "X-Forwarded-For": "10.0.0.6"}
    assert client.get("/openstack/latest/meta_data.json", headers=other_ip).status_code == 404


def test_source_address_finds_the_instance(world: World) -> None:
    assert world.client("10.0.0.5").get("/openstack/latest/meta_data.json").json()["uuid"] == world.alice
    assert world.client("10.0.0.6").get("/openstack/latest/meta_data.json").json()["uuid"] == world.bob
    assert world.client("10.0.0.99").get("/openstack/latest/meta_data.json").status_code == 404


def test_forwarded_for_is_not_trusted_without_a_signature(world: World) -> None:
    response = world.client("10.0.0.99").get("/openstack/latest/meta_data.json",
                                             headers={"X-Forwarded-For": "10.0.0.5"})
    assert response.status_code == 404
    # The guest at 10.0.0.6 claiming to be 10.0.0.5 is still Bob.
    claimed = world.client("10.0.0.6").get("/latest/meta-data/instance-id", headers={"X-Forwarded-For": "10.0.0.5"})
    assert claimed.text == "i-" + world.bob.replace("-", "")[:8]


def test_an_address_two_instances_share_identifies_neither(world: World) -> None:
    _instance(world.compute, project_id="p-carol", name="carol-vm", ips=["10.0.0.6"],
              network_id=world.network["id"], subnet_id=world.subnet["id"])
    assert world.client("10.0.0.6").get("/openstack/latest/meta_data.json").status_code == 404


def test_deleted_instances_are_not_served(world: World) -> None:
    with world.compute.service.db.transaction() as session:
        row = session.get(Instance, world.bob)
        assert row is not None
        row.deleted = True
    assert world.client("10.0.0.6").get("/openstack/latest/meta_data.json").status_code == 404
    assert world.client().get("/latest/meta-data/", headers=_signed(world.bob, "p-bob")).status_code == 404


def test_user_data_round_trips(world: World) -> None:
    client = world.client("10.0.0.5")
    assert client.get("/openstack/latest/user_data").content == USER_DATA
    assert client.get("/openstack/2012-08-10/user_data").content == USER_DATA
    assert client.get("/latest/user-data").content == USER_DATA
    assert client.get("/2009-04-04/user-data").content == USER_DATA
    assert "user_data" in client.get("/openstack/latest").text.splitlines()
    bob = world.client("10.0.0.6")
    assert bob.get("/openstack/latest/user_data").status_code == 404
    assert bob.get("/latest/user-data").status_code == 404
    assert bob.get("/latest").text.splitlines() == ["meta-data/"]


def test_network_data_from_the_cache_and_the_subnet(world: World) -> None:
    response = world.client("10.0.0.5").get("/openstack/latest/network_data.json")
    assert response.status_code == 200, response.text
    doc = response.json()
    [link] = doc["links"]
    with world.compute.service.db.transaction() as session:
        row = session.get(Instance, world.alice)
        assert row is not None
        port_id = row.network_info[0]["port_id"]
    assert link == {"id": "tap" + port_id[:11], "vif_id": port_id, "type": "phy",
                    "ethernet_mac_address": "fa:16:3e:00:00:01", "mtu": world.network["mtu"]}
    [net] = doc["networks"]
    assert net["id"] == "network0" and net["link"] == link["id"] and net["network_id"] == world.network["id"]
    assert net["type"] == ("ipv4_dhcp" if world.subnet["enable_dhcp"] else "ipv4")
    assert net["ip_address"] == "10.0.0.5" and net["netmask"] == "255.255.255.0"
    assert net["routes"] == [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.0.1"},
                             {"network": "192.168.0.0", "netmask": "255.255.0.0", "gateway": "10.0.0.254"}]
    assert doc["services"] == [{"type": "dns", "address": "10.0.0.2"}, {"type": "dns", "address": "9.9.9.9"}]
    assert world.client("10.0.0.5").get("/openstack/2013-04-04/network_data.json").status_code == 404


def test_vendor_data_is_empty(world: World) -> None:
    client = world.client("10.0.0.5")
    assert client.get("/openstack/latest/vendor_data.json").json() == {}
    assert client.get("/openstack/latest/vendor_data2.json").json() == {}


def test_ec2_tree(world: World) -> None:
    client = world.client("10.0.0.5")
    listing = client.get("/latest/meta-data/").text.splitlines()
    for entry in ("ami-id", "ami-launch-index", "ami-manifest-path", "hostname", "instance-action", "instance-id",
                  "instance-type", "local-hostname", "local-ipv4", "placement/", "public-hostname", "public-ipv4",
                  "public-keys/", "reservation-id", "security-groups", "block-device-mapping/"):
        assert entry in listing
    assert client.get("/latest").text.splitlines() == ["meta-data/", "user-data"]

    def get(path: str) -> str:
        response = client.get("/latest/meta-data/" + path)
        assert response.status_code == 200, (path, response.text)
        return response.text

    assert get("instance-id") == "i-" + world.alice.replace("-", "")[:8]
    assert get("instance-type") == "m1.small" and get("hostname") == "alice-vm"
    assert get("local-ipv4") == "10.0.0.5" and get("public-ipv4") == "203.0.113.7"
    assert get("placement/") == "availability-zone" and get("placement/availability-zone") == "nova"
    assert get("security-groups").splitlines() == ["default", "web"]
    assert get("reservation-id") == "r-abc123" and get("ami-launch-index") == "0"
    assert get("public-keys/") == "0=alice-key"
    assert get("public-keys/0/") == "openssh-key"
    assert get("public-keys/0/openssh-key") == "ssh-ed25519 AAAAalice alice@laptop"
    assert client.get("/2009-04-04/meta-data/instance-type").text == "m1.small"
    assert client.get("/latest/meta-data/public-keys/0/_name").status_code == 404
    assert client.get("/latest/meta-data/nonexistent").status_code == 404


def test_unknown_versions_and_paths_are_404(world: World) -> None:
    client = world.client("10.0.0.5")
    for path in ("/openstack/2099-01-01/meta_data.json", "/2099-01-01/meta-data/", "/nothing",
                 "/openstack/latest/password", "/openstack/latest/meta_data.json/x"):
        assert client.get(path).status_code == 404, path
