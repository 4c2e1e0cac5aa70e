"""The service catalog as tokens carry it, rebuilt only after a write."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from stratus.identity.models import Endpoint, Service


def build_catalog(session: Session) -> list[dict[str, Any]]:
    services = session.scalars(sa.select(Service).where(Service.enabled.is_(True)).order_by(Service.type)).all()
    endpoints = session.scalars(sa.select(Endpoint).where(Endpoint.enabled.is_(True))).all()
    by_service: dict[str, list[dict[str, Any]]] = {}
    for ep in endpoints:
        by_service.setdefault(ep.service_id, []).append(
            {"id": ep.id, "interface": ep.interface, "region_id": ep.region_id, "region": ep.region_id,
             "url": ep.url})
    return [{"id": s.id, "type": s.type, "name": s.name, "endpoints": by_service.get(s.id, [])}
            for s in services]


class CatalogCache:
    def __init__(self) -> None:
        self._generation = -1
        self._catalog: list[dict[str, Any]] = []

    def get(self, session: Session, generation: int) -> list[dict[str, Any]]:
        if generation != self._generation:
            self._catalog = build_catalog(session)
            self._generation = generation
        return self._catalog
