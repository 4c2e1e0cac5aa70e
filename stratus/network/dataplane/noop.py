"""A data plane that builds nothing and remembers everything: for tests and for `stratus up` until
the Linux data plane lands.

`calls` is every call in order as (method, payload), with copies of the documents; `networks`,
`ports`, `routers` and `security_groups` are the current desired state by id, as a real data plane
would have built it. Ids in `unwirable` are reported as not wired (a test's way to see a port stay
DOWN). With `record=False` (what `stratus up` runs) only the current state is kept, without
copies: a log of every document would grow without end.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from time import monotonic
from typing import Any

from stratus.network.dataplane.base import Wired
from stratus.network.rpc import HostState, NetworkDoc, PortDoc, RouterDoc, SecurityGroupDoc


class NoopDataPlane:
    name = "noop"

    def __init__(self, record: bool = True) -> None:
        self.record = record
        self._changed = threading.Condition()
        self._calls: list[tuple[str, Any]] = []
        self.networks: dict[str, NetworkDoc] = {}
        self.ports: dict[str, PortDoc] = {}
        self.routers: dict[str, RouterDoc] = {}
        self.security_groups: dict[str, SecurityGroupDoc] = {}
        self.unwirable: set[str] = set()

    # --- what tests read ----------------------------------------------------------------------------

    @property
    def calls(self) -> list[tuple[str, Any]]:
        with self._changed:
            return list(self._calls)

    def calls_of(self, method: str) -> list[Any]:
        return [payload for name, payload in self.calls if name == method]

    def wait_for(self, predicate: Callable[[NoopDataPlane], Any], timeout: float = 10.0) -> Any:
        """Wait until `predicate(self)` is true (checked after every call); its last value."""
        deadline = monotonic() + timeout
        with self._changed:
            while True:
                value = predicate(self)
                remaining = deadline - monotonic()
                if value or remaining <= 0:
                    return value
                self._changed.wait(remaining)

    # --- the DataPlane protocol ---------------------------------------------------------------------

    def sync(self, state: HostState) -> Wired:
        with self._changed:
            self._record("sync", state)
            self.networks = {d["id"]: self._keep(d) for d in state["networks"]}
            self.ports = {d["id"]: self._keep(d) for d in state["ports"]}
            self.routers = {d["id"]: self._keep(d) for d in state["routers"]}
            self.security_groups = {d["id"]: self._keep(d) for d in state["security_groups"]}
            wired = Wired()
            for network in self.networks.values():
                wired |= self._network_wired(network)
            for port in self.ports.values():
                wired |= self._port_wired(port)
            for router in self.routers.values():
                wired |= self._router_wired(router)
            return wired

    def apply_network(self, doc: NetworkDoc) -> Wired:
        with self._changed:
            self._record("apply_network", doc)
            self.networks[doc["id"]] = self._keep(doc)
            return self._network_wired(doc)

    def remove_network(self, network_id: str) -> None:
        with self._changed:
            self._record("remove_network", network_id)
            self.networks.pop(network_id, None)

    def apply_port(self, doc: PortDoc) -> Wired:
        with self._changed:
            self._record("apply_port", doc)
            self.ports[doc["id"]] = self._keep(doc)
            return self._port_wired(doc)

    def remove_port(self, port_id: str) -> None:
        with self._changed:
            self._record("remove_port", port_id)
            self.ports.pop(port_id, None)

    def apply_router(self, doc: RouterDoc) -> Wired:
        with self._changed:
            self._record("apply_router", doc)
            self.routers[doc["id"]] = self._keep(doc)
            return self._router_wired(doc)

    def remove_router(self, router_id: str) -> None:
        with self._changed:
            self._record("remove_router", router_id)
            self.routers.pop(router_id, None)

    def apply_security_group(self, doc: SecurityGroupDoc) -> Wired:
        with self._changed:
            self._record("apply_security_group", doc)
            self.security_groups[doc["id"]] = self._keep(doc)
            return Wired()

    def remove_security_group(self, security_group_id: str) -> None:
        with self._changed:
            self._record("remove_security_group", security_group_id)
            self.security_groups.pop(security_group_id, None)

    # --- plumbing -----------------------------------------------------------------------------------

    def _record(self, method: str, payload: Any) -> None:
        if self.record:
            self._calls.append((method, copy.deepcopy(payload)))
        self._changed.notify_all()

    def _keep(self, doc: Any) -> Any:
        # The agent never changes a document it handed over; copies are for the tests' log.
        return copy.deepcopy(doc) if self.record else doc

    def _ok(self, item_id: str) -> bool:
        return item_id not in self.unwirable

    def _network_wired(self, doc: NetworkDoc) -> Wired:
        dhcp = doc["dhcp"]
        return Wired(ports={dhcp["port_id"]} if dhcp and self._ok(dhcp["port_id"]) else set())

    def _port_wired(self, doc: PortDoc) -> Wired:
        return Wired(ports={doc["id"]} if self._ok(doc["id"]) else set())

    def _router_wired(self, doc: RouterDoc) -> Wired:
        ports = {i["port_id"] for i in doc["interfaces"]}
        if doc["gateway"] is not None:
            ports.add(doc["gateway"]["port_id"])
        return Wired(ports={p for p in ports if self._ok(p)},
                     floating_ips={f["id"] for f in doc["floating_ips"] if self._ok(f["id"])})
