"""`/v3/credentials`, EC2 key pairs (`OS-EC2`) and tokens for EC2-signed requests (`/v3/ec2tokens`)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from stratus.identity.ec2sign import sign_v4
from stratus.identity.models import Credential
from tests.api.identity.helpers import MEMBER_PASSWORD, add_member
from tests.conftest import IdentityHarness

PASSWORD = MEMBER_PASSWORD
HOST = "ec2.example.test:8788"



def _signed(access: str, secret: str, **changes: Any) -> dict[str, Any]:
    """What an EC2 API front end forwards for a SigV4-signed `DescribeInstances`."""
    params = {"Action": "DescribeInstances", "Version": "2016-11-15"}
    headers = sign_v4(access, secret, verb="GET", host=HOST, path="/", params=params)
    return {"access": access, "host": HOST, "verb": "GET", "path": "/", "params": params,
            "headers": {**headers, "Host": HOST}, **changes}


def _stored_blob(identity: IdentityHarness, credential_id: str) -> str:
    with identity.service.read() as session:
        row = session.get(Credential, credential_id)
        assert row is not None
        return row.encrypted_blob


def test_credential_crud_keeps_the_blob_encrypted(identity: IdentityHarness) -> None:
    user_id, project_id = add_member(identity, "alice", "project-a")
    headers = {"X-Auth-Token": identity.token("alice", PASSWORD, "project-a")}
    client = identity.client
    created = client.post("/v3/credentials", headers=headers, json={"credential": {
        "user_id": user_id, "project_id": project_id, "type": "totp", "blob": "JBSWY3DPEHPK3PXP", "note": "phone"}})
    assert created.status_code == 201, created.text
    cred = created.json()["credential"]
    assert cred["blob"] == "JBSWY3DPEHPK3PXP" and cred["type"] == "totp" and cred["note"] == "phone"
    assert cred["links"]["self"].endswith(f"/v3/credentials/{cred['id']}") and len(cred["id"]) == 32
    stored = _stored_blob(identity, cred["id"])
    assert "JBSWY3DPEHPK3PXP" not in stored
    assert identity.service.credential_keys.decrypt(stored) == b"JBSWY3DPEHPK3PXP"

    assert client.get(f"/v3/credentials/{cred['id']}", headers=headers).json()["credential"]["blob"] == \
        "JBSWY3DPEHPK3PXP"
    patched = client.patch(f"/v3/credentials/{cred['id']}", headers=headers,
                           json={"credential": {"blob": "NEWSECRET"}})
    assert patched.status_code == 200 and patched.json()["credential"]["blob"] == "NEWSECRET"
    assert client.get(f"/v3/credentials?type=totp&user_id={user_id}", headers=headers).json()["credentials"][0][
        "blob"] == "NEWSECRET"
    assert client.get("/v3/credentials?type=ec2", headers=headers).json()["credentials"] == []
    assert client.delete(f"/v3/credentials/{cred['id']}", headers=headers).status_code == 204
    missing = client.get(f"/v3/credentials/{cred['id']}", headers=headers)
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == f"Could not find credential: {cred['id']}."


def test_users_only_reach_their_own_credentials(identity: IdentityHarness) -> None:
    alice, project_a = add_member(identity, "alice", "project-a")
    bob, _ = add_member(identity, "bob", "project-b")
    client = identity.client
    alice_headers = {"X-Auth-Token": identity.token("alice", PASSWORD, "project-a")}
    bob_headers = {"X-Auth-Token": identity.token("bob", PASSWORD, "project-b")}
    mine = client.post("/v3/credentials", headers=alice_headers, json={"credential": {
        "user_id": alice, "type": "cert", "blob": "alice's"}}).json()["credential"]
    client.post("/v3/credentials", headers=bob_headers, json={"credential": {
        "user_id": bob, "type": "cert", "blob": "bob's"}})

    assert [c["blob"] for c in client.get("/v3/credentials", headers=alice_headers).json()["credentials"]] == [
        "alice's"]
    assert len(client.get("/v3/credentials", headers=identity.as_admin()).json()["credentials"]) == 2
    assert client.get(f"/v3/credentials?user_id={alice}", headers=bob_headers).status_code == 403
    for response in (client.get(f"/v3/credentials/{mine['id']}", headers=bob_headers),
                     client.patch(f"/v3/credentials/{mine['id']}", headers=bob_headers,
                                  json={"credential": {"blob": "x"}}),
                     client.delete(f"/v3/credentials/{mine['id']}", headers=bob_headers)):
        assert response.status_code == 404
    assert client.post("/v3/credentials", headers=bob_headers, json={"credential": {
        "user_id": alice, "type": "cert", "blob": "planted"}}).status_code == 403
    # Nor can a credential be handed over to someone else.
    handed = client.patch(f"/v3/credentials/{mine['id']}", headers=alice_headers,
                          json={"credential": {"user_id": bob}})
    assert handed.status_code == 403
    assert client.get(f"/v3/credentials/{mine['id']}", headers=alice_headers).json()["credential"]["blob"] == \
        "alice's"
    assert project_a


def test_ec2_credentials_are_keyed_by_their_access_key(identity: IdentityHarness) -> None:
    user_id, project_id = add_member(identity, "alice", "project-a")
    headers = {"X-Auth-Token": identity.token("alice", PASSWORD, "project-a")}
    client = identity.client
    blob = json.dumps({"access": "AKIDEXAMPLE", "secret": "wJalrXUtnFEMI"})
    created = client.post("/v3/credentials", headers=headers, json={"credential": {
        "user_id": user_id, "project_id": project_id, "type": "ec2", "blob": blob}})
    assert created.status_code == 201, created.text
    cred_id = created.json()["credential"]["id"]
    assert cred_id == hashlib.sha256(b"AKIDEXAMPLE").hexdigest()
    # The same pair is an EC2 key pair of the user.
    shown = client.get(f"/v3/users/{user_id}/credentials/OS-EC2/AKIDEXAMPLE", headers=headers).json()["credential"]
    assert shown["secret"] == "wJalrXUtnFEMI" and shown["tenant_id"] == project_id

    refusals = [
        ({"user_id": user_id, "project_id": project_id, "type": "ec2", "blob": blob}, 409),
        ({"user_id": user_id, "type": "ec2", "blob": json.dumps({"access": "A2", "secret": "s"})}, 400),
        ({"user_id": user_id, "project_id": project_id, "type": "ec2", "blob": "not json"}, 400),
        ({"user_id": user_id, "project_id": project_id, "type": "ec2", "blob": json.dumps({"secret": "s"})}, 400),
        ({"user_id": user_id, "project_id": "nope", "type": "ec2", "blob": json.dumps({"access": "A3", "secret": "s"})},
         404),
        ({"user_id": "nobody", "type": "cert", "blob": "x"}, 403),
        ({"user_id": user_id, "type": "cert"}, 400),
        ({"user_id": user_id, "type": "cert", "blob": {"a": 1}}, 400),
        ({"user_id": user_id, "type": "cert", "blob": "x" * 40000}, 400),
    ]
    for fields, status in refusals:
        response = client.post("/v3/credentials", headers=headers, json={"credential": fields})
        assert response.status_code == status, (fields, response.text)
    assert len(client.get("/v3/credentials", headers=headers).json()["credentials"]) == 1
    changed = client.patch(f"/v3/credentials/{cred_id}", headers=headers, json={"credential": {
        "blob": json.dumps({"access": "OTHER", "secret": "s"})}})
    assert changed.status_code == 400
    rotated = client.patch(f"/v3/credentials/{cred_id}", headers=headers, json={"credential": {
        "blob": json.dumps({"access": "AKIDEXAMPLE", "secret": "new-secret"})}})
    assert rotated.status_code == 200
    assert client.get(f"/v3/users/{user_id}/credentials/OS-EC2/AKIDEXAMPLE",
                      headers=headers).json()["credential"]["secret"] == "new-secret"


def test_os_ec2_key_pair_lifecycle(identity: IdentityHarness) -> None:
    user_id, project_id = add_member(identity, "alice", "project-a")
    bob, _ = add_member(identity, "bob", "project-b")
    headers = {"X-Auth-Token": identity.token("alice", PASSWORD, "project-a")}
    client, base = identity.client, f"/v3/users/{user_id}/credentials/OS-EC2"
    created = client.post(base, headers=headers, json={"tenant_id": project_id})
    assert created.status_code == 201, created.text
    pair = created.json()["credential"]
    assert set(pair) == {"user_id", "tenant_id", "access", "secret", "trust_id", "links"}
    assert pair["user_id"] == user_id and pair["tenant_id"] == project_id and pair["trust_id"] is None
    int(pair["access"], 16), int(pair["secret"], 16)
    assert pair["links"]["self"].endswith(f"{base}/{pair['access']}")

    assert [p["access"] for p in client.get(base, headers=headers).json()["credentials"]] == [pair["access"]]
    assert client.get(f"{base}/{pair['access']}", headers=headers).json()["credential"] == pair
    as_credential = client.get("/v3/credentials?type=ec2", headers=headers).json()["credentials"]
    assert json.loads(as_credential[0]["blob"])["secret"] == pair["secret"]

    assert client.post(base, headers=headers, json={}).status_code == 400
    assert client.post(base, headers=headers, json={"tenant_id": "nope"}).status_code == 404
    bob_headers = {"X-Auth-Token": identity.token("bob", PASSWORD, "project-b")}
    assert client.get(base, headers=bob_headers).status_code == 403
    assert client.get(f"/v3/users/{bob}/credentials/OS-EC2/{pair['access']}", headers=bob_headers).status_code == 404

    assert client.delete(f"{base}/{pair['access']}", headers=headers).status_code == 204
    assert client.get(f"{base}/{pair['access']}", headers=headers).status_code == 404
    assert client.get(base, headers=headers).json()["credentials"] == []


def test_ec2tokens_issues_a_project_token_for_a_valid_signature(identity: IdentityHarness) -> None:
    user_id, project_id = add_member(identity, "alice", "project-a")
    headers = {"X-Auth-Token": identity.token("alice", PASSWORD, "project-a")}
    pair = identity.client.post(f"/v3/users/{user_id}/credentials/OS-EC2", headers=headers,
                                json={"tenant_id": project_id}).json()["credential"]
    issued = identity.client.post("/v3/ec2tokens", json={"credentials": _signed(pair["access"], pair["secret"])})
    assert issued.status_code == 200, issued.text
    token = issued.json()["token"]
    assert token["user"]["id"] == user_id and token["project"]["id"] == project_id
    assert token["methods"] == ["ec2credential"]
    assert {r["name"] for r in token["roles"]} == {"member", "reader"} and token["catalog"]
    subject = issued.headers["X-Subject-Token"]
    assert identity.client.get("/v3/auth/tokens", headers={**identity.as_admin(),
                                                           "X-Subject-Token": subject}).status_code == 200
    # Old clients wrap the request as ec2Credentials.
    legacy = identity.client.post("/v3/ec2tokens", json={"ec2Credentials": _signed(pair["access"], pair["secret"])})
    assert legacy.status_code == 200


def test_ec2tokens_refuses_bad_signatures_and_unknown_keys(identity: IdentityHarness) -> None:
    user_id, project_id = add_member(identity, "alice", "project-a")
    headers = {"X-Auth-Token": identity.token("alice", PASSWORD, "project-a")}
    pair = identity.client.post(f"/v3/users/{user_id}/credentials/OS-EC2", headers=headers,
                                json={"tenant_id": project_id}).json()["credential"]
    good = _signed(pair["access"], pair["secret"])
    tampered = {**good, "params": {**good["params"], "Action": "TerminateInstances"}}
    wrong_secret = _signed(pair["access"], "0" * 32)
    unknown = _signed("AKIDUNKNOWN", pair["secret"])
    for creds in (tampered, wrong_secret, unknown, {**good, "headers": {"Host": HOST}}):
        response = identity.client.post("/v3/ec2tokens", json={"credentials": creds})
        assert response.status_code == 401, response.text
        assert "X-Subject-Token" not in response.headers
    for body in ({}, {"credentials": "x"}, {"credentials": {"signature": "abc"}}, [1]):
        assert identity.client.post("/v3/ec2tokens", json=body).status_code == 400, body
    # A disabled owner gets no token, whatever the signature.
    identity.client.patch(f"/v3/users/{user_id}", headers=identity.as_admin(), json={"user": {"enabled": False}})
    assert identity.client.post("/v3/ec2tokens", json={"credentials": good}).status_code == 401


def test_ec2_pair_made_with_an_application_credential_keeps_its_limits(identity: IdentityHarness) -> None:
    user_id, project_id = add_member(identity, "alice", "project-a")
    token = identity.token("alice", PASSWORD, "project-a")
    app = identity.client.post(f"/v3/users/{user_id}/application_credentials", headers={"X-Auth-Token": token},
                               json={"application_credential": {"name": "ro", "secret": "app-Secret-1",
                                                                "roles": [{"name": "reader"}]}})
    app_id = app.json()["application_credential"]["id"]
    app_token = identity.client.post("/v3/auth/tokens", json={"auth": {"identity": {
        "methods": ["application_credential"],
        "application_credential": {"id": app_id, "secret": "app-Secret-1"}}}}).headers["X-Subject-Token"]
    pair = identity.client.post(f"/v3/users/{user_id}/credentials/OS-EC2", headers={"X-Auth-Token": app_token},
                                json={"tenant_id": project_id}).json()["credential"]
    issued = identity.client.post("/v3/ec2tokens", json={"credentials": _signed(pair["access"], pair["secret"])})
    assert issued.status_code == 200
    assert {r["name"] for r in issued.json()["token"]["roles"]} == {"reader"}
    assert issued.json()["token"]["application_credential"]["id"] == app_id
    identity.client.delete(f"/v3/users/{user_id}/application_credentials/{app_id}", headers={"X-Auth-Token": token})
    again = identity.client.post("/v3/ec2tokens", json={"credentials": _signed(pair["access"], pair["secret"])})
    assert again.status_code == 401
