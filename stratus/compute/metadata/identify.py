"""Who is asking the metadata service: an instance found by the cloud's own records, never by what
the guest says about itself.

Two ways in, tried in this order:
1. The metadata proxy (in the router or DHCP namespace) adds `X-Instance-ID`, `X-Tenant-ID` and
   `X-Instance-ID-Signature`, the hex HMAC-SHA256 of the instance id under the shared secret. A
   bad or missing signature is 403; an instance that does not exist, is deleted or belongs to
   another project than `X-Tenant-ID` is 404. The proxy may also say which network
   (`X-Neutron-Network-ID`) or router (`X-Neutron-Router-ID`) the request came through and the
   guest's address (`X-Forwarded-For`); each one given must agree with the instance.
2. Otherwise the TCP peer address of the request (never a header) must be a fixed IP of exactly
   one live instance; none or several is 404.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping

import sqlalchemy as sa

from stratus.compute.metadata.content import Guest
from stratus.compute.models import Instance
from stratus.compute.service import ComputeService
from stratus.core import errors
from stratus.core.metadata_secret import proxy_signature

INSTANCE_HEADER = "x-instance-id"
TENANT_HEADER = "x-tenant-id"
SIGNATURE_HEADER = "x-instance-id-signature"
NETWORK_HEADER = "x-neutron-network-id"
ROUTER_HEADER = "x-neutron-router-id"
FORWARDED_HEADER = "x-forwarded-for"

def identify(service: ComputeService, secret: str, headers: Mapping[str, str], peer: str | None) -> Guest:
    """The instance making the request (see the module's docstring); raises Forbidden or NotFound."""
    if INSTANCE_HEADER in headers:
        return _by_signed_headers(service, secret, headers)
    return _by_peer_address(service, peer)


def _by_signed_headers(service: ComputeService, secret: str, headers: Mapping[str, str]) -> Guest:
    instance_id = headers[INSTANCE_HEADER]
    signature = headers.get(SIGNATURE_HEADER, "")
    expected = proxy_signature(secret, instance_id)
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise errors.Forbidden("Invalid proxy request signature.")
    tenant = headers.get(TENANT_HEADER, "")
    with service.db.transaction() as session:
        row = session.scalar(sa.select(Instance).where(Instance.id == instance_id, Instance.deleted.is_(False)))
        guest = Guest.from_row(row, service.settings.default_availability_zone) if row is not None else None
    if guest is None or not tenant or guest.project_id != tenant:
        raise errors.NotFound("No instance matches the request.")
    network_id = headers.get(NETWORK_HEADER)
    if network_id and network_id not in {e.get("network_id") for e in guest.network_info}:
        raise errors.NotFound("No instance matches the request.")
    forwarded = headers.get(FORWARDED_HEADER)
    if forwarded and _normal(forwarded.split(",")[0].strip()) not in {_normal(ip) for ip in guest.fixed_ips()}:
        raise errors.NotFound("No instance matches the request.")
    router_id = headers.get(ROUTER_HEADER)
    if router_id and not network_id:
        _check_router(service, router_id, guest)
    return guest


def _check_router(service: ComputeService, router_id: str, guest: Guest) -> None:
    """The router must have an interface on one of the instance's networks."""
    networks = sorted({str(e["network_id"]) for e in guest.network_info if e.get("network_id")})
    if not networks or service.network is None:
        raise errors.NotFound("No instance matches the request.")
    if not service.network.list_ports(device_id=router_id, network_id=networks):
        raise errors.NotFound("No instance matches the request.")


def _normal(address: str) -> str | None:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def _by_peer_address(service: ComputeService, peer: str | None) -> Guest:
    address = _normal(peer or "")
    if address is None:
        raise errors.NotFound("No instance matches the request.")
    # The network info cache is JSON text written with compact separators: the substring below
    # narrows the rows in the database, the exact check is done on the decoded value.
    needle = f'%"ip_address":"{address}"%'
    with service.db.transaction() as session:
        cache = sa.type_coerce(Instance.network_info, sa.Text)
        rows = session.scalars(sa.select(Instance).where(Instance.deleted.is_(False), cache.like(needle))).all()
        matches = [Guest.from_row(row, service.settings.default_availability_zone) for row in rows]
    matches = [g for g in matches if address in {_normal(ip) for ip in g.fixed_ips()}]
    if len(matches) != 1:
        raise errors.NotFound("No instance matches the request.")
    return matches[0]
