"""Small builders the network API tests share."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from stratus.network.notify import PUBLISHER_THREAD
from tests.api.identity.helpers import MEMBER_PASSWORD, add_member
from tests.conftest import NetworkHarness

# The Neutron collection of each resource (the body key is the singular).
COLLECTIONS = {"network": "networks", "subnet": "subnets", "port": "ports", "router": "routers",
               "floatingip": "floatingips", "security_group": "security-groups",
               "security_group_rule": "security-group-rules"}


def member_headers(network: NetworkHarness, name: str = "alice") -> dict[str, str]:
    """Headers of a member of a new project `<name>-project`."""
    add_member(network.identity, name, f"{name}-project")
    return {"X-Auth-Token": network.identity.token(name, MEMBER_PASSWORD, f"{name}-project")}


def create(network: NetworkHarness, kind: str, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    """POST a resource; the created resource's view."""
    response = network.client.post(f"/v2.0/{COLLECTIONS[kind]}", json={kind: fields}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()[kind]  # type: ignore[no-any-return]


def fault(response: Any, status: int) -> dict[str, str]:
    """The NeutronError of a response that must have `status`."""
    assert response.status_code == status, response.text
    return response.json()["NeutronError"]  # type: ignore[no-any-return]


@contextmanager
def counting(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements `engine` runs inside the block, but for the agent notifier's reads: its
    publisher sends what earlier calls committed at a time of its own."""
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if threading.current_thread().name != PUBLISHER_THREAD:
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)
