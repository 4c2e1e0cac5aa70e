"""S3 authentication: the request's SigV4 signature (header or presigned query) is checked by the
identity service (`POST /v3/ec2tokens`, which knows the EC2 secret); its token gives the project,
and so the account `AUTH_<project_id>`."""

from __future__ import annotations

import re
from typing import Any

import httpx

from stratus.object.proxy.auth import Authenticator
from stratus.object.proxy.request import Caller
from stratus.object.s3.xmlio import S3Error

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_SIGNATURE = re.compile(r"Signature=([0-9a-fA-F]+)")


def _params(query: list[tuple[str, str]]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, value in query:
        if name in params:
            existing = params[name]
            params[name] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            params[name] = value
    return params


class S3Authenticator:
    def __init__(self, identity_url: str, auth: Authenticator, http: httpx.AsyncClient | None = None) -> None:
        self.identity_url = identity_url.rstrip("/")
        self.auth = auth
        self.http = http or httpx.AsyncClient(timeout=10)

    async def caller(self, method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str]) -> Caller:
        params = _params(query)
        authorization = headers.get("authorization", "")
        if authorization.startswith("AWS4-HMAC-SHA256"):
            access = _CREDENTIAL.search(authorization)
            signature = _SIGNATURE.search(authorization)
        elif "X-Amz-Credential" in params:
            access = _CREDENTIAL.search("Credential=" + str(params["X-Amz-Credential"]))
            signature = _SIGNATURE.search("Signature=" + str(params.get("X-Amz-Signature", "")))
        elif authorization.startswith("AWS "):
            raise S3Error(400, "InvalidRequest", "Signature Version 2 is not supported; use AWS4-HMAC-SHA256.")
        else:
            raise S3Error(403, "AccessDenied", "Anonymous access is not allowed.")
        if access is None or signature is None:
            raise S3Error(400, "AuthorizationHeaderMalformed", "The authorization header is malformed.")
        credentials = {"access": access.group(1), "signature": signature.group(1), "host": headers.get("host", ""),
                       "verb": method, "path": path, "params": params, "headers": headers}
        try:
            response = await self.http.post(f"{self.identity_url}/v3/ec2tokens", json={"credentials": credentials})
        except httpx.HTTPError as exc:
            raise S3Error(503, "ServiceUnavailable", "The identity service did not answer.") from exc
        if response.status_code == 401:
            raise S3Error(403, "SignatureDoesNotMatch",
                          "The request signature we calculated does not match the signature you provided.")
        if response.status_code == 400:
            raise S3Error(403, "AccessDenied", response.json().get("error", {}).get("message", "Bad credentials"))
        if response.status_code != 200:
            raise S3Error(503, "ServiceUnavailable", "The identity service could not check the signature.")
        return self.auth.from_keystone(response.json()["token"])
