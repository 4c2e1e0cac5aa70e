"""What `stratus up` adds with the linux data plane: the host on an external bridge, an external
network `public` on it, and a private network, subnet and router for the admin project, so a
server booted there gets a floating IP the host can reach.

The networks are made through the network API (as the `neutron` service user, which holds the
admin role), like any other client would, and only when missing (by name): a restart changes nothing.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import httpx

from stratus.network.dataplane.linux import links
from stratus.network.dataplane.linux.commands import ip

if TYPE_CHECKING:
    from stratus.core.config import Config

log = logging.getLogger("stratus.network.dataplane.linux")

EXTERNAL_PHYSNET = "public"
PRIVATE_CIDR = "10.0.0.0/24"


def prepare_host(cfg: Config) -> str | None:
    """The external bridge made and up, with the host's address on it; its name (None if
    `public` is not mapped to a bridge)."""
    mappings = dict(item.split(":", 1) for item in cfg.network.bridge_mappings)
    bridge = mappings.get(EXTERNAL_PHYSNET)
    if bridge is None:
        return None
    links.ensure_bridge(bridge, None)
    net = ipaddress.ip_network(cfg.network.external_network_cidr)
    ip("addr", "replace", f"{next(net.hosts())}/{net.prefixlen}", "dev", bridge)
    return bridge


def ensure_networks(client: httpx.Client, headers: dict[str, str], admin_project: str, external_cidr: str) -> None:
    """`public` (external, flat on the `public` physical network, no DHCP) and the admin project's
    `private` network, subnet and `router` (gateway on `public`, interface on `private`)."""
    net = ipaddress.ip_network(external_cidr)
    public = _find(client, headers, "networks", name="public") or _create(client, headers, "network", {
        "name": "public", "router:external": True, "provider:network_type": "flat",
        "provider:physical_network": EXTERNAL_PHYSNET, "project_id": admin_project, "shared": False})
    if not _find(client, headers, "subnets", network_id=public["id"]):
        _create(client, headers, "subnet", {"name": "public-subnet", "network_id": public["id"],
                                            "cidr": str(net), "ip_version": 4, "enable_dhcp": False,
                                            "gateway_ip": str(next(net.hosts())), "project_id": admin_project})
    private = _find(client, headers, "networks", name="private", project_id=admin_project) or _create(
        client, headers, "network", {"name": "private", "project_id": admin_project})
    subnet = _find(client, headers, "subnets", network_id=private["id"]) or _create(
        client, headers, "subnet", {"name": "private-subnet", "network_id": private["id"], "cidr": PRIVATE_CIDR,
                                    "ip_version": 4, "project_id": admin_project})
    router = _find(client, headers, "routers", name="router", project_id=admin_project)
    if router is None:
        router = _create(client, headers, "router", {"name": "router", "project_id": admin_project,
                                                     "external_gateway_info": {"network_id": public["id"]}})
    if not _find(client, headers, "ports", device_id=router["id"], network_id=private["id"]):
        response = client.put(f"/v2.0/routers/{router['id']}/add_router_interface", headers=headers,
                              json={"subnet_id": subnet["id"]})
        response.raise_for_status()


def _find(client: httpx.Client, headers: dict[str, str], collection: str, **filters: str) -> dict[str, Any] | None:
    response = client.get(f"/v2.0/{collection}", params=filters, headers=headers)
    response.raise_for_status()
    found = response.json()[collection.replace("-", "_")]
    return found[0] if found else None


def _create(client: httpx.Client, headers: dict[str, str], kind: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"/v2.0/{kind}s", json={kind: body}, headers=headers)
    response.raise_for_status()
    return response.json()[kind]  # type: ignore[no-any-return]


def _service_token(identity_url: str, user: str, password: str) -> tuple[str, str]:
    """A token of `user` in the service project, and the admin project's id."""
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": "service", "domain": {"id": "default"}}}}}
    with httpx.Client(base_url=identity_url, timeout=10) as client:
        response = client.post("/v3/auth/tokens", json=body)
        response.raise_for_status()
        token = response.headers["x-subject-token"]
        projects = client.get("/v3/projects", params={"name": "admin"}, headers={"X-Auth-Token": token})
        projects.raise_for_status()
        return token, projects.json()["projects"][0]["id"]


def start_seeding(cfg: Config, service_user: str, service_password: str, timeout: float = 120.0) -> threading.Thread:
    """In the background: prepare the host, wait for the APIs, then make the networks."""
    identity_url = cfg.auth.identity_url or f"http://127.0.0.1:{cfg.identity.port}"
    network_url = f"http://127.0.0.1:{cfg.network.port}"

    def seed() -> None:
        deadline = time.monotonic() + timeout
        try:
            prepare_host(cfg)
        except Exception:
            log.exception("could not put the host on the external bridge")
        while True:
            try:
                token, admin_project = _service_token(identity_url, service_user, service_password)
                with httpx.Client(base_url=network_url, timeout=30) as client:
                    ensure_networks(client, {"X-Auth-Token": token}, admin_project, cfg.network.external_network_cidr)
                log.info("external network public and the admin project's private network and router are ready")
                return
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                if time.monotonic() > deadline:
                    log.error("could not create the default networks: %s", exc)
                    return
                time.sleep(1.0)

    thread = threading.Thread(target=seed, name="network seed", daemon=True)
    thread.start()
    return thread
