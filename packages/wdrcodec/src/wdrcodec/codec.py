"""Public encode/decode API: array <-> ``.wdr`` bytes.

Array axes: a 2D array is one slice; a 3D array is a volume whose slices run along
``slice_axis`` (default 0: ``(Z, Y, X)``); a 4D array is a series whose volumes run along
``time_axis`` (default 0) and slices along ``slice_axis`` (default: the first axis after the
time axis, e.g. ``(T, Z, Y, X)``). NIfTI data ``(X, Y, Z[, T])`` are coded with
``slice_axis=2, time_axis=3``. The codec moves those axes first (its one transpose, in
:func:`axis_order`), codes every volume as its own set of blocks in the one embedded stream, and
:func:`decode` returns the array in the layout :func:`encode` received.

A 4D series is coded as one independent embedded stream per volume (format 3,
:mod:`wdrcodec.streams`: the byte budget shared so that every volume stops at about the same bit
plane, the streams interleaved so that any prefix still decodes), so the volumes are encoded and
decoded by ``threads`` threads at once; the wavelet transforms of one block are split over the
threads too (:mod:`wdrcodec.parallel`). The output never depends on the thread count.

A masked volume (a large share of its voxels equal to its minimum: skull-stripped or masked
MRI, a CT outside the body; ``EncodeConfig.background``) is coded in the **shape-adaptive**
mode: the object mask first (:mod:`wdrcodec.mask`, in the header), then the coefficients of a
shape-adaptive transform of the object only (:mod:`wdrcodec.shape_adaptive`), the coefficients
outside the object's subband masks not coded at all; the decoder writes the background value
outside the mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from wdrcodec import coder, streams
from wdrcodec.biorthogonal import BUILTIN as BUILTIN_WAVELET
from wdrcodec.config import DEFAULT_MAX_VOXELS, DecodeConfig, EncodeConfig
from wdrcodec.container import (
    DTYPE_CODES,
    Header,
    block_layout,
    header_size,
    internal_shape,
    pack,
    split,
)
from wdrcodec.decomposition import forward, inverse, inverse_to
from wdrcodec.errors import WdrError
from wdrcodec.layout import Layout, make_layout
from wdrcodec.mask import ObjectMask, choose_mask, decode_mask
from wdrcodec.mcpd import mcpd_grouping
from wdrcodec.parallel import SERIAL, Pool, resolve_threads

FRAC_BITS = 4  # lossy coefficients are coded in units of 1/16 intensity step
INTEGER_DTYPES = ("uint8", "int8", "uint16", "int16")
FLOAT_LEVELS = 65535  # default float quantisation: robust range / 65535
ROBUST_PERCENTILES = (1.0, 99.0)  # the robust range of float input (percent)
MAX_LEVELS_Q = 2**30  # largest quantised float value the coder accepts
# Volumes of a 4D series are coded as separate streams from this size (voxels per volume) on:
# below it a stream's adaptive models cost more than the threads gain (dipy small_64D, 65
# volumes of 10x10x10: -0.8 to -1.3 dB and lossless 2.30 -> 2.21 when split).
MIN_STREAM_VOXELS = 1 << 16
# --background auto with --bpv: the shape-adaptive mode stays off when its coded mask would take
# more than this share of the file's byte budget (at very low rates the mask would crowd out
# the coefficients, or not fit at all)
MAX_MASK_SHARE = 0.25


@dataclass(frozen=True)
class Decoded:
    """Result of :func:`decode_full`.

    ``array``: decoded data in the original layout and dtype; ``header``: the file header;
    ``truncated``: the file was shorter than its header says (or a ``bpv`` prefix was asked);
    ``complete``: every coded bit plane was decoded; ``bytes_used``: header + payload bytes
    decoded; ``unverified_bytes``: bytes of an incomplete last payload block of a truncated file,
    whose CRC cannot be checked: left out (0) unless ``trust_tail=True``.
    """

    array: np.ndarray
    header: Header
    truncated: bool
    complete: bool
    bytes_used: int
    unverified_bytes: int = 0
    tail_used: bool = False


@dataclass(frozen=True)
class Encoded:
    """Result of :func:`encode_full`: the ``.wdr`` bytes, their header and, for float input,
    the quantisation step and the largest absolute error it causes (input units)."""

    data: bytes
    header: Header
    float_step: float | None
    float_max_error: float | None

    @property
    def exact(self) -> bool:
        """True when decoding the whole stream reproduces the input bit for bit."""
        return self.header.lossless and self.float_step is None


# ----------------------------------------------------------------------------- layout helpers


def axis_order(ndim: int, slice_axis: int | None, time_axis: int | None) -> tuple[int, ...]:
    """Permutation that brings an array to coding order: ``(T, Z, ...)`` then the in-plane axes
    in their original order. ``None`` takes the defaults of the module docstring."""
    if ndim == 2:
        if slice_axis is not None or time_axis is not None:
            raise WdrError("slice_axis/time_axis: a 2D array is one slice, give neither")
        return (0, 1)
    if ndim == 3 and time_axis is not None:
        raise WdrError("time_axis: a 3D array has no time axis")

    def norm(ax: int, what: str) -> int:
        if not isinstance(ax, int | np.integer) or not -ndim <= ax < ndim:
            raise WdrError(f"{what}: must be an axis of a {ndim}D array, got {ax!r}")
        return int(ax) % ndim

    lead = []
    if ndim == 4:
        t = norm(0 if time_axis is None else time_axis, "time_axis")
        lead.append(t)
    s = norm((1 if lead == [0] else 0) if slice_axis is None else slice_axis, "slice_axis")
    if s in lead:
        raise WdrError("slice_axis and time_axis must be different axes")
    lead.append(s)
    return tuple(lead) + tuple(i for i in range(ndim) if i not in lead)


def _to_internal(a: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
    """The array in coding order ``(T, Z, Y, X)`` (padded with leading 1s)."""
    a = a.transpose(order)
    return a.reshape((1,) * (4 - a.ndim) + a.shape)


def _from_internal(a4: np.ndarray, shape: tuple[int, ...], order: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`_to_internal` for an array of original ``shape``."""
    moved = a4.reshape(tuple(shape[i] for i in order))
    return moved.transpose(np.argsort(order))


def _check_array(array: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim not in (2, 3, 4):
        raise WdrError(f"{name}: expected a 2D, 3D or 4D array, got shape {a.shape}")
    if a.size == 0:
        raise WdrError(f"{name}: empty array of shape {a.shape}")
    if a.size > DEFAULT_MAX_VOXELS:
        raise WdrError(f"{name}: {a.size} voxels exceed the codec's limit of {DEFAULT_MAX_VOXELS}")
    dt = a.dtype.name
    if dt not in DTYPE_CODES:
        raise WdrError(
            f"{name}: dtype {dt} is not supported (uint8, int8, uint16, int16, float32, "
            "float64); cast it first"
        )
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise WdrError(f"{name}: array contains NaN or infinite values")
    return a


def _quantise(
    a4: np.ndarray, step: float | None, name: str
) -> tuple[np.ndarray, float | None, float, float | None]:
    """Integer volume to code, with ``(step, offset, max_error)``: ``value = q * step + offset``.

    Integer input is coded as is (``step`` None). Float input is quantised with ``step``, by
    default the *robust* range (1st-99th percentile) divided by 65535, so one extreme outlier
    cannot make the step coarse enough to erase the normal data; a range that then needs more
    than 2**30 levels is refused. ``max_error`` is the largest absolute quantisation error.
    """
    if a4.dtype.kind != "f":
        return a4.astype(np.int64), None, 0.0, None
    x = a4.astype(np.float64)
    lo, hi = float(x.min()), float(x.max())
    if step is None:
        plo, phi = np.percentile(x, ROBUST_PERCENTILES)
        spread = float(phi - plo) if phi > plo else hi - lo
        step = spread / FLOAT_LEVELS if spread > 0 else 1.0
        hint = "clip the outliers or give --float-step"
    else:
        hint = "give a larger --float-step"
    levels = (hi - lo) / step
    if not levels < MAX_LEVELS_Q:
        raise WdrError(
            f"{name}: float values span {lo:.6g}..{hi:.6g}, {levels:.3g} quantisation steps of "
            f"{step:.6g} (more than the codec's 2**30); an extreme outlier? {hint}"
        )
    q = np.rint((x - lo) / step)
    err = float(np.max(np.abs(q * step + lo - x)))
    return q.astype(np.int64), float(step), lo, err


def _grouping(q4: np.ndarray, mode: str, threshold: float, norm: str, pool: Pool) -> np.ndarray:
    t, z = q4.shape[:2]
    if mode == "3d":
        return np.ones((t, z), dtype=bool)
    if mode == "2d":
        return np.zeros((t, z), dtype=bool)
    return np.stack(pool.map(lambda i: mcpd_grouping(q4[i], threshold, norm), range(t)))


def _coefficients(
    q4: np.ndarray,
    lay: Layout,
    lossless: bool,
    packet: bool,
    mean: float,
    pool: Pool,
    wavelet: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Transform every block; returns scan-ordered ``(magnitudes int64, negative uint8)``
    (``wavelet``: a PyWavelets wavelet for the lossy transform, None the built-in CDF 9/7)."""
    mag, neg, _ = _coefficients_skip(q4, lay, lossless, packet, mean, pool, wavelet)
    return mag, neg


def _coefficients_skip(
    q4: np.ndarray,
    lay: Layout,
    lossless: bool,
    packet: bool,
    mean: float,
    pool: Pool,
    wavelet: str | None = None,
    mask4: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """:func:`_coefficients` and ``skip``: with an object mask ``mask4`` (bool, the shape of ``q4``) the transform is shape-adaptive
    and ``skip`` (uint8, scan order) marks the coefficients outside the object; else None."""
    flat = np.empty(lay.n, dtype=np.int64 if lossless else np.float64)
    cmask = None if mask4 is None else np.empty(lay.n, dtype=bool)
    for blk in lay.blocks:
        data = q4[blk.t, blk.z].astype(np.int64 if lossless else np.float64)
        data -= int(mean) if lossless else mean
        pk = packet and blk.lv[0] > 0
        if mask4 is not None:
            from wdrcodec.shape_adaptive import forward_sa

            c, cm = forward_sa(data, mask4[blk.t, blk.z], blk.lv, lossless, pk, pool)
            cmask[blk.offset : blk.offset + blk.size] = cm.ravel()
        else:
            c = forward(data, blk.lv, lossless, pk, False, pool, None if lossless else wavelet)
        flat[blk.offset : blk.offset + blk.size] = c.ravel()
    mag = np.empty(lay.n, dtype=np.int64)
    neg = np.empty(lay.n, dtype=np.uint8)
    scale = 1.0 if lossless else float(1 << FRAC_BITS)
    from wdrcodec.parallel import gather_magnitudes

    gather_magnitudes(np.asarray(flat, dtype=np.float64), lay.boxes, scale, mag, neg, pool)
    skip = None if cmask is None else _scan_skip(cmask, lay)
    return mag, neg, skip


def _scan_skip(cmask: np.ndarray, lay: Layout) -> np.ndarray:
    """Scan-ordered uint8 ``skip`` (1 outside the object) from the concatenated block
    coefficient masks ``cmask`` (bool)."""
    from wdrcodec.shape_adaptive import scan_skip

    skip = np.empty(lay.n, dtype=np.uint8)
    scan_skip(cmask.view(np.uint8), np.ascontiguousarray(lay.boxes, dtype=np.int64), skip)
    return skip


def _sa_decoder(lay: Layout, mask4: np.ndarray, packet: bool):
    """What a shape-adaptive decode needs per layout: ``(skip, pre-pass masks per block)``."""
    from wdrcodec.shape_adaptive import sa_masks

    cmask = np.empty(lay.n, dtype=bool)
    befores = []
    for blk in lay.blocks:
        before, cm = sa_masks(mask4[blk.t, blk.z], blk.lv, packet and blk.lv[0] > 0)
        cmask[blk.offset : blk.offset + blk.size] = cm.ravel()
        befores.append(before)
    return _scan_skip(cmask, lay), befores


def _synthesis(
    flat: np.ndarray,
    lay: Layout,
    shape4,
    lossless: bool,
    packet: bool,
    pool: Pool,
    wavelet: str | None = None,
    mask4: np.ndarray | None = None,
    befores: list | None = None,
):
    """Inverse-transform the concatenated block coefficients into a ``(T, Z, Y, X)`` volume
    (float64, mean not yet added). ``flat`` is overwritten. ``mask4``: the object mask of a
    shape-adaptive file (zero outside it); ``befores``: its pre-pass masks per block
    (:func:`_sa_decoder`)."""
    wv = None if lossless else wavelet
    if mask4 is not None:
        from wdrcodec.shape_adaptive import inverse_sa

        out = np.empty(shape4, dtype=np.float64)
        for bi, blk in enumerate(lay.blocks):
            c = flat[blk.offset : blk.offset + blk.size].reshape(blk.shape)
            pk = packet and blk.lv[0] > 0
            before = None if befores is None else befores[bi]
            rec = inverse_sa(c, mask4[blk.t, blk.z], blk.lv, lossless, pk, pool, before)
            out[blk.t, blk.z] = rec
        return out
    if len(lay.blocks) == 1 and np.array_equal(lay.blocks[0].z, np.arange(shape4[1])):
        blk = lay.blocks[0]  # the usual 3D case: one block holding every slice in order
        c = flat.reshape(blk.shape)
        rec = inverse(c, blk.lv, lossless, packet and blk.lv[0] > 0, False, pool, wv)
        return np.asarray(rec, dtype=np.float64).reshape(shape4)
    out = np.empty(shape4, dtype=np.float64)
    for blk in lay.blocks:
        c = flat[blk.offset : blk.offset + blk.size].reshape(blk.shape)
        out[blk.t, blk.z] = inverse(c, blk.lv, lossless, packet and blk.lv[0] > 0, False, pool, wv)
    return out


def _synthesis_to(
    flat: np.ndarray, lay: Layout, shape4, h: Header, pool: Pool, out: np.ndarray
) -> bool:
    """:func:`_synthesis` and :func:`_finish` in one go where the last inverse pass can write
    ``out`` directly (lossy CDF 9/7, an integer dtype, the usual single block of every slice
    in order; :func:`wdrcodec.decomposition.inverse_to`): bit for bit the same ``out``. Returns
    False, touching nothing, elsewhere (the caller takes the unfused path)."""
    if h.lossless or h.wavelet is not None or h.dtype.startswith("float"):
        return False
    if len(lay.blocks) != 1 or not np.array_equal(lay.blocks[0].z, np.arange(shape4[1])):
        return False
    blk = lay.blocks[0]
    if not out.flags.c_contiguous or flat.dtype != np.float64:
        return False
    o = out.reshape(blk.shape)
    c = flat.reshape(blk.shape)
    pk = h.packet and blk.lv[0] > 0
    return inverse_to(c, blk.lv, pk, o, h.mean, float(h.vmin), float(h.vmax), pool)


def _volume_layouts(shape4, grouping: np.ndarray, levels: int, packet: bool) -> list[Layout]:
    """One layout per volume ``(1, Z, Y, X)`` (the coding units of a stream per volume)."""
    made: dict[bytes, Layout] = {}
    out = []
    for t in range(shape4[0]):
        key = np.asarray(grouping[t], dtype=bool).tobytes()
        if key not in made:
            made[key] = make_layout((1, *shape4[1:]), grouping[t : t + 1], levels, packet)
        out.append(made[key])
    return out


def _budget_payload(
    budget: int,
    n_group_bits: int,
    has_affine: bool,
    mlen: int | None,
    n_streams: int = 0,
    wavelet: str | None = None,
    mask_len: int | None = None,
) -> int:
    """Payload bytes so that header + payload == ``budget`` (CRC table depends on payload)."""
    nb = 0
    for _ in range(8):
        p = budget - header_size(n_group_bits, nb, has_affine, mlen, n_streams, wavelet, mask_len)
        nb_new = block_layout(max(p, 0))[1]
        if nb_new <= nb:
            break
        nb = nb_new
    return budget - header_size(n_group_bits, nb, has_affine, mlen, n_streams, wavelet, mask_len)


# ----------------------------------------------------------------------------- public API


def encode(
    array: np.ndarray,
    config: EncodeConfig | None = None,
    *,
    slice_axis: int | None = None,
    time_axis: int | None = None,
    spacing: tuple[float, ...] | None = None,
    affine: np.ndarray | None = None,
    metadata: bytes | None = None,
    name: str = "array",
    **options: object,
) -> bytes:
    """Encode an array into ``.wdr`` bytes (see :func:`encode_full` for the parameters)."""
    return encode_full(
        array,
        config,
        slice_axis=slice_axis,
        time_axis=time_axis,
        spacing=spacing,
        affine=affine,
        metadata=metadata,
        name=name,
        **options,
    ).data


def encode_full(
    array: np.ndarray,
    config: EncodeConfig | None = None,
    *,
    slice_axis: int | None = None,
    time_axis: int | None = None,
    spacing: tuple[float, ...] | None = None,
    affine: np.ndarray | None = None,
    metadata: bytes | None = None,
    name: str = "array",
    **options: object,
) -> Encoded:
    """Encode an array; returns :class:`Encoded` (bytes, header, float quantisation error).

    Parameters
    ----------
    array:
        2D slice, 3D volume or 4D series (axes: module docstring); uint8/int8/uint16/int16, or
        float32/float64 quantised with ``float_step`` (default: robust range / 65535).
    config:
        :class:`~wdrcodec.config.EncodeConfig` (rate, mode, levels, MCPD, float step). Keyword
        ``options`` override its fields, e.g. ``encode(vol, bpv=1.0, mode="mcpd")``.
    slice_axis, time_axis:
        Axis along which slices run, and the volumes of a 4D series.
    spacing:
        Voxel size per array axis (mm; seconds for a time axis), stored in the header.
    affine:
        Optional ``(4, 4)`` voxel-to-world matrix stored in the header (NIfTI round trip).
    metadata:
        Opaque bytes kept in the header (e.g. a DICOM series' attributes, counted in the rate).

    Raises
    ------
    WdrError
        On unsupported input, contradictory options or a budget smaller than the header.
    """
    try:
        cfg = EncodeConfig(**options) if config is None else replace(config, **options)
    except TypeError as exc:
        raise WdrError(f"encode: {exc}") from None
    a = _check_array(array, name)
    order = axis_order(a.ndim, slice_axis, time_axis)
    if spacing is None:
        spacing = (1.0,) * a.ndim
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != a.ndim or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise WdrError(f"{name}: spacing must be {a.ndim} positive numbers, got {spacing}")
    if affine is not None:
        affine = np.asarray(affine, dtype=np.float64)
        if affine.shape != (4, 4) or not np.isfinite(affine).all():
            raise WdrError(f"{name}: affine must be a finite (4, 4) matrix, got {affine.shape}")

    a4 = _to_internal(a, order)
    with Pool(resolve_threads(cfg.threads)) as pool:
        return _encode_internal(a, a4, cfg, order, spacing, affine, metadata, name, pool)


def _encode_internal(
    a: np.ndarray,
    a4: np.ndarray,
    cfg: EncodeConfig,
    order: tuple[int, ...],
    spacing: tuple[float, ...],
    affine: np.ndarray | None,
    metadata: bytes | None,
    name: str,
    pool: Pool,
) -> Encoded:
    """:func:`encode_full` after the checks: ``a4`` is ``a`` in coding order ``(T, Z, Y, X)``."""
    # a 4D series of volumes big enough to be worth it: one stream per volume (format 3)
    split_streams = a4.shape[0] > 1 and a4[0].size >= MIN_STREAM_VOXELS
    if split_streams and a4.dtype.kind != "f":
        q4, step, offset, qerr = a4, None, 0.0, None  # each volume task casts its own part
    else:
        q4, step, offset, qerr = _quantise(a4, cfg.float_step, name)
    grouping = _grouping(q4, cfg.mode, cfg.mcpd_threshold, cfg.mcpd_norm, pool)
    lossless = cfg.lossless
    wavelet = None if cfg.wavelet == BUILTIN_WAVELET else cfg.wavelet
    # auto: lossless files only (a lossy shape-adaptive decode is 2-3x slower, MAX_MASK_SHARE)
    setting = cfg.background if lossless or cfg.background != "auto" else "off"
    om = None if wavelet is not None else choose_mask(q4, setting, cfg.mode)
    if om is not None and cfg.background == "auto" and cfg.bpv is not None:
        # a mask that would take more than MAX_MASK_SHARE of a fixed byte budget: off
        if len(om.data) > MAX_MASK_SHARE * math.floor(cfg.bpv * a.size / 8):
            om = None
    mask4 = None if om is None else om.mask
    if split_streams:  # value range and exact integer sum per volume, on the threads
        stats = pool.map(
            lambda t: (int(q4[t].min()), int(q4[t].max()), int(q4[t].sum(dtype=np.int64))),
            range(q4.shape[0]),
        )
        vmin, vmax = min(v[0] for v in stats), max(v[1] for v in stats)
        mean = sum(v[2] for v in stats) / q4.size
    else:
        vmin, vmax, mean = int(q4.min()), int(q4.max()), float(q4.mean())
    if om is not None:  # the object's mean (the background is not transformed)
        mean = float(q4[mask4].sum(dtype=np.int64)) / om.count
    mean = float(np.rint(mean)) if lossless else float(mean)
    packet = cfg.packet
    if cfg.auto_packet:
        packet = _choose_packet(a, q4, grouping, cfg, lossless, mean, wavelet, vmin, vmax, pool,
                                mask4)
    lay = None if split_streams else make_layout(q4.shape, grouping, cfg.levels, packet)
    if split_streams:
        lays = _volume_layouts(q4.shape, grouping, cfg.levels, packet)

        def volume(t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
            vm = None if mask4 is None else mask4[t : t + 1]
            m, s, k = _coefficients_skip(
                q4[t : t + 1], lays[t], lossless, packet, mean, SERIAL, wavelet, vm
            )
            return m, s, k, streams.bit_lengths(m)

        done = pool.map(volume, range(q4.shape[0]))
        coefs = [(m, s, k) for m, s, k, _ in done]
        hists = [h for _, _, _, h in done]
        top = max(streams.top_plane(h) for h in hists)
        mmax = 1 << top if top >= 0 else 0
    else:
        mag, neg, skip = _coefficients_skip(
            q4, lay, lossless, packet, mean, pool, wavelet, mask4
        )
        mmax = int(mag.max())
        hists = None
    top = int(mmax).bit_length() - 1 if mmax > 0 else 0
    header = Header(
        shape=tuple(int(s) for s in a.shape),
        dtype=a.dtype.name,
        lossless=lossless,
        mode=cfg.mode,
        levels=cfg.levels,
        packet=packet,
        top=top,
        nplanes=top + 1 if mmax > 0 else 0,
        frac_bits=0 if lossless else FRAC_BITS,
        vmin=vmin,
        vmax=vmax,
        mean=mean,
        quant_step=1.0 if step is None else step,
        quant_offset=offset,
        mcpd_threshold=float(cfg.mcpd_threshold),
        mcpd_norm=cfg.mcpd_norm,
        spacing=spacing,
        order=order,
        grouping=grouping,
        affine=affine,
        meta=None if metadata is None else bytes(metadata),
        coder=cfg.coder,
        wavelet=wavelet,
        mask_data=None if om is None else om.data,
        mask_background=0 if om is None else om.background,
        mask_count=0 if om is None else om.count,
    )
    nvox = a.size
    if cfg.bpv is not None:
        budget = int(math.floor(cfg.bpv * nvox / 8))
        mlen = None if metadata is None else len(metadata)
        nstr = q4.shape[0] if split_streams else 0
        mask_len = None if om is None else len(om.data)
        limit = _budget_payload(
            budget, grouping.size, affine is not None, mlen, nstr, wavelet, mask_len
        )
        if limit < 1:
            raise WdrError(
                f"--bpv {cfg.bpv:g} gives {budget} bytes for {name}, less than the "
                f"{budget - limit} header bytes"
            )
    elif cfg.psnr is not None:
        limit = int(math.ceil(nvox * max(2, a.dtype.itemsize) * 1.25)) + 1024
    else:
        limit = None
    if split_streams:
        budget = limit if cfg.bpv is not None else None
        parts = _encode_streams(coefs, hists, lays, header, budget, pool)
        header.streams = tuple(len(p) for p in parts)
        payload = streams.interleave(parts)
    else:
        if mag.size >= 2**31:
            raise WdrError("more than 2**31 - 1 coefficients: split the array")  # int32 indices
        payload, _status = _encode_one(mag, neg, lay, header, limit, skip)
    if cfg.psnr is not None:
        payload = _shortest_prefix(
            a4, payload, header, lay, q4.shape, cfg.psnr, cfg.psnr_range, pool, om
        )
        if header.streams is not None:  # keep the stream prefixes the cut payload holds
            parts = streams.deinterleave(payload, header.streams)
            header.streams = tuple(len(p) for p in parts)
            payload = streams.interleave(parts)
    data = pack(header, payload)
    return Encoded(data, header, step, qerr)


def _encode_one(
    mag, neg, lay: Layout, h: Header, limit: int | None, skip: np.ndarray | None = None
) -> tuple[bytes, int]:
    """One embedded stream ``(payload, status)``; ``skip`` (shape-adaptive files): the
    coefficients outside the object, not coded (the ctx coder passes over them, the wdr coder
    codes the others as one list)."""
    if skip is not None:
        if h.coder == "ctx":
            from wdrcodec import ctxcoder

            s = ctxcoder.encode_coefficients(
                mag, neg, lay.boxes, lay.box_class, h.top, h.nplanes, limit, skip=skip
            )
        else:
            keep = skip == 0
            s = coder.encode_coefficients(
                mag[keep], neg[keep], h.top, h.nplanes, limit, lay.classes[keep]
            )
        return s.payload, s.status
    from wdrcodec.parallel import encode_stream

    ctx = (lay.boxes, lay.box_class) if h.coder == "ctx" else None
    return encode_stream(mag, neg, h.top, h.nplanes, limit, lay.classes, ctx)


def _encode_streams(coefs, hists, lays, h: Header, budget: int | None, pool: Pool) -> list[bytes]:
    """Encode one stream per volume; with a payload ``budget`` (bytes) shared among them by
    :func:`wdrcodec.streams.allocate`, and what a stream that ends early leaves over given to
    the others (up to 4 rounds), so the payload is exactly ``budget`` bytes unless every stream
    ends."""
    n = len(coefs)

    def one(t: int, limit: int | None) -> tuple[bytes, int]:
        mag, neg, skip = coefs[t]
        return _encode_one(mag, neg, lays[t], h, limit, skip)

    if budget is None:
        out = pool.map(lambda t: one(t, None), range(n))
        return [p for p, _ in out]
    costs = [streams.plane_costs(hists[t], h.top, h.nplanes) for t in range(n)]
    limits = streams.allocate(costs, budget)
    results = pool.map(lambda t: one(t, limits[t]), range(n))
    for _ in range(4):
        free = budget - sum(len(p) for p, _ in results)
        cut = [t for t, (p, st) in enumerate(results) if st == coder.STATUS_TRUNCATED]
        if free <= 0 or not cut:
            break
        extra = streams.allocate([costs[t] for t in cut], free)
        for t, e in zip(cut, extra):
            limits[t] += e
        redo = pool.map(lambda t: one(t, limits[t]), cut)
        for t, r in zip(cut, redo):
            results[t] = r
    return [p for p, _ in results]


def _choose_packet(
    a: np.ndarray,
    q4: np.ndarray,
    grouping: np.ndarray,
    cfg: EncodeConfig,
    lossless: bool,
    mean: float,
    wavelet: str | None,
    vmin: int,
    vmax: int,
    pool: Pool,
    mask4: np.ndarray | None,
) -> bool:
    """``--auto-packet``: :func:`wdrcodec.choose.choose_packet` with the encode's target; the
    PSNR peak in ``q4`` units follows :func:`_shortest_prefix`'s ``psnr_range`` rule."""
    from wdrcodec.choose import choose_packet

    peak = None
    if cfg.psnr is not None:
        if cfg.psnr_range == "dtype" and a.dtype.kind in "iu":
            info = np.iinfo(a.dtype)
            peak = float(info.max) - float(info.min)
        else:
            peak = float(vmax - vmin) or 1.0
    choice = choose_packet(
        q4, grouping, cfg.levels, lossless, mean, wavelet, bpv=cfg.bpv, psnr=cfg.psnr,
        psnr_peak=peak, pool=pool, mask4=mask4,
    )
    return bool(choice.packet)


def _shortest_prefix(a4, payload, header, lay, shape4, target, psnr_range, pool, om=None) -> bytes:
    """Shortest prefix of ``payload`` whose decode reaches ``target`` dB (bisection)."""
    from medshared.metrics import psnr

    ref = a4.reshape(shape4)
    if psnr_range == "ref":
        peak = float(ref.max()) - float(ref.min())
    elif ref.dtype.kind in "iu":
        info = np.iinfo(ref.dtype)
        peak = float(info.max) - float(info.min)
    else:
        peak = float(ref.max()) - float(ref.min())
    peak = peak or 1.0

    def quality(length: int) -> float:
        rec = _reconstruct_internal(payload[:length], header, lay, shape4, pool, om)[0]
        return psnr(ref, rec, data_range=peak)

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


def _decode_flat(
    payload: bytes, h: Header, lay: Layout, skip: np.ndarray | None = None
) -> tuple[np.ndarray, int]:
    """Decode one stream to the concatenated block coefficients (GIL-free kernels; ``skip``
    as for :func:`_encode_one`)."""
    from wdrcodec.parallel import decode_stream

    if skip is not None:
        flat, status = _decode_skip(payload, h, lay, skip)
        if h.lossless:
            np.rint(flat, out=flat)
        return flat, status

    box_class = lay.box_class if h.coder == "ctx" else None
    flat, status = decode_stream(
        payload, h.top, h.nplanes, 2.0**-h.frac_bits, lay.boxes, lay.classes, box_class
    )
    if h.lossless:
        np.rint(flat, out=flat)
    return flat, status


def _decode_skip(payload: bytes, h: Header, lay: Layout, skip: np.ndarray):
    """:func:`_decode_flat` of a shape-adaptive stream."""
    from wdrcodec import ctxcoder
    from wdrcodec.shape_adaptive import scatter_kept

    scale = 2.0**-h.frac_bits
    boxes = np.ascontiguousarray(lay.boxes, dtype=np.int64)
    flat = np.zeros(lay.n, dtype=np.float64)
    if h.coder == "ctx":
        rec, status = ctxcoder.decode_midpoints(
            payload, lay.boxes, lay.box_class, lay.n, h.top, h.nplanes, scale, skip=skip
        )
        coder.scatter_values(rec, boxes, flat)
    else:
        part, status = coder.decode_midpoints(
            payload, h.top, h.nplanes, lay.classes[skip == 0], scale
        )
        scatter_kept(part, skip, boxes, flat)
    return flat, int(status)


def _fill_background(out: np.ndarray, mask4: np.ndarray, h: Header) -> None:
    """Write the background value of a shape-adaptive file outside its object ``mask4``."""
    value = h.mask_background
    if h.dtype.startswith("float"):
        value = value * h.quant_step + h.quant_offset
    out[~mask4] = value


def _finish(vol: np.ndarray, h: Header, out: np.ndarray, pool: Pool) -> None:
    """Mean, rint, clip and the stored dtype: ``vol`` (float64) into ``out`` (same shape)."""
    from wdrcodec import parallel

    if h.dtype.startswith("float"):
        parallel.finalize(vol, h.mean, float(h.vmin), float(h.vmax), pool)
        vol *= h.quant_step
        vol += h.quant_offset
        out[...] = vol
        return
    parallel.finalize_to(np.ascontiguousarray(vol), h.mean, float(h.vmin), float(h.vmax), out, pool)


def _combine(statuses: list[int]) -> int:
    if coder.STATUS_CORRUPT in statuses:
        return coder.STATUS_CORRUPT
    if coder.STATUS_TRUNCATED in statuses:
        return coder.STATUS_TRUNCATED
    return coder.STATUS_COMPLETE


def _reconstruct_internal(
    payload, h: Header, lay: Layout | None, shape4, pool: Pool, om: ObjectMask | None = None
) -> tuple[np.ndarray, int]:
    """Decode ``payload`` to the ``(T, Z, Y, X)`` array in the stored dtype, and the status
    (``om``: the decoded object mask of a shape-adaptive file; decoded here when None)."""
    out = np.empty(shape4, dtype=h.dtype)
    if h.mask_data is not None and om is None:
        om = decode_mask(h.mask_data, shape4, h.mask_count, h.mask_background, "data")
    mask4 = None if om is None else om.mask
    if h.streams is not None:
        parts = streams.deinterleave(payload, h.streams)
        lays = _volume_layouts(shape4, h.grouping, h.levels, h.packet)
        vshape = (1, *shape4[1:])

        def one(t: int) -> int:
            vm = None if mask4 is None else mask4[t : t + 1]
            skip, bef = (None, None) if vm is None else _sa_decoder(lays[t], vm, h.packet)
            flat, status = _decode_flat(parts[t], h, lays[t], skip)
            if status == coder.STATUS_CORRUPT:
                return status
            if vm is None and _synthesis_to(flat, lays[t], vshape, h, SERIAL, out[t : t + 1]):
                return status
            vol = _synthesis(
                flat, lays[t], vshape, h.lossless, h.packet, SERIAL, h.wavelet, vm, bef
            )
            _finish(vol, h, out[t : t + 1], SERIAL)
            if vm is not None:
                _fill_background(out[t : t + 1], vm, h)
            return status

        return out, _combine(pool.map(one, range(shape4[0])))
    skip, bef = (None, None) if mask4 is None else _sa_decoder(lay, mask4, h.packet)
    flat, status = _decode_flat(payload, h, lay, skip)
    if mask4 is None and _synthesis_to(flat, lay, shape4, h, pool, out):
        return out, status
    vol = _synthesis(flat, lay, shape4, h.lossless, h.packet, pool, h.wavelet, mask4, bef)
    _finish(vol, h, out, pool)
    if mask4 is not None:
        _fill_background(out, mask4, h)
    return out, status


def read_header(data: bytes, name: str = "data", limits: DecodeConfig | None = None) -> Header:
    """Parse and validate the header of ``.wdr`` bytes (also checks complete payload blocks)."""
    return split(data, name, limits).header


def decode_full(
    data: bytes,
    bpv: float | None = None,
    *,
    name: str = "data",
    limits: DecodeConfig | None = None,
    trust_tail: bool = False,
) -> Decoded:
    """Decode ``.wdr`` bytes (or a prefix of them); see :class:`Decoded`.

    ``bpv`` decodes only the first ``floor(bpv * n_voxels / 8)`` bytes of the file, the same as
    cutting the file there. ``limits`` (:class:`~wdrcodec.config.DecodeConfig`) bounds what the
    header may make the decoder allocate. A truncated file's incomplete last block cannot be
    CRC-checked: it is left out (``unverified_bytes`` says how many bytes) unless
    ``trust_tail=True``.
    """
    limits = limits or DecodeConfig()
    if bpv is None:
        bpv = limits.bpv
    sp = split(data, name, limits)
    h = sp.header
    payload = sp.payload
    truncated = sp.truncated
    verified = len(payload)
    if truncated:
        verified = (len(payload) // h.block_size) * h.block_size
        if not trust_tail:
            payload = payload[:verified]
    unverified = len(sp.payload) - verified
    if bpv is not None:
        if not (math.isfinite(bpv) and bpv > 0):
            raise WdrError(f"--bpv: must be a positive number of bits per voxel, got {bpv}")
        keep = int(math.floor(bpv * h.n_voxels / 8)) - h.header_len
        if keep < len(payload):
            payload = payload[: max(keep, 0)]
            truncated = True
    shape4 = internal_shape(h.shape, h.order)
    lay = None if h.streams is not None else make_layout(shape4, h.grouping, h.levels, h.packet)
    om = None
    if h.mask_data is not None:
        if h.mode != "3d" or h.wavelet is not None:
            raise WdrError(f"{name}: corrupted header (object mask in a {h.mode}/wavelet file)")
        om = decode_mask(h.mask_data, shape4, h.mask_count, h.mask_background, name)
    with Pool(resolve_threads(limits.threads)) as pool:
        out4, status = _reconstruct_internal(payload, h, lay, shape4, pool, om)
    if status == coder.STATUS_CORRUPT:
        raise WdrError(f"{name}: corrupted payload (inconsistent WDR symbol stream)")
    return Decoded(
        _from_internal(out4, h.shape, h.order),
        h,
        truncated,
        status == coder.STATUS_COMPLETE,
        h.header_len + len(payload),
        unverified,
        len(payload) > verified,
    )


def decode(
    data: bytes,
    bpv: float | None = None,
    *,
    name: str = "data",
    limits: DecodeConfig | None = None,
    trust_tail: bool = False,
) -> np.ndarray:
    """Decode ``.wdr`` bytes to an array with the encoded shape, layout and dtype.

    A truncated file decodes at lower quality (its unverifiable tail left out); ``bpv``
    decodes a prefix for a lower rate.

    Raises
    ------
    WdrError
        Not a ``.wdr`` file, corrupted header or payload block, or beyond ``limits``.
    """
    return decode_full(data, bpv, name=name, limits=limits, trust_tail=trust_tail).array
