"""Block Storage API microversions: `OpenStack-API-Version: volume 3.x` in, the version served out;
3.0 to 3.70."""

from __future__ import annotations

from stratus.core.microversion import APIVersion, Microversions

__all__ = ["VERSIONS", "APIVersion", "max_version", "min_version", "requested"]

VERSIONS = Microversions(names=("volume", "block-storage"), minimum=(3, 0), maximum=(3, 70), fault_api="volume")
min_version, max_version, requested = VERSIONS.min_version, VERSIONS.max_version, VERSIONS.requested
