"""Rate-distortion evaluation: encode at several rates, decode, measure quality and speed.

Metrics come from :mod:`medshared.metrics` on the decoded array, which the decoder has already
rounded and clipped to the original's value range ``[min, max]`` (stored in the header; inside
the dtype range) and cast to the original dtype. Two PSNR peaks are reported:
``65535`` (the paper's eq. 2, for 16-bit data) and the true data range ``max - min`` of the
original. SSIM uses the true data range (``data_range = max - min``); for a 4D series it is the
mean over volumes.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from wdrcodec.codec import decode, encode
from wdrcodec.config import BUILTIN_WAVELET, EncodeConfig


@dataclass(frozen=True)
class RateResult:
    """One row of the rate-distortion table (rates in bits/voxel, throughput in MB/s of input)."""

    mode: str
    target_bpv: float
    bpv: float
    psnr_65535: float
    psnr_range: float
    mse: float
    ssim: float
    ssim_data_range: float
    encode_mbs: float
    decode_mbs: float
    ratio: float

    def as_dict(self) -> dict:
        return asdict(self)


def quality(ref: np.ndarray, test: np.ndarray) -> tuple[float, float, float, float, float]:
    """``(psnr at 65535, psnr at data range, mse, ssim, ssim data_range)`` of ``test`` vs ``ref``.

    ``ref``/``test``: ``(Y, X)``, ``(Z, Y, X)`` or ``(T, Z, Y, X)`` (SSIM: mean over volumes).
    Every figure comes from :mod:`medshared.metrics`.
    """
    from medshared.metrics import mse, psnr, ssim

    rng = float(ref.max()) - float(ref.min()) or 1.0
    p65535 = psnr(ref, test, data_range=65535.0)
    prange = psnr(ref, test, data_range=rng)
    if ref.ndim == 4:
        s = float(np.mean([ssim(ref[i], test[i], data_range=rng) for i in range(ref.shape[0])]))
    elif ref.ndim == 3 and min(ref.shape) == 1:
        s = ssim(np.squeeze(ref), np.squeeze(test), data_range=rng)
    else:
        s = ssim(ref, test, data_range=rng)
    return p65535, prange, mse(ref, test), float(s), rng


def check_options(modes: tuple[str, ...], lossless: bool, options: dict) -> None:
    """Refuse, before any work, options that some row of :func:`evaluate` could not encode
    with (e.g. ``background="on"`` with the 2D mode); ``options`` as for :func:`evaluate`.

    A PyWavelets ``wavelet`` is checked for PyWavelets being installed too; it applies to the
    lossy rows only (the lossless rows use the integer LeGall 5/3)."""
    for mode in modes:
        EncodeConfig(bpv=1.0, mode=mode, **options)
        if lossless:
            EncodeConfig(lossless=True, mode=mode, **_lossless_options(options))
    if options.get("wavelet", BUILTIN_WAVELET) != BUILTIN_WAVELET:
        from wdrcodec.biorthogonal import _pywt

        _pywt()  # MissingExtraError naming wdrcodec[wavelets]


def _lossless_options(options: dict) -> dict:
    """``options`` for a lossless encode: the wavelet is always the integer LeGall 5/3."""
    return {k: v for k, v in options.items() if k != "wavelet"}


def evaluate(
    array: np.ndarray,
    rates: list[float],
    modes: tuple[str, ...] = ("3d",),
    *,
    lossless: bool = True,
    slice_axis: int | None = None,
    time_axis: int | None = None,
    spacing: tuple[float, ...] | None = None,
    **options,
) -> list[RateResult]:
    """Encode/decode ``array`` at each rate and mode (plus a lossless row); see :class:`RateResult`.

    ``slice_axis``/``time_axis`` as for :func:`wdrcodec.encode`; ``options`` are
    :class:`~wdrcodec.config.EncodeConfig` fields (levels, packet, MCPD settings, float step,
    wavelet: lossy rows only, the lossless row always uses the integer LeGall 5/3).
    """
    from wdrcodec.codec import axis_order

    check_options(modes, lossless, options)
    order = axis_order(array.ndim, slice_axis, time_axis)
    axes = {"slice_axis": slice_axis, "time_axis": time_axis, "spacing": spacing}
    rows: list[RateResult] = []
    nbytes = array.nbytes
    warm_up()
    for mode in modes:
        jobs = [(r, False) for r in rates] + ([(math.inf, True)] if lossless else [])
        for rate, is_lossless in jobs:
            t0 = time.perf_counter()
            if is_lossless:
                blob = encode(
                    array, lossless=True, mode=mode, **axes, **_lossless_options(options)
                )
            else:
                blob = encode(array, bpv=rate, mode=mode, **axes, **options)
            t1 = time.perf_counter()
            out = decode(blob)
            t2 = time.perf_counter()
            if is_lossless and array.dtype.kind != "f" and not np.array_equal(out, array):
                raise AssertionError("lossless round trip is not exact")  # pragma: no cover
            ref = array.transpose(order)  # coding order (T, Z, ...) for per-volume SSIM
            test = out.transpose(order)
            p1, p2, mse, s, rng = quality(ref, test)
            rows.append(
                RateResult(
                    mode=mode + (" lossless" if is_lossless else ""),
                    target_bpv=rate,
                    bpv=len(blob) * 8 / array.size,
                    psnr_65535=p1,
                    psnr_range=p2,
                    mse=mse,
                    ssim=s,
                    ssim_data_range=rng,
                    encode_mbs=nbytes / max(t1 - t0, 1e-9) / 1e6,
                    decode_mbs=nbytes / max(t2 - t1, 1e-9) / 1e6,
                    ratio=nbytes / len(blob),
                )
            )
    return rows


def warm_up() -> None:
    """Run a tiny lossy and lossless round trip so JIT loading is not timed."""
    small = (np.arange(4 * 32 * 32) % 7).astype(np.uint8).reshape(4, 32, 32)
    decode(encode(small, bpv=2.0))
    decode(encode(small, lossless=True))


def format_table(rows: list[RateResult], title: str = "", wavelet: str | None = None) -> str:
    """Plain-text table of :class:`RateResult` rows (``wavelet``: that of the lossy rows, named
    in the footer; None or the built-in one: CDF 9/7)."""
    head = (
        f"{'mode':<14}{'target':>7}{'bpv':>8}{'ratio':>7}{'PSNR65535':>10}{'PSNRrange':>10}"
        f"{'MSE':>11}{'SSIM':>8}{'enc MB/s':>9}{'dec MB/s':>9}"
    )
    lines = [title] if title else []
    lines.append(head)
    for r in rows:
        tgt = "lossl." if math.isinf(r.target_bpv) else f"{r.target_bpv:g}"
        lines.append(
            f"{r.mode:<14}{tgt:>7}{r.bpv:>8.4f}{r.ratio:>7.2f}{r.psnr_65535:>10.2f}"
            f"{r.psnr_range:>10.2f}{r.mse:>11.3f}{r.ssim:>8.4f}{r.encode_mbs:>9.1f}"
            f"{r.decode_mbs:>9.1f}"
        )
    if rows:
        lines.append(
            f"PSNR peaks: 65535 (paper eq. 2) and the data range {rows[0].ssim_data_range:g}; "
            f"SSIM data_range = {rows[0].ssim_data_range:g}"
        )
        lossy = (
            "CDF 9/7 (built-in lifting)"
            if wavelet in (None, BUILTIN_WAVELET)
            else f"{wavelet} (PyWavelets)"
        )
        lines.append(f"wavelet: {lossy} for the lossy rows; LeGall 5/3 integer for lossless")
    return "\n".join(lines)


J2K_LEVELS = range(30, 100, 3)  # OpenJPEG quality targets of the anchor curves (dB)
# OpenJPH (HTJ2K) quantisation steps of the anchor curves (relative to the dtype's range)
HTJ2K_STEPS = tuple(float(q) for q in np.geomspace(1e-6, 0.05, 30))


def _slice_curve(ref, slices, enc, dec, knobs, lo: float, hi: float) -> list[tuple]:
    """``[(bpv, psnr, ssim)]`` of a 2D codec run slice by slice at each of ``knobs``, the
    points with a rate in ``[lo, hi]`` (:func:`quality` on the coding-order arrays)."""
    pts = []
    for knob in knobs:
        blobs = [enc(s, knob) for s in slices]
        rate = sum(len(b) for b in blobs) * 8 / ref.size
        if lo <= rate <= hi:
            back = np.stack([dec(b) for b in blobs]).reshape(ref.shape)
            _, p, _, s, _ = quality(ref, back)
            pts.append((rate, p, s))
    return pts


def anchor_curves(
    array: np.ndarray, order: tuple[int, ...], rates: list[float]
) -> tuple[dict[str, list[tuple[float, float, float]]], str]:
    """Rate-distortion of the anchors on ``array`` for the rate-distortion plots of ``eval`` and
    ``bench``, measured like the WDR rows (:func:`quality` on the coding-order arrays, single
    thread): J2K (OpenJPEG via imagecodecs, slice by slice) over :data:`J2K_LEVELS` and HTJ2K
    (OpenJPH, slice by slice) over :data:`HTJ2K_STEPS`, both kept between ``min(rates) / 1.5``
    and ``max(rates) * 1.5`` bits/voxel (integer data), and SPERR-3D at each of ``rates`` (3D
    arrays). Returns ``(curves, note)``: ``({}, note)`` without imagecodecs, the note saying
    what is missing."""
    try:
        import imagecodecs as ic
    except ImportError:
        return {}, "no anchors: imagecodecs not installed (pip install 'wdrcodec[bench]')"
    ref = np.ascontiguousarray(array.transpose(order))  # (T, Z, Y, X) / (Z, Y, X) / (Y, X)
    slices = ref.reshape((-1,) + ref.shape[-2:])
    curves: dict[str, list[tuple[float, float, float]]] = {}
    notes = []
    lo, hi = min(rates) / 1.5, max(rates) * 1.5
    integer = array.dtype.kind in "ui"
    if ic.JPEG2K.available and integer:
        curves["J2K (OpenJPEG, 2D)"] = _slice_curve(
            ref,
            slices,
            lambda s, lv: ic.jpeg2k_encode(s, level=lv, numthreads=1),
            lambda b: ic.jpeg2k_decode(b, numthreads=1),
            J2K_LEVELS,
            lo,
            hi,
        )
    else:
        notes.append("no J2K: integer data and imagecodecs with OpenJPEG needed")
    if getattr(ic, "HTJ2K", None) is not None and ic.HTJ2K.available and integer:
        curves["HTJ2K (OpenJPH, 2D)"] = _slice_curve(
            ref,
            slices,
            lambda s, q: ic.htj2k_encode(s, level=q),
            ic.htj2k_decode,
            HTJ2K_STEPS,
            lo,
            hi,
        )
    else:
        notes.append("no HTJ2K: integer data and imagecodecs with OpenJPH needed")
    if ic.SPERR.available and ref.ndim == 3:
        pts = []
        lo_v, hi_v = float(array.min()), float(array.max())
        for bpv in rates:
            blob = ic.sperr_encode(ref.astype(np.float64), level=bpv, mode="bpp", numthreads=1)
            dec = ic.sperr_decode(blob, numthreads=1).reshape(ref.shape)
            dec = np.clip(np.rint(dec), lo_v, hi_v) if integer else dec
            _, p, _, s, _ = quality(ref, dec.astype(array.dtype))
            pts.append((len(blob) * 8 / array.size, p, s))
        curves["SPERR-3D"] = pts
    else:
        notes.append("no SPERR: 3D arrays and imagecodecs with SPERR needed")
    return curves, "; ".join(notes)


def write_strip(
    array: np.ndarray,
    path: Path,
    bpv: float,
    axes: dict | None = None,
    options: dict | None = None,
    title: str = "",
) -> Path:
    """Encode ``array`` at ``bpv`` (the 3D mode unless ``options`` say otherwise), decode it and
    write the middle slice along the slice axis as a strip (original, decoded, |error|; PNG,
    :func:`wdrcodec.plots.slice_strip`). ``axes``: ``slice_axis``/``time_axis``/``spacing`` as
    for :func:`wdrcodec.encode`; ``options``: other :class:`~wdrcodec.config.EncodeConfig`
    fields. The title names the rate reached and the slice's PSNR. Returns ``path``."""
    from medshared.metrics import psnr
    from wdrcodec.codec import axis_order
    from wdrcodec.plots import slice_strip

    axes, options = axes or {}, options or {}
    order = axis_order(array.ndim, axes.get("slice_axis"), axes.get("time_axis"))
    blob = encode(array, bpv=bpv, **axes, **options)
    dec = decode(blob)
    ref3 = array.transpose(order).reshape((-1,) + array.transpose(order).shape[-2:])
    dec3 = dec.transpose(order).reshape(ref3.shape)
    k = ref3.shape[0] // 2
    rng = float(array.max()) - float(array.min()) or 1.0
    p = psnr(ref3[k], dec3[k], data_range=rng)
    rate = len(blob) * 8 / array.size
    text = f"{title}: " if title else ""
    text += f"{rate:.3g} bpv (target {bpv:g}), slice {k}, PSNR {p:.2f} dB"
    return slice_strip(ref3[k], dec3[k], path, text)


def pictures(
    array: np.ndarray,
    rows: list[RateResult],
    axes: dict,
    options: dict,
    plot: Path | None,
    strip: Path | None,
    strip_bpv: float,
    title: str = "",
) -> list[Path]:
    """Write the rate-distortion PNG of ``rows`` with the anchors of :func:`anchor_curves`
    (``plot``) and a slice strip of the 3D mode at ``strip_bpv`` (``strip``: the middle slice
    along the slice axis). Returns the paths."""
    from wdrcodec.codec import axis_order
    from wdrcodec.plots import rd_figure

    out = []
    order = axis_order(array.ndim, axes.get("slice_axis"), axes.get("time_axis"))
    if plot is not None:
        curves: dict[str, list] = {}
        for r in rows:
            if not math.isinf(r.target_bpv):
                curves.setdefault(f"WDR-{r.mode}", []).append((r.bpv, r.psnr_range, r.ssim))
        rates = sorted({r.target_bpv for r in rows if not math.isinf(r.target_bpv)})
        note = ""
        if rates:
            anchors, note = anchor_curves(array, order, rates)
            curves.update(anchors)
        out.append(rd_figure(curves, plot, "\n".join(t for t in (title, note) if t)))
    if strip is not None:
        out.append(write_strip(array, strip, strip_bpv, axes, options, title))
    return out
