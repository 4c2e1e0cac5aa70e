"""boto3 against the S3 API of `stratus up`, with EC2 credentials made by the official `openstack` CLI."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import httpx
import pytest
from boto3.s3.transfer import TransferConfig

from tests.clients.conftest import Cloud, unique
from tests.clients.test_object_swift_cli import object_endpoint


@pytest.fixture(scope="module")
def s3(cloud: Cloud) -> Any:
    created = cloud.run("ec2", "credentials", "create")
    root = object_endpoint(cloud).split("/v1/")[0]
    return boto3.client("s3", endpoint_url=root, aws_access_key_id=created["access"],
                        aws_secret_access_key=created["secret"], region_name="RegionOne",
                        config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def test_bucket_object_listing_presign_and_delete(s3: Any) -> None:
    bucket = unique("boto")
    s3.create_bucket(Bucket=bucket)
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    data = os.urandom(300_000)
    s3.put_object(Bucket=bucket, Key="blob", Body=data)
    assert s3.get_object(Bucket=bucket, Key="blob")["Body"].read() == data
    for index in range(12):
        s3.put_object(Bucket=bucket, Key=f"page/{index:02d}", Body=b"x")
    keys, token, pages = [], None, 0
    while True:
        page = s3.list_objects_v2(Bucket=bucket, Prefix="page/", MaxKeys=5,
                                  **({"ContinuationToken": token} if token else {}))
        pages += 1
        keys += [item["Key"] for item in page["Contents"]]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert keys == [f"page/{i:02d}" for i in range(12)] and pages == 3
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "blob"}, ExpiresIn=120)
    assert httpx.get(url).content == data
    s3.delete_object(Bucket=bucket, Key="blob")
    with pytest.raises(botocore.exceptions.ClientError) as err:
        s3.head_object(Bucket=bucket, Key="blob")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    s3.delete_bucket(Bucket=bucket)
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_multipart_upload_of_50_mb(s3: Any, tmp_path: Any) -> None:
    bucket = unique("mpu")
    s3.create_bucket(Bucket=bucket)
    source = tmp_path / "fifty.bin"
    block = os.urandom(1024 * 1024)
    with source.open("wb") as handle:
        for _ in range(50):
            handle.write(block)
    config = TransferConfig(multipart_threshold=8 * 1024 * 1024, multipart_chunksize=8 * 1024 * 1024,
                            max_concurrency=4)
    s3.upload_file(str(source), bucket, "fifty.bin", Config=config)
    head = s3.head_object(Bucket=bucket, Key="fifty.bin")
    assert head["ContentLength"] == 50 * 1024 * 1024
    target = tmp_path / "back.bin"
    s3.download_file(bucket, "fifty.bin", str(target))
    assert hashlib.md5(target.read_bytes()).digest() == hashlib.md5(source.read_bytes()).digest()
    s3.delete_object(Bucket=bucket, Key="fifty.bin")
    s3.delete_bucket(Bucket=bucket)
