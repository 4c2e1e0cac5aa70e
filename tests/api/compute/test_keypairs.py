"""Keypairs: generate (private key returned once), import, show, delete, pages (2.35), another
user's keypairs for the operator (2.10), duplicates, the per-user quota, and isolation."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization

from tests.api.compute.servers_helpers import tenant
from tests.api.identity.helpers import MEMBER_PASSWORD, add_member
from tests.conftest import ComputeHarness, make_compute
from tests.unit.compute.test_keypair_fingerprints import ED25519, RSA


def v(version: str, headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "OpenStack-API-Version": f"compute {version}"}


def create(compute: ComputeHarness, headers: dict[str, str], expect: int = 201, version: str = "2.53",
           **fields: Any) -> dict[str, Any]:
    response = compute.client.post("/v2.1/os-keypairs", json={"keypair": fields}, headers=v(version, headers))
    assert response.status_code == expect, response.text
    return response.json()  # type: ignore[no-any-return]


def message(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    (body,) = response.json().values()
    return body["message"]  # type: ignore[no-any-return]


def test_generated_key_comes_back_once_with_its_private_key(compute: ComputeHarness) -> None:
    alice = tenant(compute, "alice", network=False)
    made = create(compute, alice.headers, name="gen")["keypair"]
    assert set(made) == {"name", "public_key", "fingerprint", "user_id", "type", "private_key"}
    assert made["type"] == "ssh" and made["public_key"].startswith("ssh-rsa ")
    key = serialization.load_pem_private_key(made["private_key"].encode(), password=None)
    ours = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    assert made["public_key"].startswith(ours.decode())
    shown = compute.client.get("/v2.1/os-keypairs/gen", headers=alice.headers).json()["keypair"]
    assert "private_key" not in shown
    assert shown["fingerprint"] == made["fingerprint"] and shown["public_key"] == made["public_key"]
    assert set(shown) == {"name", "public_key", "fingerprint", "type", "user_id", "deleted", "created_at",
                          "updated_at", "deleted_at", "id"}
    assert shown["deleted"] is False and shown["user_id"] == made["user_id"]


def test_import_keeps_the_key_and_computes_nova_fingerprint(compute: ComputeHarness) -> None:
    alice = tenant(compute, "alice", network=False)
    made = create(compute, alice.headers, name="mine", public_key=ED25519)["keypair"]
    assert "private_key" not in made
    assert made["fingerprint"] == "75:15:43:51:32:ec:45:df:d9:1a:bf:88:24:27:b4:8a"
    assert made["public_key"] == ED25519
    assert "failed to generate fingerprint" in message(compute.client.post(
        "/v2.1/os-keypairs", json={"keypair": {"name": "bad", "public_key": "ssh-rsa nonsense"}},
        headers=alice.headers), 400)


def test_x509_keypair_is_a_certificate_with_sha1_fingerprint(compute: ComputeHarness) -> None:
    alice = tenant(compute, "alice", network=False)
    made = create(compute, alice.headers, name="cert", type="x509")["keypair"]
    assert made["type"] == "x509" and made["public_key"].startswith("-----BEGIN CERTIFICATE-----")
    assert len(made["fingerprint"].split(":")) == 20
    create(compute, alice.headers, expect=400, version="2.1", name="old", type="x509")


def test_codes_and_fields_follow_the_microversion(compute: ComputeHarness) -> None:
    alice = tenant(compute, "alice", network=False)
    old = create(compute, alice.headers, expect=200, version="2.1", name="k21", public_key=RSA)["keypair"]
    assert "type" not in old
    listed = compute.client.get("/v2.1/os-keypairs", headers=v("2.1", alice.headers)).json()["keypairs"]
    assert listed == [{"keypair": {"name": "k21", "public_key": RSA, "fingerprint": old["fingerprint"]}}]
    assert compute.client.delete("/v2.1/os-keypairs/k21", headers=v("2.1", alice.headers)).status_code == 202
    create(compute, alice.headers, name="k22", public_key=RSA)
    assert compute.client.delete("/v2.1/os-keypairs/k22", headers=alice.headers).status_code == 204
    assert "Keypair k22 not found for user" in message(
        compute.client.delete("/v2.1/os-keypairs/k22", headers=alice.headers), 404)


def test_duplicates_bad_names_and_bodies(compute: ComputeHarness) -> None:
    alice = tenant(compute, "alice", network=False)
    create(compute, alice.headers, name="dup", public_key=ED25519)
    assert "Key pair 'dup' already exists." == message(compute.client.post(
        "/v2.1/os-keypairs", json={"keypair": {"name": "dup", "public_key": ED25519}},
        headers=alice.headers), 409)
    bodies: list[dict[str, Any]] = [{"keypair": {"name": "a.b"}}, {"keypair": {"name": ""}}, {"keypair": {}},
                                    {"keypair": {"name": "x", "colour": "red"}},
                                    {"keypair": {"name": "x", "type": "pgp"}}, {"name": "x"},
                                    {"keypair": {"name": "x", "public_key": 5}}]
    for body in bodies:
        response = compute.client.post("/v2.1/os-keypairs", json=body, headers=alice.headers)
        assert response.status_code == 400, (body, response.text)


def test_pages_by_name_from_235(compute: ComputeHarness) -> None:
    alice = tenant(compute, "alice", network=False)
    for name in ("c", "a", "d", "b"):
        create(compute, alice.headers, name=name, public_key=ED25519)
    first = compute.client.get("/v2.1/os-keypairs?limit=2", headers=v("2.35", alice.headers)).json()
    assert [k["keypair"]["name"] for k in first["keypairs"]] == ["a", "b"]
    (link,) = first["keypairs_links"]
    assert link["rel"] == "next" and "/v2.1/os-keypairs?" in link["href"] and "marker=b" in link["href"]
    rest = compute.client.get(link["href"], headers=v("2.35", alice.headers)).json()
    assert [k["keypair"]["name"] for k in rest["keypairs"]] == ["c", "d"]
    assert "keypairs_links" in rest  # a full page always carries a next link, as Nova's
    empty = compute.client.get("/v2.1/os-keypairs?limit=2&marker=d", headers=v("2.35", alice.headers)).json()
    assert empty == {"keypairs": []}
    assert "Marker zz could not be found." in message(compute.client.get(
        "/v2.1/os-keypairs?marker=zz", headers=v("2.35", alice.headers)), 400)
    unpaged = compute.client.get("/v2.1/os-keypairs?limit=1", headers=v("2.34", alice.headers)).json()
    assert len(unpaged["keypairs"]) == 4 and "keypairs_links" not in unpaged


def test_keypairs_are_private_to_their_user(compute: ComputeHarness) -> None:
    alice = tenant(compute, "alice", network=False)
    bob = tenant(compute, "bob", network=False)
    made = create(compute, alice.headers, name="alices", public_key=ED25519)["keypair"]
    assert compute.client.get("/v2.1/os-keypairs", headers=bob.headers).json() == {"keypairs": []}
    message(compute.client.get("/v2.1/os-keypairs/alices", headers=bob.headers), 404)
    message(compute.client.delete("/v2.1/os-keypairs/alices", headers=bob.headers), 404)
    # From 2.10 the operator names the user; a member may not.
    message(compute.client.get(f"/v2.1/os-keypairs/alices?user_id={made['user_id']}",
                               headers=v("2.10", bob.headers)), 403)
    message(compute.client.post("/v2.1/os-keypairs", json={"keypair": {"name": "x", "user_id": made["user_id"]}},
                                headers=v("2.10", bob.headers)), 403)
    admin = v("2.10", compute.as_admin())
    shown = compute.client.get(f"/v2.1/os-keypairs/alices?user_id={made['user_id']}", headers=admin)
    assert shown.status_code == 200 and shown.json()["keypair"]["user_id"] == made["user_id"]
    listed = compute.client.get(f"/v2.1/os-keypairs?user_id={made['user_id']}", headers=admin).json()["keypairs"]
    assert [k["keypair"]["name"] for k in listed] == ["alices"]
    given = create(compute, compute.as_admin(), version="2.10", name="gift", public_key=RSA,
                   user_id=made["user_id"])["keypair"]
    assert given["user_id"] == made["user_id"]
    assert compute.client.get("/v2.1/os-keypairs/gift", headers=alice.headers).status_code == 200
    # Below 2.10 the parameter is not read: the operator's own keypairs are meant.
    message(compute.client.get(f"/v2.1/os-keypairs/alices?user_id={made['user_id']}",
                               headers=v("2.9", compute.as_admin())), 404)


def test_key_pairs_quota_counts_per_user(compute: ComputeHarness) -> None:
    admin = compute.as_admin()
    alice_user, project = add_member(compute.identity, "alice", "alice-project")
    alice = {"X-Auth-Token": compute.identity.token("alice", MEMBER_PASSWORD, "alice-project")}
    put = compute.client.put(f"/v2.1/os-quota-sets/{project}", json={"quota_set": {"key_pairs": 2}}, headers=admin)
    assert put.status_code == 200, put.text
    create(compute, alice, name="k1", public_key=ED25519)
    create(compute, alice, name="k2", public_key=ED25519)
    assert message(compute.client.post("/v2.1/os-keypairs", json={"keypair": {"name": "k3", "public_key": RSA}},
                                       headers=v("2.53", alice)), 403) == "Maximum number of key pairs exceeded"
    compute.client.delete("/v2.1/os-keypairs/k1", headers=v("2.53", alice))
    create(compute, alice, name="k3", public_key=RSA)
    assert alice_user


def test_generation_is_refused_over_quota_before_any_key_is_kept(network: Any, image: Any,
                                                                  database_url: str) -> None:
    harness = make_compute(network, image, database_url, quota_key_pairs=0)
    try:
        alice = tenant(harness, "alice", network=False)
        message(harness.client.post("/v2.1/os-keypairs", json={"keypair": {"name": "k"}}, headers=alice.headers),
                403)
        assert harness.client.get("/v2.1/os-keypairs", headers=alice.headers).json() == {"keypairs": []}
    finally:
        harness.close()
