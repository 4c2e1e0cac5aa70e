"""A volume's data moves between real VMs (issue 8, acceptance 2): `stratus up` with the qemu
driver and the linux data plane; server A's user_data waits for the hot-plugged /dev/vdb and writes
a pattern on it, the volume is detached and attached to server B, whose user_data reads the same
bytes back and prints them on its console.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

from tests.vm.test_openstack_vm import World, _until, world  # noqa: F401 (the fixture)

PATTERN = "stratus-volume-pattern-" + uuid.uuid4().hex[:12]

WRITER = f"""#!/bin/sh
(
    while [ ! -b /dev/vdb ]; do sleep 1; done
    printf '%s' '{PATTERN}' > /tmp/pattern
    dd if=/tmp/pattern of=/dev/vdb bs=512 conv=sync,fsync 2>/dev/null && sync
    echo "VOLTEST: written" > /dev/console
) &
"""

READER = f"""#!/bin/sh
(
    while [ ! -b /dev/vdb ]; do sleep 1; done
    echo "VOLTEST: read $(dd if=/dev/vdb bs={len(PATTERN)} count=1 2>/dev/null)" > /dev/console
) &
"""


def _console(w: World, server_id: str) -> str:
    answer = w.api("POST", "compute", f"/servers/{server_id}/action", json={"os-getConsoleOutput": {}})
    return str(answer.json().get("output", "")) if answer.status_code == 200 else ""


def _volume_status(w: World, volume_id: str) -> str | None:
    answer = w.api("GET", "block-storage", f"/volumes/{volume_id}")
    return None if answer.status_code == 404 else str(answer.json()["volume"]["status"])


def _boot(w: World, name: str, flavor: str, image: str, network: str, script: str) -> str:
    created = w.api("POST", "compute", "/servers", json={"server": {
        "name": name, "flavorRef": flavor, "imageRef": image, "networks": [{"uuid": network}],
        "user_data": base64.b64encode(script.encode()).decode()}})
    assert created.status_code == 202, created.text
    server_id = str(created.json()["server"]["id"])
    w.wait_status(server_id, "ACTIVE")
    return server_id


def _made(answer: Any, key: str) -> str:
    assert answer.status_code in (200, 201, 202), answer.text
    return str(answer.json()[key]["id"])


def test_a_pattern_written_by_one_vm_is_read_by_another(world: World) -> None:  # noqa: F811
    images = _until("image stratus-guest uploaded by stratus up",
                    lambda: [i for i in world.api("GET", "image", "/v2/images", params={"name": "stratus-guest"})
                             .json()["images"] if i["status"] == "active"], 300)
    flavor = _made(world.api("POST", "compute", "/flavors", json={"flavor": {
        "name": "m1.voltest", "vcpus": 1, "ram": 256, "disk": 1}}), "flavor")
    network = _made(world.api("POST", "network", "/v2.0/networks", json={"network": {"name": "net-vol"}}), "network")
    subnet = _made(world.api("POST", "network", "/v2.0/subnets", json={"subnet": {
        "network_id": network, "cidr": "10.0.0.0/24", "ip_version": 4, "name": "subnet-vol"}}), "subnet")
    router = _made(world.api("POST", "network", "/v2.0/routers", json={"router": {"name": "router-vol"}}), "router")
    added = world.api("PUT", "network", f"/v2.0/routers/{router}/add_router_interface", json={"subnet_id": subnet})
    assert added.status_code == 200, added.text

    writer = _boot(world, "vol-writer", flavor, images[0]["id"], network, WRITER)
    reader = _boot(world, "vol-reader", flavor, images[0]["id"], network, READER)
    volume = _made(world.api("POST", "block-storage", "/volumes",
                             json={"volume": {"size": 1, "name": "vol-data"}}), "volume")
    _until("the volume available", lambda: _volume_status(world, volume) == "available")

    attach = world.api("POST", "compute", f"/servers/{writer}/os-volume_attachments",
                       json={"volumeAttachment": {"volumeId": volume}})
    assert attach.status_code == 200, attach.text
    _until("server A wrote the pattern", lambda: "VOLTEST: written" in _console(world, writer), 180)
    detach = world.api("DELETE", "compute", f"/servers/{writer}/os-volume_attachments/{volume}")
    assert detach.status_code == 202, detach.text
    _until("the volume detached", lambda: _volume_status(world, volume) == "available")

    attach = world.api("POST", "compute", f"/servers/{reader}/os-volume_attachments",
                       json={"volumeAttachment": {"volumeId": volume}})
    assert attach.status_code == 200, attach.text
    console = _until("server B read the volume",
                     lambda: (lambda text: text if "VOLTEST: read" in text else "")(_console(world, reader)), 180)
    assert f"VOLTEST: read {PATTERN}" in console, console

    for server in (writer, reader):
        assert world.api("DELETE", "compute", f"/servers/{server}").status_code == 204
    for server in (writer, reader):
        _until(f"server {server} gone", lambda s=server: world.api("GET", "compute", f"/servers/{s}").status_code
               == 404)
    _until("the volume detached by the delete", lambda: _volume_status(world, volume) == "available")
    world.api("DELETE", "block-storage", f"/volumes/{volume}")
    _until("the volume deleted", lambda: _volume_status(world, volume) is None)
    # The network and router stay for the fixture's clean-up after the cloud stops: deleting them
    # here would leave the network agent stopping dnsmasq while the cloud is asked to stop.
