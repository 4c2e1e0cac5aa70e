"""Stored credentials (`/v3/credentials`): blobs encrypted at rest, EC2 key pairs among them, and
the EC2 signature check behind `POST /v3/ec2tokens`."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from stratus.core import errors
from stratus.identity import ec2sign
from stratus.identity.auth import AUTH_FAILED, Authenticator
from stratus.identity.models import Credential
from stratus.identity.service import IdentityService

EC2 = "ec2"
EC2_METHOD = "ec2credential"
# An encrypted blob grows by about a third; this keeps it inside a 64 KiB TEXT column on MariaDB.
MAX_BLOB_BYTES = 32 * 1024


def ec2_id(access: str) -> str:
    """An EC2 credential's id is the SHA-256 of its access key, so the key finds it directly."""
    return hashlib.sha256(access.encode()).hexdigest()


def not_found(credential_id: str) -> errors.NotFound:
    return errors.NotFound(f"Could not find credential: {credential_id}.")


def parse_ec2_blob(blob: str) -> dict[str, Any]:
    """The JSON object an ec2 blob holds; it needs a non-empty access key and a secret."""
    try:
        data = json.loads(blob)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("access"), str) or not data["access"] \
            or not isinstance(data.get("secret"), str):
        raise errors.BadRequest('The blob of an ec2 credential must be a JSON object with string '
                                '"access" and "secret".')
    return data


def encrypt_blob(svc: IdentityService, blob: str) -> str:
    raw = blob.encode()
    if len(raw) > MAX_BLOB_BYTES:
        raise errors.BadRequest(f"A credential blob may hold at most {MAX_BLOB_BYTES} bytes.")
    return svc.credential_keys.encrypt(raw)


def decrypt_blob(svc: IdentityService, cred: Credential) -> str:
    raw = svc.credential_keys.decrypt(cred.encrypted_blob)
    if raw is None:
        # The key that encrypted it was removed from the credential key repository.
        raise errors.StratusError(f"The blob of credential {cred.id} cannot be decrypted with the current keys.")
    return raw.decode()


def ec2_blob(svc: IdentityService, cred: Credential) -> dict[str, Any]:
    return parse_ec2_blob(decrypt_blob(svc, cred))


def stamp_app_cred(blob: str, app_cred_id: str | None) -> str:
    """An EC2 key pair made with an application credential's token carries no more power than that
    credential: record it, so tokens the pair obtains are limited the same way."""
    if app_cred_id is None:
        return blob
    return json.dumps({**parse_ec2_blob(blob), "app_cred_id": app_cred_id})


def _signed_request(body: Any) -> dict[str, Any]:
    if isinstance(body, dict):
        for key in ("credentials", "ec2Credentials"):
            if isinstance(body.get(key), dict):
                return body[key]  # type: ignore[no-any-return]
    raise errors.BadRequest("Expecting to find credentials in the request body.")


def ec2_token(svc: IdentityService, auth: Authenticator, body: Any) -> tuple[str, bytes]:
    """Check an EC2-signed request forwarded to `POST /v3/ec2tokens` and issue a token for the owner
    of its access key, scoped to the key's project. Returns the token and its rendered body."""
    request = _signed_request(body)
    try:
        access = ec2sign.access_key(request)
    except ec2sign.SignatureError as exc:
        raise errors.BadRequest(f"Invalid EC2 credentials: {exc}") from None
    with svc.read() as session:
        cred = session.get(Credential, ec2_id(access))
        if cred is None or cred.type != EC2 or not cred.project_id:
            raise errors.Unauthorized(AUTH_FAILED)
        user_id, project_id, blob = cred.user_id, cred.project_id, ec2_blob(svc, cred)
    try:
        ec2sign.verify(request, blob["secret"])
    except ec2sign.SignatureError:
        raise errors.Unauthorized(AUTH_FAILED) from None
    app_cred_id = blob.get("app_cred_id")
    return auth.issue_for(user_id, project_id, (EC2_METHOD,),
                          app_cred_id=app_cred_id if isinstance(app_cred_id, str) else None)
