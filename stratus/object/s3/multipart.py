"""S3 multipart uploads, kept in the container `<bucket>+segments`: the upload's marker object
`<key>/<upload id>` (holding the metadata given at creation) and its parts `<key>/<upload id>/<nnnnn>`.
Completing writes a static large object at `<bucket>/<key>` over the parts."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import TYPE_CHECKING, Any

from stratus.object.proxy.request import SwiftResponse, bytes_body
from stratus.object.s3.xmlio import S3Error, children, iso_time, parse, text_of, xml_response

if TYPE_CHECKING:
    from stratus.object.s3.app import S3Request

SEGMENTS_SUFFIX = "+segments"
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_NUMBER = 10000
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")


def _segments(req: S3Request) -> str:
    return f"{req.bucket}{SEGMENTS_SUFFIX}"


def _part_name(key: str, upload_id: str, number: int) -> str:
    return f"{key}/{upload_id}/{number:05d}"


async def _require_upload(req: S3Request, upload_id: str) -> SwiftResponse:
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise S3Error(404, "NoSuchUpload", "The specified upload does not exist.", UploadId=upload_id)
    marker = await req.swift("HEAD", _segments(req), f"{req.key}/{upload_id}")
    await marker.close()
    if marker.status // 100 != 2:
        raise S3Error(404, "NoSuchUpload", "The specified upload does not exist.", UploadId=upload_id)
    return marker


async def _parts(req: S3Request, upload_id: str) -> list[dict[str, Any]]:
    prefix = f"{req.key}/{upload_id}/"
    listing = await req.swift("GET", _segments(req), query={"format": "json", "prefix": prefix})
    if listing.status != 200:
        await listing.close()
        return []
    out = []
    for item in json.loads(await listing.read()):
        number = item["name"][len(prefix):]
        if number.isdigit():
            out.append({**item, "number": int(number)})
    return sorted(out, key=lambda p: p["number"])


async def handle(req: S3Request, method: str) -> SwiftResponse:
    upload_id = req.query.get("uploadId")
    if method == "POST" and "uploads" in req.query:
        return await create(req)
    if upload_id is None:
        raise S3Error(400, "InvalidRequest", "This operation needs an uploadId.")
    if method == "PUT":
        return await upload_part(req, upload_id)
    if method == "GET":
        return await list_parts(req, upload_id)
    if method == "POST":
        return await complete(req, upload_id)
    if method == "DELETE":
        return await abort(req, upload_id)
    raise S3Error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")


async def create(req: S3Request) -> SwiftResponse:
    from stratus.object.s3.app import _meta_in

    await req.check(await req.swift("HEAD", req.bucket))
    created = await req.swift("PUT", _segments(req))
    await created.close()
    upload_id = uuid.uuid4().hex
    headers = {**_meta_in(req.headers), "content-length": "0"}
    await req.check(await req.swift("PUT", _segments(req), f"{req.key}/{upload_id}", headers=headers,
                                    body=bytes_body(b"")))
    return xml_response("InitiateMultipartUploadResult", {"Bucket": req.bucket, "Key": req.key,
                                                          "UploadId": upload_id})


async def upload_part(req: S3Request, upload_id: str) -> SwiftResponse:
    number = req.query.get("partNumber", "")
    if not number.isdigit() or not 1 <= int(number) <= MAX_PART_NUMBER:
        raise S3Error(400, "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive")
    await _require_upload(req, upload_id)
    if "x-amz-copy-source" in req.headers:
        raise S3Error(501, "NotImplemented", "UploadPartCopy is not implemented.")
    return await req.app.put_object(req, _segments(req), _part_name(req.key or "", upload_id, int(number)))


async def list_parts(req: S3Request, upload_id: str) -> SwiftResponse:
    await _require_upload(req, upload_id)
    parts = await _parts(req, upload_id)
    marker = req.query.get("part-number-marker", "0")
    max_parts = req.query.get("max-parts", "1000")
    start = int(marker) if marker.isdigit() else 0
    limit = min(int(max_parts), 1000) if max_parts.isdigit() else 1000
    selected = [p for p in parts if p["number"] > start]
    page = selected[:limit]
    doc: dict[str, Any] = {"Bucket": req.bucket, "Key": req.key, "UploadId": upload_id,
                           "PartNumberMarker": start, "MaxParts": limit, "IsTruncated": len(selected) > limit,
                           "StorageClass": "STANDARD"}
    if page:
        doc["NextPartNumberMarker"] = page[-1]["number"]
    doc["Part"] = [{"PartNumber": p["number"], "LastModified": iso_time(p.get("last_modified")),
                    "ETag": f'"{p["hash"]}"', "Size": p["bytes"]} for p in page]
    return xml_response("ListPartsResult", doc)


async def complete(req: S3Request, upload_id: str) -> SwiftResponse:
    marker = await _require_upload(req, upload_id)
    root = parse(b"".join([chunk async for chunk in req.body]))
    wanted = []
    for element in children(root, "Part"):
        given, etag = text_of(element, "PartNumber"), text_of(element, "ETag")
        if not given or not given.isdigit() or etag is None:
            raise S3Error(400, "MalformedXML", "Each part needs PartNumber and ETag.")
        wanted.append((int(given), etag.strip().strip('"')))
    if not wanted:
        raise S3Error(400, "MalformedXML", "The XML you provided did not list any part.")
    if [n for n, _ in wanted] != sorted({n for n, _ in wanted}):
        raise S3Error(400, "InvalidPartOrder", "The list of parts was not in ascending order.")
    stored = {p["number"]: p for p in await _parts(req, upload_id)}
    manifest, digests = [], b""
    for index, (number, etag) in enumerate(wanted):
        part = stored.get(number)
        if part is None or part["hash"] != etag:
            raise S3Error(400, "InvalidPart", "One or more of the specified parts could not be found.")
        if part["bytes"] < MIN_PART_SIZE and index < len(wanted) - 1:
            raise S3Error(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size")
        manifest.append({"path": f"/{_segments(req)}/{part['name']}", "etag": etag, "size_bytes": part["bytes"]})
        digests += bytes.fromhex(etag)
    s3_etag = f"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{len(wanted)}"
    body = json.dumps(manifest).encode()
    headers = {k: v for k, v in marker.headers.items() if k.startswith("x-object-meta-") or k in (
        "content-type", "content-disposition", "content-encoding", "cache-control", "content-language")}
    headers["content-length"] = str(len(body))
    await req.check(await req.swift("PUT", req.bucket, req.key, headers=headers,
                                    query={"multipart-manifest": "put"}, body=bytes_body(body)), req.key)
    done = await req.swift("DELETE", _segments(req), f"{req.key}/{upload_id}")
    await done.close()
    return xml_response("CompleteMultipartUploadResult", {
        "Location": f"/{req.bucket}/{req.key}", "Bucket": req.bucket, "Key": req.key, "ETag": f'"{s3_etag}"'})


async def abort(req: S3Request, upload_id: str) -> SwiftResponse:
    await _require_upload(req, upload_id)
    for part in await _parts(req, upload_id):
        gone = await req.swift("DELETE", _segments(req), part["name"])
        await gone.close()
    done = await req.swift("DELETE", _segments(req), f"{req.key}/{upload_id}")
    await done.close()
    return SwiftResponse(204, {})


async def list_uploads(req: S3Request) -> SwiftResponse:
    await req.check(await req.swift("HEAD", req.bucket))
    listing = await req.swift("GET", _segments(req), query={"format": "json", "prefix": req.query.get("prefix", "")})
    items = json.loads(await listing.read()) if listing.status == 200 else []
    await listing.close()
    uploads = []
    for item in items:
        key, _, upload_id = item["name"].rpartition("/")
        if key and _UPLOAD_ID.fullmatch(upload_id):
            uploads.append({"Key": key, "UploadId": upload_id, "Initiated": iso_time(item.get("last_modified")),
                            "StorageClass": "STANDARD"})
    return xml_response("ListMultipartUploadsResult", {"Bucket": req.bucket, "KeyMarker": "", "UploadIdMarker": "",
                                                       "MaxUploads": 1000, "IsTruncated": False, "Upload": uploads})
