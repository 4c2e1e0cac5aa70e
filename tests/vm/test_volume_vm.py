"""Volumes on real VMs through `stratus up` with the qemu driver: a server booted from a volume
made from the guest image (no image disk of its own: the console's boot marker comes from the
volume), a second volume hot-plugged into it and unplugged (seen in the VM's QMP block devices),
and on delete the root volume goes (delete_on_termination) while the data volume stays.

The compute host is named differently from the storage node, so the volumes reach QEMU as NBD
exports. No network (`networks: none`), so the guest cannot be told to write to the disk; what
the guest writes on an attached volume is the real-VM end-to-end tests' part.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from stratus.compute.drivers.qemu import qmp
from stratus.compute.drivers.qemu.spec import InstanceDir
from tests.clients.conftest import Cloud
from tests.vm.test_qemu_cloud import Api, _until, qemu_cloud  # noqa: F401 (the fixture)
from tests.vm.test_qemu_driver import MARKER

VOLUME_API = {"OpenStack-API-Version": "volume 3.44"}


class Volumes:
    def __init__(self, cloud: Cloud, api: Api) -> None:
        _token, body = cloud.admin_token()
        self.api = api
        self.url = next(e["url"] for s in body["catalog"] if s["type"] == "block-storage"
                        for e in s["endpoints"] if e["interface"] == "public").rstrip("/")

    def get(self, volume_id: str) -> dict[str, Any] | None:
        answer = self.api.call("GET", f"{self.url}/volumes/{volume_id}", headers=VOLUME_API)
        return None if answer.status_code == 404 else answer.json()["volume"]  # type: ignore[no-any-return]

    def status(self, volume_id: str) -> str | None:
        doc = self.get(volume_id)
        return None if doc is None else str(doc["status"])


def _block_nodes(instances: Path, server_id: str) -> set[str]:
    with qmp.connect(InstanceDir(instances, server_id).qmp_socket) as monitor:
        return {node["node-name"] for node in monitor.execute("query-named-block-nodes")}


def test_boot_from_volume_and_hot_plug_a_volume_on_a_real_vm(qemu_cloud: tuple[Cloud, Path, str]) -> None:  # noqa: F811
    cloud, instances, _host = qemu_cloud
    guest = cloud.guest  # type: ignore[attr-defined]
    api = Api(cloud)
    volumes = Volumes(cloud, api)
    name = f"bfv-{uuid.uuid4().hex[:6]}"
    kernel = api.upload(guest.kernel, name=f"{name}-kernel", disk_format="aki", container_format="aki")
    ramdisk = api.upload(guest.initrd, name=f"{name}-ramdisk", disk_format="ari", container_format="ari")
    image = api.upload(guest.disk, name=name, disk_format="qcow2", container_format="bare", kernel_id=kernel,
                       ramdisk_id=ramdisk, os_command_line=guest.cmdline, hw_machine_type=guest.machine)
    flavor = api.call("POST", f"{api.compute}/flavors", json={"flavor": {"name": name, "vcpus": 1, "ram": 192,
                                                                         "disk": 0}})
    assert flavor.status_code == 200, flavor.text

    created = api.call("POST", f"{api.compute}/servers", json={"server": {
        "name": name, "flavorRef": flavor.json()["flavor"]["id"], "networks": "none",
        "block_device_mapping_v2": [{"boot_index": 0, "source_type": "image", "uuid": image,
                                     "destination_type": "volume", "volume_size": 1,
                                     "delete_on_termination": True}]}})
    assert created.status_code == 202, created.text
    server_id = created.json()["server"]["id"]
    server = _until("the server ACTIVE", lambda: (s := api.server(server_id).json()["server"])["status"] == "ACTIVE"
                    and s, timeout=300)
    root_volume = server["os-extended-volumes:volumes_attached"][0]["id"]
    assert volumes.status(root_volume) == "in-use"
    started = time.monotonic()
    _until("the boot marker on the console", lambda: MARKER in api.console(server_id))
    print(f"\nboot from volume (NBD root): ACTIVE to '{MARKER}' {time.monotonic() - started:.1f} s")
    where = InstanceDir(instances, server_id)
    assert not (where.path / "disk").exists()  # the root disk is the volume, not an image overlay
    root = next(v for v in where.load().volumes if v.name == "vda")
    assert root.boot and root.blockdev["file"]["driver"] == "nbd"  # exported by the storage node

    made = api.call("POST", f"{volumes.url}/volumes", headers=VOLUME_API, json={"volume": {"size": 1,
                                                                                          "name": f"{name}-data"}})
    assert made.status_code == 202, made.text
    data_volume = made.json()["volume"]["id"]
    _until("the data volume available", lambda: volumes.status(data_volume) == "available")
    attached = api.call("POST", f"{api.compute}/servers/{server_id}/os-volume_attachments",
                        json={"volumeAttachment": {"volumeId": data_volume}})
    assert attached.status_code == 200, attached.text
    assert attached.json()["volumeAttachment"]["device"] == "/dev/vdb"
    _until("the data volume in use", lambda: volumes.status(data_volume) == "in-use")
    assert "vol-vdb" in _block_nodes(instances, server_id)

    detached = api.call("DELETE", f"{api.compute}/servers/{server_id}/os-volume_attachments/{data_volume}")
    assert detached.status_code == 202, detached.text
    _until("the data volume available again", lambda: volumes.status(data_volume) == "available")
    assert "vol-vdb" not in _block_nodes(instances, server_id)

    assert api.call("DELETE", f"{api.compute}/servers/{server_id}").status_code == 204
    _until("the server gone", lambda: api.server(server_id).status_code == 404)
    _until("the root volume deleted with the server", lambda: volumes.status(root_volume) is None)
    assert volumes.status(data_volume) == "available"
    api.call("DELETE", f"{volumes.url}/volumes/{data_volume}", headers=VOLUME_API)
    _until("the data volume deleted", lambda: volumes.status(data_volume) is None)
