"""The compute service's bus topics and the documents that travel on them.

- `compute-conductor`: the API casts operations to it (build, delete, actions); agents call it to
  report heartbeats and power states. It is the only compute role that writes the database.
- `compute-scheduler`: the conductor calls `select_destination(spec)` (stratus.compute.scheduler).
- `compute.<host>`: the conductor calls the agent of one host; the agent drives its hypervisor
  driver and answers with what it sees (power state, console output), never touching the database.
"""

from __future__ import annotations

from typing import Any

from stratus.compute import models

CONDUCTOR_TOPIC = "compute-conductor"
SCHEDULER_TOPIC = "compute-scheduler"
AGENT_TOPIC = "compute"
AGENT_BINARY = "nova-compute"


def instance_doc(row: models.Instance) -> dict[str, Any]:
    """What an agent and its driver know of an instance."""
    return {"id": row.id, "name": row.name, "hostname": row.hostname, "project_id": row.project_id,
            "flavor": dict(row.flavor), "image_ref": row.image_ref, "user_data": row.user_data,
            "key_data": row.key_data, "metadata": dict(row.metadata_ or {}),
            "availability_zone": row.availability_zone, "host": row.host}
