"""Container listings against a model of Swift's rules, for any names and parameters."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stratus.object.db import ContainerBroker

ALPHABET = "ab/-é"
names_st = st.lists(st.text(ALPHABET, min_size=1, max_size=5), max_size=25, unique=True)
param_st = st.text(ALPHABET, max_size=3)


def model(names: list[str], prefix: str, delimiter: str, marker: str, end_marker: str, limit: int,
          reverse: bool) -> list[tuple[str, str]]:
    """Swift's container listing, written plainly: filter, then fold names past the delimiter."""
    out: list[tuple[str, str]] = []
    folded: list[str] = []
    for name in sorted(names, reverse=reverse):
        if not name.startswith(prefix):
            continue
        if marker and (name >= marker if reverse else name <= marker):
            continue
        if end_marker and (name <= end_marker if reverse else name >= end_marker):
            continue
        if any(name.startswith(sub) for sub in folded):
            continue
        if delimiter:
            cut = name.find(delimiter, len(prefix))
            if cut >= 0 and cut + 1 < len(name):
                sub = name[:cut + 1]
                folded.append(sub)
                if sub != marker:
                    out.append(("subdir", sub))
                continue
        out.append(("name", name))
    return out[:limit]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=names_st, prefix=param_st, delimiter=st.sampled_from(["", "/", "-"]), marker=param_st,
       end_marker=param_st, limit=st.integers(0, 30), reverse=st.booleans())
def test_listing_matches_the_model(names: list[str], prefix: str, delimiter: str, marker: str, end_marker: str,
                                   limit: int, reverse: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = ContainerBroker(Path(tmp) / "c.db")
        broker.initialize("a", "c", "0000000001.00000")
        for i, name in enumerate(names):
            broker.put_object(name, f"{1000 + i:010d}.00000", 1, "t", "e")
        rows = broker.listing(ContainerBroker.columns, limit=limit, marker=marker, end_marker=end_marker,
                              prefix=prefix, delimiter=delimiter, reverse=reverse)
    got = [("subdir", row["subdir"]) if "subdir" in row else ("name", row["name"]) for row in rows]
    assert got == model(names, prefix, delimiter, marker, end_marker, limit, reverse)
