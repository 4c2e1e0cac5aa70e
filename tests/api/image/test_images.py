"""Image metadata API: create, show, list (filters, sorting, pages), JSON patch, delete, actions, tags."""

from __future__ import annotations

import uuid
from typing import Any

from stratus.image.models import Image
from tests.api.identity.helpers import MEMBER_PASSWORD, add_member
from tests.conftest import ImageHarness, make_image

PATCH = "application/openstack-images-v2.1-json-patch"


def member_headers(image: ImageHarness, name: str = "alice") -> dict[str, str]:
    add_member(image.identity, name, f"{name}-project")
    return {"X-Auth-Token": image.identity.token(name, MEMBER_PASSWORD, f"{name}-project")}


def create(image: ImageHarness, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = image.client.post("/v2/images", json={"disk_format": "qcow2", "container_format": "bare", **fields},
                                 headers=headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def patch(image: ImageHarness, image_id: str, ops: list[dict[str, Any]], headers: dict[str, str],
          media_type: str = PATCH) -> Any:
    return image.client.patch(f"/v2/images/{image_id}", json=ops, headers={**headers, "Content-Type": media_type})


def message(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == status
    return body["message"]  # type: ignore[no-any-return]


def test_create_returns_the_glance_view_with_custom_properties(image: ImageHarness) -> None:
    admin = image.as_admin()
    image_id = str(uuid.uuid4())
    response = image.client.post("/v2/images", headers=admin, json={
        "id": image_id, "name": "cirros", "disk_format": "qcow2", "container_format": "bare", "min_ram": 64,
        "min_disk": 1, "tags": ["t1", "t2"], "os_distro": "cirros", "protected": False})
    assert response.status_code == 201, response.text
    assert response.headers["Location"].endswith(f"/v2/images/{image_id}")
    view = response.json()
    assert set(view) == {"id", "name", "status", "visibility", "protected", "os_hidden", "checksum", "os_hash_algo",
                         "os_hash_value", "owner", "size", "virtual_size", "min_disk", "min_ram", "container_format",
                         "disk_format", "created_at", "updated_at", "tags", "self", "file", "schema", "os_distro"}
    assert view["id"] == image_id and view["status"] == "queued" and view["visibility"] == "shared"
    assert view["min_ram"] == 64 and view["tags"] == ["t1", "t2"] and view["os_distro"] == "cirros"
    assert view["self"] == f"/v2/images/{image_id}" and view["file"] == f"/v2/images/{image_id}/file"
    assert view["schema"] == "/v2/schemas/image" and view["size"] is None and view["checksum"] is None
    assert len(view["created_at"]) == 20 and view["created_at"].endswith("Z")
    assert image.client.get(f"/v2/images/{image_id}", headers=admin).json() == view
    assert "already exists" in message(image.client.post("/v2/images", json={"id": image_id}, headers=admin), 409)


BAD_VALUES = [
    {"disk_format": "exe"}, {"container_format": "zip"}, {"visibility": "everyone"}, {"min_ram": -1},
    {"min_disk": "1"}, {"protected": "yes"}, {"tags": "t"}, {"tags": ["x" * 256]}, {"name": "n" * 256},
    {"os_distro": 5}, {"id": "not-a-uuid"},
]
# Attributes the service computes (read-only) and those kept for itself (reserved).
REFUSED = {"status": "read-only", "size": "read-only", "checksum": "read-only", "created_at": "read-only",
           "self": "read-only", "file": "read-only", "schema": "read-only", "direct_url": "read-only",
           "location": "reserved", "os_glance_x": "reserved"}


def test_create_rejects_bad_values_and_refused_attributes(image: ImageHarness) -> None:
    for fields in BAD_VALUES:
        message(image.client.post("/v2/images", json=fields, headers=image.as_admin()), 400)
    for name, word in REFUSED.items():
        text = message(image.client.post("/v2/images", json={name: "x"}, headers=image.as_admin()), 403)
        assert text == f"Attribute '{name}' is {word}."
    assert image.client.get("/v2/images", headers=image.as_admin()).json()["images"] == []


def test_only_admin_publicizes_and_members_cannot_create_for_others(image: ImageHarness) -> None:
    alice = member_headers(image)
    message(image.client.post("/v2/images", json={"visibility": "public"}, headers=alice), 403)
    message(image.client.post("/v2/images", json={"owner": "someone-else"}, headers=alice), 403)
    own = create(image, alice, visibility="community")
    message(patch(image, own["id"], [{"op": "replace", "path": "/visibility", "value": "public"}], alice), 403)
    assert create(image, image.as_admin(), visibility="public")["visibility"] == "public"


def test_image_count_quota_is_413(identity: Any, database_url: str) -> None:
    image = make_image(identity, database_url, quota_images=1)
    try:
        create(image, image.as_admin())
        message(image.client.post("/v2/images", json={"name": "two"}, headers=image.as_admin()), 413)
        assert len(image.client.get("/v2/images", headers=image.as_admin()).json()["images"]) == 1
    finally:
        image.client.close()
        image.service.db.dispose()


def test_other_projects_cannot_see_change_or_delete_a_private_image(image: ImageHarness) -> None:
    private = create(image, image.as_admin(), visibility="private")["id"]
    alice = member_headers(image)
    assert image.client.get(f"/v2/images/{private}", headers=alice).status_code == 404
    assert patch(image, private, [{"op": "replace", "path": "/name", "value": "x"}], alice).status_code == 404
    assert image.client.delete(f"/v2/images/{private}", headers=alice).status_code == 404
    assert image.client.put(f"/v2/images/{private}/tags/t", headers=alice).status_code == 404
    assert image.client.post(f"/v2/images/{private}/actions/deactivate", headers=alice).status_code == 404
    assert image.client.get("/v2/images", headers=alice).json()["images"] == []
    # Visible but not owned: 403.
    public = create(image, image.as_admin(), visibility="public")["id"]
    message(patch(image, public, [{"op": "replace", "path": "/name", "value": "x"}], alice), 403)
    message(image.client.delete(f"/v2/images/{public}", headers=alice), 403)


def test_patch_operations_on_core_attributes_tags_and_properties(image: ImageHarness) -> None:
    admin = image.as_admin()
    image_id = create(image, admin, name="old", k1="v1", k2="v2")["id"]
    response = patch(image, image_id, [
        {"op": "replace", "path": "/name", "value": "new"}, {"op": "replace", "path": "/min_ram", "value": 128},
        {"op": "add", "path": "/protected", "value": True}, {"op": "add", "path": "/tags", "value": ["a", "b"]},
        {"op": "add", "path": "/k3", "value": "v3"}, {"op": "replace", "path": "/k1", "value": "w1"},
        {"op": "remove", "path": "/k2"}, {"op": "add", "path": "/a~1b", "value": "slash"}], admin)
    assert response.status_code == 200, response.text
    view = response.json()
    assert (view["name"], view["min_ram"], view["protected"], view["tags"]) == ("new", 128, True, ["a", "b"])
    assert view["k1"] == "w1" and view["k3"] == "v3" and "k2" not in view and view["a/b"] == "slash"
    assert image.client.get(f"/v2/images/{image_id}", headers=admin).json() == view
    # The older 2.0 dialect names the operation as the key.
    old = patch(image, image_id, [{"replace": "/name", "value": "v20"}], admin,
                "application/openstack-images-v2.0-json-patch")
    assert old.status_code == 200 and old.json()["name"] == "v20"


BAD_PATCHES: list[tuple[Any, int]] = [
    ([{"op": "replace", "path": "/status", "value": "active"}], 403),
    ([{"op": "replace", "path": "/size", "value": 5}], 403),
    ([{"op": "add", "path": "/location", "value": "file:///etc/passwd"}], 403),
    ([{"op": "remove", "path": "/name"}], 403),
    ([{"op": "remove", "path": "/nope"}], 409),
    ([{"op": "replace", "path": "/nope", "value": "x"}], 409),
    ([{"op": "replace", "path": "/min_ram", "value": -5}], 400),
    ([{"op": "replace", "path": "/disk_format", "value": "exe"}], 400),
    ([{"op": "add", "path": "/k", "value": 5}], 400),
    ([{"op": "move", "path": "/name", "from": "/x"}], 400),
    ([{"op": "add", "path": "/tags/0", "value": "x"}], 400),
    ([{"op": "add", "path": "/k"}], 400),
    ({"op": "add", "path": "/k", "value": "v"}, 400),
    # One bad operation spoils the whole patch.
    ([{"op": "replace", "path": "/name", "value": "ok"}, {"op": "replace", "path": "/id", "value": "x"}], 403),
]


def test_bad_patches_are_refused_and_change_nothing(image: ImageHarness) -> None:
    admin = image.as_admin()
    before = create(image, admin, name="keep")
    for ops, status in BAD_PATCHES:
        message(patch(image, before["id"], ops, admin), status)
    assert image.client.get(f"/v2/images/{before['id']}", headers=admin).json() == before


def test_patch_needs_the_json_patch_media_type(image: ImageHarness) -> None:
    image_id = create(image, image.as_admin())["id"]
    ops = [{"op": "replace", "path": "/name", "value": "x"}]
    message(patch(image, image_id, ops, image.as_admin(), "application/json"), 415)


def test_delete_is_refused_while_protected_and_removes_the_data(image: ImageHarness) -> None:
    admin = image.as_admin()
    image_id = create(image, admin, protected=True)["id"]
    message(image.client.delete(f"/v2/images/{image_id}", headers=admin), 403)
    assert patch(image, image_id, [{"op": "replace", "path": "/protected", "value": False}], admin).status_code == 200
    writer = image.service.store.writer(image_id)
    writer.write(b"data")
    location = writer.commit()
    with image.service.db.transaction() as session:
        row = session.get(Image, image_id)
        assert row is not None
        row.location, row.status = location, "active"
    assert image.client.delete(f"/v2/images/{image_id}", headers=admin).status_code == 204
    assert image.client.get(f"/v2/images/{image_id}", headers=admin).status_code == 404
    assert not (image.service.store.root / location).exists()  # type: ignore[attr-defined]
    assert image.client.delete(f"/v2/images/{image_id}", headers=admin).status_code == 404


def test_deactivate_and_reactivate(image: ImageHarness) -> None:
    admin = image.as_admin()
    image_id = create(image, admin)["id"]
    message(image.client.post(f"/v2/images/{image_id}/actions/deactivate", headers=admin), 403)  # still queued
    with image.service.db.transaction() as session:
        row = session.get(Image, image_id)
        assert row is not None
        row.status = "active"
    assert image.client.post(f"/v2/images/{image_id}/actions/deactivate", headers=admin).status_code == 204
    assert image.client.get(f"/v2/images/{image_id}", headers=admin).json()["status"] == "deactivated"
    assert image.client.post(f"/v2/images/{image_id}/actions/reactivate", headers=admin).status_code == 204
    assert image.client.get(f"/v2/images/{image_id}", headers=admin).json()["status"] == "active"


def test_tags_put_and_delete(image: ImageHarness) -> None:
    admin = image.as_admin()
    image_id = create(image, admin, tags=["a"])["id"]
    assert image.client.put(f"/v2/images/{image_id}/tags/b", headers=admin).status_code == 204
    assert image.client.put(f"/v2/images/{image_id}/tags/b", headers=admin).status_code == 204
    assert image.client.get(f"/v2/images/{image_id}", headers=admin).json()["tags"] == ["a", "b"]
    assert image.client.delete(f"/v2/images/{image_id}/tags/a", headers=admin).status_code == 204
    message(image.client.delete(f"/v2/images/{image_id}/tags/a", headers=admin), 404)
    message(image.client.put(f"/v2/images/{image_id}/tags/{'x' * 256}", headers=admin), 400)
    assert image.client.get(f"/v2/images/{image_id}", headers=admin).json()["tags"] == ["b"]


def test_list_filters(image: ImageHarness) -> None:
    admin = image.as_admin()
    a = create(image, admin, name="a", visibility="public", tags=["x", "y"], k="1", min_ram=1)["id"]
    b = create(image, admin, name="b", visibility="private", tags=["x"], disk_format="raw", protected=True)["id"]
    c = create(image, admin, name="c", os_hidden=True)["id"]
    d = create(image, admin, name="d", visibility="community")["id"]

    def ids(query: str) -> set[str]:
        response = image.client.get(f"/v2/images?{query}", headers=admin)
        assert response.status_code == 200, response.text
        return {i["id"] for i in response.json()["images"]}

    assert ids("") == {a, b}  # hidden and community images stay out of the default list
    assert ids("os_hidden=true") == {c}
    assert ids("visibility=community") == {d}
    assert ids("visibility=private") == {b}
    assert ids("visibility=all") == {a, b, d}
    assert ids("name=a") == {a} and ids("name=in:a,b") == {a, b}
    assert ids("tag=x") == {a, b} and ids("tag=x&tag=y") == {a}
    assert ids("disk_format=raw") == {b} and ids("container_format=bare") == {a, b}
    assert ids("protected=true") == {b} and ids("protected=false") == {a}
    assert ids("status=queued") == {a, b} and ids("status=active") == set()
    assert ids("k=1") == {a} and ids("size_min=1") == set()
    assert ids(f"owner={create(image, admin)['owner']}") >= {a, b}
    assert ids("created_at=gte:2000-01-01T00:00:00Z") >= {a, b} and ids("created_at=lt:2000-01-01T00:00:00Z") == set()
    for bad in ("visibility=everyone", "protected=maybe", "size_min=big", "member_status=x", "limit=-1",
                "limit=x", "sort_key=nope", "sort_dir=up", "sort=name&sort_key=name", "marker=unknown",
                "created_at=after:2000-01-01"):
        message(image.client.get(f"/v2/images?{bad}", headers=admin), 400)


def test_list_sorting_and_pagination(image: ImageHarness) -> None:
    admin = image.as_admin()
    made = [create(image, admin, name=name, min_ram=ram)["id"] for name, ram in (("b", 2), ("a", 2), ("c", 1))]
    by_name = made[1], made[0], made[2]

    def names(query: str) -> list[str]:
        return [i["name"] for i in image.client.get(f"/v2/images?{query}", headers=admin).json()["images"]]

    assert names("sort_key=name&sort_dir=asc") == ["a", "b", "c"]
    assert names("sort=name:desc") == ["c", "b", "a"]
    assert names("sort=min_ram:asc,name:asc") == ["c", "a", "b"]
    assert names("sort_key=min_ram&sort_key=name&sort_dir=desc&sort_dir=asc") == ["a", "b", "c"]
    first = image.client.get("/v2/images?sort_key=name&sort_dir=asc&limit=2", headers=admin).json()
    assert [i["id"] for i in first["images"]] == list(by_name[:2])
    assert first["first"] == "/v2/images?sort_key=name&sort_dir=asc&limit=2"
    assert first["schema"] == "/v2/schemas/images"
    assert first["next"] == f"/v2/images?sort_key=name&sort_dir=asc&limit=2&marker={by_name[1]}"
    second = image.client.get(first["next"], headers=admin).json()
    assert [i["id"] for i in second["images"]] == [by_name[2]] and "next" not in second
