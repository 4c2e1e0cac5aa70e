"""Networking faults. The fault body's `type` is the class name, as Neutron's clients expect."""

from __future__ import annotations

from stratus.core.errors import BadRequest, Conflict, NotFound


class InvalidInput(BadRequest):
    def __init__(self, message: str) -> None:
        super().__init__(f"Invalid input for operation: {message}")


class NetworkNotFound(NotFound):
    def __init__(self, network_id: str) -> None:
        super().__init__(f"Network {network_id} could not be found.")


class SubnetNotFound(NotFound):
    def __init__(self, subnet_id: str) -> None:
        super().__init__(f"Subnet {subnet_id} could not be found.")


class PortNotFound(NotFound):
    def __init__(self, port_id: str) -> None:
        super().__init__(f"Port {port_id} could not be found.")


class RouterNotFound(NotFound):
    def __init__(self, router_id: str) -> None:
        super().__init__(f"Router {router_id} could not be found.")


class FloatingIPNotFound(NotFound):
    def __init__(self, floatingip_id: str) -> None:
        super().__init__(f"Floating IP {floatingip_id} could not be found")


class SecurityGroupNotFound(NotFound):
    def __init__(self, group_id: str) -> None:
        super().__init__(f"Security group {group_id} does not exist")


class SecurityGroupRuleNotFound(NotFound):
    def __init__(self, rule_id: str) -> None:
        super().__init__(f"Security group rule {rule_id} does not exist")


class AgentNotFound(NotFound):
    def __init__(self, agent_id: str) -> None:
        super().__init__(f"Agent {agent_id} could not be found.")


class NetworkInUse(Conflict):
    def __init__(self, network_id: str) -> None:
        super().__init__(f"Unable to complete operation on network {network_id}. "
                         "There are one or more ports still in use on the network.")


class SubnetInUse(Conflict):
    def __init__(self, subnet_id: str) -> None:
        super().__init__(f"Unable to complete operation on subnet {subnet_id}: "
                         "One or more ports have an IP allocation from this subnet.")


class IpAddressInUse(Conflict):
    def __init__(self, ip_address: str, network_id: str) -> None:
        super().__init__(f"Unable to complete operation for network {network_id}. "
                         f"The IP address {ip_address} is in use.")


class IpAddressGenerationFailure(Conflict):
    def __init__(self, network_id: str) -> None:
        super().__init__(f"No more IP addresses available on network {network_id}.")


class MacAddressInUse(Conflict):
    def __init__(self, mac: str, network_id: str) -> None:
        super().__init__(f"Unable to complete operation for network {network_id}. "
                         f"The mac address {mac} is in use.")


class OverQuota(Conflict):
    def __init__(self, resource: str) -> None:
        super().__init__(f"Quota exceeded for resources: ['{resource}'].")


class NoNetworkAvailable(Conflict):
    """Every segmentation id of the configured ranges is taken (Neutron's `NoNetworkAvailable`)."""

    def __init__(self) -> None:
        super().__init__("Unable to create the network. No tenant network is available for allocation.")


class SegmentInUse(Conflict):
    def __init__(self, network_type: str, physical_network: str | None, segmentation_id: int | None) -> None:
        where = f"physical network {physical_network}" if physical_network else network_type
        super().__init__(f"Unable to create the network. The {network_type} segment {segmentation_id} "
                         f"on {where} is in use." if segmentation_id is not None else
                         f"Unable to create the flat network. Physical network {physical_network} is in use.")


class SecurityGroupInUse(Conflict):
    def __init__(self, group_id: str) -> None:
        super().__init__(f"Security Group {group_id} in use.")


class SecurityGroupRuleExists(Conflict):
    def __init__(self, rule_id: str) -> None:
        super().__init__(f"Security group rule already exists. Rule id is {rule_id}.")


class RouterInUse(Conflict):
    def __init__(self, router_id: str, reason: str = "still has ports") -> None:
        super().__init__(f"Router {router_id} {reason}")


class RouterInterfaceNotFound(NotFound):
    def __init__(self, router_id: str, what: str) -> None:
        super().__init__(f"Router {router_id} does not have an interface with {what}")
