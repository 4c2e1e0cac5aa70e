"""The S3 front with boto3 (SigV4 checked by the identity service's EC2 credentials)."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import httpx
import pytest

from stratus.identity import ec2sign
from tests.api.object_proxy.conftest import ProxyHarness, User, unique


def _s3(proxy: ProxyHarness, user: User, secret: str | None = None) -> Any:
    access, real_secret = proxy.ec2_credentials(user)
    return boto3.client("s3", endpoint_url=proxy.url, aws_access_key_id=access,
                        aws_secret_access_key=secret or real_secret, region_name="RegionOne",
                        config=botocore.config.Config(s3={"addressing_style": "path"},
                                                      retries={"max_attempts": 1}))


def test_bucket_and_object_basics(proxy: ProxyHarness) -> None:
    s3 = _s3(proxy, proxy.users["alpha"])
    bucket = unique("bucket")
    s3.create_bucket(Bucket=bucket)
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket=bucket)
    data = os.urandom(100_000)
    put = s3.put_object(Bucket=bucket, Key="dir/file.bin", Body=data, Metadata={"color": "red"},
                        ContentType="application/x-test")
    assert put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="dir/file.bin")
    assert got["Body"].read() == data
    assert got["Metadata"] == {"color": "red"} and got["ContentType"] == "application/x-test"
    head = s3.head_object(Bucket=bucket, Key="dir/file.bin")
    assert head["ContentLength"] == len(data)
    ranged = s3.get_object(Bucket=bucket, Key="dir/file.bin", Range="bytes=5-9")
    assert ranged["Body"].read() == data[5:10]
    s3.copy_object(Bucket=bucket, Key="copy.bin", CopySource={"Bucket": bucket, "Key": "dir/file.bin"})
    assert s3.get_object(Bucket=bucket, Key="copy.bin")["Body"].read() == data
    with pytest.raises(botocore.exceptions.ClientError) as missing:
        s3.get_object(Bucket=bucket, Key="nothing")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"
    with pytest.raises(botocore.exceptions.ClientError) as not_empty:
        s3.delete_bucket(Bucket=bucket)
    assert not_empty.value.response["Error"]["Code"] == "BucketNotEmpty"
    s3.delete_object(Bucket=bucket, Key="dir/file.bin")
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "copy.bin"}]})
    s3.delete_bucket(Bucket=bucket)
    with pytest.raises(botocore.exceptions.ClientError) as gone:
        s3.head_bucket(Bucket=bucket)
    assert gone.value.response["Error"]["Code"] == "404"


def test_list_objects_v2_pagination_and_prefixes(proxy: ProxyHarness) -> None:
    s3 = _s3(proxy, proxy.users["alpha"])
    bucket = unique("list")
    s3.create_bucket(Bucket=bucket)
    keys = [f"k{i:02d}" for i in range(7)] + ["sub/a", "sub/b"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    seen, token, pages = [], None, 0
    while True:
        kwargs = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=bucket, MaxKeys=3, **kwargs)
        pages += 1
        seen += [item["Key"] for item in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert seen == sorted(keys) and pages == 3
    folded = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in folded["CommonPrefixes"]] == ["sub/"]
    assert len(folded["Contents"]) == 7
    paginator = s3.get_paginator("list_objects_v2")
    prefixed = [i["Key"] for p in paginator.paginate(Bucket=bucket, Prefix="sub/", PaginationConfig={"PageSize": 1})
                for i in p.get("Contents", [])]
    assert prefixed == ["sub/a", "sub/b"]


def test_multipart_upload(proxy: ProxyHarness) -> None:
    s3 = _s3(proxy, proxy.users["alpha"])
    bucket = unique("mpu")
    s3.create_bucket(Bucket=bucket)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="big", Metadata={"kind": "mpu"})
    parts = [os.urandom(5 * 1024 * 1024), os.urandom(1000)]
    done = []
    for number, part in enumerate(parts, start=1):
        response = s3.upload_part(Bucket=bucket, Key="big", UploadId=upload["UploadId"], PartNumber=number, Body=part)
        done.append({"PartNumber": number, "ETag": response["ETag"]})
    listed = s3.list_parts(Bucket=bucket, Key="big", UploadId=upload["UploadId"])
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2]
    assert [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])] == ["big"]
    result = s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=upload["UploadId"],
                                          MultipartUpload={"Parts": done})
    assert result["ETag"].endswith('-2"')
    got = s3.get_object(Bucket=bucket, Key="big")
    assert got["Body"].read() == b"".join(parts) and got["Metadata"] == {"kind": "mpu"}
    aborted = s3.create_multipart_upload(Bucket=bucket, Key="never")
    s3.abort_multipart_upload(Bucket=bucket, Key="never", UploadId=aborted["UploadId"])
    with pytest.raises(botocore.exceptions.ClientError) as err:
        s3.list_parts(Bucket=bucket, Key="never", UploadId=aborted["UploadId"])
    assert err.value.response["Error"]["Code"] == "NoSuchUpload"


def test_presigned_url(proxy: ProxyHarness) -> None:
    s3 = _s3(proxy, proxy.users["alpha"])
    bucket = unique("presign")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="shared", Body=b"presigned body")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "shared"}, ExpiresIn=60)
    assert httpx.get(url).content == b"presigned body"
    assert httpx.get(url.replace("X-Amz-Signature=", "X-Amz-Signature=0")).status_code == 403


def test_wrong_secret_and_isolation(proxy: ProxyHarness) -> None:
    alpha, beta = proxy.users["alpha"], proxy.users["beta"]
    bad = _s3(proxy, alpha, secret="wrong-secret")
    with pytest.raises(botocore.exceptions.ClientError) as err:
        bad.list_buckets()
    assert err.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    s3a, s3b = _s3(proxy, alpha), _s3(proxy, beta)
    bucket = unique("private")
    s3a.create_bucket(Bucket=bucket)
    s3a.put_object(Bucket=bucket, Key="k", Body=b"alpha only")
    assert bucket not in [b["Name"] for b in s3b.list_buckets()["Buckets"]]
    with pytest.raises(botocore.exceptions.ClientError) as other:
        s3b.get_object(Bucket=bucket, Key="k")
    assert other.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404  # beta's own account has no such bucket


def test_virtual_host_style_bucket(proxy: ProxyHarness) -> None:
    alpha = proxy.users["alpha"]
    access, secret = proxy.ec2_credentials(alpha)
    s3 = _s3(proxy, alpha)
    bucket = unique("vhost")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"virtual")
    port = proxy.url.rsplit(":", 1)[1]
    host = f"{bucket}.s3.localhost:{port}"
    headers = ec2sign.sign_v4(access, secret, verb="GET", host=host, path="/k", service="s3",
                              headers={"x-amz-content-sha256": ec2sign.EMPTY_SHA256})
    response = httpx.get(f"{proxy.url}/k", headers={**headers, "Host": host,
                                                    "x-amz-content-sha256": ec2sign.EMPTY_SHA256})
    assert response.status_code == 200 and response.content == b"virtual"


def test_payload_hash_mismatch_stores_nothing(proxy: ProxyHarness) -> None:
    alpha = proxy.users["alpha"]
    access, secret = proxy.ec2_credentials(alpha)
    s3 = _s3(proxy, alpha)
    bucket = unique("hash")
    s3.create_bucket(Bucket=bucket)
    host = proxy.url.removeprefix("http://")
    claimed = hashlib.sha256(b"something else").hexdigest()
    headers = ec2sign.sign_v4(access, secret, verb="PUT", host=host, path=f"/{bucket}/k", service="s3",
                              headers={"x-amz-content-sha256": claimed})
    response = httpx.put(f"{proxy.url}/{bucket}/k", content=b"the real body",
                         headers={**headers, "x-amz-content-sha256": claimed})
    assert response.status_code == 400 and b"XAmzContentSHA256Mismatch" in response.content
    with pytest.raises(botocore.exceptions.ClientError):
        s3.head_object(Bucket=bucket, Key="k")


def test_list_objects_v1_markers_location_and_conditional_get(proxy: ProxyHarness) -> None:
    s3 = _s3(proxy, proxy.users["alpha"])
    bucket = unique("v1")
    s3.create_bucket(Bucket=bucket)
    for key in ("a", "b", "c", "d/e", "d/f"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    first = s3.list_objects(Bucket=bucket, MaxKeys=2)
    assert [o["Key"] for o in first["Contents"]] == ["a", "b"] and first["IsTruncated"]
    rest = s3.list_objects(Bucket=bucket, Marker="b", Delimiter="/")
    assert [o["Key"] for o in rest["Contents"]] == ["c"] and rest["CommonPrefixes"] == [{"Prefix": "d/"}]
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] is None
    etag = s3.head_object(Bucket=bucket, Key="a")["ETag"]
    with pytest.raises(botocore.exceptions.ClientError) as err:
        s3.get_object(Bucket=bucket, Key="a", IfNoneMatch=etag)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(botocore.exceptions.ClientError) as failed:
        s3.get_object(Bucket=bucket, Key="a", IfMatch='"0123"')
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
