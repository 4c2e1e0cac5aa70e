"""Compute API microversions: `OpenStack-API-Version: compute 2.x` (or the older
`X-OpenStack-Nova-API-Version: 2.x`) in, the version served out in both headers; 2.1 to 2.53."""

from __future__ import annotations

from stratus.core.microversion import APIVersion, Microversions

__all__ = ["VERSIONS", "APIVersion", "max_version", "min_version", "requested"]

VERSIONS = Microversions(names=("compute",), minimum=(2, 1), maximum=(2, 53), fault_api="compute",
                         legacy_header="X-OpenStack-Nova-API-Version")
min_version, max_version, requested = VERSIONS.min_version, VERSIONS.max_version, VERSIONS.requested
