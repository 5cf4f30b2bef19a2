"""Public encode/decode API: array <-> ``.wdr`` bytes.

Array axes: a 2D array is one slice ``(Y, X)``; a 3D array is ``(Z, Y, X)`` with slices along
axis 0; a 4D array is ``(T, Z, Y, X)``, every volume ``t`` coded as its own set of blocks in the
one embedded stream (a common bit-plane threshold across volumes). With ``axes="xyz"`` the array
is NIfTI-ordered ``(X, Y[, Z[, T]])`` instead; it is transposed for coding and transposed back on
decode, so :func:`decode` always returns the array in the layout :func:`encode` received.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from wdrcodec import coder
from wdrcodec.container import (
    DEFAULT_MAX_VOXELS,
    DTYPE_CODES,
    Header,
    block_layout,
    header_size,
    internal_shape,
    pack,
    split,
)
from wdrcodec.decomposition import forward, inverse
from wdrcodec.errors import WdrError
from wdrcodec.layout import Layout, make_layout
from wdrcodec.mcpd import NORMS, mcpd_grouping

FRAC_BITS = 4  # lossy coefficients are coded in units of 1/16 intensity step
MODES = ("3d", "2d", "mcpd")
INTEGER_DTYPES = ("uint8", "int8", "uint16", "int16")
FLOAT_LEVELS = 65535  # default float quantisation: (max - min) / 65535


@dataclass(frozen=True)
class Decoded:
    """Result of :func:`decode_full`.

    ``array``: decoded data in the original layout and dtype; ``header``: the file header;
    ``truncated``: the file was shorter than its header says (or a ``bpv`` prefix was asked);
    ``complete``: every coded bit plane was decoded; ``bytes_used``: header + payload bytes read.
    """

    array: np.ndarray
    header: Header
    truncated: bool
    complete: bool
    bytes_used: int


# ----------------------------------------------------------------------------- layout helpers


def _shape4(s: tuple[int, ...]) -> tuple[int, int, int, int]:
    s = tuple(int(v) for v in s)
    return (1,) * (4 - len(s)) + s  # type: ignore[return-value]


def _to_internal(a: np.ndarray, axes_xyz: bool) -> np.ndarray:
    """``(Y, X)``/``(Z, Y, X)``/``(T, Z, Y, X)`` (or NIfTI order reversed) -> ``(T, Z, Y, X)``."""
    if axes_xyz:
        a = a.transpose(tuple(reversed(range(a.ndim))))
    return a.reshape(_shape4(a.shape))


def _from_internal(a4: np.ndarray, shape: tuple[int, ...], axes_xyz: bool) -> np.ndarray:
    """Inverse of :func:`_to_internal` for an array of original ``shape``."""
    if axes_xyz:
        rev = tuple(reversed(range(len(shape))))
        return a4.reshape(tuple(shape[i] for i in rev)).transpose(rev)
    return a4.reshape(shape)


def _check_array(array: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim not in (2, 3, 4):
        raise WdrError(f"{name}: expected a 2D, 3D or 4D array, got shape {a.shape}")
    if a.size == 0:
        raise WdrError(f"{name}: empty array of shape {a.shape}")
    if a.size > DEFAULT_MAX_VOXELS:
        raise WdrError(f"{name}: {a.size} voxels exceed the limit of {DEFAULT_MAX_VOXELS}")
    dt = a.dtype.name
    if dt not in DTYPE_CODES:
        raise WdrError(
            f"{name}: dtype {dt} is not supported (uint8, int8, uint16, int16, float32, "
            "float64); cast it first"
        )
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise WdrError(f"{name}: array contains NaN or infinite values")
    return a


def _quantise(a4: np.ndarray, step: float | None) -> tuple[np.ndarray, float, float]:
    """Integer volume to code, with ``(step, offset)``: ``value = q * step + offset``."""
    if a4.dtype.kind != "f":
        return a4.astype(np.int64), 1.0, 0.0
    lo, hi = float(a4.min()), float(a4.max())
    if step is None:
        step = (hi - lo) / FLOAT_LEVELS if hi > lo else 1.0
    if not (math.isfinite(step) and step > 0):
        raise WdrError(f"float_step must be a positive number, got {step}")
    q = np.rint((a4.astype(np.float64) - lo) / step)
    if q.max() >= 2**30:
        raise WdrError(f"float_step {step} is too fine for the data range {hi - lo}")
    return q.astype(np.int64), float(step), lo


def _grouping(q4: np.ndarray, mode: str, threshold: float, norm: str) -> np.ndarray:
    t, z = q4.shape[:2]
    if mode == "3d":
        return np.ones((t, z), dtype=bool)
    if mode == "2d":
        return np.zeros((t, z), dtype=bool)
    return np.stack([mcpd_grouping(q4[i], threshold, norm) for i in range(t)])


def _coefficients(q4: np.ndarray, lay: Layout, lossless: bool, packet: bool, mean: float):
    """Transform every block; returns scan-ordered ``(magnitudes int64, negative uint8)``."""
    flat = np.empty(lay.n, dtype=np.int64 if lossless else np.float64)
    for blk in lay.blocks:
        data = q4[blk.t, blk.z].astype(np.int64 if lossless else np.float64)
        data -= int(mean) if lossless else mean
        c = forward(data, blk.lv, lossless, packet and blk.lv[0] > 0, copy=False)
        flat[blk.offset : blk.offset + blk.size] = c.ravel()
    mag = np.empty(lay.n, dtype=np.int64)
    neg = np.empty(lay.n, dtype=np.uint8)
    scale = 1.0 if lossless else float(1 << FRAC_BITS)
    coder.gather_magnitudes(np.asarray(flat, dtype=np.float64), lay.boxes, scale, mag, neg)
    return mag, neg


def _synthesis(flat: np.ndarray, lay: Layout, shape4, lossless: bool, packet: bool):
    """Inverse-transform the concatenated block coefficients into a ``(T, Z, Y, X)`` volume
    (float64, mean not yet added). ``flat`` is overwritten."""
    if len(lay.blocks) == 1 and np.array_equal(lay.blocks[0].z, np.arange(shape4[1])):
        blk = lay.blocks[0]  # the usual 3D case: one block holding every slice in order
        c = flat.reshape(blk.shape)
        rec = inverse(c, blk.lv, lossless, packet and blk.lv[0] > 0, copy=False)
        return np.asarray(rec, dtype=np.float64).reshape(shape4)
    out = np.empty(shape4, dtype=np.float64)
    for blk in lay.blocks:
        c = flat[blk.offset : blk.offset + blk.size].reshape(blk.shape)
        out[blk.t, blk.z] = inverse(c, blk.lv, lossless, packet and blk.lv[0] > 0, copy=False)
    return out


def _budget_payload(budget: int, n_group_bits: int, has_affine: bool) -> int:
    """Payload bytes so that header + payload == ``budget`` (CRC table depends on payload)."""
    nb = 0
    for _ in range(8):
        p = budget - header_size(n_group_bits, nb, has_affine)
        nb_new = block_layout(max(p, 0))[1]
        if nb_new <= nb:
            break
        nb = nb_new
    return budget - header_size(n_group_bits, nb, has_affine)


# ----------------------------------------------------------------------------- public API


def encode(
    array: np.ndarray,
    *,
    bpv: float | None = None,
    lossless: bool = False,
    psnr: float | None = None,
    psnr_range: str = "ref",
    mode: str = "3d",
    levels: int = 5,
    packet: bool = False,
    mcpd_threshold: float = 0.5,
    mcpd_norm: str = "std",
    spacing: tuple[float, ...] | None = None,
    affine: np.ndarray | None = None,
    axes: str = "zyx",
    float_step: float | None = None,
    name: str = "array",
) -> bytes:
    """Encode an array into ``.wdr`` bytes.

    Parameters
    ----------
    array:
        ``(Y, X)``, ``(Z, Y, X)`` or ``(T, Z, Y, X)`` (``axes="zyx"``) or NIfTI-ordered
        ``(X, Y[, Z[, T]])`` (``axes="xyz"``); uint8/int8/uint16/int16, or float32/float64
        quantised with ``float_step`` (default ``(max - min) / 65535``).
    bpv:
        Target rate in bits per voxel; the whole file (header included) is
        ``floor(bpv * n_voxels / 8)`` bytes unless the stream ends earlier.
    lossless:
        Integer LeGall 5/3 transform; the full stream reproduces integer input bit for bit.
        Combined with ``bpv`` it gives a lossy prefix of that lossless stream.
    psnr:
        Alternative to ``bpv``: the shortest prefix whose decoded PSNR (dB, peak = data range
        with ``psnr_range="ref"`` or dtype range with ``"dtype"``) reaches ``psnr``.
    mode:
        ``"3d"`` whole volume, ``"2d"`` slice by slice, ``"mcpd"`` the paper's grouping.
    levels:
        Maximum decomposition levels per axis (fewer for short axes).
    packet:
        Wavelet-packet decomposition of the slice axis in 3D blocks.
    mcpd_threshold, mcpd_norm:
        MCPD rule (see :mod:`wdrcodec.mcpd`).
    spacing:
        Voxel size per array axis (mm; seconds for a time axis), stored in the header.
    affine:
        Optional ``(4, 4)`` voxel-to-world matrix stored in the header (NIfTI round trip).

    Raises
    ------
    WdrError
        On unsupported input, contradictory options or a budget smaller than the header.
    """
    a = _check_array(array, name)
    if mode not in MODES:
        raise WdrError(f"mode must be one of {MODES}, got {mode!r}")
    if mcpd_norm not in NORMS:
        raise WdrError(f"mcpd_norm must be one of {NORMS}, got {mcpd_norm!r}")
    if axes not in ("zyx", "xyz"):
        raise WdrError(f"axes must be 'zyx' or 'xyz', got {axes!r}")
    if not (isinstance(levels, int) and 0 <= levels <= 12):
        raise WdrError(f"levels must be an integer in 0..12, got {levels!r}")
    if sum(x is not None for x in (bpv, psnr)) > 1:
        raise WdrError("give at most one of bpv and psnr")
    if bpv is None and psnr is None and not lossless:
        raise WdrError("give a rate (bpv), a quality (psnr) or lossless=True")
    if bpv is not None and not (math.isfinite(bpv) and bpv > 0):
        raise WdrError(f"bpv must be a positive number, got {bpv}")
    if psnr is not None and not (math.isfinite(psnr) and psnr > 0):
        raise WdrError(f"psnr must be a positive number of dB, got {psnr}")
    if spacing is None:
        spacing = (1.0,) * a.ndim
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != a.ndim or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise WdrError(f"spacing must be {a.ndim} positive numbers, got {spacing}")
    if affine is not None:
        affine = np.asarray(affine, dtype=np.float64)
        if affine.shape != (4, 4) or not np.isfinite(affine).all():
            raise WdrError(f"affine must be a finite (4, 4) matrix, got shape {affine.shape}")

    axes_xyz = axes == "xyz"
    a4 = _to_internal(a, axes_xyz)
    q4, step, offset = _quantise(a4, float_step)
    grouping = _grouping(q4, mode, mcpd_threshold, mcpd_norm)
    lay = make_layout(q4.shape, grouping, levels, packet)
    mean = float(np.rint(q4.mean())) if lossless else float(q4.mean())
    mag, neg = _coefficients(q4, lay, lossless, packet, mean)
    frac = 0 if lossless else FRAC_BITS
    mmax = int(mag.max())
    top = int(mmax).bit_length() - 1 if mmax > 0 else 0
    nplanes = top + 1 if mmax > 0 else 0
    header = Header(
        shape=tuple(int(s) for s in a.shape),
        dtype=a.dtype.name,
        lossless=lossless,
        mode=mode,
        levels=levels,
        packet=packet,
        top=top,
        nplanes=nplanes,
        frac_bits=frac,
        vmin=int(q4.min()),
        vmax=int(q4.max()),
        mean=mean,
        quant_step=step,
        quant_offset=offset,
        mcpd_threshold=float(mcpd_threshold),
        mcpd_norm=mcpd_norm,
        spacing=spacing,
        axes_xyz=axes_xyz,
        grouping=grouping,
        affine=affine,
    )
    nvox = a.size
    has_aff = affine is not None
    if bpv is not None:
        budget = int(math.floor(bpv * nvox / 8))
        limit = _budget_payload(budget, grouping.size, has_aff)
        if limit < 1:
            raise WdrError(
                f"bpv={bpv} gives {budget} bytes, less than the {budget - limit} header bytes"
            )
    elif psnr is not None:
        limit = int(math.ceil(nvox * max(2, a.dtype.itemsize) * 1.25)) + 1024
    else:
        limit = None
    payload, _status = coder.encode_coefficients(mag, neg, top, nplanes, limit, lay.classes)
    if psnr is not None:
        payload = _shortest_prefix(a, payload, header, lay, q4.shape, psnr, psnr_range)
    return pack(header, payload)


def _shortest_prefix(a, payload, header, lay, shape4, target, psnr_range) -> bytes:
    if psnr_range not in ("ref", "dtype"):
        raise WdrError(f"psnr_range must be 'ref' or 'dtype', got {psnr_range!r}")
    ref = a.astype(np.float64)
    if psnr_range == "ref":
        peak = float(ref.max() - ref.min()) or 1.0
    else:
        info = np.iinfo(a.dtype) if a.dtype.kind in "iu" else None
        peak = float(info.max - info.min) if info else float(ref.max() - ref.min()) or 1.0

    def quality(length: int) -> float:
        rec = _reconstruct(payload[:length], header, lay, shape4)[0].astype(np.float64)
        mse = float(np.mean((rec - ref) ** 2))
        return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)

    lo, hi = 1, len(payload)
    if quality(hi) < target:
        return payload
    while hi - lo > max(16, hi // 500):
        mid = (lo + hi) // 2
        if quality(mid) >= target:
            hi = mid
        else:
            lo = mid
    return payload[:hi]


def _reconstruct(payload: bytes, h: Header, lay: Layout, shape4) -> tuple[np.ndarray, int]:
    cls = lay.classes
    rec, status = coder.decode_midpoints(payload, h.top, h.nplanes, cls, 2.0**-h.frac_bits)
    flat = np.empty(lay.n, dtype=np.float64)
    coder.scatter_values(rec, lay.boxes, flat)
    if h.lossless:
        flat = np.rint(flat).astype(np.int64)
    vol = _synthesis(flat, lay, shape4, h.lossless, h.packet)
    coder.finalize(vol, h.mean, float(h.vmin), float(h.vmax))
    if h.dtype.startswith("float"):
        out = (vol * h.quant_step + h.quant_offset).astype(h.dtype)
    else:
        out = vol.astype(h.dtype)
    return _from_internal(out, h.shape, h.axes_xyz), status


def read_header(data: bytes, name: str = "data", max_voxels: int = DEFAULT_MAX_VOXELS) -> Header:
    """Parse and validate the header of ``.wdr`` bytes (also checks complete payload blocks)."""
    return split(data, name, max_voxels).header


def decode_full(
    data: bytes,
    bpv: float | None = None,
    *,
    name: str = "data",
    max_voxels: int = DEFAULT_MAX_VOXELS,
) -> Decoded:
    """Decode ``.wdr`` bytes (or a prefix of them); see :class:`Decoded`.

    ``bpv`` decodes only the first ``floor(bpv * n_voxels / 8)`` bytes of the file, the same
    as cutting the file there.
    """
    sp = split(data, name, max_voxels)
    h = sp.header
    payload = sp.payload
    truncated = sp.truncated
    if bpv is not None:
        if not (math.isfinite(bpv) and bpv > 0):
            raise WdrError(f"bpv must be a positive number, got {bpv}")
        keep = int(math.floor(bpv * h.n_voxels / 8)) - h.header_len
        if keep < len(payload):
            payload = payload[: max(keep, 0)]
            truncated = True
    shape4 = internal_shape(h.shape, h.axes_xyz)
    lay = make_layout(shape4, h.grouping, h.levels, h.packet)
    out, status = _reconstruct(payload, h, lay, shape4)
    if status == coder.STATUS_CORRUPT:
        raise WdrError(f"{name}: corrupted payload (inconsistent WDR symbol stream)")
    return Decoded(out, h, truncated, status == coder.STATUS_COMPLETE, h.header_len + len(payload))


def decode(
    data: bytes,
    bpv: float | None = None,
    *,
    name: str = "data",
    max_voxels: int = DEFAULT_MAX_VOXELS,
) -> np.ndarray:
    """Decode ``.wdr`` bytes to an array with the encoded shape, layout and dtype.

    A truncated file decodes at lower quality; ``bpv`` decodes a prefix for a lower rate.

    Raises
    ------
    WdrError
        Not a ``.wdr`` file, corrupted header or payload block, or too large for ``max_voxels``.
    """
    return decode_full(data, bpv, name=name, max_voxels=max_voxels).array
