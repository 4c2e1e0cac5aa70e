"""An instance's ports in the network service: made at build, bound to the chosen host, deleted
with the instance, and summarised into the instance's network info cache.

Requested networks (the API's `networks`) come as "auto", "none" or a list of
{"uuid", "port", "fixed_ip", "tag"} entries. Ports that compute made for an instance are deleted
with it; ports the user brought are only detached.
"""

from __future__ import annotations

import uuid
from typing import Any

from stratus.core import errors
from stratus.network.client import NetworkClient

COMPUTE_OWNER = "compute:"
DEFAULT_GROUP = "default"


def usable_networks(client: NetworkClient, project_id: str) -> list[dict[str, Any]]:
    """Networks a project may boot on by "auto": its own, else the shared ones (not external)."""
    own = [n for n in client.list_networks(project_id=project_id) if not n.get("router:external")]
    if own:
        return own
    return [n for n in client.list_networks(shared="true") if not n.get("router:external")]


def resolve_requested(client: NetworkClient, project_id: str, requested: Any) -> list[dict[str, Any]]:
    """Check what the API was asked for and turn it into a list of port requests (at the API, so a
    bad request is a 4xx and nothing is made)."""
    if requested == "none":
        return []
    if requested in (None, "auto"):
        networks = usable_networks(client, project_id)
        if not networks:
            return []
        if len(networks) > 1:
            raise errors.Conflict("Multiple possible networks found, use a Network ID to be more specific.")
        return [{"uuid": networks[0]["id"], "label": networks[0].get("name", "")}]
    out = []
    for item in requested:
        if item.get("port"):
            try:
                port = client.get_port(item["port"])
            except errors.NotFound:
                raise errors.BadRequest(f"Port {item['port']} could not be found.") from None
            if port.get("project_id") != project_id:
                raise errors.BadRequest(f"Port {item['port']} could not be found.")
            if port.get("device_id"):
                raise errors.Conflict(f"Port {item['port']} is still in use.")
            out.append({"port": port["id"], "uuid": port["network_id"]})
            continue
        try:
            network = client.get_network(item["uuid"])
        except errors.NotFound:
            raise errors.BadRequest(f"Network {item['uuid']} could not be found.") from None
        if network.get("project_id") != project_id and not network.get("shared"):
            raise errors.BadRequest(f"Network {item['uuid']} could not be found.")
        entry = {"uuid": network["id"], "label": network.get("name", "")}
        if item.get("fixed_ip"):
            entry["fixed_ip"] = item["fixed_ip"]
        out.append(entry)
    return out


def _looks_like_id(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def security_group_ids(client: NetworkClient, project_id: str, names: list[str]) -> list[str]:
    """Ids of the project's groups named `names` (ids are accepted as well); 400 for an unknown one."""
    if any(_looks_like_id(name) for name in names):
        groups = client.list_security_groups(project_id=project_id)
    else:  # only the named groups travel, however many the project has
        groups = client.list_security_groups(project_id=project_id, name=sorted(set(names)))
    ids = []
    for name in names:
        matches = [g["id"] for g in groups if g["name"] == name or g["id"] == name]
        if not matches:
            raise errors.BadRequest(f"Security group {name} not found for project {project_id}.")
        if len(matches) > 1:
            raise errors.Conflict(f"Multiple security groups named {name}; use its id.")
        ids.append(matches[0])
    return ids


def allocate(client: NetworkClient, instance_id: str, project_id: str, zone: str, requests: list[dict[str, Any]],
             group_ids: list[str], host: str) -> list[dict[str, Any]]:
    """Make (or take over) the instance's ports, bound to `host`; on a failure, undo what was made."""
    made: list[dict[str, Any]] = []
    try:
        for request in requests:
            if request.get("port"):
                port = client.update_port(request["port"], {"device_id": instance_id, "binding:host_id": host,
                                                            "device_owner": COMPUTE_OWNER + zone})
                port["_preexisting"] = True
            else:
                body: dict[str, Any] = {"network_id": request["uuid"], "project_id": project_id,
                                        "device_id": instance_id, "device_owner": COMPUTE_OWNER + zone,
                                        "binding:host_id": host}
                if request.get("fixed_ip"):
                    body["fixed_ips"] = [{"ip_address": request["fixed_ip"]}]
                if group_ids:
                    body["security_groups"] = group_ids
                port = client.create_port(body)
                port["_preexisting"] = False
            made.append(port)
    except Exception:
        deallocate(client, made)
        raise
    return made


def bind(client: NetworkClient, ports: list[dict[str, Any]], host: str) -> list[dict[str, Any]]:
    """Bind the ports to `host` (or unbind them with ""): the host's network agent wires them."""
    return [{**client.update_port(port["id"], {"binding:host_id": host}), "_preexisting": port.get("_preexisting")}
            for port in ports]


def deallocate(client: NetworkClient, ports: list[dict[str, Any]]) -> None:
    """Delete the ports compute made; detach the ones the user brought. Missing ports are fine."""
    for port in ports:
        try:
            if port.get("_preexisting"):
                client.update_port(port["id"], {"device_id": "", "device_owner": "", "binding:host_id": ""})
            else:
                client.delete_port(port["id"])
        except errors.NotFound:
            pass


def labels(requests: list[dict[str, Any]]) -> dict[str, str]:
    """{network id: name} as the API saw the networks it resolved (ports brought by the user have none)."""
    return {r["uuid"]: r["label"] for r in requests if r.get("uuid") and r.get("label") is not None}


def network_info(client: NetworkClient, ports: list[dict[str, Any]], *, floating_ips: bool = True,
                 names: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The instance's network info cache: per port its network's name, MAC, addresses and (unless
    the ports are new, so have none) the floating IPs that point at it. `names`: the networks'
    names where the caller has them already (the build: as the API resolved them moments ago);
    the network service is asked only when one is missing."""
    if not ports:
        return []
    wanted = sorted({p["network_id"] for p in ports})
    if names is None or any(network_id not in names for network_id in wanted):
        names = {n["id"]: n["name"] for n in client.list_networks(id=wanted)}
    floating: dict[str, list[str]] = {}
    if floating_ips:
        for fip in client.list_floatingips(port_id=[p["id"] for p in ports]):
            floating.setdefault(fip["port_id"], []).append(fip["floating_ip_address"])
    return [{"port_id": port["id"], "network_id": port["network_id"],
             "label": names.get(port["network_id"], port["network_id"]), "mac_address": port["mac_address"],
             "fixed_ips": [{"ip_address": ip["ip_address"], "subnet_id": ip["subnet_id"]}
                           for ip in port.get("fixed_ips", [])],
             "floating_ips": floating.get(port["id"], []), "preexisting": bool(port.get("_preexisting")),
             "security_groups": port.get("security_groups", [])}
            for port in ports]


def refresh(client: NetworkClient, instance_id: str, cached: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cache rebuilt from the network service's current ports of the instance."""
    preexisting = {entry["port_id"] for entry in cached if entry.get("preexisting")}
    ports = client.list_ports(device_id=instance_id)
    for port in ports:
        port["_preexisting"] = port["id"] in preexisting
    return network_info(client, ports)


def ports_of(info: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Port documents (id, mac, fixed ips, preexisting mark) from a network info cache."""
    return [{"id": e["port_id"], "network_id": e["network_id"], "mac_address": e["mac_address"],
             "fixed_ips": e["fixed_ips"], "_preexisting": e.get("preexisting", False)} for e in info]
