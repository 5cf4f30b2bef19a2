"""The ``.wdr`` container: header layout, checksums and validation (see SPEC.md).

A file is ``header || payload``. The header carries everything needed to rebuild the array and is
protected by a CRC32; the payload (the embedded WDR stream) is protected by one CRC32 per block,
stored in the header. A file shorter than ``header_len + payload_len`` is *truncated* (the prefix
still decodes); a header CRC or a complete payload block CRC that does not match is *corrupted*
(:class:`WdrError`).
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from wdrcodec.errors import WdrError

MAGIC = b"\x89WDR\r\n\x1a\n"
VERSION = 1
MAX_HEADER = 64 << 20
DEFAULT_MAX_VOXELS = 1 << 28
# Peak decoder working memory per voxel (coefficients, magnitudes, scan lists), measured
# at 60-90 bytes; a header whose volume would need more than half the machine's RAM is refused.
DECODER_BYTES_PER_VOXEL = 96
PAYLOAD_BLOCK = 16384

FLAG_LOSSLESS = 1
FLAG_PACKET = 2
FLAG_AXES_XYZ = 4
FLAG_AFFINE = 8
FLAG_FLOAT = 16

DTYPES = {1: "uint8", 2: "int8", 3: "uint16", 4: "int16", 5: "float32", 6: "float64"}
DTYPE_CODES = {v: k for k, v in DTYPES.items()}
MODES = {0: "3d", 1: "2d", 2: "mcpd"}
MODE_CODES = {v: k for k, v in MODES.items()}
NORMS = {0: "none", 1: "std", 2: "range"}
NORM_CODES = {v: k for k, v in NORMS.items()}

# magic, version, flags, header_len, payload_len, ndim, dtype, mode, levels, top, nplanes,
# frac_bits, norm, shape[4], vmin, vmax, mean, quant_step, quant_offset, mcpd_threshold,
# spacing[4], n_vol, n_slices, block_size, n_blocks
_FIXED = struct.Struct("<8sHHIQBBBBhBBB4Iqqdddd4dIIII")
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
    axes_xyz: bool
    grouping: np.ndarray
    affine: np.ndarray | None = None
    payload_len: int = 0
    block_size: int = PAYLOAD_BLOCK
    block_crcs: list[int] = field(default_factory=list)
    header_len: int = 0

    @property
    def n_voxels(self) -> int:
        return int(np.prod(self.shape))

    @property
    def internal_shape(self) -> tuple[int, int, int, int]:
        """``(T, Z, Y, X)`` coded shape."""
        return internal_shape(self.shape, self.axes_xyz)

    @property
    def file_size(self) -> int:
        return self.header_len + self.payload_len


def internal_shape(shape: tuple[int, ...], axes_xyz: bool) -> tuple[int, int, int, int]:
    """Map an array shape to the coded ``(T, Z, Y, X)`` shape (NIfTI order is reversed)."""
    s = tuple(int(v) for v in shape)
    if axes_xyz:
        s = tuple(reversed(s))
    return (1,) * (4 - len(s)) + s  # type: ignore[return-value]


def header_size(ndim_grouping: int, n_blocks: int, has_affine: bool) -> int:
    """Bytes of a header with ``ndim_grouping`` grouping bits and ``n_blocks`` payload CRCs."""
    return FIXED_SIZE + (128 if has_affine else 0) + (ndim_grouping + 7) // 8 + 4 * n_blocks + 4


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
        | (FLAG_AXES_XYZ if h.axes_xyz else 0)
        | (FLAG_AFFINE if h.affine is not None else 0)
        | (FLAG_FLOAT if h.dtype.startswith("float") else 0)
    )
    t, z = h.grouping.shape
    hlen = header_size(t * z, n_blocks, h.affine is not None)
    shape4 = list(h.shape) + [1] * (4 - len(h.shape))
    spacing4 = list(h.spacing) + [1.0] * (4 - len(h.spacing))
    fixed = _FIXED.pack(
        MAGIC,
        VERSION,
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
    )
    parts = [fixed]
    if h.affine is not None:
        parts.append(np.asarray(h.affine, dtype="<f8").reshape(4, 4).tobytes())
    parts.append(np.packbits(h.grouping.astype(bool).ravel()).tobytes())
    parts.append(struct.pack(f"<{n_blocks}I", *crcs))
    body = b"".join(parts)
    out = body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)
    assert len(out) == hlen
    h.header_len, h.payload_len, h.block_size, h.block_crcs = hlen, len(payload), block_size, crcs
    return out + payload


def physical_memory() -> int:
    """Physical RAM in bytes (0 if the platform does not report it)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 0


def unpack(data: bytes, name: str = "data", max_voxels: int = DEFAULT_MAX_VOXELS) -> Header:
    """Parse and validate a header; raises :class:`WdrError` naming ``name`` on any problem."""
    data = memoryview(data)
    if len(data) < len(MAGIC) or bytes(data[: len(MAGIC)]) != MAGIC:
        if len(data) < len(MAGIC) and MAGIC.startswith(bytes(data)):
            raise WdrError(f"{name}: truncated inside the header ({len(data)} bytes)")
        raise WdrError(f"{name}: not a .wdr file (bad magic bytes)")
    if len(data) < FIXED_SIZE:
        raise WdrError(f"{name}: truncated inside the header ({len(data)} of {FIXED_SIZE}+ bytes)")
    f = _FIXED.unpack(bytes(data[:FIXED_SIZE]))
    version, flags, hlen, payload_len = f[1], f[2], f[3], f[4]
    if hlen < FIXED_SIZE + 4 or hlen > MAX_HEADER:
        raise WdrError(f"{name}: corrupted header (header length {hlen})")
    if len(data) < hlen:
        raise WdrError(f"{name}: truncated inside the header ({len(data)} of {hlen} bytes)")
    body = bytes(data[: hlen - 4])
    (crc,) = struct.unpack("<I", bytes(data[hlen - 4 : hlen]))
    if zlib.crc32(body) & 0xFFFFFFFF != crc:
        raise WdrError(f"{name}: corrupted header (CRC32 mismatch)")
    if version != VERSION:
        raise WdrError(f"{name}: unsupported .wdr format version {version} (this reads {VERSION})")
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
    nvox = math.prod(shape)
    if nvox > max_voxels:
        raise WdrError(
            f"{name}: array of {nvox} voxels exceeds the decoder limit of {max_voxels} "
            "(raise max_voxels if the file is trusted)"
        )
    need = nvox * DECODER_BYTES_PER_VOXEL
    ram = physical_memory()
    if ram and need > ram // 2:
        raise WdrError(
            f"{name}: array of {nvox} voxels would need ~{need / 2**30:.1f} GiB to decode, more "
            f"than half of this machine's {ram / 2**30:.1f} GiB (corrupted header, or decode on a "
            "larger machine)"
        )
    axes_xyz = bool(flags & FLAG_AXES_XYZ)
    tz = internal_shape(shape, axes_xyz)
    if (n_vol, n_sl) != tz[:2]:
        raise WdrError(f"{name}: corrupted header (grouping size does not match shape)")
    if not (0 <= nplanes <= 64 and -1 <= top <= 62 and top - nplanes + 1 >= 0 and frac <= 16):
        raise WdrError(f"{name}: corrupted header (bit-plane fields)")
    if vmin > vmax or not all(math.isfinite(v) for v in (mean, qstep, qoff, thr, *spacing4)):
        raise WdrError(f"{name}: corrupted header (value range or non-finite fields)")
    if block_layout(payload_len) != (block_size, n_blocks):
        raise WdrError(f"{name}: corrupted header (payload block table)")
    has_aff = bool(flags & FLAG_AFFINE)
    if hlen != header_size(n_vol * n_sl, n_blocks, has_aff):
        raise WdrError(f"{name}: corrupted header (length does not match its fields)")
    pos = FIXED_SIZE
    affine = None
    if has_aff:
        affine = np.frombuffer(body[pos : pos + 128], dtype="<f8").reshape(4, 4).copy()
        pos += 128
    nbytes_g = (n_vol * n_sl + 7) // 8
    bits = np.unpackbits(np.frombuffer(body[pos : pos + nbytes_g], dtype=np.uint8))
    grouping = bits[: n_vol * n_sl].astype(bool).reshape(n_vol, n_sl)
    pos += nbytes_g
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
        axes_xyz=axes_xyz,
        grouping=grouping,
        affine=affine,
        payload_len=payload_len,
        block_size=block_size,
        block_crcs=crcs,
        header_len=hlen,
    )


@dataclass(frozen=True)
class Split:
    """A validated file: header, the available payload bytes and whether it was cut short."""

    header: Header
    payload: bytes
    truncated: bool


def split(data: bytes, name: str = "data", max_voxels: int = DEFAULT_MAX_VOXELS) -> Split:
    """Validate header and every complete payload block; tell truncated from corrupted."""
    h = unpack(data, name, max_voxels)
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
