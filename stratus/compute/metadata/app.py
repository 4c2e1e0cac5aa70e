"""The metadata service's HTTP application (role `metadata`, port `compute.metadata_port`).

`/` and `/openstack` list the format versions to anyone; everything below a version is about the
instance making the request (see identify.py) and nothing else.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from stratus.compute.metadata import content
from stratus.compute.metadata.content import Guest
from stratus.compute.metadata.identify import identify
from stratus.compute.service import ComputeService
from stratus.core import errors
from stratus.core.http import create_app
from stratus.core.metadata_secret import shared_secret

# Guests send no bodies; anything more than a little is refused.
MAX_BODY_BYTES = 16 * 1024


def create_metadata_app(service: ComputeService, secret: str | None = None) -> FastAPI:
    """The metadata API over `service`'s instances; `secret` signs the proxy headers (default: the
    configured or state-dir secret)."""
    app = create_app("Stratus Metadata", "compute", max_body_bytes=MAX_BODY_BYTES)
    app.state.compute = service
    app.state.metadata_secret = secret if secret is not None else shared_secret(service.config)

    @app.api_route("/{path:path}", methods=["GET", "HEAD"])
    def serve(path: str, request: Request) -> Response:
        return _dispatch(request, [part for part in path.split("/") if part])

    return app


def _text(lines: list[str] | str) -> PlainTextResponse:
    return PlainTextResponse(lines if isinstance(lines, str) else "\n".join(lines))


def _caller(request: Request) -> Guest:
    service: ComputeService = request.app.state.compute
    peer = request.client.host if request.client is not None else None
    return identify(service, request.app.state.metadata_secret, request.headers, peer)


def _not_found() -> errors.NotFound:
    return errors.NotFound("The resource could not be found.")


def _dispatch(request: Request, parts: list[str]) -> Response:
    if not parts:
        return _text(content.ec2_versions())
    if parts[0] == "openstack":
        if len(parts) == 1:
            return _text(content.openstack_versions())
        if parts[1] not in content.openstack_versions():
            raise _not_found()
        return _openstack(request, parts[1], parts[2:])
    if parts[0] in content.ec2_versions():
        return _ec2(request, parts[0], parts[1:])
    raise _not_found()


def _openstack(request: Request, version: str, rest: list[str]) -> Response:
    guest = _caller(request)
    files = content.openstack_listing(guest, version)
    if not rest:
        return _text(files)
    if len(rest) != 1 or rest[0] not in files:
        raise _not_found()
    name = rest[0]
    if name == "user_data":
        return Response(guest.user_data or b"", media_type="application/octet-stream")
    document: dict[str, Any]
    if name == "meta_data.json":
        document = content.meta_data(guest, version)
    elif name == "network_data.json":
        document = _network_data(request.app.state.compute, guest)
    else:
        document = content.vendor_data()
    return JSONResponse(document)


def _network_data(service: ComputeService, guest: Guest) -> dict[str, Any]:
    """network_data.json with the subnets and networks read from the network service in two calls."""
    subnets: dict[str, dict[str, Any]] = {}
    networks: dict[str, dict[str, Any]] = {}
    if service.network is not None and guest.network_info:
        wanted_subnets = content.subnet_ids(guest)
        if wanted_subnets:
            subnets = {s["id"]: s for s in service.network.list_subnets(id=wanted_subnets)}
        wanted_networks = content.network_ids(guest)
        if wanted_networks:
            networks = {n["id"]: n for n in service.network.list_networks(id=wanted_networks)}
    return content.network_data(guest, subnets, networks)


def _ec2(request: Request, version: str, rest: list[str]) -> Response:
    guest = _caller(request)
    if not rest:
        return _text(["meta-data/", "user-data"] if guest.user_data is not None else ["meta-data/"])
    if rest[0] == "user-data" and len(rest) == 1:
        if guest.user_data is None:
            raise _not_found()
        return Response(guest.user_data, media_type="application/octet-stream")
    if rest[0] == "meta-data":
        found = content.lookup(content.ec2_meta_data(guest, version), "/".join(rest[1:]))
        if found is not None:
            return _text(found)
    raise _not_found()
