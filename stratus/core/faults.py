"""OpenStack fault bodies: each API words its errors its own way."""

from __future__ import annotations

from typing import Any, Literal

from fastapi.responses import JSONResponse

from stratus.core import errors

FaultStyle = Literal["identity", "compute", "network", "image", "volume", "object"]


def fault_body(style: FaultStyle, exc: errors.StratusError) -> dict[str, Any]:
    """The error document each OpenStack API uses for `exc`."""
    if style == "identity":
        return {"error": {"code": exc.status, "message": exc.message, "title": exc.title}}
    if style == "network":
        return {"NeutronError": {"type": type(exc).__name__, "message": exc.message, "detail": ""}}
    if style in ("image", "object"):
        return {"code": exc.status, "title": exc.title, "message": exc.message}
    return {exc.fault: {"code": exc.status, "message": exc.message}}


def fault_response(style: FaultStyle, exc: errors.StratusError) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Keystone uri="unknown"'} if exc.status == 401 else None
    return JSONResponse(fault_body(style, exc), status_code=exc.status, headers=headers)
