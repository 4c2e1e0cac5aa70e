"""The initrd: busybox, the kernel modules the root disk needs, and an init that mounts the root."""

from __future__ import annotations

import gzip
import lzma
import struct
from pathlib import Path

from stratus.guest.cpio import CpioWriter
from stratus.guest.debian import GuestBuildError
from stratus.guest.recipe import FILES_DIR, Recipe

_SIGNATURE_MAGIC = b"~Module signature appended~\n"


def module_bytes(path: Path) -> bytes:
    """The module's ELF bytes, uncompressed (busybox insmod loads only those) and without signature."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        data = lzma.decompress(data)
    elif path.name.endswith(".gz"):
        data = gzip.decompress(data)
    elif not path.name.endswith(".ko"):
        raise GuestBuildError(f"kernel module {path} is compressed in a format the build cannot read")
    return strip_signature(data)


def strip_signature(module: bytes) -> bytes:
    """The module without Debian's appended signature.

    Checking the signatures of the ~15 modules the initrd loads costs the emulated CPU (TCG) hashing
    and RSA; measured over 5 paired boots, the first console marker came 1-5 s sooner without them.
    The kernel does not require signatures (no Secure Boot lockdown in the guest): it loads the
    modules and notes once that it is tainted.
    """
    if not module.endswith(_SIGNATURE_MAGIC):
        return module
    # Before the magic: struct module_signature (12 bytes, big-endian signature length at its end),
    # and before that the signer name, key id and signature it describes.
    info = module[-len(_SIGNATURE_MAGIC) - 12: -len(_SIGNATURE_MAGIC)]
    signer_len, key_id_len = info[3], info[4]
    (signature_len,) = struct.unpack(">I", info[8:12])
    end = len(module) - len(_SIGNATURE_MAGIC) - 12 - signature_len - signer_len - key_id_len
    if end <= 0:
        raise GuestBuildError("a kernel module's signature trailer is malformed")
    return module[:end]


def module_file_name(path: Path) -> str:
    name = path.name
    for suffix in (".xz", ".zst", ".gz"):
        name = name.removesuffix(suffix)
    return name


def write_initrd(recipe: Recipe, target: Path) -> None:
    with target.open("wb") as out:
        archive = CpioWriter(out)
        for directory in ("bin", "dev", "proc", "sys", "newroot", "modules"):
            archive.directory(directory)
        archive.file_from("bin/busybox", recipe.busybox, 0o755)
        archive.symlink("bin/sh", "busybox")
        archive.file_from("init", FILES_DIR / "initrd-init", 0o755)
        names = []
        for module in recipe.modules:
            name = module_file_name(module)
            archive.file(f"modules/{name}", module_bytes(module), 0o644)
            names.append(name)
        archive.file("modules.order", ("\n".join(names) + "\n").encode())
        archive.close()
