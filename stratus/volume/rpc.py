"""The block storage service's bus topics.

- `volume-conductor`: the API casts operations to it (create, delete, extend, snapshots, upload
  to image); agents call it with heartbeats (capacity) and, at start, to learn what they should
  hold. It is the only volume role that writes the database.
- `volume.<host>`: the conductor calls the agent of one storage host; the agent drives its
  backend and answers with what it made, never touching the database.
"""

from __future__ import annotations

from typing import Any

from stratus.volume import models

CONDUCTOR_TOPIC = "volume-conductor"
AGENT_TOPIC = "volume"
AGENT_BINARY = "cinder-volume"
SCHEDULER_BINARY = "cinder-scheduler"


def volume_doc(row: models.Volume) -> dict[str, Any]:
    """What an agent and its backend know of a volume."""
    return {"id": row.id, "size": row.size, "project_id": row.project_id, "host": row.host}
