"""Ports: create, change and delete them with their addresses, MAC and security groups.

The API module (`api/ports.py`) and the router and floating IP logic call these; they all work in
the caller's transaction and record what the agents must hear through `svc.agents.changed`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import random
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, subqueryload

from stratus.core import errors
from stratus.core.context import RequestContext
from stratus.network import ipam, models, quotas, secgroups
from stratus.network.errors import InvalidInput, MacAddressInUse, PortNotFound, SecurityGroupNotFound

if TYPE_CHECKING:
    from stratus.network.service import NetworkService

# What `port_view` needs loaded, for lists (one statement per relationship whatever the rows).
LOAD_OPTIONS = [subqueryload(models.Port.fixed_ips), subqueryload(models.Port.security_groups)]
# The same for one port (a FOR UPDATE query cannot be wrapped into a subquery load).
_ONE_PORT_OPTIONS = [selectinload(models.Port.fixed_ips), selectinload(models.Port.security_groups)]

NETWORK_DEVICE_PREFIX = "network:"
DHCP_OWNER = "network:dhcp"
VIF_TYPE_UNBOUND = "unbound"
# The data plane plugs VMs into Linux bridges.
VIF_TYPE_BOUND = "bridge"
VNIC_TYPES = ("normal",)
MAX_ADDRESS_PAIRS = 10
_MAC = re.compile(r"^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$")
_MAC_TRIES = 16
DNS_DOMAIN = "openstacklocal"


# -- faults --------------------------------------------------------------------------------------------


class PortSecurityAndIPRequiredForSecurityGroups(errors.BadRequest):
    def __init__(self) -> None:
        super().__init__("Port security must be enabled and port must have an IP address in order to use "
                         "security groups.")


class PortSecurityPortHasSecurityGroup(errors.Conflict):
    def __init__(self) -> None:
        super().__init__("Port has security group associated. Cannot disable port security or IP address until "
                         "security group is removed")


class AddressPairAndPortSecurityRequired(errors.Conflict):
    def __init__(self) -> None:
        super().__init__("Port Security must be enabled in order to have allowed address pairs on a port.")


class DuplicateAddressPairInRequest(errors.BadRequest):
    def __init__(self, mac: str, ip: str) -> None:
        super().__init__(f"Request contains duplicate address pair: mac_address {mac} ip_address {ip}.")


class AllowedAddressPairExhausted(errors.BadRequest):
    def __init__(self, quota: int) -> None:
        super().__init__(f"The number of allowed address pair exceeds the maximum {quota}.")


class PortBound(errors.Conflict):
    def __init__(self, port_id: str, vif_type: str, old_mac: str, new_mac: str) -> None:
        super().__init__(f"Unable to complete operation on port {port_id}, port is already bound, port type: "
                         f"{vif_type}, old_mac {old_mac}, new_mac {new_mac}.")


# -- views ---------------------------------------------------------------------------------------------


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.replace(microsecond=0).isoformat() + "Z"


def _hostname(address: str) -> str:
    return "host-" + address.replace(".", "-").replace(":", "-")


def port_view(port: models.Port, *, binding: bool = True) -> dict[str, Any]:
    """The API dictionary of a port (its fixed_ips and security_groups loaded)."""
    fixed_ips = [{"subnet_id": a.subnet_id, "ip_address": a.ip_address} for a in port.fixed_ips]
    view: dict[str, Any] = {
        "id": port.id, "name": port.name or "", "network_id": port.network_id,
        "project_id": port.project_id, "tenant_id": port.project_id, "description": port.description or "",
        "mac_address": port.mac_address, "admin_state_up": port.admin_state_up, "status": port.status,
        "device_id": port.device_id or "", "device_owner": port.device_owner or "", "fixed_ips": fixed_ips,
        "security_groups": [g.security_group_id for g in port.security_groups],
        "allowed_address_pairs": [dict(pair) for pair in port.allowed_address_pairs or []],
        "port_security_enabled": port.port_security_enabled,
        "extra_dhcp_opts": [], "ip_allocation": "immediate", "dns_name": "", "dns_domain": "",
        "dns_assignment": [{"hostname": _hostname(ip["ip_address"]), "ip_address": ip["ip_address"],
                            "fqdn": f"{_hostname(ip['ip_address'])}.{DNS_DOMAIN}."} for ip in fixed_ips],
        "qos_policy_id": None, "qos_network_policy_id": None, "propagate_uplink_status": False,
        "resource_request": None, "tags": list(port.tags or []),
        "created_at": _iso(port.created_at), "updated_at": _iso(port.updated_at),
        "revision_number": port.revision_number or 0,
    }
    if binding:
        view.update({"binding:host_id": port.binding_host_id or "", "binding:vif_type": port.binding_vif_type,
                     "binding:vnic_type": port.binding_vnic_type, "binding:profile": dict(port.binding_profile or {}),
                     "binding:vif_details": dict(port.binding_vif_details or {})})
    return view


# -- lookups -------------------------------------------------------------------------------------------


def port_scope(ctx: RequestContext) -> sa.ColumnElement[bool] | None:
    """The ports a caller sees: its project's (all for an admin)."""
    return None if ctx.is_admin else models.Port.project_id == (ctx.project_id or "")


def get_port(session: Session, ctx: RequestContext, port_id: str, *, for_update: bool = False) -> models.Port:
    """The port with its fixed_ips and security_groups loaded; 404 PortNotFound when the caller can't see it."""
    stmt = sa.select(models.Port).where(models.Port.id == port_id)
    scope = port_scope(ctx)
    if scope is not None:
        stmt = stmt.where(scope)
    if for_update:
        stmt = stmt.with_for_update()
    port = session.scalars(stmt.options(*_ONE_PORT_OPTIONS).execution_options(populate_existing=True)).first()
    if port is None:
        raise PortNotFound(port_id)
    return port


def reload(session: Session, port: models.Port) -> models.Port:
    """Load (again) what `port_view` shows after the port's rows changed."""
    session.flush()
    session.refresh(port, attribute_names=["fixed_ips", "security_groups"])
    return port


# -- parts of a port -----------------------------------------------------------------------------------


def normalize_mac(value: str) -> str:
    mac = str(value).strip().lower().replace("-", ":")
    if not _MAC.match(mac) or mac == "00:00:00:00:00:00" or int(mac[:2], 16) & 1:
        raise InvalidInput(f"'{value}' is not a valid MAC address")
    return mac


def random_mac(base_mac: str) -> str:
    return base_mac + "".join(f":{random.randrange(256):02x}" for _ in range(3))


def validate_address_pairs(pairs: Sequence[dict[str, Any]], port_mac: str) -> list[dict[str, str]]:
    """`[{ip_address, mac_address?}]` checked and completed: the MAC defaults to the port's."""
    if len(pairs) > MAX_ADDRESS_PAIRS:
        raise AllowedAddressPairExhausted(MAX_ADDRESS_PAIRS)
    result: list[dict[str, str]] = []
    for pair in pairs:
        if not isinstance(pair, dict) or "ip_address" not in pair or not set(pair) <= {"ip_address", "mac_address"}:
            raise InvalidInput(f"Invalid data format for allowed address pair: '{pair}'")
        text = str(pair["ip_address"])
        try:
            ip = str(ipaddress.ip_network(text, strict=False)) if "/" in text else str(ipaddress.ip_address(text))
        except ValueError:
            raise InvalidInput(f"'{text}' is not a valid IP address or CIDR for allowed address pairs") from None
        mac = normalize_mac(pair["mac_address"]) if pair.get("mac_address") else port_mac
        clean = {"ip_address": ip, "mac_address": mac}
        if clean in result:
            raise DuplicateAddressPairInRequest(mac, ip)
        result.append(clean)
    return result


def check_security_groups(session: Session, project_id: str, group_ids: Iterable[str]) -> list[str]:
    """The groups, which must exist and belong to the port's project (404 SecurityGroupNotFound otherwise)."""
    wanted = list(dict.fromkeys(group_ids))
    if not wanted:
        return []
    found = set(session.scalars(sa.select(models.SecurityGroup.id).where(
        models.SecurityGroup.id.in_(wanted), models.SecurityGroup.project_id == project_id)))
    missing = [g for g in wanted if g not in found]
    if missing:
        raise SecurityGroupNotFound(", ".join(missing))
    return wanted


def set_security_groups(session: Session, port: models.Port, group_ids: Sequence[str]) -> None:
    """Replace the port's groups (rows only; the caller reloads the port)."""
    session.execute(sa.delete(models.PortSecurityGroup).where(models.PortSecurityGroup.port_id == port.id),
                    execution_options={"synchronize_session": False})
    if group_ids:
        session.execute(sa.insert(models.PortSecurityGroup),
                        [{"port_id": port.id, "security_group_id": g} for g in group_ids])


def apply_binding(port: models.Port, host_id: str | None = None, profile: dict[str, Any] | None = None,
                  vnic_type: str | None = None) -> None:
    """Set binding attributes; a port with a host is bound to a Linux bridge, without one it is unbound."""
    if vnic_type is not None:
        if vnic_type not in VNIC_TYPES:
            raise InvalidInput(f"binding:vnic_type '{vnic_type}' is not supported; supported: {list(VNIC_TYPES)}")
        port.binding_vnic_type = vnic_type
    if profile is not None:
        port.binding_profile = dict(profile)
    if host_id is not None:
        port.binding_host_id = host_id
        if host_id:
            port.binding_vif_type = VIF_TYPE_BOUND
            port.binding_vif_details = {"port_filter": True}
        else:
            port.binding_vif_type = VIF_TYPE_UNBOUND
            port.binding_vif_details = {}


def is_network_device(device_owner: str) -> bool:
    return device_owner.startswith(NETWORK_DEVICE_PREFIX)


def _insert_port(session: Session, port: models.Port, requested_mac: str | None, base_mac: str) -> None:
    """Add the port with a MAC no other port has: the requested one (409 if taken) or a random one."""
    for _ in range(_MAC_TRIES):
        port.mac_address = requested_mac or random_mac(base_mac)
        try:
            with session.begin_nested():
                session.add(port)
                session.flush()
            return
        except IntegrityError:
            if requested_mac is not None:
                raise MacAddressInUse(requested_mac, port.network_id) from None
    raise errors.Conflict(f"Unable to generate a unique mac on network {port.network_id}.")


# -- create, change, delete ----------------------------------------------------------------------------


def create_port(session: Session, svc: NetworkService, *, project_id: str, network: models.Network,
                fixed_ips: list[dict[str, str]] | None = None, device_owner: str = "", device_id: str = "",
                name: str = "", mac_address: str | None = None, security_group_ids: list[str] | None = None,
                port_security_enabled: bool | None = None, admin_state_up: bool = True,
                check_quota: bool = True, description: str = "",
                allowed_address_pairs: list[dict[str, str]] | None = None, binding_host_id: str | None = None,
                binding_profile: dict[str, Any] | None = None,
                binding_vnic_type: str | None = None) -> models.Port:
    """Create a port on `network` with its addresses (what `fixed_ips` asks for, or the defaults).

    Security groups: the given ones (of the port's project), else the project's default group when
    port security is on, the port has an address and is not a network:* device; `[]` means none.
    Returns the port with fixed_ips and security_groups loaded; the agents hear of it on commit.
    """
    ipam.open_write_transaction(session)
    if check_quota:
        quotas.check(session, svc.settings, project_id, "port")
    port_security = network.port_security_enabled if port_security_enabled is None else port_security_enabled
    explicit_groups = security_group_ids is not None
    groups = check_security_groups(session, project_id, security_group_ids or [])
    if groups and not port_security:
        raise PortSecurityAndIPRequiredForSecurityGroups()
    requested_mac = normalize_mac(mac_address) if mac_address else None
    if allowed_address_pairs and not port_security:
        raise AddressPairAndPortSecurityRequired()
    port = models.Port(id=models.new_id(), project_id=project_id, network_id=network.id, name=name,
                       description=description, admin_state_up=admin_state_up, status="DOWN", device_id=device_id,
                       device_owner=device_owner, port_security_enabled=port_security, allowed_address_pairs=[],
                       binding_host_id="", binding_vif_type=VIF_TYPE_UNBOUND, binding_vnic_type="normal",
                       binding_profile={}, binding_vif_details={}, tags=[], revision_number=0)
    apply_binding(port, binding_host_id, binding_profile, binding_vnic_type)
    _insert_port(session, port, requested_mac, svc.settings.base_mac)
    if allowed_address_pairs:
        port.allowed_address_pairs = validate_address_pairs(allowed_address_pairs, port.mac_address)
    taken = ipam.allocate(session, network=network, port=port, fixed_ips=fixed_ips)
    if groups and not taken:
        raise PortSecurityAndIPRequiredForSecurityGroups()
    if not explicit_groups and port_security and taken and not is_network_device(device_owner):
        groups = [secgroups.ensure_default(session, project_id)]
    set_security_groups(session, port, groups)
    svc.agents.changed(session, ports=[port.id], security_groups=groups if taken else [])
    return reload(session, port)


def delete_port(session: Session, svc: NetworkService, port: models.Port) -> None:
    """Delete the port and give back its addresses; floating IPs pointing at it are disassociated."""
    from stratus.network import routers  # imported late: routers.py builds on this module

    gone = {port.id: (port.network_id, port.binding_host_id or "")}
    groups = list(session.scalars(sa.select(models.PortSecurityGroup.security_group_id)
                                  .where(models.PortSecurityGroup.port_id == port.id)))
    routers.disassociate_floating_ips(session, svc, port.id)
    ipam.release(session, port.id)
    session.execute(sa.delete(models.PortSecurityGroup).where(models.PortSecurityGroup.port_id == port.id),
                    execution_options={"synchronize_session": False})
    session.execute(sa.delete(models.Port).where(models.Port.id == port.id))
    svc.agents.changed(session, deleted_ports=gone, security_groups=groups)


def replace_fixed_ips(session: Session, port: models.Port, network: models.Network,
                      fixed_ips: Sequence[dict[str, Any]]) -> bool:
    """Make the port's addresses what `fixed_ips` lists: entries it already holds are kept (a bare
    `{subnet_id}` keeps the port's address on that subnet), the others allocated, the rest released.
    Whether anything changed."""
    remaining = [(a.subnet_id, a.ip_address) for a in port.fixed_ips]
    kept: list[tuple[str, str]] = []
    new: list[dict[str, Any]] = []
    for entry in fixed_ips:
        if not isinstance(entry, dict):
            raise InvalidInput(f"Invalid data format for fixed IP: '{entry}'")
        match = None
        subnet_id, ip_text = entry.get("subnet_id"), entry.get("ip_address")
        if ip_text is not None:
            wanted = ipam.parse_ip(ip_text, "fixed_ips")
            match = next((held for held in remaining if ipaddress.ip_address(held[1]) == wanted
                          and subnet_id in (None, held[0])), None)
        elif subnet_id is not None:
            match = next((held for held in remaining if held[0] == subnet_id), None)
        if match is not None:
            remaining.remove(match)
            kept.append(match)
        else:
            new.append(entry)
    if not remaining and not new:
        return False
    ipam.release(session, port.id, remaining)
    if new:
        ipam.allocate(session, network=network, port=port, fixed_ips=new)
    return True
