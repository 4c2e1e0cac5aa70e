"""Disk image inspection: what an upload really is, and whether it is safe to hand to QEMU.

A cloud must not trust the `disk_format` a client declares: a qcow2 image that names a backing
file such as /etc/shadow, or a VMDK descriptor whose extent is a host file, makes the hypervisor
read host files into a tenant's VM. So every upload streams through an `Inspector`, which reads
the headers as they pass (written from the public format specifications: QEMU's qcow2 spec,
VMware's Virtual Disk Format, Microsoft's VHD and VHDX specs, the VirtualBox VDI header, ECMA-119)
and `check` refuses what is unsafe or is not what was declared.

Memory bound: the first 4 MiB (`HEAD_LIMIT`, which holds every header looked at here, including a
qcow2 first cluster of at most 2 MiB and a VMDK embedded descriptor), the last 512 bytes (a fixed
VHD's footer) and at most 1 MiB of a VHDX metadata region lying beyond the first 4 MiB: < 5.1 MiB
per upload whatever its size.
"""

from __future__ import annotations

import re
import struct
import uuid
from dataclasses import dataclass

KiB, MiB = 1 << 10, 1 << 20
HEAD_LIMIT = 4 * MiB
TAIL_SIZE = 512
VHDX_METADATA_LIMIT = 1 * MiB
MAX_VIRTUAL_SIZE = 1 << 56  # 64 PiB: anything larger is a forged header, not a disk
MAX_VMDK_DESCRIPTOR = 1 * MiB

RAW_LIKE = frozenset({"raw", "ami", "ari", "aki"})
KNOWN = frozenset({"qcow2", "vmdk", "vhd", "vhdx", "vdi", "iso"}) | RAW_LIKE


class FormatError(Exception):
    """The upload is refused; the message says why (used as a 400 message)."""


@dataclass(frozen=True)
class Inspection:
    format: str  # "qcow2" | "vmdk" | "vhd" | "vhdx" | "vdi" | "iso" | "raw"
    virtual_size: int  # bytes, from the header (raw: the data size; iso: the volume size)
    size: int  # bytes fed
    problems: tuple[str, ...]  # safety problems found (empty = safe)


Parsed = tuple[int, list[str]]  # (virtual size, problems)


def _int(fmt: str, buf: bytes | bytearray, off: int) -> int:
    return int(struct.unpack_from(fmt, buf, off)[0])


def _name(raw: bytes | bytearray) -> str:
    return repr(bytes(raw[:256]).decode("utf-8", "replace"))


# --- qcow2 (QEMU docs/interop/qcow2.txt) --------------------------------------------------------
QCOW2_MAGIC = b"QFI\xfb"
QCOW2_KNOWN_INCOMPATIBLE = 0x1F  # dirty, corrupt, external data file, compression type, extended L2
QCOW2_EXT_DATA_FILE = 0x44415441


def _qcow2(head: bytes | bytearray, size: int) -> Parsed:
    if len(head) < 72:
        return 0, ["qcow2 header is truncated"]
    version, backing_off, backing_len, cluster_bits, virtual_size = struct.unpack_from(">IQIIQ", head, 4)
    l1_size, l1_offset, refcount_offset, refcount_clusters = struct.unpack_from(">IQQI", head, 36)
    if version not in (2, 3):
        return virtual_size, [f"qcow2 version {version} is not supported"]
    problems = []
    if backing_off or backing_len:  # QEMU would open this path on the host: the classic attack
        problems.append(f"qcow2 image has a backing file {_name(head[backing_off:backing_off + backing_len])}")
    header_len = 72
    if version == 3:
        if len(head) < 104:
            return virtual_size, problems + ["qcow2 header is truncated"]
        incompatible, _, _, refcount_order, header_len = struct.unpack_from(">QQQII", head, 72)
        if incompatible & 0x4:
            problems.append("qcow2 image stores its data in an external data file")
        if incompatible & 0x2:
            problems.append("qcow2 image is marked corrupt")
        if incompatible & ~QCOW2_KNOWN_INCOMPATIBLE:
            problems.append(f"qcow2 image has unknown incompatible features {incompatible & ~0x1F:#x}")
        if refcount_order > 6:
            problems.append(f"qcow2 refcount_order {refcount_order} is out of range")
        if header_len < 104 or header_len % 8:
            problems.append(f"qcow2 header length {header_len} is inconsistent")
            return virtual_size, problems
    if not 9 <= cluster_bits <= 21:  # 512 B .. 2 MiB clusters
        return virtual_size, problems + [f"qcow2 cluster_bits {cluster_bits} is out of range"]
    cluster = 1 << cluster_bits
    if header_len > cluster:
        return virtual_size, problems + [f"qcow2 header length {header_len} exceeds the cluster size"]
    if l1_offset + 8 * l1_size > size or refcount_offset + refcount_clusters * cluster > size:
        problems.append("qcow2 image is truncated (its tables lie beyond its end)")
    return virtual_size, problems + _qcow2_extensions(head, header_len, cluster)


def _qcow2_extensions(head: bytes | bytearray, off: int, cluster: int) -> list[str]:
    """Walk the header extensions, which live in the rest of the first cluster."""
    problems: list[str] = []
    end = min(cluster, len(head))
    while True:
        if off + 8 > end:
            return problems + (["qcow2 header extensions are truncated"] if end < cluster else [])
        kind, length = struct.unpack_from(">II", head, off)
        if kind == 0:
            return problems
        if off + 8 + length > cluster:
            return problems + ["qcow2 header extension overruns the first cluster"]
        if kind == QCOW2_EXT_DATA_FILE:
            problems.append(f"qcow2 image names an external data file {_name(head[off + 8:off + 8 + length])}")
        off += 8 + (length + 7) // 8 * 8


# --- VMDK (VMware Virtual Disk Format 5.0) ------------------------------------------------------
VMDK_ACCEPTED_TYPES = ("monolithicSparse", "streamOptimized")
VMDK_EXTENT = re.compile(r'^(RW|RDONLY|NOACCESS)\s+(\d+)\s+(\w+)(?:\s+"([^"]*)")?', re.IGNORECASE)


def _looks_like_vmdk_descriptor(head: bytes | bytearray) -> bool:
    # QEMU probes a text file as VMDK when its first non-comment line is "version=N".
    if head.startswith(b"# Disk DescriptorFile"):
        return True
    for line in bytes(head[:4096]).split(b"\n"):
        line = line.strip()
        if line and not line.startswith(b"#"):
            return re.match(rb"version\s*=\s*\d", line) is not None
    return False


def _vmdk_descriptor(text: str, embedded: bool) -> Parsed:
    problems, extents, create_type = [], [], None
    for line in (raw.strip() for raw in text.splitlines()):
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.partition("=")
        if eq and key.strip() == "createType":
            create_type = value.strip().strip('"')
        elif eq and key.strip().lower() == "parentfilenamehint":
            problems.append(f"VMDK image has a parent (backing) file {_name(value.strip().encode())}")
        elif match := VMDK_EXTENT.match(line):
            extents.append(match)
    if not embedded:
        problems.append("VMDK descriptor file without data is not accepted (its extents are other files)")
    if create_type not in VMDK_ACCEPTED_TYPES:
        problems.append(f"VMDK createType {create_type!r} is not accepted (only {', '.join(VMDK_ACCEPTED_TYPES)})")
    # The only extent allowed is this very file: one SPARSE extent, named without a directory.
    own = (embedded and len(extents) == 1 and extents[0].group(3).upper() == "SPARSE"
           and not re.search(r"[/\\]", extents[0].group(4) or ""))
    if not extents:
        problems.append("VMDK descriptor has no extent")
    elif not own:
        for match in extents:
            problems.append(f"VMDK extent references another file: {match.string[:200]!r}")
    return sum(int(m.group(2)) for m in extents) * 512, problems


def _vmdk(head: bytes | bytearray, size: int) -> Parsed:
    if head.startswith(b"COWD"):
        return 0, ["VMDK ESX sparse (COWD) subformat is not accepted"]
    if not head.startswith(b"KDMV"):
        if size > MAX_VMDK_DESCRIPTOR:
            return 0, ["VMDK descriptor is too large"]
        return _vmdk_descriptor(bytes(head).decode("utf-8", "replace"), embedded=False)
    if len(head) < 512:
        return 0, ["VMDK sparse header is truncated"]
    version, _, capacity, _, desc_sector, desc_sectors = struct.unpack_from("<IIQQQQ", head, 4)
    overhead = _int("<Q", head, 64)  # sectors of metadata before the first grain
    virtual_size = capacity * 512
    if version not in (1, 2, 3):
        return virtual_size, [f"VMDK sparse version {version} is not supported"]
    if overhead * 512 > size:
        return virtual_size, ["VMDK sparse image is truncated"]
    if desc_sector == 0 or desc_sectors == 0:
        return virtual_size, ["VMDK sparse image has no embedded descriptor"]
    if desc_sectors * 512 > MAX_VMDK_DESCRIPTOR:
        return virtual_size, ["VMDK descriptor is too large"]
    start, end = desc_sector * 512, (desc_sector + desc_sectors) * 512
    if end > len(head):
        where = "truncated" if end > size else f"beyond the first {HEAD_LIMIT // MiB} MiB"
        return virtual_size, [f"VMDK embedded descriptor is {where}"]
    text = bytes(head[start:end]).split(b"\0", 1)[0].decode("utf-8", "replace")
    return virtual_size, _vmdk_descriptor(text, embedded=True)[1]


# --- VHD (Microsoft Virtual Hard Disk Image Format Specification) -------------------------------
VHD_COOKIE = b"conectix"
VHD_FIXED, VHD_DYNAMIC, VHD_DIFFERENCING = 2, 3, 4


def _vhd(head: bytes | bytearray, tail: bytes, size: int) -> Parsed:
    footer = head[:512] if head.startswith(VHD_COOKIE) else tail  # dynamic: copy at 0; fixed: end only
    if len(footer) < 512:
        return 0, ["VHD footer is truncated"]
    data_offset, = struct.unpack_from(">Q", footer, 16)
    current_size, = struct.unpack_from(">Q", footer, 48)
    disk_type, checksum = struct.unpack_from(">II", footer, 60)
    problems = []
    if (~(sum(footer[:64]) + sum(footer[68:]))) & 0xFFFFFFFF != checksum:
        problems.append("VHD footer checksum is wrong")
    if disk_type == VHD_DIFFERENCING:
        problems.append("VHD differencing disk (it has a parent file) is not accepted")
    elif disk_type == VHD_FIXED:
        if current_size > size - 512:
            problems.append("fixed VHD is smaller than its declared size")
    elif disk_type == VHD_DYNAMIC:
        if data_offset + 1024 > len(head) or head[data_offset:data_offset + 8] != b"cxsparse":
            problems.append("dynamic VHD header is missing")
        if tail != footer:  # a dynamic disk ends with the same footer it starts with
            problems.append("dynamic VHD is truncated (its footer copies differ)")
    else:
        problems.append(f"VHD disk type {disk_type} is not supported")
    return current_size, problems


# --- VHDX (Microsoft VHDX Format Specification v1.0) --------------------------------------------
VHDX_SIGNATURE = b"vhdxfile"
VHDX_REGION_TABLES = (192 * KiB, 256 * KiB)
VHDX_TABLES_END = 320 * KiB
VHDX_METADATA = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E").bytes_le
VHDX_FILE_PARAMETERS = uuid.UUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B").bytes_le
VHDX_VIRTUAL_DISK_SIZE = uuid.UUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8").bytes_le
VHDX_PARENT_LOCATOR = uuid.UUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C").bytes_le


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        for _ in range(8):
            n = (n >> 1) ^ 0x82F63B78 if n & 1 else n >> 1
        table.append(n)
    return table


CRC32C_TABLE = _crc32c_table()


def _crc32c(data: bytes | bytearray) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _vhdx_metadata_location(head: bytes | bytearray) -> tuple[int, int] | str:
    """(offset, length) of the metadata region from the first valid region table, or a problem."""
    if len(head) < VHDX_TABLES_END:
        return "VHDX header is truncated"
    for table_off in VHDX_REGION_TABLES:
        table = bytearray(head[table_off:table_off + 64 * KiB])
        signature, checksum, count = struct.unpack_from("<4sII", table, 0)
        table[4:8] = bytes(4)
        if signature != b"regi" or count > 2047 or _crc32c(table) != checksum:
            continue
        for entry in range(16, 16 + 32 * count, 32):
            guid, offset, length = struct.unpack_from("<16sQI", table, entry)
            if guid == VHDX_METADATA:
                return offset, length
        return "VHDX region table has no metadata region"
    return "VHDX region tables are invalid"


def _vhdx_metadata(meta: bytes | bytearray, region_len: int) -> Parsed:
    if len(meta) < 32 or not meta.startswith(b"metadata"):
        return 0, ["VHDX metadata table is missing or truncated"]
    count = _int("<H", meta, 10)
    if count > 2047 or 32 + 32 * count > len(meta):
        return 0, ["VHDX metadata table is inconsistent"]
    virtual_size, problems = None, []
    for entry in range(32, 32 + 32 * count, 32):
        guid, offset, length = struct.unpack_from("<16sII", meta, entry)
        if offset + length > region_len:
            problems.append("VHDX metadata item lies outside its region")
        elif guid == VHDX_PARENT_LOCATOR:
            problems.append("VHDX differencing disk (it has a parent file) is not accepted")
        elif guid in (VHDX_VIRTUAL_DISK_SIZE, VHDX_FILE_PARAMETERS) and (length < 8 or offset + 8 > len(meta)):
            problems.append(f"VHDX metadata item lies beyond the first {VHDX_METADATA_LIMIT // MiB} MiB of its region")
        elif guid == VHDX_VIRTUAL_DISK_SIZE:
            virtual_size, = struct.unpack_from("<Q", meta, offset)
        elif guid == VHDX_FILE_PARAMETERS and _int("<I", meta, offset + 4) & 0x2:  # HasParent
            problems.append("VHDX differencing disk (it has a parent file) is not accepted")
    if virtual_size is None:
        return 0, problems + ["VHDX has no virtual disk size"]
    return virtual_size, problems


class _Capture:
    """Keeps bytes [start, start + length) of the stream as they pass (or from the head)."""

    def __init__(self, start: int, length: int, head: bytes | bytearray) -> None:
        self.start, self.length = start, min(length, VHDX_METADATA_LIMIT)
        self.region_len = length
        self.data = bytearray(head[start:start + self.length]) if start < len(head) else bytearray()

    def take(self, pos: int, chunk: bytes | bytearray | memoryview) -> None:
        want = self.start + len(self.data)
        if len(self.data) < self.length and pos <= want < pos + len(chunk):
            self.data += chunk[want - pos:want - pos + self.length - len(self.data)]


# --- VDI (VirtualBox VDI header, version 1.1) ---------------------------------------------------
VDI_SIGNATURE = struct.pack("<I", 0xBEDA107F)


def _vdi(head: bytes | bytearray, size: int) -> Parsed:
    if len(head) < 456:
        return 0, ["VDI header is truncated"]
    version, _, image_type = struct.unpack_from("<III", head, 68)
    blocks_offset, data_offset = struct.unpack_from("<II", head, 340)
    sector_size, _, disk_size, block_size, block_extra, blocks, allocated = struct.unpack_from("<IIQIIII", head, 360)
    if version >> 16 != 1:
        return disk_size, [f"VDI version {version:#x} is not supported"]
    problems = []
    if image_type not in (1, 2):  # 1 normal (dynamic), 2 fixed; undo/diff ones have a parent
        problems.append(f"VDI image type {image_type} (differencing or undo) is not accepted")
    if any(head[440:456]):
        problems.append("VDI image has a parent image")
    if sector_size != 512 or block_size == 0 or disk_size > blocks * block_size:
        problems.append("VDI header is inconsistent (disk size, block size or sector size)")
    if blocks_offset + 4 * blocks > size or data_offset + allocated * (block_size + block_extra) > size:
        problems.append("VDI image is truncated")
    return disk_size, problems


# --- ISO 9660 (ECMA-119) ------------------------------------------------------------------------
ISO_SECTOR = 2048
ISO_FIRST_DESCRIPTOR = 16 * ISO_SECTOR


def _iso(head: bytes | bytearray) -> Parsed:
    for off in range(ISO_FIRST_DESCRIPTOR, ISO_FIRST_DESCRIPTOR + 64 * ISO_SECTOR, ISO_SECTOR):
        if off + ISO_SECTOR > len(head):
            return 0, ["ISO 9660 volume descriptors are truncated"]
        if head[off + 1:off + 6] != b"CD001":
            return 0, ["ISO 9660 volume descriptor set is malformed"]
        if head[off] == 255:
            break
        if head[off] == 1:  # primary volume descriptor: sizes are stored both little- and big-endian
            blocks, blocks_be = _int("<I", head, off + 80), _int(">I", head, off + 84)
            block_size, block_size_be = _int("<H", head, off + 128), _int(">H", head, off + 130)
            if blocks != blocks_be or block_size != block_size_be or block_size not in (512, 1024, 2048):
                return blocks * block_size, ["ISO 9660 primary volume descriptor is inconsistent"]
            return blocks * block_size, []
    return 0, ["ISO 9660 image has no primary volume descriptor"]


# --- formats QEMU knows that Stratus does not accept: refused when seen -------------------------
FOREIGN_MAGICS = {b"QED\0": "QED", b"LUKS\xba\xbe": "LUKS", b"WithoutFreeSpace": "Parallels",
                  b"WithouFreSpacExt": "Parallels"}


class Inspector:
    """Fed every chunk of an upload; `result()` says what the bytes are."""

    def __init__(self) -> None:
        self._head = bytearray()
        self._tail = b""
        self._size = 0
        self._vhdx: _Capture | str | None = None  # metadata capture, or why there is none

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        view = memoryview(chunk).cast("B")  # slices of a view copy nothing
        pos, self._size = self._size, self._size + len(view)
        if len(self._head) < HEAD_LIMIT:
            self._head += view[:HEAD_LIMIT - len(self._head)]
        self._tail = (self._tail + bytes(view[-TAIL_SIZE:]))[-TAIL_SIZE:]
        if self._vhdx is None and len(self._head) >= VHDX_TABLES_END and self._head.startswith(VHDX_SIGNATURE):
            self._plan_vhdx()
        if isinstance(self._vhdx, _Capture):
            self._vhdx.take(pos, view)

    def _plan_vhdx(self) -> None:
        # Run once the region tables are in the head: the metadata region may lie further on.
        location = _vhdx_metadata_location(self._head)
        if isinstance(location, str):
            self._vhdx = location
        else:
            offset, length = location
            self._vhdx = _Capture(offset, length, self._head)

    def _vhdx_result(self) -> Parsed:
        if self._vhdx is None:
            self._plan_vhdx()
        if isinstance(self._vhdx, str):
            return 0, [self._vhdx]
        assert self._vhdx is not None
        if len(self._vhdx.data) < self._vhdx.length:
            return 0, ["VHDX metadata region is truncated"]
        return _vhdx_metadata(self._vhdx.data, self._vhdx.region_len)

    def _candidates(self) -> list[str]:
        head, found = self._head, []
        if head.startswith(QCOW2_MAGIC):
            found.append("qcow2")
        if head.startswith((b"KDMV", b"COWD")) or _looks_like_vmdk_descriptor(head):
            found.append("vmdk")
        if head.startswith(VHD_COOKIE) or (len(self._tail) == TAIL_SIZE and self._tail.startswith(VHD_COOKIE)):
            found.append("vhd")
        if head.startswith(VHDX_SIGNATURE):
            found.append("vhdx")
        if head[64:68] == VDI_SIGNATURE:
            found.append("vdi")
        if head[ISO_FIRST_DESCRIPTOR + 1:ISO_FIRST_DESCRIPTOR + 6] == b"CD001":
            found.append("iso")
        return found

    def result(self) -> Inspection:
        head, size = self._head, self._size
        found = self._candidates()
        problems = [f"image is ambiguous: it looks like {' and '.join(found)} at once"] if len(found) > 1 else []
        fmt = found[0] if found else "raw"
        try:
            virtual_size, more = {
                "qcow2": lambda: _qcow2(head, size),
                "vmdk": lambda: _vmdk(head, size),
                "vhd": lambda: _vhd(head, self._tail, size),
                "vhdx": self._vhdx_result,
                "vdi": lambda: _vdi(head, size),
                "iso": lambda: _iso(head),
                "raw": lambda: (size, []),
            }[fmt]()
        except (struct.error, ValueError, IndexError, OverflowError):  # a forged header we did not foresee
            virtual_size, more = 0, [f"{fmt} header is malformed"]
        problems += more
        for magic, name in FOREIGN_MAGICS.items():
            if fmt == "raw" and head.startswith(magic):
                problems.append(f"{name} images are not accepted")
        if virtual_size > MAX_VIRTUAL_SIZE:
            problems.append(f"{fmt} virtual size {virtual_size} is absurd")
        return Inspection(fmt, virtual_size, size, tuple(problems))


def check(inspection: Inspection, declared_disk_format: str) -> None:
    """Refuse an unsafe image, or one whose bytes are not the declared disk_format."""
    if inspection.problems:
        raise FormatError(f"image refused: {'; '.join(inspection.problems)}")
    declared = declared_disk_format.lower()
    if declared not in KNOWN:
        raise FormatError(f"disk_format {declared_disk_format!r} cannot be verified")
    detected = inspection.format
    # An ISO is raw data to QEMU (it has no ISO driver), so it may be uploaded as raw.
    ok = detected in ("raw", "iso") if declared in RAW_LIKE else detected == declared
    if not ok:
        raise FormatError(f"image data is {detected}, not the declared disk_format {declared_disk_format!r}")
