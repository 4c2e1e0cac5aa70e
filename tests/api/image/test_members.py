"""Image members: the owner shares a `shared` image; the member's list shows it only once accepted."""

from __future__ import annotations

from typing import Any

from tests.api.image.test_images import create, member_headers, message
from tests.conftest import ImageHarness


def listed(image: ImageHarness, headers: dict[str, str], query: str = "") -> set[str]:
    response = image.client.get(f"/v2/images?{query}", headers=headers)
    assert response.status_code == 200, response.text
    return {i["id"] for i in response.json()["images"]}


def project_of(image: ImageHarness, headers: dict[str, str]) -> str:
    return create(image, headers, name="probe")["owner"]  # type: ignore[no-any-return]


def test_member_flow_accept_then_reject(image: ImageHarness) -> None:
    owner, bob = member_headers(image, "alice"), member_headers(image, "bob")
    bob_project = project_of(image, bob)
    image_id = create(image, owner, name="shared-one")["id"]
    members = f"/v2/images/{image_id}/members"
    added = image.client.post(members, json={"member": bob_project}, headers=owner)
    assert added.status_code == 200, added.text
    view = added.json()
    assert set(view) == {"created_at", "image_id", "member_id", "schema", "status", "updated_at"}
    assert (view["image_id"], view["member_id"], view["status"]) == (image_id, bob_project, "pending")
    assert view["schema"] == "/v2/schemas/member"
    message(image.client.post(members, json={"member": bob_project}, headers=owner), 409)

    assert image_id not in listed(image, bob)  # pending: visible by id, not listed
    assert image.client.get(f"/v2/images/{image_id}", headers=bob).status_code == 200
    assert image_id in listed(image, bob, "visibility=shared&member_status=pending")
    message(image.client.put(f"{members}/{bob_project}", json={"status": "accepted"}, headers=owner), 403)
    accepted = image.client.put(f"{members}/{bob_project}", json={"status": "accepted"}, headers=bob)
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    assert image_id in listed(image, bob) and image_id in listed(image, bob, "visibility=shared")
    assert image.client.put(f"{members}/{bob_project}", json={"status": "rejected"}, headers=bob).status_code == 200
    assert image_id not in listed(image, bob)
    message(image.client.put(f"{members}/{bob_project}", json={"status": "maybe"}, headers=bob), 400)


def test_member_views_and_removal(image: ImageHarness) -> None:
    owner, bob, carol = (member_headers(image, n) for n in ("alice", "bob", "carol"))
    bob_project, carol_project = project_of(image, bob), project_of(image, carol)
    image_id = create(image, owner)["id"]
    members = f"/v2/images/{image_id}/members"
    for project in (bob_project, carol_project):
        assert image.client.post(members, json={"member": project}, headers=owner).status_code == 200
    everyone = image.client.get(members, headers=owner).json()
    assert everyone["schema"] == "/v2/schemas/members"
    assert {m["member_id"] for m in everyone["members"]} == {bob_project, carol_project}
    assert [m["member_id"] for m in image.client.get(members, headers=bob).json()["members"]] == [bob_project]
    assert image.client.get(f"{members}/{bob_project}", headers=bob).json()["status"] == "pending"
    message(image.client.get(f"{members}/{carol_project}", headers=bob), 404)
    message(image.client.post(members, json={"member": "x"}, headers=bob), 403)  # not the owner
    message(image.client.delete(f"{members}/{bob_project}", headers=bob), 403)
    assert image.client.delete(f"{members}/{bob_project}", headers=owner).status_code == 204
    message(image.client.get(f"/v2/images/{image_id}", headers=bob), 404)
    message(image.client.delete(f"{members}/{bob_project}", headers=owner), 404)


def test_only_shared_images_take_members(image: ImageHarness) -> None:
    admin = image.as_admin()
    for visibility in ("private", "public", "community"):
        image_id = create(image, admin, visibility=visibility)["id"]
        message(image.client.post(f"/v2/images/{image_id}/members", json={"member": "p"}, headers=admin), 403)
    image_id = create(image, admin)["id"]
    bodies: list[Any] = [{}, {"member": 5}, [], {"member": ""}]
    for body in bodies:
        message(image.client.post(f"/v2/images/{image_id}/members", json=body, headers=admin), 400)


def test_other_projects_cannot_list_members_of_a_private_image(image: ImageHarness) -> None:
    image_id = create(image, image.as_admin(), visibility="private")["id"]
    bob = member_headers(image, "bob")
    message(image.client.get(f"/v2/images/{image_id}/members", headers=bob), 404)


def test_schemas_describe_images_and_members(image: ImageHarness) -> None:
    headers: dict[str, Any] = image.as_admin()
    schema = image.client.get("/v2/schemas/image", headers=headers).json()
    assert schema["name"] == "image" and schema["additionalProperties"] == {"type": "string"}
    assert {"id", "name", "status", "visibility", "tags", "os_hash_value", "self"} <= set(schema["properties"])
    assert schema["properties"]["status"]["readOnly"] is True
    images = image.client.get("/v2/schemas/images", headers=headers).json()
    assert images["properties"]["images"]["items"]["name"] == "image"
    member = image.client.get("/v2/schemas/member", headers=headers).json()
    assert member["properties"]["status"]["enum"] == ["pending", "accepted", "rejected"]
    members = image.client.get("/v2/schemas/members", headers=headers).json()
    assert members["properties"]["members"]["items"]["name"] == "member"
    assert image.client.get("/v2/schemas/image").status_code == 401
