"""Disk image inspection: real images made by qemu-img and genisoimage, hand-forged attacks, fuzzing.

Every image is inspected the way an upload is: fed chunk by chunk. Needs Debian's qemu-utils and
genisoimage; a missing tool fails the tests (it does not skip them).
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import tracemalloc
import uuid
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stratus.image.formats import (
    HEAD_LIMIT,
    FormatError,
    Inspection,
    Inspector,
    _crc32c,
    check,
)

MiB = 1 << 20
VIRTUAL = 64 * MiB
SMALL = 6 * MiB  # for the hypothesis tests: still larger than the 4 MiB head
# name -> (qemu-img format, options, the disk_format a client declares)
KINDS = {
    "qcow2": ("qcow2", [], "qcow2"),
    "vmdk": ("vmdk", [], "vmdk"),
    "vmdk-stream": ("vmdk", ["-o", "subformat=streamOptimized"], "vmdk"),
    "vhd": ("vpc", [], "vhd"),
    "vhd-fixed": ("vpc", ["-o", "subformat=fixed"], "vhd"),
    "vhdx": ("vhdx", [], "vhdx"),
    "vdi": ("vdi", [], "vdi"),
    "raw": ("raw", [], "raw"),
}
HYPOTHESIS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: install Debian's {package} (apt-get install -y {package})")
    return path


def qemu_img(*args: str | Path, cwd: Path) -> str:
    run = subprocess.run([_tool("qemu-img", "qemu-utils"), *map(str, args)], cwd=cwd, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return run.stdout


def qemu_virtual_size(path: Path, fmt: str) -> int:
    return int(json.loads(qemu_img("info", "-f", fmt, "--output=json", path, cwd=path.parent))["virtual-size"])


def make(directory: Path, name: str, size: int) -> Path:
    fmt, options, _ = KINDS[name]
    path = directory / f"{name}-{size}.img"
    if not path.exists():
        qemu_img("create", "-q", "-f", fmt, *options, path, str(size), cwd=directory)
    return path


def inspect(data: bytes | bytearray, cuts: Iterable[int] = ()) -> Inspection:
    """Feed `data` split at the given offsets (memoryview slices: no copies)."""
    view, inspector, start = memoryview(data), Inspector(), 0
    for cut in [*sorted(set(cuts)), len(data)]:
        if start <= cut <= len(data):
            inspector.feed(view[start:cut])
            start = cut
    return inspector.result()


def inspect_file(path: Path, chunk: int = 65536) -> Inspection:
    inspector = Inspector()
    with path.open("rb") as f:
        while block := f.read(chunk):
            inspector.feed(block)
    return inspector.result()


def refused(inspection: Inspection, declared: str, match: str | None = None) -> str:
    with pytest.raises(FormatError, match=match) as err:
        check(inspection, declared)
    return str(err.value)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _tool("qemu-img", "qemu-utils")
    return tmp_path_factory.mktemp("images")


@pytest.fixture(scope="module")
def small(workdir: Path) -> dict[str, bytes]:
    return {name: make(workdir, name, SMALL).read_bytes() for name in KINDS}


@pytest.fixture(scope="module")
def iso(workdir: Path) -> Path:
    tree = workdir / "iso-tree"
    tree.mkdir()
    (tree / "hello.txt").write_text("hello\n" * 1000)
    path = workdir / "disk.iso"
    run = subprocess.run([_tool("genisoimage", "genisoimage"), "-quiet", "-R", "-o", str(path), str(tree)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return path


# --- real images ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", KINDS)
def test_real_image_detected_with_qemus_virtual_size(workdir: Path, name: str) -> None:
    path = make(workdir, name, VIRTUAL)
    fmt, _, declared = KINDS[name]
    result = inspect_file(path)
    assert result == Inspection(declared, qemu_virtual_size(path, fmt), path.stat().st_size, ())
    check(result, declared)
    if name != "raw":
        refused(result, "raw", f"image data is {declared}, not the declared disk_format 'raw'")
        refused(result, "ami")


def test_iso_from_genisoimage(iso: Path) -> None:
    result = inspect_file(iso, chunk=1000)
    assert (result.format, result.virtual_size, result.problems) == ("iso", iso.stat().st_size, ())
    check(result, "iso")
    check(result, "raw")  # QEMU has no ISO driver: an ISO is raw data to it
    refused(result, "qcow2", "image data is iso")


def test_raw_declared_as_anything_else_is_refused(workdir: Path) -> None:
    result = inspect_file(make(workdir, "raw", VIRTUAL))
    for declared in ("qcow2", "vmdk", "vhd", "vhdx", "vdi", "iso"):
        refused(result, declared, f"image data is raw, not the declared disk_format '{declared}'")
    for declared in ("raw", "ami", "ari", "aki", "RAW"):
        check(result, declared)
    refused(result, "ploop", "cannot be verified")


@pytest.mark.parametrize("name", KINDS)
@HYPOTHESIS
@given(data=st.data())
def test_result_does_not_depend_on_chunking(small: dict[str, bytes], name: str, data: st.DataObject) -> None:
    image = small[name]
    cuts = data.draw(st.lists(st.integers(0, len(image)) | st.integers(len(image) - 1024, len(image)), max_size=30))
    assert inspect(image, cuts) == inspect(image)


def test_fixed_vhd_footer_split_across_chunks(small: dict[str, bytes]) -> None:
    image = small["vhd-fixed"]
    whole = inspect(image)
    assert whole.format == "vhd"
    for cut in (1, 8, 256, 511, 512, 513, 1024):
        assert inspect(image, [len(image) - cut]) == whole
        assert inspect(image, range(len(image) - cut, len(image))) == whole  # byte by byte at the end


def test_memory_stays_bounded() -> None:
    chunk = bytes(MiB)
    inspector = Inspector()
    tracemalloc.start()
    try:
        for _ in range(64):
            inspector.feed(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < HEAD_LIMIT + 256 * 1024  # the head, and nothing per chunk
    assert inspector.result() == Inspection("raw", 64 * MiB, 64 * MiB, ())


# --- qcow2 attacks -------------------------------------------------------------------------------

def test_qcow2_with_backing_file_from_qemu_img(workdir: Path) -> None:
    make(workdir, "qcow2", VIRTUAL).rename(workdir / "base.qcow2")
    qemu_img("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "child.qcow2", cwd=workdir)
    result = inspect_file(workdir / "child.qcow2")
    assert result.format == "qcow2"
    assert result.problems == ("qcow2 image has a backing file 'base.qcow2'",)
    refused(result, "qcow2", "image refused: qcow2 image has a backing file 'base.qcow2'")
    refused(result, "raw", "backing file")


def test_qcow2_with_external_data_file_from_qemu_img(workdir: Path) -> None:
    qemu_img("create", "-q", "-f", "qcow2", "-o", "data_file=ext.raw,data_file_raw=on", "x.qcow2", "64M",
             cwd=workdir)
    result = inspect_file(workdir / "x.qcow2")
    assert result.problems == ("qcow2 image stores its data in an external data file",
                               "qcow2 image names an external data file 'ext.raw'")
    refused(result, "qcow2", "external data file")


def qcow2(version: int = 3, backing: bytes = b"", cluster_bits: int = 16, incompatible: int = 0,
          header_len: int = 112, size: int = 1 << 30, extensions: bytes = b"") -> bytes:
    """A hand-made qcow2: header, extensions, then a refcount table cluster (no data)."""
    cluster = 1 << min(cluster_bits, 16)
    backing_off = 4096 if backing else 0
    header = struct.pack(">4sIQIIQIIQQIIQ", b"QFI\xfb", version, backing_off, len(backing), cluster_bits, size,
                         0, 0, 0, cluster, 1, 0, 0)
    if version == 3:
        header += struct.pack(">QQQII", incompatible, 0, 0, 4, header_len)
        header = header.ljust(header_len, b"\0")
    image = bytearray((header + extensions).ljust(2 * cluster, b"\0"))
    image[backing_off:backing_off + len(backing)] = backing
    return bytes(image)


def extension(kind: int, payload: bytes) -> bytes:
    return struct.pack(">II", kind, len(payload)) + payload.ljust((len(payload) + 7) // 8 * 8, b"\0")


def test_hand_made_qcow2_is_accepted() -> None:
    for version in (2, 3):
        result = inspect(qcow2(version=version))
        assert result == Inspection("qcow2", 1 << 30, 2 * 65536, ()), version
        check(result, "qcow2")
    # known extensions (e.g. a feature name table) and known feature bits (dirty) are fine
    assert inspect(qcow2(incompatible=1, extensions=extension(0x6803F857, b"x" * 48))).problems == ()


@pytest.mark.parametrize(("image", "problem"), [
    (qcow2(backing=b"/etc/shadow"), "qcow2 image has a backing file '/etc/shadow'"),
    (qcow2(version=2, backing=b"/dev/sda"), "qcow2 image has a backing file '/dev/sda'"),
    (qcow2(incompatible=1 << 2), "qcow2 image stores its data in an external data file"),
    (qcow2(extensions=extension(0x44415441, b"/etc/passwd")), "qcow2 image names an external data file '/etc/passwd'"),
    (qcow2(incompatible=1 << 9), "qcow2 image has unknown incompatible features 0x200"),
    (qcow2(incompatible=1 << 1), "qcow2 image is marked corrupt"),
    (qcow2(cluster_bits=40), "qcow2 cluster_bits 40 is out of range"),
    (qcow2(cluster_bits=0), "qcow2 cluster_bits 0 is out of range"),
    (qcow2(header_len=100), "qcow2 header length 100 is inconsistent"),
    (qcow2(header_len=113), "qcow2 header length 113 is inconsistent"),
    (qcow2(cluster_bits=9, header_len=1024), "qcow2 header length 1024 exceeds the cluster size"),
    (qcow2(extensions=struct.pack(">II", 0x1234, 1 << 20)), "qcow2 header extension overruns the first cluster"),
    (qcow2(size=1 << 60), f"qcow2 virtual size {1 << 60} is absurd"),
    (qcow2(version=1), "qcow2 version 1 is not supported"),
    (qcow2()[:65536], "qcow2 image is truncated (its tables lie beyond its end)"),
])
def test_hand_made_qcow2_attacks(image: bytes, problem: str) -> None:
    result = inspect(image, [7, 100, 5000])
    assert result.format == "qcow2"
    assert problem in result.problems
    for declared in ("qcow2", "raw"):
        refused(result, declared, "image refused: ")


@pytest.mark.parametrize("length", [1, 3, 4, 20, 71, 72, 103, 104, 111, 200, 511])
def test_truncated_qcow2_header_is_refused(length: int) -> None:
    result = inspect(qcow2()[:length])
    assert result.format == ("qcow2" if length >= 4 else "raw")
    refused(result, "qcow2")
    if length >= 4:  # a few bytes of magic are already not raw
        assert result.problems
        refused(result, "raw")


@pytest.mark.parametrize("name", [n for n in KINDS if n != "raw"])
def test_truncated_real_images_are_refused(small: dict[str, bytes], name: str) -> None:
    image, declared = small[name], KINDS[name][2]
    for length in (0, 4, 8, 63, 68, 100, 300, 511, 513, 1023, 64 * 1024, 320 * 1024 - 1, 3 * MiB + 16):
        if length < len(image):
            refused(inspect(image[:length]), declared)
    if name in ("qcow2", "vmdk", "vmdk-stream", "vhd", "vhd-fixed", "vdi"):
        refused(inspect(image[:-1]), declared)


# --- VMDK attacks --------------------------------------------------------------------------------

def vmdk(descriptor: str, capacity: int = 2048, desc_sectors: int = 20) -> bytes:
    """A hand-made monolithic sparse VMDK: header, embedded descriptor, 64 KiB of metadata."""
    header = struct.pack("<4sIIQQQQIQQQ?4sH", b"KDMV", 1, 3, capacity, 128, 1, desc_sectors, 512, 21, 30, 128,
                         False, b"\n \r\n", 0)
    return (header.ljust(512, b"\0") + descriptor.encode()).ljust(65536, b"\0")


def descriptor(create_type: str = "monolithicSparse", extents: str = 'RW 2048 SPARSE "disk.vmdk"',
               extra: str = "") -> str:
    return (f'# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="{create_type}"\n'
            f"{extra}\n# Extent description\n{extents}\n\n# The Disk Data Base\nddb.adapterType = \"ide\"\n")


def test_hand_made_vmdk_is_accepted() -> None:
    for create_type in ("monolithicSparse", "streamOptimized"):
        result = inspect(vmdk(descriptor(create_type)), [3, 600])
        assert result == Inspection("vmdk", 2048 * 512, 65536, ())
        check(result, "vmdk")


def test_vmdk_descriptor_file_pointing_at_etc_shadow() -> None:
    text = descriptor("monolithicFlat", 'RW 2048 FLAT "/etc/shadow" 0').encode()
    result = inspect(text, [5, 30])
    assert result.format == "vmdk"
    assert result.problems == (
        "VMDK descriptor file without data is not accepted (its extents are other files)",
        "VMDK createType 'monolithicFlat' is not accepted (only monolithicSparse, streamOptimized)",
        "VMDK extent references another file: 'RW 2048 FLAT \"/etc/shadow\" 0'",
    )
    for declared in ("vmdk", "raw"):
        refused(result, declared, "/etc/shadow")
    # QEMU also takes a text file whose first non-comment line is version=N for a descriptor
    assert inspect(b'# just a comment\nversion=1\nRW 1 FLAT "/etc/shadow" 0\n').format == "vmdk"


def test_vmdk_descriptor_only_from_qemu_img(workdir: Path) -> None:
    qemu_img("create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", "flat.vmdk", "64M", cwd=workdir)
    result = inspect_file(workdir / "flat.vmdk")
    assert result.format == "vmdk"
    refused(result, "vmdk", 'VMDK extent references another file: \'RW 131072 FLAT "flat-flat.vmdk" 0\'')


@pytest.mark.parametrize(("image", "problem"), [
    (vmdk(descriptor(extents='RW 2048 SPARSE "disk.vmdk"\nRW 2048 FLAT "/etc/shadow" 0')),
     "VMDK extent references another file: 'RW 2048 FLAT \"/etc/shadow\" 0'"),
    (vmdk(descriptor(extents='RW 2048 FLAT "/etc/shadow" 0')),
     "VMDK extent references another file: 'RW 2048 FLAT \"/etc/shadow\" 0'"),
    (vmdk(descriptor(extents='RW 2048 SPARSE "/etc/shadow"')),
     "VMDK extent references another file: 'RW 2048 SPARSE \"/etc/shadow\"'"),
    (vmdk(descriptor(extents='RDONLY 2048 VMFS "/dev/sda"')),
     "VMDK extent references another file: 'RDONLY 2048 VMFS \"/dev/sda\"'"),
    (vmdk(descriptor(extra='parentFileNameHint="/etc/shadow"')),
     "VMDK image has a parent (backing) file '\"/etc/shadow\"'"),
    (vmdk(descriptor("twoGbMaxExtentSparse")),
     "VMDK createType 'twoGbMaxExtentSparse' is not accepted (only monolithicSparse, streamOptimized)"),
    (vmdk(descriptor(extents="")), "VMDK descriptor has no extent"),
    (vmdk(descriptor(), desc_sectors=1 << 20), "VMDK descriptor is too large"),
    (vmdk(descriptor(), desc_sectors=0), "VMDK sparse image has no embedded descriptor"),
    (vmdk(descriptor(), capacity=1 << 50), f"vmdk virtual size {(1 << 50) * 512} is absurd"),
    (vmdk(descriptor())[:4096], "VMDK sparse image is truncated"),
    (b"COWD" + bytes(2044), "VMDK ESX sparse (COWD) subformat is not accepted"),
])
def test_hand_made_vmdk_attacks(image: bytes, problem: str) -> None:
    result = inspect(image, [2, 700])
    assert result.format == "vmdk"
    assert problem in result.problems
    for declared in ("vmdk", "raw"):
        refused(result, declared, "image refused: ")


# --- VHD, VHDX, VDI, ISO forgeries ---------------------------------------------------------------

def vhd_footer_fix(footer: bytearray) -> None:
    footer[64:68] = bytes(4)
    footer[64:68] = struct.pack(">I", ~sum(footer) & 0xFFFFFFFF)


def test_vhd_forgeries(small: dict[str, bytes]) -> None:
    for name in ("vhd", "vhd-fixed"):
        image = bytearray(small[name])
        for start in {0, len(image) - 512} if name == "vhd" else {len(image) - 512}:
            footer = image[start:start + 512]
            footer[48:56] = struct.pack(">Q", 1 << 60)
            vhd_footer_fix(footer)
            image[start:start + 512] = footer
        refused(inspect(image), "vhd", f"vhd virtual size {1 << 60} is absurd")
        for start in {0, len(image) - 512} if name == "vhd" else {len(image) - 512}:
            image[start + 63] = 4  # a differencing disk: it has a parent
            vhd_footer_fix(footer := image[start:start + 512])
            image[start:start + 512] = footer
        refused(inspect(image), "vhd", "VHD differencing disk")
        image[511 if name == "vhd" else -1] ^= 0xFF  # a reserved byte of the footer that is read
        refused(inspect(image), "vhd", "VHD footer checksum is wrong")


def test_vdi_forgeries(small: dict[str, bytes]) -> None:
    image = bytearray(small["vdi"])
    image[76:80] = struct.pack("<I", 4)  # differencing
    image[440:456] = uuid.uuid4().bytes
    refused(inspect(image), "vdi", "VDI image type 4 .* VDI image has a parent image")
    image = bytearray(small["vdi"])
    image[368:376] = struct.pack("<Q", 1 << 60)
    result = inspect(image)
    assert f"vdi virtual size {1 << 60} is absurd" in result.problems
    assert "VDI header is inconsistent (disk size, block size or sector size)" in result.problems


def vhdx_metadata_offset(image: bytes | bytearray) -> int:
    count = struct.unpack_from("<I", image, 0x30008)[0]
    for entry in range(0x30010, 0x30010 + 32 * count, 32):
        if image[entry:entry + 16] == uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E").bytes_le:
            return int(struct.unpack_from("<Q", image, entry + 16)[0])
    raise AssertionError("no metadata region")


def test_crc32c_known_answer() -> None:
    assert _crc32c(b"123456789") == 0xE3069283


@HYPOTHESIS
@given(data=st.data())
def test_vhdx_metadata_beyond_the_head_is_captured_while_streaming(workdir: Path, data: st.DataObject) -> None:
    path = workdir / "moved.vhdx"
    if not path.exists():  # move the metadata region from 3 MiB to 9 MiB, past the 4 MiB head
        image = bytearray(make(workdir, "vhdx", VIRTUAL).read_bytes())
        old, new = vhdx_metadata_offset(image), 9 * MiB
        image.extend(bytes(new + MiB - len(image)))
        image[new:new + MiB], image[old:old + MiB] = image[old:old + MiB], bytes(MiB)
        for table in (0x30000, 0x40000):
            body = image[table:table + 0x10000]
            for entry in range(16, 16 + 32 * struct.unpack_from("<I", body, 8)[0], 32):
                if struct.unpack_from("<Q", body, entry + 16)[0] == old:
                    body[entry + 16:entry + 24] = struct.pack("<Q", new)
            body[4:8] = bytes(4)
            body[4:8] = struct.pack("<I", _crc32c(body))
            image[table:table + 0x10000] = body
        path.write_bytes(image)
        assert qemu_virtual_size(path, "vhdx") == VIRTUAL  # QEMU agrees the moved file is valid
    moved = path.read_bytes()
    cuts = data.draw(st.lists(st.integers(0, len(moved)), max_size=20))
    assert inspect(moved, cuts) == Inspection("vhdx", VIRTUAL, len(moved), ())
    refused(inspect(moved[:9 * MiB + 100]), "vhdx", "VHDX metadata region is truncated")


def test_vhdx_forgeries(small: dict[str, bytes]) -> None:
    original = small["vhdx"]
    meta = vhdx_metadata_offset(original)
    count = struct.unpack_from("<H", original, meta + 10)[0]
    for entry in range(meta + 32, meta + 32 + 32 * count, 32):
        guid, offset = original[entry:entry + 16], struct.unpack_from("<I", original, entry + 16)[0]
        if guid == uuid.UUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8").bytes_le:
            image = bytearray(original)
            image[meta + offset:meta + offset + 8] = struct.pack("<Q", 1 << 60)
            refused(inspect(image), "vhdx", f"vhdx virtual size {1 << 60} is absurd")
            image[entry:entry + 16] = uuid.UUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C").bytes_le
            refused(inspect(image), "vhdx", "VHDX differencing disk .* VHDX has no virtual disk size")
    image = bytearray(original)
    image[0x30020] ^= 1  # both region tables fail their checksum
    image[0x40020] ^= 1
    refused(inspect(image), "vhdx", "VHDX region tables are invalid")
    image[0x30020] ^= 1  # the first one good again
    check(inspect(image), "vhdx")


def pvd(blocks: int = 200, block_size: int = 2048, big_endian_blocks: int | None = None) -> bytes:
    """A hand-built ISO 9660 system area, primary volume descriptor and terminator."""
    descriptor = bytearray(2048)
    descriptor[0:7] = b"\x01CD001\x01"
    struct.pack_into("<I", descriptor, 80, blocks)
    struct.pack_into(">I", descriptor, 84, blocks if big_endian_blocks is None else big_endian_blocks)
    struct.pack_into("<H", descriptor, 128, block_size)
    struct.pack_into(">H", descriptor, 130, block_size)
    terminator = b"\xffCD001\x01".ljust(2048, b"\0")
    return (bytes(32768) + descriptor + terminator).ljust(blocks * block_size, b"\0")


def test_hand_built_iso() -> None:
    assert inspect(pvd()) == Inspection("iso", 200 * 2048, 200 * 2048, ())
    refused(inspect(pvd(big_endian_blocks=7)), "iso", "ISO 9660 primary volume descriptor is inconsistent")
    refused(inspect(pvd(block_size=3)), "iso", "inconsistent")
    refused(inspect(pvd()[:33000]), "iso", "truncated")


# --- polyglots -----------------------------------------------------------------------------------

def test_iso_with_a_qcow2_header_is_ambiguous(iso: Path) -> None:
    image = bytearray(iso.read_bytes())
    image[:1024] = qcow2()[:1024]
    result = inspect(image)
    assert result.format == "qcow2"
    assert "image is ambiguous: it looks like qcow2 and iso at once" in result.problems
    for declared in ("iso", "raw", "qcow2"):
        refused(result, declared, "ambiguous")


def test_qcow2_with_a_vhd_footer_is_ambiguous(small: dict[str, bytes]) -> None:
    result = inspect(small["qcow2"] + small["vhd-fixed"][-512:])
    refused(result, "qcow2", "image is ambiguous: it looks like qcow2 and vhd at once")


def test_raw_upload_with_a_qcow2_header_is_qcow2(small: dict[str, bytes]) -> None:
    image = small["qcow2"] + bytes(MiB)
    result = inspect(image)
    assert result.format == "qcow2"
    refused(result, "raw", "image data is qcow2, not the declared disk_format 'raw'")


def test_other_qemu_formats_are_refused(workdir: Path) -> None:
    qemu_img("create", "-q", "-f", "qed", "disk.qed", "64M", cwd=workdir)
    refused(inspect_file(workdir / "disk.qed"), "raw", "QED images are not accepted")


# --- fuzzing: only ever an Inspection, or a FormatError from check -------------------------------

DECLARED = ("raw", "qcow2", "vmdk", "vhd", "vhdx", "vdi", "iso", "ami")
MAGICS = [(0, b"QFI\xfb\0\0\0\3"), (0, b"QFI\xfb\0\0\0\2"), (0, b"KDMV\1\0\0\0"), (0, b"conectix"),
          (0, b"vhdxfile"), (64, b"\x7f\x10\xda\xbe"), (0x8001, b"CD001"), (0, b"# Disk DescriptorFile\n"),
          (0, b"version=1\n"), (0, b"")]


def check_all(result: Inspection) -> None:
    for declared in DECLARED:
        try:
            check(result, declared)
        except FormatError:
            pass


@settings(max_examples=300, deadline=None)
@given(magic=st.sampled_from(MAGICS), body=st.binary(max_size=4096), cuts=st.lists(st.integers(0, 40000)))
def test_random_bytes_never_raise_anything_but_format_error(magic: tuple[int, bytes], body: bytes,
                                                            cuts: list[int]) -> None:
    offset, prefix = magic
    data = bytearray(body.ljust(offset + len(prefix) + 64 * (offset > 0), b"\0"))
    data[offset:offset + len(prefix)] = prefix
    result = inspect(data, cuts)
    assert result == inspect(data)
    check_all(result)


@pytest.mark.parametrize("name", [n for n in KINDS if n != "raw"])
@HYPOTHESIS
@given(data=st.data())
def test_mutated_real_headers_never_raise_anything_but_format_error(small: dict[str, bytes], name: str,
                                                                    data: st.DataObject) -> None:
    image = bytearray(small[name])
    windows = [0, 0x200, len(image) - 512]
    if name == "vhdx":
        windows += [0x30000, vhdx_metadata_offset(image)]
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.sampled_from(windows)) + data.draw(st.integers(0, 511))
        image[position] = data.draw(st.integers(0, 255))
    check_all(inspect(image))
