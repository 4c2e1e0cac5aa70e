"""The typed client other services (compute) use to reach the networking API."""

from __future__ import annotations

from typing import Any

from stratus.core.service_client import ServiceClient


class NetworkClient(ServiceClient):
    def get_network(self, network_id: str) -> dict[str, Any]:
        return self.json("GET", f"/v2.0/networks/{network_id}")["network"]  # type: ignore[no-any-return]

    def list_networks(self, **filters: Any) -> list[dict[str, Any]]:
        return self.json("GET", "/v2.0/networks", params=filters)["networks"]  # type: ignore[no-any-return]

    def create_port(self, port: dict[str, Any]) -> dict[str, Any]:
        return self.json("POST", "/v2.0/ports", json={"port": port})["port"]  # type: ignore[no-any-return]

    def get_port(self, port_id: str) -> dict[str, Any]:
        return self.json("GET", f"/v2.0/ports/{port_id}")["port"]  # type: ignore[no-any-return]

    def update_port(self, port_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        return self.json("PUT", f"/v2.0/ports/{port_id}", json={"port": changes})["port"]  # type: ignore[no-any-return]

    def delete_port(self, port_id: str) -> None:
        self.request("DELETE", f"/v2.0/ports/{port_id}")

    def list_ports(self, **filters: Any) -> list[dict[str, Any]]:
        return self.json("GET", "/v2.0/ports", params=filters)["ports"]  # type: ignore[no-any-return]

    def list_subnets(self, **filters: Any) -> list[dict[str, Any]]:
        return self.json("GET", "/v2.0/subnets", params=filters)["subnets"]  # type: ignore[no-any-return]

    def list_floatingips(self, **filters: Any) -> list[dict[str, Any]]:
        return self.json("GET", "/v2.0/floatingips", params=filters)["floatingips"]  # type: ignore[no-any-return]

    def list_security_groups(self, **filters: Any) -> list[dict[str, Any]]:
        return self.json("GET", "/v2.0/security-groups", params=filters)["security_groups"]  # type: ignore[no-any-return]
