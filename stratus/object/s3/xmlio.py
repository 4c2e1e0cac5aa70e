"""S3 XML: documents out (with the S3 namespace), small request documents in, and S3 errors."""

from __future__ import annotations

import datetime as dt
import email.utils
from typing import Any
from xml.etree import ElementTree

from stratus.object.proxy.request import SwiftResponse

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_REQUEST_XML = 1024 * 1024


class S3Error(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


# Swift status -> S3 error, for a bucket request and for an object request.
_BY_STATUS = {400: ("InvalidArgument", "Invalid Argument"), 401: ("AccessDenied", "Access Denied."),
              403: ("AccessDenied", "Access Denied."), 405: ("MethodNotAllowed", "The method is not allowed."),
              409: ("BucketNotEmpty", "The bucket you tried to delete is not empty"),
              411: ("MissingContentLength", "You must provide the Content-Length HTTP header."),
              412: ("PreconditionFailed", "At least one of the preconditions you specified did not hold."),
              413: ("EntityTooLarge", "Your proposed upload exceeds the maximum allowed object size."),
              416: ("InvalidRange", "The requested range is not satisfiable"),
              422: ("BadDigest", "The Content-MD5 you specified did not match what we received."),
              499: ("RequestTimeout", "The client went away."),
              503: ("ServiceUnavailable", "Please reduce your request rate.")}


def from_status(status: int, bucket: str | None, key: str | None, message: str = "") -> S3Error:
    if status == 404:
        if key is None:
            return S3Error(404, "NoSuchBucket", "The specified bucket does not exist", BucketName=bucket or "")
        return S3Error(404, "NoSuchKey", "The specified key does not exist.", Key=key)
    if status == 400 and "XAmzContentSHA256Mismatch" in message:
        return S3Error(400, "XAmzContentSHA256Mismatch",
                       "The provided 'x-amz-content-sha256' header does not match what was computed.")
    code, text = _BY_STATUS.get(status, ("InternalError", "We encountered an internal error. Please try again."))
    return S3Error(status if status in _BY_STATUS else 500, code, text)


def _add(parent: ElementTree.Element, name: str, value: Any) -> ElementTree.Element:
    child = ElementTree.SubElement(parent, name)
    if isinstance(value, dict):
        for key, item in value.items():
            _add_value(child, key, item)
    elif value is not None:
        child.text = "true" if value is True else "false" if value is False else str(value)
    return child


def _add_value(parent: ElementTree.Element, key: str, item: Any) -> None:
    if isinstance(item, list):
        for element in item:
            _add(parent, key, element)
    else:
        _add(parent, key, item)


def document(root: str, content: dict[str, Any], namespace: bool = True) -> bytes:
    """`{"Name": "x", "Contents": [{...}, {...}]}` -> XML; lists repeat their element."""
    element = ElementTree.Element(root, {"xmlns": NAMESPACE} if namespace else {})
    for key, item in content.items():
        _add_value(element, key, item)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(element, encoding="utf-8")


def xml_response(root: str, content: dict[str, Any], status: int = 200,
                 headers: dict[str, str] | None = None) -> SwiftResponse:
    body = document(root, content)
    return SwiftResponse(status, {"content-type": "application/xml", "content-length": str(len(body)),
                                  **(headers or {})}, body)


def error_response(exc: S3Error, resource: str, request_id: str) -> SwiftResponse:
    content = {"Code": exc.code, "Message": exc.message, **exc.extra, "Resource": resource,
               "RequestId": request_id}
    body = document("Error", content, namespace=False)
    return SwiftResponse(exc.status, {"content-type": "application/xml", "content-length": str(len(body))}, body)


def parse(data: bytes) -> ElementTree.Element:
    if len(data) > MAX_REQUEST_XML:
        raise S3Error(400, "MalformedXML", "The XML you provided was too large.")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise S3Error(400, "MalformedXML", "The XML you provided was not well-formed.")
    try:
        return ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise S3Error(400, "MalformedXML", "The XML you provided was not well-formed.") from exc


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def children(element: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return [child for child in element if local(child.tag) == name]


def text_of(element: ElementTree.Element, name: str) -> str | None:
    found = children(element, name)
    return (found[0].text or "") if found else None


def iso_time(value: str | None) -> str:
    """A listing's last_modified (ISO, maybe without zone) or an HTTP date, as S3's ISO form."""
    if not value:
        return "1970-01-01T00:00:00.000Z"
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return "1970-01-01T00:00:00.000Z"
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
