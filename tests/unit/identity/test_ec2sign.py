"""Tests for stratus.identity.ec2sign.

Reference vectors:

* AWS_* : the "GET iam ListUsers" example of the AWS Signature Version 4 documentation, and the
  S3 Signature Version 2 "GET /photos/puppy.jpg" example of the S3 REST authentication page.
* BOTO_* : produced once with botocore 1.44.5 (SigV4Auth, S3SigV4Auth, SigV4QueryAuth,
  S3SigV4QueryAuth, SigV2Auth) at a frozen clock, then embedded here; botocore is not needed to run.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stratus.identity.ec2sign import SignatureError, access_key, sign_v4, verify

# --------------------------------------------------------------------------- AWS documentation vectors

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
AWS_SIGNATURE = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
AWS_NOW = datetime(2015, 8, 30, 12, 36, tzinfo=UTC)


def aws_example() -> dict:
    return {
        "access": "AKIDEXAMPLE",
        "host": "iam.amazonaws.com",
        "verb": "GET",
        "path": "/",
        "params": {"Action": "ListUsers", "Version": "2010-05-08"},
        "headers": {
            "Host": "iam.amazonaws.com",
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "X-Amz-Date": "20150830T123600Z",
            "Authorization": (
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
                f"SignedHeaders=content-type;host;x-amz-date, Signature={AWS_SIGNATURE}"
            ),
        },
    }


# S3 SigV2 (REST) example; note the S3 pages use a secret with "/" where the IAM page has "+".
AWS_S3_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_S3_STRING_TO_SIGN = "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/awsexamplebucket1/photos/puppy.jpg"
AWS_S3_SIGNATURE = "qgk2+6Sv9/oM7G3qLEjTH1a1l1g="

# --------------------------------------------------------------------------- botocore vectors

BOTO_ACCESS = "AKIDSTRATUS"
BOTO_SECRET = "s3cr3t/Key+with=chars"
BOTO_NOW = datetime(2026, 11, 21, 10, 31, tzinfo=UTC)  # signed at 2026-11-21T10:30:00Z


def _boto_auth(service: str, signed: str, signature: str) -> str:
    return (
        f"AWS4-HMAC-SHA256 Credential={BOTO_ACCESS}/20261121/RegionOne/{service}/aws4_request, "
        f"SignedHeaders={signed}, Signature={signature}"
    )


def _from_url(url: str, verb: str = "GET") -> dict:
    parts = urlsplit(url)
    return {
        "access": BOTO_ACCESS,
        "host": parts.netloc,
        "verb": verb,
        "path": parts.path,
        "params": dict(parse_qsl(parts.query, keep_blank_values=True)),
    }


BOTO_VECTORS = {
    # EC2 GET with awkward parameter values and an empty one; host with a port.
    "ec2-get": {
        "access": BOTO_ACCESS,
        "host": "127.0.0.1:8788",
        "verb": "GET",
        "path": "/",
        "params": {
            "Action": "DescribeInstances",
            "Version": "2016-11-15",
            "Filter.1.Name": "tag:Name",
            "Filter.1.Value.1": "a b*c~d/\u00e9",
            "Empty": "",
        },
        "headers": {
            "X-Amz-Date": "20261121T103000Z",
            "Authorization": _boto_auth(
                "ec2", "host;x-amz-date", "005785989ad95a9634cbfb66569d170a757abc552acc29f0ee5acfac62d0f4a4"
            ),
        },
    },
    # EC2 POST with a form body: params came from the body, the canonical query string is empty.
    "ec2-post-form": {
        "access": BOTO_ACCESS,
        "host": "127.0.0.1:8788",
        "verb": "POST",
        "path": "/",
        "params": {"Action": "DescribeRegions", "Version": "2016-11-15"},
        "body_hash": hashlib.sha256(b"Action=DescribeRegions&Version=2016-11-15").hexdigest(),
        "headers": {
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "X-Amz-Date": "20261121T103000Z",
            "Content-Length": "41",
            "Authorization": _boto_auth(
                "ec2",
                "content-type;host;x-amz-date",
                "a6fc230ef82420c258bb09b64b9d07386dfebccf660abd2f6171bd22e98a4f6e",
            ),
        },
    },
    # Non-S3 service with a space in the path: the canonical URI is encoded twice.
    "iam-double-encoded-path": {
        "access": BOTO_ACCESS,
        "host": "iam.local",
        "verb": "GET",
        "path": "/some dir/x",
        "params": {"a": "1"},
        "headers": {
            "X-Amz-Date": "20261121T103000Z",
            "Authorization": _boto_auth(
                "iam", "host;x-amz-date", "20c157d2e2173a9e92dc76073b5f417b63f148fb0b675407ab829921d75042da"
            ),
        },
    },
    # S3 PUT: path encoded once, X-Amz-Content-SHA256 signed and equal to the body hash.
    "s3-put": {
        "access": BOTO_ACCESS,
        "host": "127.0.0.1:8080",
        "verb": "PUT",
        "path": "/bucket/key with space.txt",
        "body_hash": hashlib.sha256(b"hello world").hexdigest(),
        "headers": {
            "X-Amz-Date": "20261121T103000Z",
            "X-Amz-Content-SHA256": hashlib.sha256(b"hello world").hexdigest(),
            "Content-Length": "11",
            "Authorization": _boto_auth(
                "s3",
                "host;x-amz-content-sha256;x-amz-date",
                "cec79585354808d89c8047e8b9aeaa9b17634fd9022202f6fabdd13f7eb136f1",
            ),
        },
    },
    # Presigned S3 GET (UNSIGNED-PAYLOAD), valid for an hour.
    "s3-presigned": _from_url(
        "http://127.0.0.1:8080/bucket/key.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIDSTRATUS%2F20261121%2FRegionOne%2Fs3%2Faws4_request&X-Amz-Date=20261121T103000Z"
        "&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=f06cc39c83ccabc9564a43bfc0729f4d64c877ddc6bff8743773794d7dfef30c"
    ),
    # Presigned EC2 query request (empty-payload hash), valid for five minutes.
    "ec2-presigned": _from_url(
        "http://127.0.0.1:8788/?Action=DescribeRegions&Version=2016-11-15&X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIDSTRATUS%2F20261121%2FRegionOne%2Fec2%2Faws4_request&X-Amz-Date=20261121T103000Z"
        "&X-Amz-Expires=300&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=9ad144bb481c86516887cc53fbdb2e05f59ec69ef488b92a07855eade4b0287b"
    ),
}

# The SigV4 string to sign of "s3-put" (its canonical request hashes to 4816...), as the S3
# middleware would send it in the token form; the signature is the one from the header above.
BOTO_S3_PUT_STRING_TO_SIGN = (
    "AWS4-HMAC-SHA256\n20261121T103000Z\n20261121/RegionOne/s3/aws4_request\n"
    "4816017632e799c645ba8a9f50e974d775435de5b44b9906e3e78d32e308b1d6"
)

BOTO_V2 = {
    "access": BOTO_ACCESS,
    "host": "127.0.0.1:8788",
    "verb": "POST",
    "path": "/",
    "params": {
        "Action": "DescribeRegions",
        "Version": "2016-11-15",
        "X": "a b~*\u00e9",
        "AWSAccessKeyId": BOTO_ACCESS,
        "SignatureVersion": "2",
        "SignatureMethod": "HmacSHA256",
        "Timestamp": "2026-11-21T22:12:32Z",
        "Signature": "ZNSJRafvTus4UCP7CTHkcfjVqZYUWl2tYQh/c3kAaq0=",
    },
}
BOTO_V2_NOW = datetime(2026, 11, 21, 22, 13, tzinfo=UTC)

# --------------------------------------------------------------------------- helpers

SECRET = "very-secret-key"
ACCESS = "0123456789abcdef"
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def header_signed(**overrides) -> dict:
    request = {
        "access": ACCESS,
        "host": "127.0.0.1:8080",
        "verb": "GET",
        "path": "/bucket/some key",
        "params": {"list-type": "2", "prefix": "a/b c"},
        "headers": {"Range": "bytes=0-9", "X-Amz-Content-Sha256": hashlib.sha256(b"").hexdigest()},
        "body_hash": hashlib.sha256(b"").hexdigest(),
    }
    request.update(overrides)
    request["headers"] = {
        **request["headers"],
        **sign_v4(
            ACCESS,
            SECRET,
            verb=request["verb"],
            host=request["host"],
            path=request["path"],
            params=request["params"],
            headers=request["headers"],
            body_hash=request["body_hash"],
            service="s3",
            when=NOW,
        ),
    }
    return request


def query_signed(expires_in: int = 600) -> dict:
    params = {"Action": "DescribeInstances", "Version": "2016-11-15", "InstanceId.1": "i-1"}
    params.update(
        sign_v4(ACCESS, SECRET, verb="GET", host="ec2.local", params=params, when=NOW, expires_in=expires_in)
    )
    return {"access": ACCESS, "host": "ec2.local", "verb": "GET", "path": "/", "params": params}


def v2_signed(method: str = "HmacSHA256") -> dict:
    """A SigV2 request signed independently of the module under test."""
    params = {
        "Action": "DescribeImages",
        "Version": "2016-11-15",
        "AWSAccessKeyId": ACCESS,
        "SignatureVersion": "2",
        "SignatureMethod": method,
        "Timestamp": "2026-11-21T12:00:00Z",
        "Owner.1": "self me",
    }
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items()))
    digest = hashlib.sha256 if method == "HmacSHA256" else hashlib.sha1
    mac = hmac.new(SECRET.encode(), f"GET\nec2.local:8788\n/\n{query}".encode(), digest).digest()
    params["Signature"] = base64.b64encode(mac).decode()
    return {"access": ACCESS, "host": "ec2.local:8788", "verb": "GET", "path": "/", "params": params}


def rejects(request: object, secret: str = SECRET, now: datetime = NOW, match: str | None = None) -> None:
    with pytest.raises(SignatureError, match=match):
        verify(request, secret, now=now)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- known answers


def test_aws_documented_sigv4_example_verifies():
    verify(aws_example(), AWS_SECRET, now=AWS_NOW)


def test_sign_v4_reproduces_the_aws_example():
    headers = sign_v4(
        "AKIDEXAMPLE",
        AWS_SECRET,
        verb="GET",
        host="iam.amazonaws.com",
        params={"Action": "ListUsers", "Version": "2010-05-08"},
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        region="us-east-1",
        service="iam",
        when=AWS_NOW,
    )
    assert headers == {
        "X-Amz-Date": "20150830T123600Z",
        "Authorization": aws_example()["headers"]["Authorization"],
    }


def test_aws_example_with_a_wrong_signature_fails():
    request = aws_example()
    request["headers"]["Authorization"] = request["headers"]["Authorization"].replace("5d672d", "5d672e")
    rejects(request, AWS_SECRET, AWS_NOW, match="does not match")


@pytest.mark.parametrize("wrapper", [None, "credentials", "ec2Credentials"])
def test_body_wrappers_are_accepted(wrapper):
    body = aws_example() if wrapper is None else {wrapper: aws_example()}
    verify(body, AWS_SECRET, now=AWS_NOW)
    assert access_key(body) == "AKIDEXAMPLE"


@pytest.mark.parametrize("name", sorted(BOTO_VECTORS))
def test_botocore_vectors_verify(name):
    verify(copy.deepcopy(BOTO_VECTORS[name]), BOTO_SECRET, now=BOTO_NOW)


@pytest.mark.parametrize("name", sorted(BOTO_VECTORS))
def test_botocore_vectors_fail_with_another_secret(name):
    rejects(copy.deepcopy(BOTO_VECTORS[name]), "wrong", BOTO_NOW, match="does not match")


def test_botocore_sigv2_vector_verifies():
    verify(copy.deepcopy(BOTO_V2), BOTO_SECRET, now=BOTO_V2_NOW)


def test_s3_token_sigv2_aws_example():
    token = base64.b64encode(AWS_S3_STRING_TO_SIGN.encode()).decode()
    verify({"access": "AKIAIOSFODNN7EXAMPLE", "token": token, "signature": AWS_S3_SIGNATURE}, AWS_S3_SECRET)
    rejects(
        {"access": "A", "token": token, "signature": AWS_S3_SIGNATURE}, AWS_SECRET, match="does not match"
    )


@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
def test_s3_token_sigv4(encode):
    token = encode(BOTO_S3_PUT_STRING_TO_SIGN.encode()).decode()
    signature = "cec79585354808d89c8047e8b9aeaa9b17634fd9022202f6fabdd13f7eb136f1"
    verify({"credentials": {"access": BOTO_ACCESS, "token": token, "signature": signature}}, BOTO_SECRET)
    rejects({"access": BOTO_ACCESS, "token": token, "signature": signature}, "wrong", match="does not match")
    altered = encode(BOTO_S3_PUT_STRING_TO_SIGN.replace("RegionOne", "RegionTwo").encode()).decode()
    rejects(
        {"access": BOTO_ACCESS, "token": altered, "signature": signature}, BOTO_SECRET, match="does not match"
    )


def test_s3_token_sigv2_independent_round_trip():
    to_sign = b"PUT\n\ntext/plain\nSat, 21 Nov 2026 12:00:00 GMT\nx-amz-meta-a:b\n/bucket/obj"
    signature = base64.b64encode(hmac.new(SECRET.encode(), to_sign, hashlib.sha1).digest()).decode()
    token = base64.urlsafe_b64encode(to_sign).decode()
    verify({"access": ACCESS, "token": token, "signature": signature}, SECRET)
    rejects({"access": ACCESS, "token": base64.b64encode(to_sign + b"x").decode(), "signature": signature})


@pytest.mark.parametrize(
    "token",
    [
        "not base64!",
        base64.b64encode(b"AWS4-HMAC-SHA256\nbad").decode(),
        base64.b64encode(b"\xff\xfe").decode(),
    ],
)
def test_s3_token_malformed(token):
    rejects({"access": ACCESS, "token": token, "signature": "abc"})


def test_s3_token_requires_signature():
    rejects({"access": ACCESS, "token": base64.b64encode(b"GET\n").decode()}, match="signature")


# --------------------------------------------------------------------------- round trips


def test_sigv4_header_round_trip():
    request = header_signed()
    verify(request, SECRET, now=NOW)
    assert request["headers"]["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS}/20261121/")
    assert "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date," in request["headers"]["Authorization"]


def test_sigv4_header_round_trip_with_body_and_post():
    body_hash = hashlib.sha256(b"payload").hexdigest()
    request = header_signed(verb="POST", headers={"Content-Type": "text/plain"}, body_hash=body_hash)
    verify(request, SECRET, now=NOW)


def test_sigv4_unsigned_payload_ignores_body_hash():
    request = header_signed(
        headers={"X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD"}, body_hash=hashlib.sha256(b"x").hexdigest()
    )
    verify(request, SECRET, now=NOW)


def test_sigv4_signature_field_must_agree_with_header():
    request = header_signed()
    request["signature"] = request["headers"]["Authorization"].rsplit("=", 1)[1]
    verify(request, SECRET, now=NOW)
    request["signature"] = "0" * 64
    rejects(request, match="does not match")


def test_sigv4_query_round_trip():
    request = query_signed()
    assert set(request["params"]) >= {
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
    }
    verify(request, SECRET, now=NOW)
    # The signature may also arrive in the body's "signature" field only.
    request["signature"] = request["params"].pop("X-Amz-Signature")
    verify(request, SECRET, now=NOW)


def test_sigv4_s3_presign_round_trip_uses_unsigned_payload():
    params = sign_v4(
        ACCESS, SECRET, verb="GET", host="s3.local", path="/b/k", service="s3", when=NOW, expires_in=60
    )
    request = {"access": ACCESS, "host": "s3.local", "verb": "GET", "path": "/b/k", "params": params}
    verify({**request, "body_hash": hashlib.sha256(b"ignored").hexdigest()}, SECRET, now=NOW)


@pytest.mark.parametrize("method", ["HmacSHA256", "HmacSHA1"])
def test_sigv2_round_trip(method):
    verify(v2_signed(method), SECRET, now=NOW)


def test_sigv2_signature_in_body_field():
    request = v2_signed()
    request["signature"] = request["params"].pop("Signature")
    verify(request, SECRET, now=NOW)


def test_sigv2_unknown_method_and_stale_timestamp():
    request = v2_signed()
    request["params"]["SignatureMethod"] = "HmacMD5"
    rejects(request, match="SignatureMethod")
    rejects(v2_signed(), now=NOW + timedelta(hours=1), match="Timestamp")


@pytest.mark.parametrize("version", ["0", "1", "3"])
def test_old_signature_versions_are_unsupported(version):
    request = v2_signed()
    request["params"]["SignatureVersion"] = version
    rejects(request, match="not supported")


# --------------------------------------------------------------------------- tampering


def _tamper_path(r):
    r["path"] += "x"


def _tamper_param(r):
    r["params"] = (
        {**r["params"], "Version": "2099-01-01"} if "Version" in r["params"] else {**r["params"], "p": "1"}
    )


def _tamper_added_param(r):
    r["params"] = {**r["params"], "Extra": "1"}


def _tamper_verb(r):
    r["verb"] = "DELETE"


def _tamper_host(r):
    r["host"] = "evil.example"
    r.get("headers", {}).pop("Host", None)


def _tamper_header(r):
    r["headers"]["Range"] = "bytes=0-10"


def _tamper_body_hash(r):
    r["body_hash"] = hashlib.sha256(b"other").hexdigest()


TAMPERINGS = {
    "path": _tamper_path,
    "param": _tamper_param,
    "added-param": _tamper_added_param,
    "verb": _tamper_verb,
    "host": _tamper_host,
}


@pytest.mark.parametrize("tamper", sorted(TAMPERINGS) + ["header", "body_hash"])
def test_tampered_sigv4_header_request_fails(tamper):
    request = header_signed()
    verify(request, SECRET, now=NOW)
    {**TAMPERINGS, "header": _tamper_header, "body_hash": _tamper_body_hash}[tamper](request)
    rejects(request)


@pytest.mark.parametrize("tamper", sorted(TAMPERINGS))
def test_tampered_sigv4_query_request_fails(tamper):
    request = query_signed()
    TAMPERINGS[tamper](request)
    rejects(request)


@pytest.mark.parametrize("tamper", sorted(TAMPERINGS))
def test_tampered_sigv2_request_fails(tamper):
    request = v2_signed()
    TAMPERINGS[tamper](request)
    rejects(request)


def test_body_hash_change_without_content_sha_header_fails():
    request = header_signed(headers={}, body_hash=hashlib.sha256(b"data").hexdigest())
    verify(request, SECRET, now=NOW)
    _tamper_body_hash(request)
    rejects(request, match="does not match")


def test_body_hash_disagreeing_with_content_sha_header_fails():
    request = header_signed()
    _tamper_body_hash(request)
    rejects(request, match="X-Amz-Content-Sha256")


@pytest.mark.parametrize("make", [header_signed, query_signed, v2_signed])
def test_wrong_secret_fails(make):
    rejects(make(), secret=SECRET + "x", match="does not match")


def test_unsigned_header_may_change_but_signed_one_may_not():
    request = header_signed()
    request["headers"]["User-Agent"] = "anything"
    verify(request, SECRET, now=NOW)
    del request["headers"]["Range"]
    rejects(request, match="signed header 'range' is missing")


def test_credential_for_another_access_key_fails():
    request = header_signed()
    request["access"] = "someone-else"
    rejects(request, match="another access key")


# --------------------------------------------------------------------------- time


@pytest.mark.parametrize("offset", [timedelta(minutes=16), -timedelta(minutes=16), timedelta(days=3)])
def test_sigv4_clock_skew_fails(offset):
    rejects(header_signed(), now=NOW + offset, match="too far")


@pytest.mark.parametrize("offset", [timedelta(minutes=14), -timedelta(minutes=14)])
def test_sigv4_within_skew_passes(offset):
    verify(header_signed(), SECRET, now=NOW + offset)


def test_custom_max_skew():
    with pytest.raises(SignatureError):
        verify(header_signed(), SECRET, now=NOW + timedelta(minutes=2), max_skew=timedelta(minutes=1))


def test_naive_now_is_utc():
    verify(header_signed(), SECRET, now=NOW.replace(tzinfo=None))


def test_presigned_request_lives_until_its_expiry():
    verify(query_signed(expires_in=3600), SECRET, now=NOW + timedelta(minutes=59))
    rejects(query_signed(expires_in=3600), now=NOW + timedelta(minutes=61), match="expired")
    rejects(query_signed(expires_in=60), now=NOW + timedelta(minutes=2), match="expired")
    rejects(query_signed(), now=NOW - timedelta(minutes=16), match="future")


@pytest.mark.parametrize("expires", ["0", "604801", "-5", "1e3", "\u0661\u0662"])
def test_presigned_request_with_bad_expires_fails(expires):
    request = query_signed()
    request["params"]["X-Amz-Expires"] = expires
    rejects(request, match="X-Amz-Expires")


def test_missing_x_amz_date_header_fails():
    request = header_signed()
    del request["headers"]["X-Amz-Date"]
    rejects(request, match="X-Amz-Date")


def test_date_scope_mismatch_fails():
    request = header_signed()
    request["headers"]["X-Amz-Date"] = "20261122T000000Z"
    rejects(request, now=datetime(2026, 11, 22, tzinfo=UTC), match="scope date")


# --------------------------------------------------------------------------- malformed input

GOOD_AUTH = aws_example()["headers"]["Authorization"]


@pytest.mark.parametrize(
    "authorization",
    [
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 ",
        "AWS4-HMAC-SHA256Credential=x",
        "AWS4-HMAC-SHA256 garbage",
        GOOD_AUTH.replace("Credential=", "Credentials="),
        GOOD_AUTH.replace(", Signature=", ", Sig="),
        GOOD_AUTH.replace("SignedHeaders=content-type;host;x-amz-date, ", ""),
        GOOD_AUTH + ", Signature=abc",
        GOOD_AUTH.replace("/aws4_request", "/aws5_request"),
        GOOD_AUTH.replace("AKIDEXAMPLE/", "AKIDEXAMPLE/extra/"),
        GOOD_AUTH.replace("/20150830/", "/2015-08-30/"),
        GOOD_AUTH.replace("content-type;host;x-amz-date", "host;content-type;x-amz-date"),
        GOOD_AUTH.replace("content-type;host;x-amz-date", "Content-Type;host;x-amz-date"),
        GOOD_AUTH.replace("content-type;host;x-amz-date", "content-type;x-amz-date"),
        GOOD_AUTH.replace("content-type;host;x-amz-date", "content-type;;host"),
        GOOD_AUTH.replace("content-type;host;x-amz-date", "host;host"),
        GOOD_AUTH.replace(AWS_SIGNATURE, "\u00e9" * 64),
        GOOD_AUTH.replace(AWS_SIGNATURE, ""),
        "AWS AKIDEXAMPLE:abc=",
        "Bearer token",
    ],
)
def test_malformed_authorization_raises_signature_error(authorization):
    request = aws_example()
    request["headers"]["Authorization"] = authorization
    rejects(request, AWS_SECRET, AWS_NOW)


@pytest.mark.parametrize(
    "amz_date", ["2015-08-30T12:36:00Z", "20150830T123600", "20151330T123600Z", "20150830T123600Z\n", ""]
)
def test_malformed_amz_date(amz_date):
    request = aws_example()
    request["headers"]["X-Amz-Date"] = amz_date
    rejects(request, AWS_SECRET, AWS_NOW)


@pytest.mark.parametrize(
    "request_body",
    [
        None,
        "string",
        [],
        {},
        {"credentials": {}},
        {"access": ACCESS},
        {"access": ACCESS, "verb": "GET", "params": "x=1"},
        {"access": ACCESS, "verb": "GET", "params": {"SignatureVersion": ["2", "2"]}},
        {"access": ACCESS, "verb": "GET", "params": {"SignatureVersion": 2}},
        {"access": ACCESS, "verb": "GET", "headers": {"Authorization": 5}},
        {"access": ACCESS, "verb": "GET", "headers": {"a": "1", "A": "2"}},
        {"access": ACCESS, "params": {"X-Amz-Algorithm": "AWS4-HMAC-SHA1"}, "verb": "GET"},
        {"access": ACCESS, "params": {"X-Amz-Algorithm": "AWS4-HMAC-SHA256"}, "verb": "GET"},
        {"access": ACCESS, "token": 12, "signature": "x"},
        {"access": ACCESS, "params": {"SignatureVersion": "2", "SignatureMethod": "HmacSHA256"}},
    ],
)
def test_malformed_bodies_raise_signature_error(request_body):
    rejects(request_body)


def test_access_key():
    assert access_key({"access": "A"}) == "A"
    assert access_key({"ec2Credentials": {"access": "B"}}) == "B"
    for bad in ({}, {"credentials": {}}, {"access": ""}, {"access": 5}, "nope", None):
        with pytest.raises(SignatureError):
            access_key(bad)  # type: ignore[arg-type]


def test_non_string_secret_is_a_signature_error():
    rejects(header_signed(), secret=None)  # type: ignore[arg-type]


def test_surrogates_do_not_escape_as_unicode_errors():
    request = header_signed()
    request["path"] = "/\ud800"
    rejects(request)
    rejects(header_signed(), secret="\udfff")


# --------------------------------------------------------------------------- fuzzing

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)

_FIELDS = ["access", "signature", "host", "verb", "path", "params", "headers", "body_hash", "token"]
_PARAM_NAMES = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Expires",
    "X-Amz-Content-Sha256",
    "SignatureVersion",
    "SignatureMethod",
    "Signature",
    "Timestamp",
    "Expires",
    "AWSAccessKeyId",
    "Action",
]
_HEADER_NAMES = ["Authorization", "X-Amz-Date", "Host", "x-amz-content-sha256", "Range", "Content-Type"]
_FRAGMENTS = [
    "AWS4-HMAC-SHA256",
    " ",
    ",",
    ";",
    "/",
    "=",
    "Credential=",
    "SignedHeaders=",
    "Signature=",
    "host",
    "x-amz-date",
    "AKID",
    "20261121",
    "20261121T120000Z",
    "RegionOne",
    "s3",
    "ec2",
    "aws4_request",
    "2",
    "HmacSHA256",
    "HmacSHA1",
    "UNSIGNED-PAYLOAD",
    "3600",
    "2026-11-21T12:00:00Z",
    "\n",
    "\u00e9",
    "\ud800",
]
_plausible = st.lists(st.sampled_from(_FRAGMENTS) | st.text(max_size=5), max_size=12).map("".join)
_value = _plausible | st.text(max_size=30) | _json
_token = st.one_of(
    st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode()),
    _plausible.map(lambda s: base64.b64encode(s.encode("utf-8", "surrogatepass")).decode()),
    _plausible.map(
        lambda s: base64.b64encode(("AWS4-HMAC-SHA256\n" + s).encode("utf-8", "surrogatepass")).decode()
    ),
    st.text(max_size=30),
)
_structured = st.fixed_dictionaries(
    {},
    optional={
        "access": _value,
        "signature": _value,
        "host": _value,
        "verb": st.sampled_from(["GET", "POST", "PUT"]) | _value,
        "path": _value,
        "params": st.dictionaries(st.sampled_from(_PARAM_NAMES) | st.text(max_size=5), _value, max_size=8)
        | _value,
        "headers": st.dictionaries(st.sampled_from(_HEADER_NAMES) | st.text(max_size=5), _value, max_size=6)
        | _value,
        "body_hash": _value,
        "token": _token | _value,
    },
)
_bodies = st.one_of(
    _json,
    st.text(),
    _structured,
    _structured.map(lambda d: {"credentials": d}),
    _structured.map(lambda d: {"ec2Credentials": d}),
)
_nows = st.none() | st.datetimes(timezones=st.none() | st.just(UTC))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_bodies, secret=st.text(max_size=20), now=_nows)
def test_verify_only_ever_raises_signature_error(body, secret, now):
    with pytest.raises(SignatureError):
        verify(body, secret, now=now)


def _splice(text: str, start: int, stop: int, insert: str) -> str:
    start, stop = sorted((start % (len(text) + 1), stop % (len(text) + 1)))
    return text[:start] + insert + text[stop:]


_BUILDERS = [
    header_signed,
    query_signed,
    v2_signed,
    aws_example,
    lambda: copy.deepcopy(BOTO_VECTORS["s3-put"]),
]


@st.composite
def _mutated(draw):
    """A validly signed request with a few fields replaced, removed or spliced."""
    request = draw(st.sampled_from(_BUILDERS))()
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(["top", "params", "headers"]))
        target = request if where == "top" else request.setdefault(where, {})
        if not isinstance(target, dict):
            continue
        names = sorted(target) + (
            _FIELDS if where == "top" else _PARAM_NAMES if where == "params" else _HEADER_NAMES
        )
        name = draw(st.sampled_from(names))
        action = draw(st.sampled_from(["replace", "delete", "splice"]))
        if action == "delete":
            target.pop(name, None)
        elif action == "splice" and isinstance(target.get(name), str):
            insert = draw(_plausible)
            target[name] = _splice(target[name], draw(st.integers()), draw(st.integers()), insert)
        else:
            target[name] = draw(_value)
    return request


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_mutated(), now=st.sampled_from([NOW, AWS_NOW, BOTO_NOW]) | _nows)
def test_mutated_requests_pass_or_raise_signature_error(body, now):
    for secret in (SECRET, AWS_SECRET, BOTO_SECRET):
        try:
            verify(body, secret, now=now)
        except SignatureError:
            pass


@settings(max_examples=300, deadline=None)
@given(body=_bodies)
def test_access_key_only_ever_raises_signature_error(body):
    try:
        assert isinstance(access_key(body), str)
    except SignatureError:
        pass


@settings(max_examples=200, deadline=None)
@given(
    path=st.text(min_size=1, max_size=20).map(lambda p: "/" + p),
    params=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=5),
    service=st.sampled_from(["s3", "ec2", "iam"]),
    query=st.booleans(),
)
def test_sign_then_verify_round_trips_for_arbitrary_paths_and_params(path, params, service, query):
    params = {k: v for k, v in params.items() if not k.startswith("X-Amz-")}
    added = sign_v4(
        ACCESS,
        SECRET,
        verb="GET",
        host="h.local",
        path=path,
        params=params,
        service=service,
        when=NOW,
        expires_in=300 if query else None,
    )
    request = {"access": ACCESS, "host": "h.local", "verb": "GET", "path": path, "params": dict(params)}
    if query:
        request["params"].update(added)
    else:
        request["headers"] = added
    verify(request, SECRET, now=NOW)
