"""The dashboard's main journeys in Chromium: launch an instance, key pairs, networks and topology,
floating IPs, image upload, object containers, logout; and axe-core on every main page."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, DashboardCloud, axe_violations, login, wait_for

MAIN_PAGES = ["/project/", "/project/instances", "/project/images", "/project/key_pairs", "/project/networks",
              "/project/topology", "/project/routers", "/project/security_groups", "/project/floating_ips",
              "/project/containers", "/project/volumes", "/admin/hypervisors", "/admin/services", "/admin/flavors",
              "/admin/identity", "/admin/instances", "/auth/login"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def test_login_shows_the_overview_with_quota_charts(page: Any, dashboard_cloud: DashboardCloud) -> None:
    expect(page.get_by_role("heading", name="Overview of admin")).to_be_visible()
    charts = page.locator("figure.quota figcaption")
    expect(charts.first).to_be_visible()
    captions = " ".join(charts.all_inner_texts())
    for label in ("Instances", "vCPUs", "RAM", "Floating IPs", "Security groups"):
        assert label in captions
    expect(page.get_by_role("heading", name="Usage summary")).to_be_visible()


def test_launch_instance_from_the_dialog_becomes_active(page: Any, dashboard_cloud: DashboardCloud) -> None:
    name = unique("web")
    page.goto(f"{dashboard_cloud.dashboard}/project/instances")
    page.get_by_role("button", name="Launch instance").click()
    dialog = page.locator("#launch-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Instance name").fill(name)
    dialog.get_by_label("Image").select_option(label="tiny-guest")
    dialog.get_by_label("Flavor").select_option(index=0)
    dialog.get_by_label("User data (cloud-init)").fill("#cloud-config\nhostname: web\n")
    dialog.get_by_role("button", name="Launch", exact=True).click()
    expect(page.locator(".flash.success")).to_contain_text(f"Launching instance {name}")
    row = page.locator(f"tr[data-instance='{name}']")
    # The status cell changes by the page's own polling, without a reload.
    expect(row.locator("td.status")).to_have_text(re.compile("^Active"), timeout=30000)
    row.get_by_role("link", name=name).click()
    expect(page.locator("#console-log")).to_be_visible()


def test_launch_works_without_scripts(browser: Any, dashboard_cloud: DashboardCloud) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        login(page, dashboard_cloud.dashboard)
        page.goto(f"{dashboard_cloud.dashboard}/project/instances")
        page.get_by_role("button", name="Launch instance").click()
        page.wait_for_url(re.compile(r".*/project/instances/launch$"))
        name = unique("nojs")
        page.get_by_label("Instance name").fill(name)
        page.get_by_label("Image").select_option(label="tiny-guest")
        page.get_by_role("button", name="Launch", exact=True).click()
        page.wait_for_url(re.compile(r".*/project/instances$"))
        expect(page.locator(".flash.success")).to_contain_text(f"Launching instance {name}")
        expect(page.locator(f"tr[data-instance='{name}']")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "test_launch_works_without_scripts.png"), full_page=True)
    finally:
        context.close()


def test_create_key_pair_downloads_the_private_key_once(page: Any, dashboard_cloud: DashboardCloud) -> None:
    name = unique("key")
    page.goto(f"{dashboard_cloud.dashboard}/project/key_pairs")
    page.locator("#kp-name").fill(name)
    with page.expect_download() as info:
        page.get_by_role("button", name="Create and download").click()
    download = info.value
    assert download.suggested_filename == f"{name}.pem"
    key = Path(download.path()).read_text()
    assert "PRIVATE KEY" in key
    page.goto(f"{dashboard_cloud.dashboard}/project/key_pairs")
    expect(page.locator(f"tr[data-keypair='{name}']")).to_be_visible()
    # The key is in no page the dashboard serves.
    assert key.strip().splitlines()[1] not in page.content()


def test_create_network_with_subnet_appears_in_topology(page: Any, dashboard_cloud: DashboardCloud) -> None:
    name = unique("net")
    page.goto(f"{dashboard_cloud.dashboard}/project/networks")
    page.get_by_label("Network name").fill(name)
    page.get_by_label("Subnet address (CIDR), empty for none").fill("10.42.0.0/24")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.locator(".flash.success")).to_contain_text("with subnet 10.42.0.0/24")
    expect(page.locator(f"tr[data-network='{name}']")).to_contain_text("10.42.0.0/24")
    page.goto(f"{dashboard_cloud.dashboard}/project/topology")
    bar = page.locator(f"svg#topology g[data-network='{name}']")
    expect(bar).to_contain_text("10.42.0.0/24")


def _instance_on_routed_network(cloud: DashboardCloud) -> str:
    """An instance on a project network routed to the public one (set up over the APIs)."""
    token, body = cloud.token()
    h = {"X-Auth-Token": token}
    net_url, compute_url = cloud.api(body, "network"), cloud.api(body, "compute")
    net = httpx.post(f"{net_url}/v2.0/networks", headers=h, json={"network": {"name": unique("fipnet")}}).json()
    subnet = httpx.post(f"{net_url}/v2.0/subnets", headers=h, json={"subnet": {
        "network_id": net["network"]["id"], "cidr": "10.77.0.0/24", "ip_version": 4}}).json()
    router = httpx.post(f"{net_url}/v2.0/routers", headers=h, json={"router": {
        "name": unique("rt"), "external_gateway_info": {"network_id": cloud.external_network}}}).json()
    added = httpx.put(f"{net_url}/v2.0/routers/{router['router']['id']}/add_router_interface", headers=h,
                      json={"subnet_id": subnet["subnet"]["id"]})
    assert added.status_code == 200, added.text
    name = unique("fipvm")
    server = httpx.post(f"{compute_url}/servers", headers={**h, "OpenStack-API-Version": "compute 2.53"}, json={
        "server": {"name": name, "imageRef": cloud.image_id, "flavorRef": "1",
                   "networks": [{"uuid": net["network"]["id"]}]}})
    assert server.status_code == 202, server.text
    server_id = server.json()["server"]["id"]
    wait_for(lambda: httpx.get(f"{compute_url}/servers/{server_id}", headers=h).json()["server"]["status"]
             == "ACTIVE")
    return name


def test_allocate_and_associate_floating_ip(page: Any, dashboard_cloud: DashboardCloud) -> None:
    name = _instance_on_routed_network(dashboard_cloud)
    page.goto(f"{dashboard_cloud.dashboard}/project/floating_ips")
    page.get_by_label("Pool (external network)").select_option(label="public")
    page.get_by_role("button", name="Allocate").click()
    flash = page.locator(".flash.success")
    expect(flash).to_contain_text("Allocated 203.0.113.")
    address = re.search(r"203\.0\.113\.\d+", flash.inner_text()).group(0)  # type: ignore[union-attr]
    row = page.locator(f"tr[data-fip='{address}']")
    port = row.locator("option", has_text=f"{name}: ").get_attribute("value")
    row.get_by_label("Instance").select_option(value=port)
    row.get_by_role("button", name="Associate").click()
    expect(page.locator(".flash.success")).to_contain_text(f"{address} now reaches 10.77.0.")
    expect(page.locator(f"tr[data-fip='{address}'] td.mapped")).to_contain_text(name)


def test_upload_image_with_progress(page: Any, dashboard_cloud: DashboardCloud, tmp_path: Path) -> None:
    name = unique("img")
    data = tmp_path / "disk.raw"
    data.write_bytes(b"\x00" * (3 * 1024 * 1024))
    page.goto(f"{dashboard_cloud.dashboard}/project/images")
    form = page.locator("#image-upload")
    form.get_by_label("Name").fill(name)
    form.get_by_label("Image file").set_input_files(str(data))
    form.get_by_label("Disk format").select_option("raw")
    form.get_by_role("button", name="Upload").click()
    row = page.locator(f"tr[data-image='{name}']")
    expect(row).to_contain_text("active")
    expect(row).to_contain_text("3.1 MB")


def test_create_container_upload_and_download_a_file(page: Any, dashboard_cloud: DashboardCloud,
                                                     tmp_path: Path) -> None:
    name = unique("box")
    page.goto(f"{dashboard_cloud.dashboard}/project/containers")
    page.get_by_label("Container name").fill(name)
    page.get_by_role("button", name="Create", exact=True).click()
    page.locator(f"tr[data-container='{name}'] a").click()
    payload = tmp_path / "notes.txt"
    payload.write_text("hello from the dashboard\n" * 100)
    page.get_by_label("File", exact=True).set_input_files(str(payload))
    page.get_by_role("button", name="Upload").click()
    row = page.locator("tr[data-object='notes.txt']")
    expect(row).to_be_visible()
    with page.expect_download() as info:
        row.get_by_role("link", name="Download").click()
    assert Path(info.value.path()).read_text() == payload.read_text()


def test_logout_ends_the_session(page: Any, dashboard_cloud: DashboardCloud) -> None:
    cookie = next(c for c in page.context.cookies() if c["name"] == "stratus_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r".*/auth/login$"))
    # The old cookie, replayed, opens nothing.
    replay = httpx.get(f"{dashboard_cloud.dashboard}/project/instances",
                       cookies={"stratus_session": cookie["value"]})
    assert replay.status_code == 303 and replay.headers["location"].startswith("/auth/login")


def test_main_pages_pass_axe_and_label_every_field(page: Any, dashboard_cloud: DashboardCloud) -> None:
    problems = {}
    for path in MAIN_PAGES:
        if path == "/auth/login":
            page.get_by_role("button", name="Log out").click()
            page.wait_for_url(re.compile(r".*/auth/login$"))
        else:
            response = page.goto(f"{dashboard_cloud.dashboard}{path}")
            assert response.status == 200, (path, response.status, page.inner_text("main"))
        critical = [v["id"] for v in axe_violations(page) if v["impact"] == "critical"]
        unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
            .filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
            .map(e => e.name || e.id)""")
        if critical or unlabelled:
            problems[path] = {"critical": critical, "unlabelled": unlabelled}
    assert not problems, problems
