"""Agents API: the operator lists agents alive or dead by their heartbeats, filters, updates and
removes them; to anyone else there are no agents."""

from __future__ import annotations

import datetime as dt
from typing import Any

from stratus.core.db import utcnow
from stratus.network import models
from stratus.network.api.agents import is_alive
from tests.api.network.helpers import fault, member_headers
from tests.conftest import NetworkHarness


def _agents(network: NetworkHarness) -> dict[str, str]:
    """Three agents on two hosts, one of which last reported long ago; agent_type/host -> id."""
    now = utcnow()
    rows = [
        models.Agent(agent_type="Linux bridge agent", binary="stratus-network-agent", topic="N/A", host="node1",
                     configurations={"bridge_mappings": {"physnet1": "br-ex"}}, heartbeat_timestamp=now),
        models.Agent(agent_type="DHCP agent", binary="stratus-network-agent", topic="dhcp_agent", host="node1",
                     availability_zone="nova", heartbeat_timestamp=now - dt.timedelta(seconds=10)),
        models.Agent(agent_type="L3 agent", binary="stratus-network-agent", topic="l3_agent", host="node2",
                     availability_zone="nova", heartbeat_timestamp=now - dt.timedelta(seconds=3600),
                     started_at=now - dt.timedelta(days=1)),
    ]
    with network.service.db.transaction() as session:
        session.add_all(rows)
    return {f"{row.agent_type}/{row.host}": row.id for row in rows}


def _list(network: NetworkHarness, query: str = "", headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    response = network.client.get(f"/v2.0/agents{query}", headers=headers or network.as_admin())
    assert response.status_code == 200, response.text
    return response.json()["agents"]  # type: ignore[no-any-return]


def test_the_operator_sees_each_agent_alive_or_dead_by_its_heartbeat(network: NetworkHarness) -> None:
    ids = _agents(network)
    listed = {a["id"]: a for a in _list(network)}
    assert set(listed) == set(ids.values())
    bridge = listed[ids["Linux bridge agent/node1"]]
    assert bridge["alive"] is True and bridge["admin_state_up"] is True
    assert bridge["configurations"] == {"bridge_mappings": {"physnet1": "br-ex"}}
    assert (bridge["binary"], bridge["topic"], bridge["host"]) == ("stratus-network-agent", "N/A", "node1")
    assert bridge["availability_zone"] is None and bridge["description"] is None
    assert bridge["resources_synced"] is None
    assert dt.datetime.strptime(bridge["heartbeat_timestamp"], "%Y-%m-%d %H:%M:%S")
    assert listed[ids["DHCP agent/node1"]]["alive"] is True
    assert listed[ids["L3 agent/node2"]]["alive"] is False
    assert [a["id"] for a in _list(network, "?alive=false")] == [ids["L3 agent/node2"]]
    assert {a["id"] for a in _list(network, "?alive=true")} == {ids["Linux bridge agent/node1"],
                                                               ids["DHCP agent/node1"]}
    assert [a["host"] for a in _list(network, "?agent_type=DHCP%20agent")] == ["node1"]
    assert {a["agent_type"] for a in _list(network, "?host=node1")} == {"Linux bridge agent", "DHCP agent"}
    assert len(_list(network, "?binary=stratus-network-agent")) == 3
    assert [set(a) for a in _list(network, "?host=node2&fields=id&fields=alive")] == [{"id", "alive"}]
    shown = network.client.get(f"/v2.0/agents/{ids['L3 agent/node2']}", headers=network.as_admin())
    assert shown.status_code == 200 and shown.json()["agent"]["alive"] is False


def test_an_agent_is_dead_once_its_heartbeat_is_older_than_the_down_time() -> None:
    now = utcnow()
    agent = models.Agent(heartbeat_timestamp=now - dt.timedelta(seconds=74))
    assert is_alive(agent, 75, now)
    agent.heartbeat_timestamp = now - dt.timedelta(seconds=75)
    assert not is_alive(agent, 75, now)


def test_the_operator_disables_describes_and_removes_an_agent(network: NetworkHarness) -> None:
    ids = _agents(network)
    admin = network.as_admin()
    url = f"/v2.0/agents/{ids['DHCP agent/node1']}"
    updated = network.client.put(url, json={"agent": {"admin_state_up": False, "description": "draining"}},
                                 headers=admin)
    assert updated.status_code == 200, updated.text
    assert (updated.json()["agent"]["admin_state_up"], updated.json()["agent"]["description"]) == (False, "draining")
    assert network.client.get(url, headers=admin).json()["agent"]["admin_state_up"] is False
    for read_only in ({"host": "elsewhere"}, {"alive": True}, {"agent_type": "L3 agent"}):
        assert fault(network.client.put(url, json={"agent": read_only}, headers=admin), 400)
    assert network.client.get(url, headers=admin).json()["agent"]["host"] == "node1"
    assert network.client.delete(url, headers=admin).status_code == 204
    assert fault(network.client.get(url, headers=admin), 404)["type"] == "AgentNotFound"
    assert fault(network.client.delete(url, headers=admin), 404)["type"] == "AgentNotFound"
    assert len(_list(network)) == 2


def test_to_a_project_member_there_are_no_agents(network: NetworkHarness) -> None:
    ids = _agents(network)
    alice = member_headers(network)
    assert _list(network, headers=alice) == []
    agent = ids["Linux bridge agent/node1"]
    assert fault(network.client.get(f"/v2.0/agents/{agent}", headers=alice), 404)["type"] == "AgentNotFound"
    assert fault(network.client.put(f"/v2.0/agents/{agent}", json={"agent": {"admin_state_up": False}},
                                    headers=alice), 404)
    assert fault(network.client.delete(f"/v2.0/agents/{agent}", headers=alice), 404)
    assert {a["admin_state_up"] for a in _list(network)} == {True} and len(_list(network)) == 3
