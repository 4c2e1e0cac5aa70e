"""The Stratus guest image: a small bootable Linux built from Debian packages, like CirrOS for tests.

`build()` makes (or finds in its cache) the qcow2 disk, kernel and initrd; `upload()` puts them in
the image service as `stratus-guest`; `accel.choose()` says whether KVM really works on this host.
"""

from stratus.guest.boot import bare_boot_seconds
from stratus.guest.build import build, default_cache_dir
from stratus.guest.image import GuestImage
from stratus.guest.upload import upload

__all__ = ["GuestImage", "bare_boot_seconds", "build", "default_cache_dir", "upload"]
