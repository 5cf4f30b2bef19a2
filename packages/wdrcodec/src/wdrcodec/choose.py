"""Automatic per-file choice between the dyadic and the packet decomposition (issue 12).

The packet decomposition (:mod:`wdrcodec.decomposition`: the slice axis ``Z`` decomposed alone
with its full level budget, then every z-band dyadically in ``(Y, X)``) wins by 3-6 dB on a
volume whose slice axis is oversampled (resampled, thin-slice, smooth along ``Z``) and loses
0.1-1.4 dB on ordinary scans. :func:`choose_packet` decides before the encode, from what the
codec is about to transform (the quantised integer volume ``q4``, its grouping and the encode
settings), by comparing a rate-distortion model of both transforms on a sample:

* **sample**: every 3D block (the grouped slices of a volume; at most ``max_volumes`` volumes of
  a 4D series) is cut into in-plane tiles of ``tile x tile`` voxels that keep every slice, and
  an evenly spread ``sample_fraction`` of them (at least ``min_sample_voxels`` voxels in all)
  is transformed both ways with the block's own per-axis levels. Cropping, not subsampling: a
  tile keeps the voxel spacing, so the smoothness along ``Z`` that drives the choice is intact;
* **model** (per subband, the coefficients as the coder sees them: ``rint(|c| * 16)`` lossy,
  the integer LeGall 5/3 coefficients lossless): after bit plane ``p`` (threshold ``T = 2**p``)
  a subband of ``n`` coefficients, ``s`` of them significant before the plane and ``k`` new,
  has cost ``(n - s) * H(k / (n - s)) + k + s`` bits (positions at their entropy, a sign per new
  coefficient, a refinement bit per old one) and leaves the distortion ``sum(c**2, |c| < T) +
  count(|c| >= T) * T**2 / 12`` (midpoint reconstruction); inside a plane both are interpolated
  linearly. The CDF 9/7 lifting is scaled to be nearly orthonormal, so the coefficient-domain
  distortion is the image-domain one;
* **decision**: at the target rate (``bpv`` less the header) the modelled PSNR of the packet
  transform minus the dyadic one is ``gain_db``; with a PSNR target the gain is taken at the
  rate the dyadic transform needs for it; lossless without a rate compares the modelled sizes
  (``size_ratio`` packet / dyadic). Packet is chosen when it wins by more than the margin
  (``margin_db``, ``margin_size``): the model is slightly optimistic for the packet transform
  (more, smaller subbands), and below the margin the two are within ~0.1 dB anyway.

Blocks with fewer than 4 slices have no ``Z`` levels, where both decompositions are the same:
if no block has ``Z`` levels the answer is ``False`` without any work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from wdrcodec.container import block_layout, header_size
from wdrcodec.decomposition import axis_levels, forward, subbands
from wdrcodec.errors import WdrError

FRAC_BITS = 4  # the codec's lossy fixed-point scale (codec.FRAC_BITS; not imported: no cycle)
NBITS = 66  # bit-length bins (magnitudes stay below 2**64)


@dataclass(frozen=True)
class ChoiceConfig:
    """Settings of :func:`choose_packet`; every default declared here once.

    ``margin_db``: dB by which the modelled packet PSNR must beat the dyadic one (lossy);
    ``margin_size``: fraction by which the modelled packet size must be smaller (lossless);
    ``sample_fraction``: fraction of each block's in-plane tiles transformed (0-1];
    ``min_sample_voxels``: at least this many voxels are sampled (all, if the blocks are smaller);
    ``tile``: in-plane side of a sample tile (voxels); ``max_volumes``: volumes of a 4D series
    sampled (evenly spread).
    """

    margin_db: float = 0.25
    margin_size: float = 0.015
    max_anisotropy: float = 0.5
    sample_fraction: float = 0.125
    min_sample_voxels: int = 1 << 15
    min_tiles: int = 12
    tile: int = 32
    max_volumes: int = 4

    def __post_init__(self) -> None:
        if not (math.isfinite(self.margin_db) and self.margin_db >= 0):
            raise WdrError(f"choose: margin_db must be >= 0 dB, got {self.margin_db}")
        if not (math.isfinite(self.margin_size) and 0 <= self.margin_size < 1):
            raise WdrError(f"choose: margin_size must be in [0, 1), got {self.margin_size}")
        if not (math.isfinite(self.sample_fraction) and 0 < self.sample_fraction <= 1):
            raise WdrError(f"choose: sample_fraction must be in (0, 1], got {self.sample_fraction}")
        if not (math.isfinite(self.max_anisotropy) and self.max_anisotropy > 0):
            raise WdrError(f"choose: max_anisotropy must be > 0, got {self.max_anisotropy}")
        if self.tile < 4 or min(self.min_sample_voxels, self.min_tiles, self.max_volumes) < 1:
            raise WdrError(
                "choose: tile must be >= 4, min_sample_voxels, min_tiles and max_volumes >= 1"
            )


class PacketChoice(NamedTuple):
    """Result of :func:`choose_packet`.

    ``packet``: use the packet decomposition; ``gain_db``: modelled PSNR of packet minus dyadic
    at the target (dB; NaN for lossless without a rate); ``size_ratio``: modelled size of the
    packet stream over the dyadic one (lossless without a rate, else NaN); ``sampled``: voxels
    transformed (each way); ``anisotropy``: mean squared first difference of the sample along
    ``Z`` over that in-plane; ``reason``: one line saying why.
    """

    packet: bool
    gain_db: float
    size_ratio: float
    sampled: int
    anisotropy: float
    reason: str


def _tiles(shape: tuple[int, int, int], cfg: ChoiceConfig, want: int) -> list[tuple[int, int]]:
    """Corners ``(y0, x0)`` of evenly spread in-plane tiles of a block, about ``want`` voxels."""
    _, ny, nx = shape
    ty, tx = min(ny, cfg.tile), min(nx, cfg.tile)
    gy, gx = ny // ty, nx // tx
    total = gy * gx
    k = min(total, max(cfg.min_tiles, math.ceil(want / (shape[0] * ty * tx))))
    if k == total:
        return [(iy * ty, ix * tx) for iy in range(gy) for ix in range(gx)]
    # k of the total grid cells, evenly spaced along a diagonal-wrapped ordering so both axes
    # are spread (cell i -> row i mod gy, column (i // gy + i) mod gx)
    idx = np.floor((np.arange(k) + 0.5) * total / k).astype(np.int64)
    rows = idx % gy
    cols = (idx // gy + idx) % gx
    yoff, xoff = (ny - gy * ty) // 2, (nx - gx * tx) // 2  # centre the grid
    return [(int(r) * ty + yoff, int(c) * tx + xoff) for r, c in zip(rows, cols)]


def _labels(shape: tuple[int, int, int], lv: tuple[int, int, int], packet: bool) -> np.ndarray:
    """``(Z, Y, X)`` int64 subband index of every coefficient of a block of ``shape``."""
    lab = np.empty(shape, dtype=np.int64)
    for i, sb in enumerate(subbands(shape, lv, packet)):
        z0, z1, y0, y1, x0, x1 = sb.box
        lab[z0:z1, y0:y1, x0:x1] = i
    return lab


def _entropy(q: np.ndarray) -> np.ndarray:
    """Binary entropy (bits) of probabilities ``q`` in [0, 1]."""
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(q * np.log2(q) + (1 - q) * np.log2(1 - q))
    return np.nan_to_num(h, nan=0.0)


def rd_curve(counts: np.ndarray, energy: np.ndarray, lossless: bool) -> tuple[np.ndarray, ...]:
    """Modelled cumulative ``(bits, distortion)`` after each bit plane, top plane first.

    ``counts[b, L]``: coefficients of subband ``b`` whose magnitude has bit length ``L``;
    ``energy[b, L]``: the sum of their squared magnitudes (coder units). Index 0 of both outputs
    is the empty stream (no bits, all the energy). See the module docstring for the model.
    """
    n = counts.sum(axis=1)
    ge = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1]  # ge[b, L] = count(bit length >= L)
    ege = np.cumsum(energy[:, ::-1], axis=1)[:, ::-1]
    total = float(energy.sum())
    nz = np.flatnonzero(counts.sum(axis=0)[1:])
    top = int(nz[-1]) if nz.size else -1  # highest plane holding a magnitude
    bits, dist = [0.0], [total]
    for p in range(top, -1, -1):
        after = ge[:, p + 1]  # significant once plane p is coded: magnitude >= 2**p
        before = ge[:, p + 2]
        ics = n - before
        new = after - before
        q = np.divide(new, ics, out=np.zeros_like(new, dtype=np.float64), where=ics > 0)
        bits.append(bits[-1] + float((ics * _entropy(q)).sum() + new.sum() + before.sum()))
        last = p == 0 and lossless  # every bit coded: exact
        t2 = 0.0 if last else (2.0**p) ** 2 / 12.0
        dist.append(total - float(ege[:, p + 1].sum()) + float(after.sum()) * t2)
    return np.asarray(bits), np.asarray(dist)


def _dist_at(bits: np.ndarray, dist: np.ndarray, budget: float) -> float:
    if budget >= bits[-1]:
        return float(dist[-1])
    k = max(0, int(np.searchsorted(bits, budget, side="right")) - 1)
    f = (budget - bits[k]) / max(bits[k + 1] - bits[k], 1e-300)
    return float(dist[k] + f * (dist[k + 1] - dist[k]))


def _bits_at(bits: np.ndarray, dist: np.ndarray, target: float) -> float:
    """Modelled bits at which the distortion first reaches ``target`` (the whole curve's end
    when it never does)."""
    below = np.flatnonzero(dist <= target)
    if below.size == 0:
        return float(bits[-1])
    k = int(below[0])
    if k == 0:
        return 0.0
    f = (dist[k - 1] - target) / max(dist[k - 1] - dist[k], 1e-300)
    return float(bits[k - 1] + f * (bits[k] - bits[k - 1]))


def _histograms(
    q4: np.ndarray,
    grouping: np.ndarray,
    levels: int,
    lossless: bool,
    mean: float,
    wavelet: str | None,
    cfg: ChoiceConfig,
) -> tuple[dict[bool, tuple[np.ndarray, np.ndarray]], int, float]:
    """Per-subband bit-length histograms of the sampled tiles, both decompositions; the voxels
    sampled; the anisotropy (mean squared first difference along ``Z`` over that along ``Y``
    and ``X``)."""
    t_n = q4.shape[0]
    vols = np.unique(np.linspace(0, t_n - 1, min(t_n, cfg.max_volumes)).round().astype(int))
    blocks = []
    for t in vols:
        z = np.flatnonzero(np.asarray(grouping[t], dtype=bool))
        shape = (int(z.size), int(q4.shape[2]), int(q4.shape[3]))
        lv = axis_levels(shape, levels, transform_z=True)
        if z.size and lv[0] > 0:
            blocks.append((int(t), z, shape, lv))
    if not blocks:
        return {}, 0, math.nan
    voxels = sum(int(np.prod(s)) for _, _, s, _ in blocks)
    want = max(cfg.sample_fraction * voxels, cfg.min_sample_voxels) / len(blocks)
    scale = 1.0 if lossless else float(1 << FRAC_BITS)
    dt = np.int64 if lossless else np.float64
    shift = int(mean) if lossless else float(mean)
    sums: dict[tuple, list[np.ndarray]] = {}
    labels: dict[tuple, np.ndarray] = {}
    diffs, ndiff = [0.0, 0.0, 0.0], [0, 0, 0]
    sampled = 0
    for t, z, shape, lv in blocks:
        vol = q4[t]
        contiguous = z.size == vol.shape[0]  # the usual 3D case: no gather of slices
        ty, tx = min(shape[1], cfg.tile), min(shape[2], cfg.tile)
        for y0, x0 in _tiles(shape, cfg, want):
            if contiguous:
                part = vol[:, y0 : y0 + ty, x0 : x0 + tx]
            else:
                part = vol[z][:, y0 : y0 + ty, x0 : x0 + tx]
            data = part.astype(dt)
            data -= shift
            sampled += data.size
            for a in range(3):  # squared first differences along Z, Y, X
                if data.shape[a] > 1:
                    d = np.diff(data, axis=a).astype(np.float64)
                    diffs[a] += float(np.square(d).sum())
                    ndiff[a] += d.size
            for packet in (False, True):
                c = forward(data, lv, lossless, packet, True, None, wavelet)
                key = (c.shape, lv, packet)
                if key not in labels:
                    labels[key] = _labels(c.shape, lv, packet)
                lab = labels[key]
                mag = np.rint(np.abs(c) * scale) if not lossless else np.abs(c).astype(np.float64)
                bl = np.frexp(mag)[1]
                nb = int(lab.max()) + 1
                idx = (lab * NBITS + bl).ravel()
                cnt = np.bincount(idx, minlength=nb * NBITS).reshape(nb, NBITS)
                eng = np.bincount(idx, weights=(mag * mag).ravel(), minlength=nb * NBITS)
                if key in sums:  # tiles of the same shape: add up subband by subband
                    sums[key][0] += cnt
                    sums[key][1] += eng.reshape(nb, NBITS)
                else:
                    sums[key] = [cnt.astype(np.float64), eng.reshape(nb, NBITS)]
    out = {
        p: tuple(np.concatenate([v[i] for k, v in sums.items() if k[2] == p]) for i in (0, 1))
        for p in (False, True)
    }
    per = [diffs[a] / ndiff[a] if ndiff[a] else math.nan for a in range(3)]
    inplane = np.nanmean(per[1:]) if ndiff[1] or ndiff[2] else math.nan
    aniso = per[0] / inplane if inplane > 0 else (math.inf if per[0] > 0 else 1.0)
    return out, sampled, float(aniso)


def choose_packet(
    q4: np.ndarray,
    grouping: np.ndarray,
    levels: int,
    lossless: bool,
    mean: float,
    wavelet: str | None = None,
    *,
    bpv: float | None = None,
    psnr: float | None = None,
    psnr_peak: float | None = None,
    config: ChoiceConfig | None = None,
) -> PacketChoice:
    """Whether to code ``q4`` with the packet decomposition (module docstring: how).

    Parameters
    ----------
    q4:
        ``(T, Z, Y, X)`` integer volume the codec transforms (float input already quantised).
    grouping:
        ``(T, Z)`` bool, True for the slices of each volume's 3D block (MCPD/3D/2D grouping).
    levels:
        Maximum decomposition levels per axis (``EncodeConfig.levels``).
    lossless:
        Integer LeGall 5/3 coefficients (True) or CDF 9/7 / ``wavelet`` (False).
    mean:
        The value the codec subtracts before the transform (intensity units of ``q4``).
    wavelet:
        PyWavelets wavelet name of the lossy transform, None for the built-in CDF 9/7.
    bpv:
        Target rate (bits per voxel of the whole file); with ``lossless`` a lossy prefix.
    psnr:
        Target PSNR (dB) at peak ``psnr_peak`` (``q4`` units; default: ``q4``'s value range).
    config:
        :class:`ChoiceConfig` (margins, sample).

    Returns
    -------
    PacketChoice
    """
    cfg = config or ChoiceConfig()
    q4 = np.asarray(q4)
    if q4.ndim != 4 or q4.dtype.kind not in "iu":
        raise WdrError(
            f"choose: q4 must be a (T, Z, Y, X) integer array, got {q4.shape} {q4.dtype}"
        )
    grouping = np.asarray(grouping, dtype=bool)
    if grouping.shape != q4.shape[:2]:
        raise WdrError(f"choose: grouping must have shape {q4.shape[:2]}, got {grouping.shape}")
    if bpv is not None and not (math.isfinite(bpv) and bpv > 0):
        raise WdrError(f"choose: bpv must be a positive number of bits per voxel, got {bpv}")
    if bpv is None and psnr is None and not lossless:
        raise WdrError("choose: give a rate (bpv), a quality (psnr) or lossless")
    hists, sampled, aniso = _histograms(q4, grouping, levels, lossless, mean, wavelet, cfg)
    nan = float("nan")
    if not hists:
        return PacketChoice(
            False, nan, nan, 0, nan, "no block has slice-axis levels: same transform"
        )
    smooth_z = aniso < cfg.max_anisotropy
    za = f"anisotropy {aniso:.3f} ({'<' if smooth_z else '>='} {cfg.max_anisotropy:g})"
    curves = {p: rd_curve(*hists[p], lossless) for p in (False, True)}
    if bpv is None and psnr is None:  # lossless, whole stream
        ratio = curves[True][0][-1] / max(curves[False][0][-1], 1e-300)
        packet = bool(ratio < 1.0 - cfg.margin_size and smooth_z)
        why = f"modelled lossless size packet/dyadic {ratio:.4f} (margin {cfg.margin_size:g}), {za}"
        return PacketChoice(packet, nan, float(ratio), sampled, aniso, why)
    if bpv is not None:
        nvox = q4.size
        payload = max(int(bpv * nvox / 8) - 64, 1)
        head = header_size(grouping.size, block_layout(payload)[1], True, None, 0, wavelet)
        rate = max(bpv - 8.0 * head / nvox, 1e-3)
        budget = rate * sampled
        d_dy = _dist_at(*curves[False], budget)
        d_pk = _dist_at(*curves[True], budget)
        where = f"{bpv:g} bpv"
    else:
        peak = float(psnr_peak) if psnr_peak else float(q4.max() - q4.min()) or 1.0
        scale2 = 1.0 if lossless else float(1 << (2 * FRAC_BITS))
        d_dy = sampled * scale2 * peak**2 / 10.0 ** (psnr / 10.0)
        d_pk = _dist_at(*curves[True], _bits_at(*curves[False], d_dy))
        where = f"the rate of {psnr:g} dB"
    gain = 10.0 * math.log10(max(d_dy, 1e-300) / max(d_pk, 1e-300))
    packet = bool(gain > cfg.margin_db and smooth_z)
    why = (
        f"modelled packet - dyadic PSNR at {where}: {gain:+.2f} dB (margin {cfg.margin_db:g}), {za}"
    )
    return PacketChoice(packet, float(gain), nan, sampled, aniso, why)
