"""Admin pages, project switching and volumes in the browser."""

from __future__ import annotations

import uuid
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import DashboardCloud


def test_admin_pages_show_hosts_services_flavors_projects_and_users(page: Any,
                                                                    dashboard_cloud: DashboardCloud) -> None:
    base = dashboard_cloud.dashboard
    page.goto(f"{base}/admin/hypervisors")
    rows = page.locator("tr[data-hypervisor]")
    expect(rows).to_have_count(3)
    expect(rows.first.locator("figure.quota").first).to_contain_text("vCPUs")
    page.goto(f"{base}/admin/services")
    expect(page.locator("td", has_text="nova-compute").first).to_be_visible()
    expect(page.locator("td.status-active", has_text="Up").first).to_be_visible()
    page.goto(f"{base}/admin/identity")
    expect(page.locator("tr[data-project='demo']")).to_be_visible()
    expect(page.locator("tr[data-user='demo-member']")).to_be_visible()
    name = f"web-{uuid.uuid4().hex[:6]}"
    page.goto(f"{base}/admin/flavors")
    page.get_by_label("Name").fill(name)
    page.get_by_label("vCPUs").fill("2")
    page.get_by_label("RAM (MB)").fill("1024")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.locator(f"tr[data-flavor='{name}']")).to_contain_text("1024")
    page.goto(f"{base}/admin/instances")
    expect(page.get_by_role("heading", name="All instances")).to_be_visible()


def test_switch_project_from_the_header(page: Any, dashboard_cloud: DashboardCloud) -> None:
    page.get_by_label("Project").select_option(label="demo")  # submits itself
    expect(page.get_by_role("heading", name="Overview of demo")).to_be_visible()
    expect(page.locator(".flash.success")).to_contain_text("Now working in project demo")


def test_volume_page_creates_extends_and_snapshots_a_volume(page: Any, dashboard_cloud: DashboardCloud) -> None:
    expect(page.get_by_role("link", name="Volumes")).to_be_visible()  # the catalog has volumev3
    name = f"vol-{uuid.uuid4().hex[:6]}"
    page.goto(f"{dashboard_cloud.dashboard}/project/volumes")
    page.locator("#vol-name").fill(name)
    page.locator("#vol-size").fill("1")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.locator(".flash.success")).to_contain_text(f"Volume {name} is being created")
    row = page.locator(f"tr[data-volume='{name}']")
    for _ in range(30):  # reload until the backend has made it (test_dashboard_volumes relies on the live rows)
        if "available" in row.inner_text():
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(row).to_contain_text("available")
    row.get_by_role("button", name="Extend").click()
    expect(page.locator(".flash.success")).to_contain_text("being extended")
    for _ in range(30):
        if "2 GiB" in row.inner_text():
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(row).to_contain_text("2 GiB")
    row.get_by_role("button", name="Snapshot").click()
    expect(page.locator(".flash.success")).to_contain_text(f"Snapshot {name}-snap is being made")
    expect(page.locator("table").nth(1)).to_contain_text(f"{name}-snap")
