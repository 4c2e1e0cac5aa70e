"""Which layer-2 segment a network rides on: provider attributes checked, tenant ids allocated.

A segment in use is a row of `network_segment` whose key is (type, physical network, id), so two
networks can never get the same VLAN or VXLAN id, even when created at the same moment.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from stratus.core.config import NetworkConfig
from stratus.network import models
from stratus.network.errors import InvalidInput, NoNetworkAvailable, SegmentInUse

TYPES = ("flat", "vlan", "vxlan", "local")
MAX_ID = {"vlan": 4094, "vxlan": 2**24 - 1}
# VXLAN's headers take 50 bytes of the physical network's MTU.
OVERHEAD = {"vxlan": 50}


@dataclass(frozen=True)
class Segment:
    network_type: str
    physical_network: str | None = None
    segmentation_id: int | None = None


def ranges(settings: NetworkConfig, network_type: str) -> list[tuple[str, int, int]]:
    """Configured (physical network, first, last) ranges for tenant networks of a type."""
    out = []
    if network_type == "vlan":
        for item in settings.vlan_ranges:
            physnet, first, last = item.split(":")
            out.append((physnet, int(first), int(last)))
    elif network_type == "vxlan":
        for item in settings.vxlan_ranges:
            first, last = item.split(":")
            out.append(("", int(first), int(last)))
    return out


def max_mtu(settings: NetworkConfig, network_type: str) -> int:
    return settings.global_physnet_mtu - OVERHEAD.get(network_type, 0)


def validate_provider(settings: NetworkConfig, segment: Segment) -> Segment:
    """An admin's provider attributes, checked as Neutron's type drivers check them."""
    kind, physnet, seg_id = segment.network_type, segment.physical_network, segment.segmentation_id
    if kind not in TYPES:
        raise InvalidInput(f"network_type value '{kind}' not supported")
    if kind in ("flat", "vlan"):
        if not physnet:
            raise InvalidInput(f"physical_network required for {kind} provider network")
        if physnet not in settings.physical_networks:
            raise InvalidInput(f"physical_network '{physnet}' unknown for {kind} provider network")
    elif physnet:
        raise InvalidInput(f"physical_network not allowed for {kind} provider network")
    if kind in ("flat", "local") and seg_id is not None:
        raise InvalidInput(f"segmentation_id not allowed for {kind} provider network")
    if seg_id is not None and not 1 <= seg_id <= MAX_ID[kind]:
        raise InvalidInput(f"segmentation_id out of range (1 through {MAX_ID[kind]})")
    return segment


def reserve(session: Session, network_id: str, segment: Segment, settings: NetworkConfig) -> Segment:
    """Record the segment as used by `network_id`; allocate the id when the caller left it out."""
    kind = segment.network_type
    if kind == "local":
        return segment
    if kind == "flat":
        _insert_or_conflict(session, network_id, segment, 0)
        return segment
    if segment.segmentation_id is not None:
        _insert_or_conflict(session, network_id, segment, segment.segmentation_id)
        return segment
    wanted = [(p, a, b) for p, a, b in ranges(settings, kind)
              if segment.physical_network in (None, p or None)]
    found = _allocate(session, network_id, kind, wanted)
    if found is None:
        raise NoNetworkAvailable()
    return found


def allocate_tenant(session: Session, network_id: str, settings: NetworkConfig) -> Segment:
    """A segment for a project's network: the first configured type with a free id."""
    for kind in settings.tenant_network_types:
        if kind == "local":
            return Segment("local")
        found = _allocate(session, network_id, kind, ranges(settings, kind))
        if found is not None:
            return found
    raise NoNetworkAvailable()


def _insert_or_conflict(session: Session, network_id: str, segment: Segment, seg_id: int) -> None:
    row = models.Segment(network_type=segment.network_type, physical_network=segment.physical_network or "",
                         segmentation_id=seg_id, network_id=network_id)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise SegmentInUse(segment.network_type, segment.physical_network, segment.segmentation_id) from None


def _allocate(session: Session, network_id: str, kind: str,
              wanted: list[tuple[str, int, int]]) -> Segment | None:
    """The lowest free id of the ranges; a concurrent winner of an id makes us try the next."""
    for physnet, first, last in wanted:
        used = set(session.scalars(
            sa.select(models.Segment.segmentation_id).where(
                models.Segment.network_type == kind, models.Segment.physical_network == physnet,
                models.Segment.segmentation_id.between(first, last))))
        for seg_id in range(first, last + 1):
            if seg_id in used:
                continue
            try:
                with session.begin_nested():
                    session.add(models.Segment(network_type=kind, physical_network=physnet,
                                               segmentation_id=seg_id, network_id=network_id))
            except IntegrityError:
                continue
            return Segment(kind, physnet or None, seg_id)
    return None
