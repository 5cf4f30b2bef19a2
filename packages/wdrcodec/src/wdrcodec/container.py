"""The ``.wdr`` container: header layout, checksums and validation (see SPEC.md).

A file is ``header || payload``. The header carries everything needed to rebuild the array and is
protected by a CRC32; the payload (the embedded WDR stream) is protected by one CRC32 per block,
stored in the header. A file shorter than ``header_len + payload_len`` is *truncated* (the prefix
still decodes); a header CRC or a complete payload block CRC that does not match is *corrupted*
(:class:`WdrError`).

Version 3 (written only when a file uses one of its sections, so other files stay version 2 and
byte-identical to what version 2 wrote) adds a stream table (the payload holds one independent
stream per volume, interleaved by :mod:`wdrcodec.streams`) and a wavelet name (a PyWavelets
biorthogonal wavelet instead of the built-in CDF 9/7) and an object mask (the shape-adaptive
mode, :mod:`wdrcodec.shape_adaptive`: the coded mask of :mod:`wdrcodec.mask`, its background value
and object voxel count).
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from wdrcodec.config import DecodeConfig
from wdrcodec.errors import WdrError
from wdrcodec.memory import check_resources, check_voxels

MAGIC = b"\x89WDR\r\n\x1a\n"
VERSION = 3  # newest version read and written; 2 added the axis order, 3 streams and wavelets
BASE_VERSION = 2  # what a file without version-3 sections is written as
MAX_HEADER = 64 << 20
PAYLOAD_BLOCK = 16384
NO_AXIS = 255

FLAG_LOSSLESS = 1
FLAG_PACKET = 2
FLAG_AXES_XYZ = 4
FLAG_AFFINE = 8
FLAG_FLOAT = 16
FLAG_META = 32  # version 2: a metadata section (u32 length + bytes) follows the grouping
FLAG_CTX = 64  # version 3: the payload is coded by wdrcodec.ctxcoder (else wdrcodec.coder)
# (version-2 files with this flag came from the first, incompatible context model of a
# development build and are refused rather than decoded to wrong values)
FLAG_STREAMS = 128  # version 3: one stream per volume; table (n_vol x u32 lengths) after meta
FLAG_WAVELET = 256  # version 3: wavelet name (u8 length + ASCII) after the stream table
MAX_WAVELET_NAME = 32
FLAG_MASK = 512  # version 3: object mask section (u32 length, i64 background, u64 count, bytes)
MASK_FIXED = 20  # bytes of the mask section before the coded mask

DTYPES = {1: "uint8", 2: "int8", 3: "uint16", 4: "int16", 5: "float32", 6: "float64"}
DTYPE_CODES = {v: k for k, v in DTYPES.items()}
MODES = {0: "3d", 1: "2d", 2: "mcpd"}
MODE_CODES = {v: k for k, v in MODES.items()}
NORMS = {0: "none", 1: "std", 2: "range"}
NORM_CODES = {v: k for k, v in NORMS.items()}

# magic, version, flags, header_len, payload_len, ndim, dtype, mode, levels, top, nplanes,
# frac_bits, norm, shape[4], vmin, vmax, mean, quant_step, quant_offset, mcpd_threshold,
# spacing[4], n_vol, n_slices, block_size, n_blocks
# version 2 appends: axis order[4] (u8, 255 past ndim)
_FIXED_V1 = struct.Struct("<8sHHIQBBBBhBBB4Iqqdddd4dIIII")
_FIXED = struct.Struct("<8sHHIQBBBBhBBB4Iqqdddd4dIIII4B")
FIXED_SIZE = _FIXED.size


@dataclass
class Header:
    """Decoded ``.wdr`` header.

    ``shape`` is the array shape as given to :func:`wdrcodec.encode`; internally the array is
    coded as ``(T, Z, Y, X)`` = ``(n_volumes, n_slices, Y, X)``. ``grouping[t, z]`` is True when
    slice ``z`` of volume ``t`` is coded in the 3D group, False when coded as a 2D slice.
    ``spacing`` is in mm per axis of ``shape`` (4th axis: seconds for NIfTI time series).
    """

    shape: tuple[int, ...]
    dtype: str
    lossless: bool
    mode: str
    levels: int
    packet: bool
    top: int
    nplanes: int
    frac_bits: int
    vmin: int
    vmax: int
    mean: float
    quant_step: float
    quant_offset: float
    mcpd_threshold: float
    mcpd_norm: str
    spacing: tuple[float, ...]
    order: tuple[int, ...]
    grouping: np.ndarray
    affine: np.ndarray | None = None
    meta: bytes | None = None  # opaque metadata section (e.g. DICOM attributes, wdrcodec.dicom)
    coder: str = "wdr"  # "wdr" (wdrcodec.coder) or "ctx" (wdrcodec.ctxcoder)
    streams: tuple[int, ...] | None = None  # version 3: byte length of each volume's stream
    wavelet: str | None = None  # version 3: PyWavelets name of the lossy wavelet (None: CDF 9/7)
    # version 3, shape-adaptive mode: the coded object mask (wdrcodec.mask), the background
    # value outside it (stored units; quantised units for float input) and its voxel count
    mask_data: bytes | None = None
    mask_background: int = 0
    mask_count: int = 0
    payload_len: int = 0
    block_size: int = PAYLOAD_BLOCK
    block_crcs: list[int] = field(default_factory=list)
    header_len: int = 0
    version: int = VERSION

    @property
    def n_voxels(self) -> int:
        return int(np.prod(self.shape))

    @property
    def slice_axis(self) -> int | None:
        """Axis of the original array along which slices run (``None`` for a 2D array)."""
        return self.order[-3] if len(self.order) >= 3 else None

    @property
    def time_axis(self) -> int | None:
        """Axis of the original array holding the volumes of a 4D series (``None`` otherwise)."""
        return self.order[0] if len(self.order) == 4 else None

    @property
    def axes_xyz(self) -> bool:
        """True when the original array is NIfTI-ordered: ``(X, Y, Z[, T])``, slices along Z."""
        n = len(self.order)
        return n >= 3 and self.slice_axis == 2 and (n == 3 or self.time_axis == 3)

    @property
    def internal_shape(self) -> tuple[int, int, int, int]:
        """``(T, Z, Y, X)`` coded shape."""
        return internal_shape(self.shape, self.order)

    @property
    def file_size(self) -> int:
        return self.header_len + self.payload_len


def internal_shape(shape: tuple[int, ...], order: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Map an array shape to the coded ``(T, Z, Y, X)`` shape: ``shape[order]``, padded with 1."""
    s = tuple(int(shape[i]) for i in order)
    return (1,) * (4 - len(s)) + s  # type: ignore[return-value]


def header_size(
    ndim_grouping: int,
    n_blocks: int,
    has_affine: bool,
    meta_len: int | None = None,
    n_streams: int = 0,
    wavelet: str | None = None,
    mask_len: int | None = None,
) -> int:
    """Bytes of a header with ``ndim_grouping`` grouping bits, ``n_blocks`` payload CRCs,
    (``meta_len`` not None) a metadata section of ``meta_len`` bytes, a table of ``n_streams``
    stream lengths, (``wavelet`` not None) a wavelet name and (``mask_len`` not None) an object
    mask section with ``mask_len`` coded bytes."""
    meta = 0 if meta_len is None else 4 + meta_len
    extra = 4 * n_streams + (0 if wavelet is None else 1 + len(wavelet))
    extra += 0 if mask_len is None else MASK_FIXED + mask_len
    return (
        FIXED_SIZE
        + (128 if has_affine else 0)
        + (ndim_grouping + 7) // 8
        + meta
        + extra
        + 4 * n_blocks
        + 4
    )


def meta_len(h: Header) -> int | None:
    """Length of the header's metadata section, ``None`` without one."""
    return None if h.meta is None else len(h.meta)


def block_layout(payload_len: int) -> tuple[int, int]:
    """``(block_size, n_blocks)`` for a payload of ``payload_len`` bytes."""
    if payload_len <= 0:
        return PAYLOAD_BLOCK, 0
    n_blocks = math.ceil(payload_len / PAYLOAD_BLOCK)
    return math.ceil(payload_len / n_blocks), n_blocks


def pack(h: Header, payload: bytes) -> bytes:
    """Serialise header + payload (computes block CRCs, header length and header CRC)."""
    block_size, n_blocks = block_layout(len(payload))
    crcs = [
        zlib.crc32(payload[i * block_size : (i + 1) * block_size]) & 0xFFFFFFFF
        for i in range(n_blocks)
    ]
    flags = (
        (FLAG_LOSSLESS if h.lossless else 0)
        | (FLAG_PACKET if h.packet else 0)
        | (FLAG_AXES_XYZ if h.axes_xyz else 0)  # informational since version 2
        | (FLAG_AFFINE if h.affine is not None else 0)
        | (FLAG_FLOAT if h.dtype.startswith("float") else 0)
        | (FLAG_META if h.meta is not None else 0)
        | (FLAG_CTX if h.coder == "ctx" else 0)
        | (FLAG_STREAMS if h.streams is not None else 0)
        | (FLAG_WAVELET if h.wavelet is not None else 0)
        | (FLAG_MASK if h.mask_data is not None else 0)
    )
    v3 = h.streams is not None or h.wavelet is not None or h.coder == "ctx"
    v3 = v3 or h.mask_data is not None
    version = VERSION if v3 else BASE_VERSION
    t, z = h.grouping.shape
    if h.streams is not None and (len(h.streams) != t or sum(h.streams) != len(payload)):
        raise ValueError("stream table does not match the volumes and the payload")
    nstr = 0 if h.streams is None else len(h.streams)
    mlen = None if h.mask_data is None else len(h.mask_data)
    hlen = header_size(t * z, n_blocks, h.affine is not None, meta_len(h), nstr, h.wavelet, mlen)
    shape4 = list(h.shape) + [1] * (4 - len(h.shape))
    spacing4 = list(h.spacing) + [1.0] * (4 - len(h.spacing))
    fixed = _FIXED.pack(
        MAGIC,
        version,
        flags,
        hlen,
        len(payload),
        len(h.shape),
        DTYPE_CODES[h.dtype],
        MODE_CODES[h.mode],
        h.levels,
        h.top,
        h.nplanes,
        h.frac_bits,
        NORM_CODES[h.mcpd_norm],
        *shape4,
        h.vmin,
        h.vmax,
        h.mean,
        h.quant_step,
        h.quant_offset,
        h.mcpd_threshold,
        *spacing4,
        t,
        z,
        block_size,
        n_blocks,
        *(list(h.order) + [NO_AXIS] * (4 - len(h.order))),
    )
    parts = [fixed]
    if h.affine is not None:
        parts.append(np.asarray(h.affine, dtype="<f8").reshape(4, 4).tobytes())
    parts.append(np.packbits(h.grouping.astype(bool).ravel()).tobytes())
    if h.meta is not None:
        parts.append(struct.pack("<I", len(h.meta)) + bytes(h.meta))
    if h.streams is not None:
        parts.append(struct.pack(f"<{nstr}I", *h.streams))
    if h.wavelet is not None:
        name = h.wavelet.encode("ascii")
        parts.append(struct.pack("<B", len(name)) + name)
    if h.mask_data is not None:
        mhead = struct.pack("<IqQ", len(h.mask_data), h.mask_background, h.mask_count)
        parts.append(mhead + bytes(h.mask_data))
    parts.append(struct.pack(f"<{n_blocks}I", *crcs))
    body = b"".join(parts)
    out = body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)
    assert len(out) == hlen
    h.header_len, h.payload_len, h.block_size, h.block_crcs = hlen, len(payload), block_size, crcs
    h.version = version
    return out + payload


def unpack(data: bytes, name: str = "data", limits: DecodeConfig | None = None) -> Header:
    """Parse and validate a header; raises :class:`WdrError` naming ``name`` on any problem."""
    data = memoryview(data)
    if len(data) < len(MAGIC) or bytes(data[: len(MAGIC)]) != MAGIC:
        if len(data) < len(MAGIC) and MAGIC.startswith(bytes(data)):
            raise WdrError(f"{name}: truncated inside the header ({len(data)} bytes)")
        raise WdrError(f"{name}: not a .wdr file (bad magic bytes)")
    limits = limits or DecodeConfig()
    if len(data) < 10:
        raise WdrError(f"{name}: truncated inside the header ({len(data)} bytes)")
    (version,) = struct.unpack("<H", bytes(data[8:10]))
    fixed = _FIXED_V1 if version == 1 else _FIXED
    if len(data) < fixed.size:
        raise WdrError(f"{name}: truncated inside the header ({len(data)} of {fixed.size}+ bytes)")
    f = fixed.unpack(bytes(data[: fixed.size]))
    flags, hlen, payload_len = f[2], f[3], f[4]
    if hlen < fixed.size + 4 or hlen > MAX_HEADER:
        raise WdrError(f"{name}: corrupted header (header length {hlen})")
    if len(data) < hlen:
        raise WdrError(f"{name}: truncated inside the header ({len(data)} of {hlen} bytes)")
    body = bytes(data[: hlen - 4])
    (crc,) = struct.unpack("<I", bytes(data[hlen - 4 : hlen]))
    if zlib.crc32(body) & 0xFFFFFFFF != crc:
        raise WdrError(f"{name}: corrupted header (CRC32 mismatch)")
    if version not in (1, 2, VERSION):
        raise WdrError(
            f"{name}: unsupported .wdr format version {version} (this reads 1 to {VERSION})"
        )
    if flags >= 2 * FLAG_MASK:
        raise WdrError(f"{name}: corrupted header (unknown flags {flags:#x})")
    if version < 3 and flags & (FLAG_STREAMS | FLAG_WAVELET | FLAG_MASK):
        raise WdrError(f"{name}: corrupted header (version-3 flags in a version-{version} file)")
    if version < 3 and flags & FLAG_CTX:
        raise WdrError(
            f"{name}: coded by the first context model of a wdrcodec development build "
            "(--coder ctx before format 3), which this version cannot decode; re-encode the source"
        )
    ndim, dcode, mcode, levels, top, nplanes, frac, ncode = f[5:13]
    shape4 = f[13:17]
    vmin, vmax, mean, qstep, qoff, thr = f[17:23]
    spacing4 = f[23:27]
    n_vol, n_sl, block_size, n_blocks = f[27:31]
    if ndim not in (2, 3, 4) or dcode not in DTYPES or mcode not in MODES or ncode not in NORMS:
        raise WdrError(f"{name}: corrupted header (ndim/dtype/mode fields out of range)")
    shape = tuple(int(v) for v in shape4[:ndim])
    if any(v < 1 for v in shape) or any(v != 1 for v in shape4[ndim:]):
        raise WdrError(f"{name}: corrupted header (shape {shape4})")
    check_voxels(name, shape, limits)
    if version == 1:
        order = tuple(reversed(range(ndim))) if flags & FLAG_AXES_XYZ else tuple(range(ndim))
    else:
        order = tuple(int(v) for v in f[31 : 31 + ndim])
        if sorted(order) != list(range(ndim)) or any(v != NO_AXIS for v in f[31 + ndim : 35]):
            raise WdrError(f"{name}: corrupted header (axis order {f[31:35]})")
    tz = internal_shape(shape, order)
    if (n_vol, n_sl) != tz[:2]:
        raise WdrError(f"{name}: corrupted header (grouping size does not match shape)")
    if not (0 <= nplanes <= 64 and -1 <= top <= 62 and top - nplanes + 1 >= 0 and frac <= 16):
        raise WdrError(f"{name}: corrupted header (bit-plane fields)")
    if vmin > vmax or not all(math.isfinite(v) for v in (mean, qstep, qoff, thr, *spacing4)):
        raise WdrError(f"{name}: corrupted header (value range or non-finite fields)")
    if DTYPES[dcode].startswith("float"):
        # decoded values are clip(q, vmin, vmax) * quant_step + quant_offset in the stored dtype
        peak = max(abs(vmin), abs(vmax)) * abs(qstep) + abs(qoff)
        if not peak < float(np.finfo(DTYPES[dcode]).max):
            raise WdrError(
                f"{name}: corrupted header (value range x quantisation step {peak:.3g} "
                f"overflows {DTYPES[dcode]})"
            )
    if block_layout(payload_len) != (block_size, n_blocks):
        raise WdrError(f"{name}: corrupted header (payload block table)")
    has_aff = bool(flags & FLAG_AFFINE)
    nbytes_g = (n_vol * n_sl + 7) // 8
    mlen = None
    if flags & FLAG_META and version >= 2:
        at = fixed.size + (128 if has_aff else 0) + nbytes_g
        if at + 4 > len(body):
            raise WdrError(f"{name}: corrupted header (metadata section)")
        (mlen,) = struct.unpack("<I", body[at : at + 4])
    nstr = n_vol if flags & FLAG_STREAMS else 0
    wname = None
    if flags & FLAG_WAVELET:
        at = fixed.size + (128 if has_aff else 0) + nbytes_g
        at += (0 if mlen is None else 4 + mlen) + 4 * nstr
        if at + 1 > len(body):
            raise WdrError(f"{name}: corrupted header (wavelet section)")
        wlen = body[at]
        raw = body[at + 1 : at + 1 + wlen]
        if not 1 <= wlen <= MAX_WAVELET_NAME or len(raw) != wlen or not raw.isascii():
            raise WdrError(f"{name}: corrupted header (wavelet name)")
        wname = raw.decode("ascii")
        from wdrcodec.biorthogonal import PYWT_WAVELETS

        if wname not in PYWT_WAVELETS:
            raise WdrError(f"{name}: corrupted header (unknown wavelet {wname!r})")
    mask_len = mask_bg = mask_count = None
    if flags & FLAG_MASK:
        at = fixed.size + (128 if has_aff else 0) + nbytes_g
        at += (0 if mlen is None else 4 + mlen) + 4 * nstr
        at += 0 if wname is None else 1 + len(wname)
        if at + MASK_FIXED > len(body):
            raise WdrError(f"{name}: corrupted header (object mask section)")
        mask_len, mask_bg, mask_count = struct.unpack("<IqQ", body[at : at + MASK_FIXED])
        nvox = math.prod(shape)
        if not (0 < mask_count < nvox and vmin <= mask_bg <= vmax):
            raise WdrError(
                f"{name}: corrupted header (object mask of {mask_count} voxels, background "
                f"{mask_bg})"
            )
    size = header_size(n_vol * n_sl, n_blocks, has_aff, mlen, nstr, wname, mask_len)
    if hlen != size - FIXED_SIZE + fixed.size:
        raise WdrError(f"{name}: corrupted header (length does not match its fields)")
    available = min(payload_len, max(len(data) - hlen, 0))
    check_resources(
        name, shape, DTYPES[dcode], available, bool(flags & FLAG_LOSSLESS), limits,
        masked=bool(flags & FLAG_MASK),
    )
    pos = fixed.size
    affine = None
    if has_aff:
        affine = np.frombuffer(body[pos : pos + 128], dtype="<f8").reshape(4, 4).copy()
        pos += 128
    bits = np.unpackbits(np.frombuffer(body[pos : pos + nbytes_g], dtype=np.uint8))
    grouping = bits[: n_vol * n_sl].astype(bool).reshape(n_vol, n_sl)
    pos += nbytes_g
    meta = None
    if mlen is not None:
        meta = bytes(body[pos + 4 : pos + 4 + mlen])
        pos += 4 + mlen
    streams = None
    if nstr:
        streams = tuple(int(v) for v in struct.unpack(f"<{nstr}I", body[pos : pos + 4 * nstr]))
        pos += 4 * nstr
        if sum(streams) != payload_len:
            raise WdrError(f"{name}: corrupted header (stream lengths do not add up)")
    if wname is not None:
        pos += 1 + len(wname)
    mask_data = None
    if mask_len is not None:
        mask_data = bytes(body[pos + MASK_FIXED : pos + MASK_FIXED + mask_len])
        pos += MASK_FIXED + mask_len
    crcs = list(struct.unpack(f"<{n_blocks}I", body[pos : pos + 4 * n_blocks]))
    return Header(
        shape=shape,
        dtype=DTYPES[dcode],
        lossless=bool(flags & FLAG_LOSSLESS),
        mode=MODES[mcode],
        levels=levels,
        packet=bool(flags & FLAG_PACKET),
        top=top,
        nplanes=nplanes,
        frac_bits=frac,
        vmin=vmin,
        vmax=vmax,
        mean=mean,
        quant_step=qstep,
        quant_offset=qoff,
        mcpd_threshold=thr,
        mcpd_norm=NORMS[ncode],
        spacing=tuple(float(v) for v in spacing4[:ndim]),
        order=order,
        grouping=grouping,
        affine=affine,
        meta=meta,
        coder="ctx" if flags & FLAG_CTX else "wdr",
        streams=streams,
        wavelet=wname,
        mask_data=mask_data,
        mask_background=0 if mask_bg is None else int(mask_bg),
        mask_count=0 if mask_count is None else int(mask_count),
        payload_len=payload_len,
        block_size=block_size,
        block_crcs=crcs,
        header_len=hlen,
        version=version,
    )


@dataclass(frozen=True)
class Split:
    """A validated file: header, the available payload bytes and whether it was cut short."""

    header: Header
    payload: bytes
    truncated: bool


def split(data: bytes, name: str = "data", limits: DecodeConfig | None = None) -> Split:
    """Validate header and every complete payload block; tell truncated from corrupted."""
    h = unpack(data, name, limits)
    payload = bytes(data[h.header_len :])
    if len(payload) > h.payload_len:
        raise WdrError(
            f"{name}: {len(payload) - h.payload_len} unexpected bytes after the payload (corrupted)"
        )
    for i, crc in enumerate(h.block_crcs):
        start, stop = i * h.block_size, min((i + 1) * h.block_size, h.payload_len)
        if stop > len(payload):
            break
        if zlib.crc32(payload[start:stop]) & 0xFFFFFFFF != crc:
            raise WdrError(f"{name}: corrupted payload (CRC32 mismatch in block {i})")
    return Split(h, payload, len(payload) < h.payload_len)
