"""/v2.0/extensions: what this service implements (clients look here before using a feature)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from stratus.core.errors import NotFound
from stratus.network.api.deps import caller

router = APIRouter(prefix="/v2.0", tags=["extensions"], dependencies=[Depends(caller)])

_UPDATED = "2026-11-22T00:00:00-00:00"
# alias -> (name, description); only what the API really does is listed.
EXTENSIONS = {
    "agent": ("agent", "The agent management extension."),
    "allowed-address-pairs": ("Allowed Address Pairs", "Provides allowed address pairs"),
    "binding": ("Port Binding", "Expose port bindings of a virtual port to external application"),
    "external-net": ("Neutron external network", "Adds external network attribute to network resource."),
    "ext-gw-mode": ("Neutron L3 Configurable external gateway mode",
                    "Extension of the router abstraction for specifying whether SNAT should occur on the "
                    "external gateway"),
    "extraroute": ("Neutron Extra Route", "Extra routes configuration for L3 router"),
    "extraroute-atomic": ("Atomically add/remove extra routes",
                          "Edit extra routes of a router on server side by atomically adding/removing extra routes"),
    "fip-port-details": ("Floating IP Port Details Extension", "Add port_details attribute to Floating IP resource"),
    "filter-validation": ("Filter parameters validation", "Provides validation on filter parameters."),
    "ip-substring-filtering": ("IP address substring filtering",
                               "Provides IP address substring filtering when listing ports"),
    "net-mtu": ("Network MTU", "Provides MTU attribute for a network resource."),
    "net-mtu-writable": ("Network MTU (writable)", "Provides a writable MTU attribute for a network resource."),
    "pagination": ("Pagination support", "Extension that indicates that pagination is enabled."),
    "port-security": ("Port Security", "Provides port security"),
    "project-id": ("project_id field enabled", "Extension that indicates that project_id field is enabled."),
    "provider": ("Provider Network", "Expose mapping of virtual networks to physical networks"),
    "quota-check-limit": ("Quota engine limit check",
                          "Support for checking the resource usage before applying a new quota limit"),
    "quotas": ("Quota management support", "Expose functions for quotas management per tenant"),
    "quota_details": ("Quota details management support",
                      "Expose functions for quotas usage statistics per project"),
    "router": ("Neutron L3 Router", "Router abstraction for basic L3 forwarding between L2 Neutron networks "
                                    "and access to external networks via a NAT gateway."),
    "security-group": ("security-group", "The security groups extension."),
    "security-groups-normalized-cidr": ("Security group rule normalized CIDR",
                                        "Add new field with normalized remote_ip_prefix cidr in SG rule"),
    "sorting": ("Sorting support", "Extension that indicates that sorting is enabled."),
    "standard-attr-description": ("standard-attr-description",
                                  "Extension to add descriptions to standard attributes"),
    "standard-attr-revisions": ("Resource revision numbers",
                                "This extension will display the revision number of neutron resources."),
    "standard-attr-tag": ("Tag support for resources with standard attribute",
                          "Enables to set tag on resources with standard attribute."),
    "standard-attr-timestamp": ("Resource timestamps", "Adds created_at and updated_at fields to all Neutron "
                                                       "resources that have Neutron standard attributes."),
    "stateful-security-group": ("Stateful security group", "Indicates if the security group is stateful or not"),
}


def _view(alias: str) -> dict[str, Any]:
    name, description = EXTENSIONS[alias]
    return {"alias": alias, "name": name, "description": description, "updated": _UPDATED, "links": []}


@router.get("/extensions")
def list_extensions() -> dict[str, Any]:
    return {"extensions": [_view(alias) for alias in sorted(EXTENSIONS)]}


@router.get("/extensions/{alias}")
def show_extension(alias: str) -> dict[str, Any]:
    if alias not in EXTENSIONS:
        raise NotFound(f"Extension with alias {alias} does not exist")
    return {"extension": _view(alias)}
