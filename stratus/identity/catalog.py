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


# URL templates Keystone fills in with the token's project (object storage lists `AUTH_%(project_id)s`).
_PROJECT_TEMPLATES = ("%(project_id)s", "$(project_id)s", "%(tenant_id)s", "$(tenant_id)s")


def for_project(catalog: list[dict[str, Any]], project_id: str | None) -> list[dict[str, Any]]:
    """The catalog with project templates filled in; without a project, endpoints that need one
    are left out (as Keystone does)."""
    if not any(t in ep["url"] for entry in catalog for ep in entry["endpoints"] for t in _PROJECT_TEMPLATES):
        return catalog
    out = []
    for entry in catalog:
        endpoints = []
        for ep in entry["endpoints"]:
            url = ep["url"]
            if any(t in url for t in _PROJECT_TEMPLATES):
                if not project_id:
                    continue
                for template in _PROJECT_TEMPLATES:
                    url = url.replace(template, project_id)
            endpoints.append({**ep, "url": url})
        out.append({**entry, "endpoints": endpoints})
    return out


class CatalogCache:
    def __init__(self) -> None:
        self._generation = -1
        self._catalog: list[dict[str, Any]] = []

    def get(self, session: Session, generation: int) -> list[dict[str, Any]]:
        if generation != self._generation:
            self._catalog = build_catalog(session)
            self._generation = generation
        return self._catalog
