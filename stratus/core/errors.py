"""The one exception hierarchy. The HTTP layer turns these into each API's OpenStack fault body."""

from __future__ import annotations


class StratusError(Exception):
    status = 500
    # The compute API names its faults ("itemNotFound", "badRequest", ...); others reuse the title.
    fault = "computeFault"
    title = "Internal Server Error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.title)
        self.message = message or self.title


class BadRequest(StratusError):
    status, fault, title = 400, "badRequest", "Bad Request"


class ValidationFailed(BadRequest):
    pass


class Unauthorized(StratusError):
    status, fault, title = 401, "unauthorized", "Unauthorized"


class Forbidden(StratusError):
    status, fault, title = 403, "forbidden", "Forbidden"


class NotFound(StratusError):
    status, fault, title = 404, "itemNotFound", "Not Found"


class MethodNotAllowed(StratusError):
    status, fault, title = 405, "badMethod", "Method Not Allowed"


class Conflict(StratusError):
    status, fault, title = 409, "conflictingRequest", "Conflict"


class Gone(StratusError):
    status, fault, title = 410, "gone", "Gone"


class PayloadTooLarge(StratusError):
    status, fault, title = 413, "overLimit", "Request Entity Too Large"


class UnsupportedMediaType(StratusError):
    status, fault, title = 415, "badMediaType", "Unsupported Media Type"


class ServiceUnavailable(StratusError):
    status, fault, title = 503, "serviceUnavailable", "Service Unavailable"


class RemoteError(StratusError):
    """A bus call's callee raised; carries the remote exception's type name and message."""

    def __init__(self, exc_type: str, message: str) -> None:
        super().__init__(f"{exc_type}: {message}")
        self.exc_type = exc_type
        self.remote_message = message


class BusTimeout(StratusError):
    status, fault, title = 504, "computeFault", "Gateway Timeout"


class NotAcceptable(StratusError):
    status, fault, title = 406, "notAcceptable", "Not Acceptable"


class OverLimit(StratusError):
    """A quota would be exceeded (compute answers 403 with an `overLimit`-style message)."""

    status, fault, title = 403, "forbidden", "Quota exceeded"
