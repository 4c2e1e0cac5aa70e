"""Instance actions, snapshot and console log; security group rules; routers; image edit and delete."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.browser.conftest import DashboardCloud, wait_for


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _active_server(cloud: DashboardCloud, name: str) -> str:
    token, body = cloud.token()
    compute = cloud.api(body, "compute")
    h = {"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.53"}
    made = httpx.post(f"{compute}/servers", headers=h, json={"server": {
        "name": name, "imageRef": cloud.image_id, "flavorRef": "1", "networks": "none"}})
    assert made.status_code == 202, made.text
    server_id = made.json()["server"]["id"]
    wait_for(lambda: httpx.get(f"{compute}/servers/{server_id}", headers=h).json()["server"]["status"] == "ACTIVE")
    return str(server_id)


def test_instance_stop_start_pause_snapshot_and_console(page: Any, dashboard_cloud: DashboardCloud) -> None:
    name = unique("act")
    _active_server(dashboard_cloud, name)
    page.goto(f"{dashboard_cloud.dashboard}/project/instances")
    row = page.locator(f"tr[data-instance='{name}']")
    status = row.locator("td.status")
    for verb, shown in (("Stop", "Shutoff"), ("Start", "Active"), ("Pause", "Paused"), ("Unpause", "Active")):
        row.get_by_role("button", name=verb, exact=True).click()
        expect(page.locator(".flash.success")).to_contain_text("Requested")
        expect(status).to_have_text(re.compile(f"^{shown}"), timeout=20000)
    row.get_by_role("link", name=name).click()
    expect(page.locator("#console-log")).to_be_visible()
    snapshot = unique("snap")
    page.get_by_label("Snapshot name").fill(snapshot)
    page.get_by_role("button", name="Create snapshot").click()
    expect(page.locator(".flash.success")).to_contain_text(f"Snapshot {snapshot} is being made")
    page.goto(f"{dashboard_cloud.dashboard}/project/images")
    expect(page.locator(f"tr[data-image='{snapshot}']")).to_be_visible()
    page.goto(f"{dashboard_cloud.dashboard}/project/instances")
    page.locator(f"tr[data-instance='{name}']").get_by_role("button", name="Delete").click()
    expect(page.locator(".flash.success")).to_contain_text("being deleted")
    expect(page.locator(f"tr[data-instance='{name}']")).to_have_count(0, timeout=20000)


def test_security_group_with_a_rule(page: Any, dashboard_cloud: DashboardCloud) -> None:
    name = unique("sg")
    page.goto(f"{dashboard_cloud.dashboard}/project/security_groups")
    page.locator("#sg-name").fill(name)
    page.get_by_role("button", name="Create", exact=True).click()
    group = page.locator(f"section[data-group='{name}']")
    group.get_by_label("Protocol").select_option("tcp")
    group.get_by_label("From port").fill("22")
    group.get_by_label("Remote CIDR").fill("192.0.2.0/24")
    group.get_by_role("button", name="Add rule").click()
    expect(page.locator(".flash.success")).to_contain_text("Rule added")
    expect(group.locator("tbody")).to_contain_text("192.0.2.0/24")
    # A bad port is the API's or our message, never a crash.
    group.get_by_label("From port").fill("99999")
    group.get_by_role("button", name="Add rule").click()
    expect(page.locator(".flash.error")).to_contain_text("0 to 65535")


def test_router_with_gateway_and_interface(page: Any, dashboard_cloud: DashboardCloud) -> None:
    net = unique("rnet")
    page.goto(f"{dashboard_cloud.dashboard}/project/networks")
    page.get_by_label("Network name").fill(net)
    page.get_by_label("Subnet address (CIDR), empty for none").fill("10.88.0.0/24")
    page.get_by_role("button", name="Create", exact=True).click()
    name = unique("rtr")
    page.goto(f"{dashboard_cloud.dashboard}/project/routers")
    page.get_by_label("Router name").fill(name)
    page.get_by_label("External network").select_option(label="public")
    page.get_by_role("button", name="Create", exact=True).click()
    row = page.locator(f"tr[data-router='{name}']")
    expect(row).to_contain_text("public")
    row.get_by_label("Subnet").select_option(label=f"{net}: 10.88.0.0/24")
    row.get_by_role("button", name="Add").click()
    expect(page.locator(f"tr[data-router='{name}']")).to_contain_text("10.88.0.1")
    page.goto(f"{dashboard_cloud.dashboard}/project/topology")
    expect(page.locator(f"svg#topology g[data-router='{name}']")).to_be_visible()
    expect(page.locator("svg#topology g[data-network='public']")).to_be_visible()


def test_image_edit_and_delete(page: Any, dashboard_cloud: DashboardCloud) -> None:
    token, body = dashboard_cloud.token()
    image_url = dashboard_cloud.api(body, "image")
    name = unique("edit")
    made = httpx.post(f"{image_url}/v2/images", headers={"X-Auth-Token": token},
                      json={"name": name, "disk_format": "raw", "container_format": "bare"})
    assert made.status_code == 201, made.text
    image_id = made.json()["id"]
    page.goto(f"{dashboard_cloud.dashboard}/project/images")
    renamed = unique("renamed")
    page.locator(f"#img-name-{image_id}").fill(renamed)
    page.locator(f"#img-vis-{image_id}").select_option("shared")
    page.locator(f"tr[data-image='{name}']").get_by_role("button", name="Save").click()
    row = page.locator(f"tr[data-image='{renamed}']")
    expect(row).to_contain_text("shared")
    row.get_by_role("button", name="Delete").click()
    expect(page.locator(".flash.success")).to_contain_text("Image deleted")
    expect(page.locator(f"tr[data-image='{renamed}']")).to_have_count(0)
