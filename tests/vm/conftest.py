"""Shared fixtures for the tests that boot real QEMU guests: the guest image and the accelerator.

Both come from the guest cache the cloud itself uses (~/.cache/stratus/guest), so the image is built
and the KVM probe boot is run once per machine, not once per test session.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stratus.guest import GuestImage, accel, build, default_cache_dir


@pytest.fixture(scope="session")
def guest_cache_dir() -> Path:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.fail("these tests boot real VMs and need qemu-system-x86_64: apt-get install qemu-system-x86")
    return default_cache_dir()


@pytest.fixture(scope="session")
def guest_image(guest_cache_dir: Path) -> GuestImage:
    return build(guest_cache_dir)


@pytest.fixture(scope="session")
def guest_accel(guest_cache_dir: Path, guest_image: GuestImage) -> str:
    """"kvm" where a guest really runs under KVM on this host, else "tcg"."""
    return accel.choose(guest_cache_dir)
