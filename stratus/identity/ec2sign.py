"""Verify EC2/S3-style request signatures the way ``POST /v3/ec2tokens`` does.

A service that fronts an EC2 or S3 API (or the S3 middleware of an object
store) cannot check a client's signature itself because it does not know
the secret; it forwards what it saw to the identity service instead::

    {"credentials": {"access": "AKID", "signature": "...", "host": "127.0.0.1:8080",
                     "verb": "GET", "path": "/bucket/key", "params": {...},
                     "headers": {...}, "body_hash": "<sha256 hex of the payload>"}}

(``/v2.0/ec2tokens`` callers may say ``ec2Credentials`` instead of
``credentials``).  The identity service looks up the secret for
:func:`access_key` and calls :func:`verify`.

Supported forms, following the AWS documentation:

* Signature Version 4 in the ``Authorization`` header (``X-Amz-Date`` header
  required) or in the query string (``X-Amz-Algorithm``, ``X-Amz-Credential``,
  ``X-Amz-Date``, ``X-Amz-SignedHeaders``, ``X-Amz-Signature`` and optionally
  ``X-Amz-Expires``).
* Signature Version 2 (``SignatureVersion=2`` with ``HmacSHA256`` or
  ``HmacSHA1``).
* The S3 form: ``token`` is the base64 of the string-to-sign the S3 layer
  built itself.  A SigV2 string-to-sign is signed with HMAC-SHA1 (base64
  signature); a string-to-sign starting with ``AWS4-HMAC-SHA256`` is signed
  with the SigV4 key derived from the scope it contains (hex signature).

Signature Versions 0 and 1 are rejected: both are deprecated by AWS and
version 1 is ambiguous (names and values are concatenated without a
separator, so different requests share a signature).

``path`` is the decoded request path.  The canonical URI encodes it once for
S3 and twice for every other service, as the AWS documentation prescribes;
because older signers encode non-S3 paths only once, that form is accepted
too.  A ``POST`` whose ``params`` came from a form body is also checked with
an empty canonical query string.

Every failure raises :class:`SignatureError`, whose message says why.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

__all__ = ["SignatureError", "access_key", "sign_v4", "verify"]

V4_ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600  # AWS caps X-Amz-Expires at seven days

_AMZ_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_SCOPE_DATE = re.compile(r"[0-9]{8}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_URLSAFE_TO_STD = bytes.maketrans(b"-_", b"+/")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")  # RFC 9110 token, lowercase


class SignatureError(Exception):
    """The request signature is missing, malformed, expired or wrong."""


# --------------------------------------------------------------------------- input handling


def _unwrap(credentials: object) -> Mapping:
    if not isinstance(credentials, Mapping):
        raise SignatureError("credentials must be a JSON object")
    for key in ("credentials", "ec2Credentials"):
        inner = credentials.get(key)
        if isinstance(inner, Mapping):
            return inner
    return credentials


def _opt_str(creds: Mapping, key: str) -> str | None:
    value = creds.get(key)
    if value is None or isinstance(value, str):
        return value
    raise SignatureError(f"{key!r} must be a string")


def _req_str(creds: Mapping, key: str) -> str:
    value = _opt_str(creds, key)
    if not value:
        raise SignatureError(f"{key!r} is missing")
    return value


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeError:
        raise SignatureError("request contains text that is not valid UTF-8") from None


def _params(creds: Mapping) -> list[tuple[str, str]]:
    """``params`` as (name, value) pairs; a list value stands for a repeated parameter."""
    raw = creds.get("params")
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        raise SignatureError("'params' must be an object")
    pairs: list[tuple[str, str]] = []
    for name, value in raw.items():
        if not isinstance(name, str):
            raise SignatureError("parameter names must be strings")
        values = value if isinstance(value, list) else [value]
        for item in values:
            if not isinstance(item, str):
                raise SignatureError(f"parameter {name!r} must be a string or a list of strings")
            pairs.append((name, item))
    return pairs


def _param(pairs: list[tuple[str, str]], name: str) -> str | None:
    found = [value for key, value in pairs if key == name]
    if len(found) > 1:
        raise SignatureError(f"parameter {name!r} is repeated")
    return found[0] if found else None


def _headers(creds: Mapping) -> dict[str, str]:
    """``headers`` keyed by lowercase name."""
    raw = creds.get("headers")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SignatureError("'headers' must be an object")
    headers: dict[str, str] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise SignatureError("header names and values must be strings")
        lowered = name.lower()
        if lowered in headers:
            raise SignatureError(f"header {name!r} is given more than once")
        headers[lowered] = value
    return headers


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode("ascii"), given.encode("utf-8", "surrogatepass"))


# --------------------------------------------------------------------------- time


def _parse_amz_date(value: str) -> datetime:
    if not _AMZ_DATE.fullmatch(value):
        raise SignatureError(f"malformed date {value!r}: expected YYYYMMDDTHHMMSSZ")
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError(f"malformed date {value!r}") from None


def _as_utc(when: datetime | None) -> datetime:
    if when is None:
        return datetime.now(UTC)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _check_time(signed_at: datetime, now: datetime | None, max_skew: timedelta, expires: int | None) -> None:
    current = _as_utc(now)
    if signed_at - current > max_skew:
        raise SignatureError("request date is too far in the future")
    if expires is None:
        if current - signed_at > max_skew:
            raise SignatureError("request has expired: its date is too far in the past")
    elif current - signed_at > timedelta(seconds=expires):
        raise SignatureError("presigned request has expired")


# --------------------------------------------------------------------------- SigV4 core


def _hmac256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _signing_key(secret: bytes, day: str, region: str, service: str) -> bytes:
    key = _hmac256(b"AWS4" + secret, _utf8(day))
    key = _hmac256(key, _utf8(region))
    key = _hmac256(key, _utf8(service))
    return _hmac256(key, b"aws4_request")


def _encode(text: str, safe: str = "") -> str:
    """RFC 3986 percent-encoding: only A-Z a-z 0-9 - _ . ~ (and ``safe``) stay as they are."""
    return quote(_utf8(text), safe=safe)


def _canonical_query(pairs: list[tuple[str, str]]) -> str:
    encoded = sorted((_encode(name), _encode(value)) for name, value in pairs)
    return "&".join(f"{name}={value}" for name, value in encoded)


def _canonical_uris(path: str, service: str) -> list[str]:
    once = _encode(path or "/", safe="/")
    if service == "s3":
        return [once]
    twice = quote(once, safe="/")
    return [twice] if twice == once else [twice, once]


def _v4_signatures(
    secret: bytes,
    *,
    verb: str,
    path: str,
    queries: list[str],
    headers: dict[str, str],
    signed: list[str],
    payload_hash: str,
    amz_date: str,
    scope: tuple[str, str, str],
) -> list[str]:
    """Signatures for every accepted canonical form of the request, the documented one first."""
    lines = []
    for name in signed:
        if name not in headers:
            raise SignatureError(f"signed header {name!r} is missing from the request")
        lines.append(f"{name}:{' '.join(headers[name].split())}\n")
    day, region, service = scope
    key = _signing_key(secret, day, region, service)
    credential_scope = f"{day}/{region}/{service}/aws4_request"
    results = []
    for uri in _canonical_uris(path, service):
        for query in queries:
            canonical = "\n".join([verb, uri, query, "".join(lines), ";".join(signed), payload_hash])
            digest = hashlib.sha256(_utf8(canonical)).hexdigest()
            to_sign = f"{V4_ALGORITHM}\n{amz_date}\n{credential_scope}\n{digest}"
            results.append(hmac.new(key, _utf8(to_sign), hashlib.sha256).hexdigest())
    return results


def _parse_scope(credential: str, amz_date: str) -> tuple[str, tuple[str, str, str]]:
    parts = credential.split("/")
    if len(parts) != 5 or not all(parts) or parts[4] != "aws4_request":
        raise SignatureError("malformed credential: expected AKID/YYYYMMDD/region/service/aws4_request")
    akid, day, region, service, _ = parts
    if not _SCOPE_DATE.fullmatch(day):
        raise SignatureError(f"malformed credential scope date {day!r}")
    if day != amz_date[:8]:
        raise SignatureError("credential scope date does not match X-Amz-Date")
    return akid, (day, region, service)


def _parse_signed_headers(value: str) -> list[str]:
    names = value.split(";")
    if not all(_HEADER_NAME.fullmatch(name) for name in names):
        raise SignatureError("malformed SignedHeaders: expected lowercase names separated by ';'")
    if names != sorted(set(names)):
        raise SignatureError("SignedHeaders must be sorted and must not repeat a name")
    if "host" not in names:
        raise SignatureError("SignedHeaders must include host")
    return names


def _parse_authorization(value: str) -> dict[str, str]:
    rest = value[len(V4_ALGORITHM) :]
    if not rest[:1].isspace():
        raise SignatureError("malformed Authorization header")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, item = part.strip().partition("=")
        if not sep or name not in ("Credential", "SignedHeaders", "Signature"):
            raise SignatureError(f"malformed Authorization header component {part.strip()!r}")
        if name in fields:
            raise SignatureError(f"Authorization header repeats {name}")
        fields[name] = item
    missing = {"Credential", "SignedHeaders", "Signature"} - fields.keys()
    if missing:
        raise SignatureError(f"Authorization header lacks {', '.join(sorted(missing))}")
    return fields


def _payload_hash(creds: Mapping, declared: str | None, presigned_s3: bool) -> str:
    body_hash = _opt_str(creds, "body_hash")
    if declared is not None:
        if declared == UNSIGNED_PAYLOAD or declared.startswith("STREAMING-"):
            return declared
        if body_hash is not None and declared.lower() != body_hash.lower():
            raise SignatureError("X-Amz-Content-Sha256 does not match the body hash")
        return declared
    if presigned_s3:
        return UNSIGNED_PAYLOAD
    return body_hash.lower() if body_hash is not None else EMPTY_SHA256


def _check_access(creds: Mapping, akid: str) -> None:
    access = _opt_str(creds, "access")
    if access is not None and access != akid:
        raise SignatureError("the signature's credential is for another access key")


def _expect(candidates: list[str], given: list[str | None]) -> None:
    provided = [value for value in given if value is not None]
    if not provided:
        raise SignatureError("signature is missing")
    for value in provided:
        # Evaluate every comparison so the time taken does not depend on which one matched.
        if not any([_same(candidate, value) for candidate in candidates]):
            raise SignatureError("signature does not match")


def _verify_v4(
    creds: Mapping,
    secret: bytes,
    headers: dict[str, str],
    pairs: list[tuple[str, str]],
    *,
    in_query: bool,
    now: datetime | None,
    max_skew: timedelta,
) -> None:
    verb = _req_str(creds, "verb")
    path = _opt_str(creds, "path") or "/"
    host = _opt_str(creds, "host")
    if "host" not in headers and host:
        headers = {**headers, "host": host}

    if in_query:
        algorithm = _param(pairs, "X-Amz-Algorithm")
        if algorithm != V4_ALGORITHM:
            raise SignatureError(f"unsupported X-Amz-Algorithm {algorithm!r}")
        fields = {}
        for name in ("X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders"):
            value = _param(pairs, name)
            if value is None:
                raise SignatureError(f"query parameter {name} is missing")
            fields[name] = value
        credential, amz_date = fields["X-Amz-Credential"], fields["X-Amz-Date"]
        signed_headers = fields["X-Amz-SignedHeaders"]
        given = _param(pairs, "X-Amz-Signature")
        expires_text = _param(pairs, "X-Amz-Expires")
        expires = None
        if expires_text is not None:
            if not expires_text.isascii() or not expires_text.isdigit():
                raise SignatureError("malformed X-Amz-Expires")
            expires = int(expires_text)
            if not 1 <= expires <= MAX_PRESIGN_EXPIRES:
                raise SignatureError(f"X-Amz-Expires must be between 1 and {MAX_PRESIGN_EXPIRES}")
        pairs = [(name, value) for name, value in pairs if name != "X-Amz-Signature"]
        declared = headers.get("x-amz-content-sha256", _param(pairs, "X-Amz-Content-Sha256"))
    else:
        auth = _parse_authorization(headers["authorization"])
        credential, signed_headers, given = auth["Credential"], auth["SignedHeaders"], auth["Signature"]
        if headers.get("x-amz-date") is None:
            raise SignatureError("X-Amz-Date header is missing")
        amz_date = headers["x-amz-date"]
        expires = None
        declared = headers.get("x-amz-content-sha256")

    signed_at = _parse_amz_date(amz_date)
    akid, scope = _parse_scope(credential, amz_date)
    _check_access(creds, akid)
    signed = _parse_signed_headers(signed_headers)
    _check_time(signed_at, now, max_skew, expires)

    queries = [_canonical_query(pairs)]
    if not in_query and verb == "POST" and pairs:
        queries.append("")  # the parameters came from a form-encoded body
    payload_hash = _payload_hash(creds, declared, presigned_s3=in_query and scope[2] == "s3")
    candidates = _v4_signatures(
        secret,
        verb=verb,
        path=path,
        queries=queries,
        headers=headers,
        signed=signed,
        payload_hash=payload_hash,
        amz_date=amz_date,
        scope=scope,
    )
    _expect(candidates, [given, _opt_str(creds, "signature")])


# --------------------------------------------------------------------------- SigV2 and the S3 token


def _parse_timestamp(value: str, name: str) -> datetime:
    try:
        return _as_utc(datetime.fromisoformat(value))
    except ValueError:
        raise SignatureError(f"malformed {name} {value!r}") from None


def _verify_v2(
    creds: Mapping, secret: bytes, pairs: list[tuple[str, str]], now: datetime | None, max_skew: timedelta
) -> None:
    method = _param(pairs, "SignatureMethod")
    digests = {"HmacSHA256": hashlib.sha256, "HmacSHA1": hashlib.sha1}
    if method not in digests:
        raise SignatureError(f"unsupported SignatureMethod {method!r}")
    access = _opt_str(creds, "access")
    key_id = _param(pairs, "AWSAccessKeyId")
    if access is not None and key_id is not None and key_id != access:
        raise SignatureError("AWSAccessKeyId is for another access key")
    verb = _req_str(creds, "verb")
    host = _req_str(creds, "host").lower()
    path = _encode(_opt_str(creds, "path") or "/", safe="/")

    timestamp, expires = _param(pairs, "Timestamp"), _param(pairs, "Expires")
    current = _as_utc(now)
    if timestamp is not None and abs(current - _parse_timestamp(timestamp, "Timestamp")) > max_skew:
        raise SignatureError("request Timestamp is too far from the current time")
    if expires is not None and current > _parse_timestamp(expires, "Expires"):
        raise SignatureError("request has expired")

    query = _canonical_query([(name, value) for name, value in pairs if name != "Signature"])
    to_sign = f"{verb}\n{host}\n{path}\n{query}"
    digest = hmac.new(secret, _utf8(to_sign), digests[method]).digest()
    _expect([base64.b64encode(digest).decode()], [_param(pairs, "Signature"), _opt_str(creds, "signature")])


def _verify_token(creds: Mapping, secret: bytes, token: str) -> None:
    signature = _req_str(creds, "signature")
    try:
        # The S3 layer may use either base64 alphabet; they do not overlap.
        to_sign = base64.b64decode(_utf8(token).translate(_URLSAFE_TO_STD), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("'token' is not valid base64") from None
    if to_sign.startswith(V4_ALGORITHM.encode() + b"\n"):
        try:
            lines = to_sign.decode("utf-8").split("\n")
        except UnicodeDecodeError:
            raise SignatureError("malformed SigV4 string to sign") from None
        if len(lines) != 4 or not _SHA256_HEX.fullmatch(lines[3]):
            raise SignatureError("malformed SigV4 string to sign")
        amz_date, scope = lines[1], lines[2].split("/")
        _parse_amz_date(amz_date)
        if len(scope) != 4 or not all(scope) or scope[3] != "aws4_request" or scope[0] != amz_date[:8]:
            raise SignatureError("malformed credential scope in the SigV4 string to sign")
        key = _signing_key(secret, scope[0], scope[1], scope[2])
        expected = hmac.new(key, to_sign, hashlib.sha256).hexdigest()
    else:
        expected = base64.b64encode(hmac.new(secret, to_sign, hashlib.sha1).digest()).decode()
    _expect([expected], [signature])


# --------------------------------------------------------------------------- public API


def access_key(credentials: dict) -> str:
    """The access key id (``access``) from an ec2tokens request body."""
    return _req_str(_unwrap(credentials), "access")


def verify(
    credentials: dict,
    secret: str,
    *,
    now: datetime | None = None,
    max_skew: timedelta = timedelta(minutes=15),
) -> None:
    """Check the signature in an ec2tokens body against ``secret``; raise SignatureError if it fails.

    SigV4 requests dated further than ``max_skew`` from ``now`` (default: the
    current time; a naive value is taken as UTC) are rejected; a presigned
    request with ``X-Amz-Expires`` is valid from its date until the expiry.
    SigV2 requests are checked the same way against ``Timestamp``/``Expires``
    when present.  The S3 ``token`` form carries no expiry, so its date is
    left to the S3 layer that built the string to sign.
    """
    creds = _unwrap(credentials)
    if isinstance(secret, str):
        key = _utf8(secret)
    elif isinstance(secret, bytes):
        key = secret
    else:
        raise SignatureError("secret must be a string")

    token = _opt_str(creds, "token")
    if token is not None:
        _verify_token(creds, key, token)
        return

    headers = _headers(creds)
    pairs = _params(creds)
    authorization = headers.get("authorization")
    if authorization is not None and authorization.startswith(V4_ALGORITHM):
        _verify_v4(creds, key, headers, pairs, in_query=False, now=now, max_skew=max_skew)
        return
    if _param(pairs, "X-Amz-Algorithm") is not None:
        _verify_v4(creds, key, headers, pairs, in_query=True, now=now, max_skew=max_skew)
        return
    version = _param(pairs, "SignatureVersion")
    if version == "2":
        _verify_v2(creds, key, pairs, now, max_skew)
        return
    if version is not None:
        raise SignatureError(f"signature version {version!r} is not supported")
    if authorization is not None:
        raise SignatureError("unsupported Authorization scheme (S3 SigV2 requests need 'token')")
    raise SignatureError("the request carries no recognisable signature")


def sign_v4(
    access: str,
    secret: str,
    *,
    verb: str,
    host: str,
    path: str = "/",
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    body_hash: str | None = None,
    region: str = "RegionOne",
    service: str = "ec2",
    when: datetime | None = None,
    expires_in: int | None = None,
) -> dict[str, str]:
    """Sign a request with SigV4 and return what to add to it.

    Without ``expires_in`` the result is the headers to send
    (``X-Amz-Date`` and ``Authorization``); every header in ``headers`` is
    signed along with ``host``.  With ``expires_in`` (seconds) the result is
    the query parameters of a presigned URL.  ``path`` is the decoded path
    and ``body_hash`` the SHA-256 hex of the payload (default: empty payload;
    presigned S3 requests use UNSIGNED-PAYLOAD).
    """
    amz_date = _as_utc(when).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    scope = (amz_date[:8], region, service)
    credential = f"{access}/{amz_date[:8]}/{region}/{service}/aws4_request"
    all_headers = {name.lower(): value for name, value in (headers or {}).items()}
    all_headers["host"] = host
    pairs = list((params or {}).items())
    if expires_in is None:
        all_headers["x-amz-date"] = amz_date
    else:
        pairs += [
            ("X-Amz-Algorithm", V4_ALGORITHM),
            ("X-Amz-Credential", credential),
            ("X-Amz-Date", amz_date),
            ("X-Amz-Expires", str(expires_in)),
            ("X-Amz-SignedHeaders", ";".join(sorted(all_headers))),
        ]
    signed = sorted(all_headers)
    declared = all_headers.get("x-amz-content-sha256")
    presigned_s3 = expires_in is not None and service == "s3"
    payload_hash = _payload_hash({"body_hash": body_hash}, declared, presigned_s3)
    signature = _v4_signatures(
        _utf8(secret),
        verb=verb,
        path=path,
        queries=[_canonical_query(pairs)],
        headers=all_headers,
        signed=signed,
        payload_hash=payload_hash,
        amz_date=amz_date,
        scope=scope,
    )[0]
    if expires_in is not None:
        return {**dict(pairs[-5:]), "X-Amz-Signature": signature}
    authorization = (
        f"{V4_ALGORITHM} Credential={credential}, SignedHeaders={';'.join(signed)}, Signature={signature}"
    )
    return {"X-Amz-Date": amz_date, "Authorization": authorization}
