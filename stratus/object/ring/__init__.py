"""Rings map names to partitions and partitions to devices: `builder` places, `ring` looks up."""

from stratus.object.ring.ring import Ring, RingData, RingError

__all__ = ["Ring", "RingData", "RingError"]
