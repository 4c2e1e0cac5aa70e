"""Issue 9 acceptance 1, volumes: create a volume in the dashboard, attach it to an instance, see it
in use by that instance (on the volumes list, live, and on the instance's page), detach it from the
instance's page and see it available again; axe-core on both pages while the volume is attached.
And another project's member cannot attach the admin's volume to the admin's instance."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, MEMBER_PASSWORD, DashboardCloud, axe_violations, wait_for
from tests.browser.test_dashboard_actions import _active_server
from tests.browser.test_dashboard_security import http_login


def _serious(page: Any) -> list[str]:
    return [f"{v['id']}: {v['help']}" for v in axe_violations(page) if v.get("impact") in ("critical", "serious")]


def test_create_attach_and_detach_a_volume(page: Any, dashboard_cloud: DashboardCloud) -> None:
    server_name = f"volhost-{uuid.uuid4().hex[:6]}"
    server_id = _active_server(dashboard_cloud, server_name)
    name = f"data-{uuid.uuid4().hex[:6]}"
    base = dashboard_cloud.dashboard
    page.goto(f"{base}/project/volumes")
    page.locator("#vol-name").fill(name)
    page.locator("#vol-size").fill("1")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.locator(".flash.success")).to_contain_text(f"Volume {name} is being created")
    row = page.locator(f"tr[data-volume='{name}']")
    status = row.locator("td.status")
    # No reloads from here on: the list's rows refresh themselves.
    expect(status).to_have_text("available", timeout=30000)

    row.get_by_label("Instance").select_option(label=server_name)
    row.get_by_role("button", name="Attach", exact=True).click()
    expect(page.locator(".flash.success")).to_contain_text("being attached")
    expect(status).to_have_text("in-use", timeout=30000)
    expect(row.locator("td.attached")).to_have_text(server_name)
    assert _serious(page) == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)  # the list with the volume in use (the fixture's is the end)
    page.screenshot(path=str(ARTIFACTS / "test_create_attach_and_detach_a_volume_attached.png"), full_page=True)

    # The instance's page lists the volume and detaches it.
    row.locator("td.attached").get_by_role("link", name=server_name).click()
    page.wait_for_url(re.compile(f".*/project/instances/{server_id}$"))
    attached = page.locator(f"#instance-volumes tr[data-volume='{name}']")
    expect(attached).to_be_visible()
    assert _serious(page) == []
    attached.get_by_role("button", name="Detach").click()
    expect(page.locator(".flash.success")).to_contain_text("being detached")

    page.goto(f"{base}/project/volumes")
    expect(status).to_have_text("available", timeout=30000)
    expect(row.locator("td.attached")).to_have_text("")
    page.goto(f"{base}/project/instances/{server_id}")
    expect(page.locator(f"#instance-volumes tr[data-volume='{name}']")).to_have_count(0)

    # The instance's page attaches too: choose the volume there.
    page.get_by_label("Volume to attach").select_option(label=f"{name} (1 GiB)")
    page.get_by_role("button", name="Attach volume").click()
    expect(page.locator(".flash.success")).to_contain_text("being attached")
    page.goto(f"{base}/project/volumes")
    expect(status).to_have_text("in-use", timeout=30000)
    expect(row.locator("td.attached")).to_have_text(server_name)
    row.get_by_role("button", name="Detach", exact=True).click()
    expect(status).to_have_text("available", timeout=30000)
    row.get_by_role("button", name="Delete", exact=True).click()
    expect(page.locator(f"tr[data-volume='{name}']")).to_have_count(0, timeout=30000)


def test_member_cannot_attach_another_projects_volume(dashboard_cloud: DashboardCloud) -> None:
    server_id = _active_server(dashboard_cloud, f"private-{uuid.uuid4().hex[:6]}")
    token, body = dashboard_cloud.token()
    volumes = dashboard_cloud.api(body, "volumev3")
    h = {"X-Auth-Token": token}
    made = httpx.post(f"{volumes}/volumes", headers=h, json={"volume": {"name": "admin-only-vol", "size": 1}})
    assert made.status_code == 202, made.text
    volume_id = made.json()["volume"]["id"]
    status = lambda: httpx.get(f"{volumes}/volumes/{volume_id}", headers=h).json()["volume"]["status"]  # noqa: E731
    wait_for(lambda: status() == "available")
    with httpx.Client(base_url=dashboard_cloud.dashboard) as member:
        csrf = http_login(member, "demo-member", MEMBER_PASSWORD)
        for path, field in ((f"/project/instances/{server_id}/attach_volume", {"volume_id": volume_id}),
                            (f"/project/volumes/{volume_id}/attach", {"server_id": server_id})):
            answer = member.post(path, data={"csrf_token": csrf, **field}, follow_redirects=True)
            assert answer.status_code == 200 and 'class="flash error' in answer.text, path
            assert f"Instance {server_id} could not be found" in answer.text, path  # 404: not theirs
            assert "Traceback" not in answer.text
        assert "admin-only-vol" not in member.get("/project/volumes").text
    assert status() == "available"
    assert httpx.delete(f"{volumes}/volumes/{volume_id}", headers=h).status_code == 202
