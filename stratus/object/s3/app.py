"""The S3 REST API as an ASGI app in front of the Swift proxy.

A bucket is a container of the caller's account, an object a Swift object; user metadata
`x-amz-meta-*` is `X-Object-Meta-*`. Buckets are named by the path (`/bucket/key`) or by the host
(`bucket.<s3_domain>`). Every request is SigV4-signed (Authorization header or presigned query).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

from starlette.types import Receive, Scope, Send

from stratus.object.proxy.app import request_body, scope_headers, send_response
from stratus.object.proxy.request import Body, ClientDisconnected, SwiftRequest, SwiftResponse
from stratus.object.s3 import multipart
from stratus.object.s3.auth import S3Authenticator
from stratus.object.s3.xmlio import S3Error, children, from_status, iso_time, parse, text_of, xml_response

if TYPE_CHECKING:
    from stratus.object.proxy.server import Proxy

log = logging.getLogger("stratus.object.s3")
MAX_KEYS = 1000
SEGMENTS_SUFFIX = multipart.SEGMENTS_SUFFIX


class S3Request:
    """One S3 call: the bucket and key it names and a way to make Swift requests as its caller."""

    def __init__(self, app: S3App, base: SwiftRequest, bucket: str | None, key: str | None,
                 query: dict[str, str], headers: dict[str, str], body: Body) -> None:
        self.app, self.base, self.bucket, self.key = app, base, bucket, key
        self.query, self.headers, self.body = query, headers, body

    async def swift(self, method: str, container: str | None = None, obj: str | None = None,
                    headers: dict[str, str] | None = None, query: dict[str, str] | None = None,
                    body: Body | None = None) -> SwiftResponse:
        req = self.base.derive(method=method, container=container, obj=obj, headers=headers or {},
                               query=query or {}, body=body)
        return await self.app.proxy.handle(req)

    async def check(self, response: SwiftResponse, key: str | None = None) -> SwiftResponse:
        """`response` if it succeeded; its S3 error otherwise."""
        if response.status // 100 == 2:
            return response
        message = response.body.decode(errors="replace") if isinstance(response.body, bytes) else ""
        await response.close()
        raise from_status(response.status, self.bucket, key, message)


def _meta_in(headers: dict[str, str]) -> dict[str, str]:
    out = {f"x-object-meta-{k[len('x-amz-meta-'):]}": v for k, v in headers.items() if k.startswith("x-amz-meta-")}
    for name in ("content-type", "content-disposition", "content-encoding", "cache-control", "content-language"):
        if name in headers:
            out[name] = headers[name]
    return out


def _meta_out(headers: dict[str, str]) -> dict[str, str]:
    out = {}
    for name, value in headers.items():
        if name.startswith("x-object-meta-"):
            out["x-amz-meta-" + name[len("x-object-meta-"):]] = value
        elif name in ("content-type", "content-length", "etag", "last-modified", "content-range",
                      "content-disposition", "content-encoding", "cache-control", "content-language",
                      "accept-ranges", "x-object-version-id"):
            out[name if name != "x-object-version-id" else "x-amz-version-id"] = value
    if "etag" in out and not out["etag"].startswith('"'):
        out["etag"] = f'"{out["etag"]}"'
    return out


def _md5_header(headers: dict[str, str]) -> str | None:
    value = headers.get("content-md5")
    if value is None:
        return None
    try:
        return base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        raise S3Error(400, "InvalidDigest", "The Content-MD5 you specified was invalid.") from None


def _token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode()


def _untoken(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise S3Error(400, "InvalidArgument", "The continuation token provided is incorrect") from None


class S3App:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        settings = proxy.settings
        identity = settings.identity_url or getattr(proxy.auth.validator, "url", "")
        self.signatures = S3Authenticator(identity, proxy.auth)
        self.domain = settings.s3_domain.lower()

    def _names(self, path: str, host: str) -> tuple[str | None, str | None]:
        hostname = host.rsplit(":", 1)[0].lower() if host else ""
        if self.domain and hostname.endswith("." + self.domain):
            bucket = hostname[:-len(self.domain) - 1]
            return bucket, path.lstrip("/") or None
        bucket, _, key = path.lstrip("/").partition("/")
        return bucket or None, key or None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = "tx" + uuid.uuid4().hex
        headers = scope_headers(scope)
        method, path = scope["method"], scope["path"]
        pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        query = dict(pairs)
        bucket, key = self._names(path, headers.get("host", ""))
        resource = path
        try:
            caller = await self.signatures.caller(method, path, pairs, headers)
            account = self.proxy.auth.account_for(caller.project_id)
            declared = headers.get("x-amz-content-sha256")
            sha256 = declared if declared and len(declared) == 64 else None
            base = SwiftRequest(method=method, account=account, caller=caller, host=headers.get("host", ""))
            s3req = S3Request(self, base, bucket, key, query, headers, request_body(receive))
            s3req.sha256 = sha256  # type: ignore[attr-defined]
            response = await self._dispatch(s3req, method)
        except S3Error as exc:
            from stratus.object.s3.xmlio import error_response

            response = error_response(exc, resource, request_id)
        except ClientDisconnected:
            return
        except Exception:
            log.exception("s3: unexpected error in %s %s", method, path)
            from stratus.object.s3.xmlio import error_response

            response = error_response(S3Error(500, "InternalError", "We encountered an internal error."),
                                      resource, request_id)
        response.headers["x-amz-request-id"] = request_id
        await send_response(send, response, method, request_id)

    async def _dispatch(self, req: S3Request, method: str) -> SwiftResponse:
        if req.bucket is None:
            if method == "GET":
                return await self.list_buckets(req)
            raise S3Error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
        if req.key is None:
            return await self._bucket(req, method)
        if "uploads" in req.query or "uploadId" in req.query:
            return await multipart.handle(req, method)
        return await self._object(req, method)

    # -- buckets ------------------------------------------------------------------------------------
    async def list_buckets(self, req: S3Request) -> SwiftResponse:
        response = await req.check(await req.swift("GET", query={"format": "json"}))
        items = json.loads(await response.read()) if response.status == 200 else []
        caller = req.base.caller
        buckets = [{"Name": item["name"], "CreationDate": iso_time(item.get("last_modified"))}
                   for item in items if not item["name"].endswith(SEGMENTS_SUFFIX)
                   and not item["name"].startswith(".versions-")]
        return xml_response("ListAllMyBucketsResult", {
            "Owner": {"ID": caller.project_id, "DisplayName": caller.project_name},
            "Buckets": {"Bucket": buckets}})

    async def _bucket(self, req: S3Request, method: str) -> SwiftResponse:
        bucket = req.bucket
        if method == "PUT":
            if req.body is not None:
                async for _ in req.body:
                    pass
            if not bucket or len(bucket) < 3 or len(bucket) > 63 or "/" in bucket:
                raise S3Error(400, "InvalidBucketName", "The specified bucket is not valid.")
            await req.check(await req.swift("PUT", bucket))
            return SwiftResponse(200, {"location": f"/{bucket}", "content-length": "0"})
        if method == "HEAD":
            await req.check(await req.swift("HEAD", bucket))
            return SwiftResponse(200, {"content-length": "0"})
        if method == "DELETE":
            await req.check(await req.swift("DELETE", bucket))
            segments = await req.swift("DELETE", f"{bucket}{SEGMENTS_SUFFIX}")
            await segments.close()
            return SwiftResponse(204, {})
        if method == "POST" and "delete" in req.query:
            return await self.delete_objects(req)
        if method == "GET":
            if "location" in req.query:
                await req.check(await req.swift("HEAD", bucket))
                return xml_response("LocationConstraint", {})
            if "uploads" in req.query:
                return await multipart.list_uploads(req)
            return await self.list_objects(req)
        raise S3Error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")

    async def list_objects(self, req: S3Request) -> SwiftResponse:
        q = req.query
        v2 = q.get("list-type") == "2"
        max_keys = q.get("max-keys", str(MAX_KEYS))
        if not max_keys.isdigit():
            raise S3Error(400, "InvalidArgument", "max-keys must be a non-negative integer")
        limit = min(int(max_keys), MAX_KEYS)
        prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
        if v2:
            marker = _untoken(q["continuation-token"]) if q.get("continuation-token") else q.get("start-after", "")
        else:
            marker = q.get("marker", "")
        if delimiter and marker.endswith(delimiter) and marker.startswith(prefix):
            # A common prefix was the last entry: skip every name under it.
            marker = marker[:-len(delimiter)] + chr(ord(delimiter[-1]) + 1)
        query = {"format": "json", "limit": str(limit + 1), "prefix": prefix, "marker": marker}
        if delimiter:
            query["delimiter"] = delimiter
        response = await req.check(await req.swift("GET", req.bucket, query=query))
        items = json.loads(await response.read()) if response.status == 200 else []
        truncated = len(items) > limit
        items = items[:limit]
        encode = (lambda s: quote(s, safe="/")) if q.get("encoding-type") == "url" else (lambda s: s)
        contents = [{"Key": encode(i["name"]), "LastModified": iso_time(i.get("last_modified")),
                     "ETag": f'"{i.get("hash", "")}"', "Size": i.get("bytes", 0), "StorageClass": "STANDARD"}
                    for i in items if "subdir" not in i]
        prefixes = [{"Prefix": encode(i["subdir"])} for i in items if "subdir" in i]
        last = (items[-1].get("subdir") or items[-1].get("name")) if items else ""
        doc: dict[str, Any] = {"Name": req.bucket, "Prefix": prefix}
        if v2:
            if q.get("continuation-token"):
                doc["ContinuationToken"] = q["continuation-token"]
            if q.get("start-after"):
                doc["StartAfter"] = q["start-after"]
            doc["KeyCount"] = len(contents) + len(prefixes)
            if truncated:
                doc["NextContinuationToken"] = _token(last)
        else:
            doc["Marker"] = q.get("marker", "")
            if truncated and delimiter:
                doc["NextMarker"] = last
        doc.update({"MaxKeys": limit, "IsTruncated": truncated})
        if delimiter:
            doc["Delimiter"] = delimiter
        if q.get("encoding-type") == "url":
            doc["EncodingType"] = "url"
        doc["Contents"] = contents
        doc["CommonPrefixes"] = prefixes
        return xml_response("ListBucketResult", doc)

    async def delete_objects(self, req: S3Request) -> SwiftResponse:
        data = b"".join([chunk async for chunk in req.body])
        root = parse(data)
        quiet = (text_of(root, "Quiet") or "").lower() == "true"
        deleted, errors = [], []
        objects = children(root, "Object")
        if len(objects) > 1000:
            raise S3Error(400, "MalformedXML", "At most 1000 keys may be deleted at once.")
        for element in objects:
            key = text_of(element, "Key")
            if not key:
                continue
            response = await req.swift("DELETE", req.bucket, key, query={"multipart-manifest": "delete"})
            await response.close()
            if response.status // 100 == 2 or response.status == 404:
                if not quiet:
                    deleted.append({"Key": key})
            else:
                err = from_status(response.status, req.bucket, key)
                errors.append({"Key": key, "Code": err.code, "Message": err.message})
        return xml_response("DeleteResult", {"Deleted": deleted, "Error": errors})

    # -- objects ------------------------------------------------------------------------------------
    async def _object(self, req: S3Request, method: str) -> SwiftResponse:
        bucket, key = req.bucket, req.key
        if method in ("GET", "HEAD"):
            headers = {k: v for k, v in req.headers.items()
                       if k in ("range", "if-match", "if-none-match", "if-modified-since", "if-unmodified-since")}
            response = await req.swift(method, bucket, key, headers=headers)
            if response.status == 304:
                await response.close()
                return SwiftResponse(304, {"etag": response.headers.get("etag", "")})
            await req.check(response, key)
            out = _meta_out(response.headers)
            for param, header in (("response-content-type", "content-type"),
                                  ("response-content-disposition", "content-disposition"),
                                  ("response-cache-control", "cache-control")):
                if param in req.query:
                    out[header] = req.query[param]
            return SwiftResponse(response.status, out, response.body, response.on_close)
        if method == "DELETE":
            response = await req.swift("DELETE", bucket, key, query={"multipart-manifest": "delete"})
            await response.close()
            if response.status // 100 != 2 and response.status != 404:
                raise from_status(response.status, bucket, key)
            return SwiftResponse(204, {})
        if method == "PUT":
            if "x-amz-copy-source" in req.headers:
                return await self.copy_object(req)
            return await self.put_object(req, bucket or "", key or "")
        raise S3Error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")

    async def put_object(self, req: S3Request, container: str, obj: str) -> SwiftResponse:
        headers = _meta_in(req.headers)
        headers.setdefault("content-type", "binary/octet-stream")
        for name in ("content-length", "transfer-encoding"):
            if name in req.headers:
                headers[name] = req.headers[name]
        md5 = _md5_header(req.headers)
        if md5:
            headers["etag"] = md5
        from stratus.object.proxy.controllers import obj as objects

        objects.upload_length(req.base.derive(headers=headers))
        sub = req.base.derive(method="PUT", container=container, obj=obj, headers=headers)
        info = await self.proxy.cluster.container_info(sub.account, container)
        if info["status"] == 404:
            raise from_status(404, req.bucket, None)
        response = await self.proxy.handle(sub.derive(body=objects.verified(
            req.body, sha256=getattr(req, "sha256", None))))
        await req.check(response, obj)
        return SwiftResponse(200, {"etag": f'"{response.headers.get("etag", "").strip(chr(34))}"',
                                   "content-length": "0"})

    async def copy_object(self, req: S3Request) -> SwiftResponse:
        source = req.headers["x-amz-copy-source"].split("?")[0].lstrip("/")
        headers: dict[str, str] = {"x-copy-from": source, "content-length": "0"}
        if req.headers.get("x-amz-metadata-directive", "COPY").upper() == "REPLACE":
            headers.update(_meta_in(req.headers))
            headers["x-fresh-metadata"] = "true"
        response = await req.check(await req.swift("PUT", req.bucket, req.key, headers=headers), req.key)
        etag = response.headers.get("etag", "").strip('"')
        return xml_response("CopyObjectResult", {"LastModified": iso_time(response.headers.get("last-modified")),
                                                 "ETag": f'"{etag}"'})
