"""How much context modelling could gain: ideal per-context costs of lossless bit-plane coding.

For the integer LeGall 5/3 coefficients of a ``(Z, Y, X)`` volume (mean removed, the codec's
dyadic layout), every bit-plane decision is counted in a context and costed at the empirical
entropy of that context (a static ideal: an adaptive coder pays a little more). Decisions:

* **significance**: at plane ``p`` every coefficient not yet significant decides whether
  ``|c| >= 2**p``; contexts (each also split by the plane): none, or the number of its 6
  neighbours (same subband) already significant, or that count x subband class x parent (same
  orientation, one level coarser, position ``// 2`` in the pyramid layout) already significant;
* **refinement**: bit ``p`` of a coefficient significant before ``p``; contexts: planes since
  significance (what the codec uses), or that x significant neighbours (0, 1, 2+);
* **sign**: contexts: none (the codec) or the signs of the ``x-1`` and ``y-1`` neighbours.

The codec itself codes significance as WDR run lengths, so the comparison that matters is the
real ``.wdr`` size against the best context total (see :func:`context_costs`).

:func:`context_gains` measures instead what each context of the context coder
(:mod:`wdrcodec.ctxcoder`) *does* gain: the real lossless payload with every context, and with
each one switched off in turn (same adaptive coder, so learning costs are included); ``python -m
wdrcodec.contexts`` prints that table for dipy's S0_10slices, nibabel's example4d and the noisy
synthetic volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wdrcodec import ctxcoder
from wdrcodec.decomposition import axis_levels, forward, subbands

#: the context coder's switchable contexts, by name (see :mod:`wdrcodec.ctxcoder`)
FEATURES = {
    "neighbours": ctxcoder.F_NBR,
    "parent": ctxcoder.F_PARENT,
    "children": ctxcoder.F_CHILD,
    "refinement": ctxcoder.F_REFCTX,
    "count-adaptation": ctxcoder.F_COUNT,
}


@dataclass(frozen=True)
class ContextCosts:
    """Ideal costs in bits per voxel (see the module docstring) and the real lossless rate."""

    wdr_bpv: float
    significance_plain: float
    significance_neighbours: float
    significance_class_neighbours_parent: float
    refinement_age: float
    refinement_age_neighbours: float
    sign_plain: float
    sign_neighbours: float

    @property
    def best_bpv(self) -> float:
        """The cheapest context choice for each kind of decision, summed."""
        return (
            min(self.significance_neighbours, self.significance_class_neighbours_parent)
            + self.refinement_age_neighbours
            + self.sign_neighbours
        )


def _entropy_bits(counts: np.ndarray) -> float:
    """Total bits of coding every context's decisions at its empirical entropy; ``counts`` has
    the decision value (0/1) on its last axis."""
    c = counts.astype(np.float64)
    n = c.sum(axis=-1, keepdims=True)
    p = np.where(c > 0, c / np.maximum(n, 1.0), 1.0)
    return float(-(c * np.log2(p)).sum())


def _neighbours(a: np.ndarray, band: np.ndarray) -> list[np.ndarray]:
    """The 6 face neighbours of every voxel of ``a``; 0 where the neighbour is outside the
    array or in another subband. Order: z-1, z+1, y-1, y+1, x-1, x+1."""
    out = []
    for ax in range(3):
        for shift in (1, -1):
            r = np.roll(a, shift, axis=ax)
            same = np.roll(band, shift, axis=ax) == band
            edge = [slice(None)] * 3
            edge[ax] = slice(0, 1) if shift == 1 else slice(-1, None)
            same[tuple(edge)] = False
            out.append(np.where(same, r, 0))
    return out


def context_costs(volume: np.ndarray, levels: int = 5) -> ContextCosts:
    """Ideal context costs of the lossless coding of ``volume`` ``(Z, Y, X)`` (integer)."""
    from wdrcodec.codec import encode

    vol = np.asarray(volume).astype(np.int64)
    wdr_bits = len(encode(np.asarray(volume), lossless=True, levels=levels)) * 8
    lv = axis_levels(vol.shape, levels)
    coef = forward(vol - int(np.rint(vol.mean())), lv, True, False)
    band = np.zeros(coef.shape, np.int32)
    klass = np.zeros(coef.shape, np.int64)
    for k, sb in enumerate(subbands(vol.shape, lv, False)):
        z0, z1, y0, y1, x0, x1 = sb.box
        band[z0:z1, y0:y1, x0:x1] = k
        klass[z0:z1, y0:y1, x0:x1] = 0 if sb.rank == 0 else min(100 - sb.rank, 7)
    mag = np.abs(coef)
    idx = np.meshgrid(*(np.arange(n) // 2 for n in coef.shape), indexing="ij")
    parent = np.where(klass > 0, mag[tuple(idx)], 0)
    plane = np.where(mag > 0, np.floor(np.log2(np.maximum(mag, 1))), -1).astype(np.int64)
    near = _neighbours(mag, band)
    top = int(plane.max())
    sig = [np.zeros((top + 2, 2)), np.zeros((top + 2, 7, 2)), np.zeros((top + 2, 8, 7, 2, 2))]
    ref = [np.zeros((4, 2)), np.zeros((4, 3, 2))]
    for p in range(top, -1, -1):
        thr = np.int64(1) << p
        before = mag >= (thr << 1)  # significant before this plane
        count = np.minimum(sum((m >= (thr << 1)).astype(np.int64) for m in near), 6)
        open_ = ~before
        bit = (mag[open_] >= thr).astype(np.int64)
        np.add.at(sig[0][p], bit, 1)
        np.add.at(sig[1][p], (count[open_], bit), 1)
        par = (parent[open_] >= (thr << 1)).astype(np.int64)
        np.add.at(sig[2][p], (klass[open_], count[open_], par, bit), 1)
        age = np.minimum(plane[before] - p - 1, 3)
        rbit = (mag[before] >> p) & 1
        np.add.at(ref[0], (age, rbit), 1)
        np.add.at(ref[1], (age, np.minimum(count[before], 2), rbit), 1)
    nz = mag > 0
    neg = (coef[nz] < 0).astype(np.int64)
    sgn = [np.sign(n) for n in _neighbours(coef, band)]
    left, up = sgn[4][nz].astype(np.int64) + 1, sgn[2][nz].astype(np.int64) + 1
    s_plain, s_ctx = np.zeros(2), np.zeros((3, 3, 2))
    np.add.at(s_plain, neg, 1)
    np.add.at(s_ctx, (left, up, neg), 1)
    n = vol.size
    return ContextCosts(
        wdr_bits / n,
        _entropy_bits(sig[0]) / n,
        _entropy_bits(sig[1]) / n,
        _entropy_bits(sig[2]) / n,
        _entropy_bits(ref[0]) / n,
        _entropy_bits(ref[1]) / n,
        _entropy_bits(s_plain) / n,
        _entropy_bits(s_ctx) / n,
    )


@dataclass(frozen=True)
class ContextGains:
    """Measured payload of the context coder, bits per voxel: every context
    (``all_bpv``), each named context switched off (``without``), and only the neighbour-count
    significance contexts, age-only refinement contexts and fixed-rate adaptation
    (``previous_bpv``: the coder before the parent, children and refinement contexts and the
    count-based adaptation)."""

    all_bpv: float
    without: dict[str, float]
    previous_bpv: float

    def gain_percent(self, name: str) -> float:
        """Bits saved by context ``name``: ``100 * (without / all - 1)``."""
        return 100.0 * (self.without[name] / self.all_bpv - 1.0)


def scan_coefficients(volume: np.ndarray, levels: int = 5, lossless: bool = True):
    """Coefficients of ``volume`` ``(Z, Y, X)`` in the codec's 3D layout and scan order:
    ``(magnitudes int64, negative uint8, layout, top plane)``. Lossless: LeGall 5/3 of the
    volume minus its rounded mean; lossy: CDF 9/7 of the volume minus its mean, magnitudes in
    the codec's fixed point (``rint(|c| * 16)``)."""
    from wdrcodec.coder import gather_magnitudes
    from wdrcodec.layout import make_layout

    vol = np.asarray(volume).astype(np.int64 if lossless else np.float64)
    lay = make_layout((1, *vol.shape), np.ones((1, vol.shape[0]), dtype=bool), levels, False)
    blk = lay.blocks[0]
    mean = int(np.rint(vol.mean())) if lossless else float(vol.mean())
    coef = forward(vol - mean, blk.lv, lossless, False)
    mag = np.empty(lay.n, dtype=np.int64)
    neg = np.empty(lay.n, dtype=np.uint8)
    scale = 1.0 if lossless else 16.0
    gather_magnitudes(coef.ravel().astype(np.float64), lay.boxes, scale, mag, neg)
    mmax = int(mag.max())
    return mag, neg, lay, (mmax.bit_length() - 1 if mmax > 0 else 0)


def context_gains(
    volume: np.ndarray, levels: int = 5, lossy_planes: int | None = None
) -> ContextGains:
    """Real context-coder payloads of ``volume`` ``(Z, Y, X)`` with and without each context
    (:data:`FEATURES`); see :class:`ContextGains`. Lossless, or with ``lossy_planes`` the
    lossy (CDF 9/7) coefficients' top ``lossy_planes`` bit planes (the same distortion with
    every variant, so the bits compare directly)."""
    lossless = lossy_planes is None
    mag, neg, lay, top = scan_coefficients(volume, levels, lossless)
    nplanes = (top + 1 if lossless else min(int(lossy_planes), top + 1)) if mag.max() > 0 else 0

    def bpv(features: int) -> float:
        s = ctxcoder.encode_coefficients(
            mag, neg, lay.boxes, lay.box_class, top, nplanes, None, features
        )
        return len(s.payload) * 8 / mag.size

    full = ctxcoder.F_ALL
    without = {name: bpv(full & ~flag) for name, flag in FEATURES.items()}
    return ContextGains(bpv(full), without, bpv(ctxcoder.F_NBR))


def _lift(x: np.ndarray, kind: str) -> np.ndarray:
    """One forward integer lifting step along the last axis: ``concat(low, high)``.

    ``kind``: ``"5/3"`` (LeGall, the codec's), ``"9/7-M"`` (4-tap predict, 5/3 update) or
    ``"13/7-T"`` (4-tap predict and update), JPEG 2000 Part 2 style; whole-sample symmetric
    extension, which keeps the parity of a sample, so the predict step sees only even samples
    and the update only odd ones: exactly invertible (:func:`_unlift`)."""
    n = x.shape[-1]
    if n < 2:
        return x.copy()
    pad = [(0, 0)] * (x.ndim - 1)
    even, odd = x[..., 0::2], x[..., 1::2]
    nd, ns = odd.shape[-1], even.shape[-1]
    xp = np.pad(x, [*pad, (4, 4)], mode="reflect")

    def e(k: int) -> np.ndarray:  # x[2i + 2k] for every odd sample i
        return xp[..., 4 + 2 * k : 4 + 2 * k + 2 * nd : 2]

    if kind == "5/3":
        high = odd - ((e(0) + e(1)) >> 1)
    else:
        high = odd - ((9 * (e(0) + e(1)) - (e(-1) + e(2)) + 8) >> 4)
    dp = np.pad(high, [*pad, (3, 3)], mode="symmetric")

    def d(k: int) -> np.ndarray:  # high[i + k] for every even sample i
        return dp[..., 3 + k : 3 + k + ns]

    if kind == "13/7-T":
        low = even + ((9 * (d(-1) + d(0)) - (d(-2) + d(1)) + 16) >> 5)
    else:
        low = even + ((d(-1) + d(0) + 2) >> 2)
    return np.concatenate([low, high], axis=-1)


def _unlift(c: np.ndarray, kind: str) -> np.ndarray:
    """Inverse of :func:`_lift`."""
    n = c.shape[-1]
    if n < 2:
        return c.copy()
    ns = (n + 1) // 2
    low, high = c[..., :ns], c[..., ns:]
    pad = [(0, 0)] * (c.ndim - 1)
    dp = np.pad(high, [*pad, (3, 3)], mode="symmetric")

    def d(k: int) -> np.ndarray:
        return dp[..., 3 + k : 3 + k + ns]

    if kind == "13/7-T":
        even = low - ((9 * (d(-1) + d(0)) - (d(-2) + d(1)) + 16) >> 5)
    else:
        even = low - ((d(-1) + d(0) + 2) >> 2)
    x = np.empty(c.shape, dtype=c.dtype)
    x[..., 0::2] = even
    # the predict step reads only even samples of the reflected signal: rebuild them first
    xe = np.zeros(c.shape, dtype=c.dtype)
    xe[..., 0::2] = even
    xp = np.pad(xe, [*pad, (4, 4)], mode="reflect")
    nd = high.shape[-1]

    def e(k: int) -> np.ndarray:
        return xp[..., 4 + 2 * k : 4 + 2 * k + 2 * nd : 2]

    if kind == "5/3":
        x[..., 1::2] = high + ((e(0) + e(1)) >> 1)
    else:
        x[..., 1::2] = high + ((9 * (e(0) + e(1)) - (e(-1) + e(2)) + 8) >> 4)
    return x


def lifting_forward(volume: np.ndarray, lv: tuple[int, int, int], kind: str) -> np.ndarray:
    """Dyadic 3D decomposition of ``volume`` ``(Z, Y, X)`` with per-axis levels ``lv`` (the
    codec's Mallat layout) by the integer lifting ``kind`` of :func:`_lift` (int64)."""
    from wdrcodec.decomposition import _dyadic_steps

    out = np.asarray(volume).astype(np.int64)
    for _level, axes, cur in _dyadic_steps(out.shape, lv):
        region = out[: cur[0], : cur[1], : cur[2]]
        for a in axes:
            r = np.moveaxis(region, a, -1)
            r[...] = _lift(np.array(r), kind)
    return out


def lifting_inverse(coef: np.ndarray, lv: tuple[int, int, int], kind: str) -> np.ndarray:
    """Inverse of :func:`lifting_forward`."""
    from wdrcodec.decomposition import _dyadic_steps

    out = np.asarray(coef).astype(np.int64)
    for _level, axes, cur in reversed(list(_dyadic_steps(out.shape, lv))):
        region = out[: cur[0], : cur[1], : cur[2]]
        for a in reversed(axes):
            r = np.moveaxis(region, a, -1)
            r[...] = _unlift(np.array(r), kind)
    return out


def lifting_alternatives(volume: np.ndarray, levels: int = 5) -> dict[str, float]:
    """Lossless ratio (original bytes / ctx payload + 200 header bytes) of ``volume`` ``(Z, Y,
    X)`` when the context coder codes the coefficients of other reversible transforms:
    ``"3d 5/3"`` (the codec's), ``"3d 9/7-M"``, ``"3d 13/7-T"`` and ``"2d 5/3"`` (slices)."""
    from wdrcodec.coder import gather_magnitudes
    from wdrcodec.layout import make_layout

    vol = np.asarray(volume)
    q = vol.astype(np.int64) - int(np.rint(vol.mean()))
    out = {}
    for name in ("3d 5/3", "3d 9/7-M", "3d 13/7-T", "2d 5/3"):
        dims, kind = name.split()
        grouping = np.full((1, q.shape[0]), dims == "3d")
        lay = make_layout((1, *q.shape), grouping, levels, False)
        coef = np.concatenate([lifting_forward(q[b.z], b.lv, kind).ravel() for b in lay.blocks])
        mag = np.empty(lay.n, dtype=np.int64)
        neg = np.empty(lay.n, dtype=np.uint8)
        gather_magnitudes(coef.astype(np.float64), lay.boxes, 1.0, mag, neg)
        top = max(int(mag.max()).bit_length() - 1, 0)
        s = ctxcoder.encode_coefficients(mag, neg, lay.boxes, lay.box_class, top, top + 1, None)
        out[name] = vol.nbytes / (len(s.payload) + 200)
    return out


def _print_gains() -> None:
    """Print :func:`context_gains` for the built-in volumes (``python -m wdrcodec.contexts``):
    lossless, and the top 9 lossy bit planes (about 0.2-0.8 bits/voxel on these volumes)."""
    from wdrcodec.data import dipy_s0, nibabel_example4d, noisy_volume

    volumes = {
        "dipy S0_10slices": dipy_s0().array,
        "nibabel example4d[0]": nibabel_example4d().array,
        "noisy 32x128x128": noisy_volume((32, 128, 128)),
    }
    names = list(FEATURES)
    print("Context coder payload in bits/voxel: all contexts, the previous coder, and each")
    print("context switched off (in brackets: its gain, % of the all-contexts payload)")
    print(
        f"{'volume':<22}{'coding':<10}{'all':>8}{'previous':>10}"
        + "".join(f"{n:>18}" for n in names)
    )
    for label, vol in volumes.items():
        for coding, planes in (("lossless", None), ("9 planes", 9)):
            g = context_gains(vol, lossy_planes=planes)
            cells = "".join(f"{g.without[n]:>10.4f} ({g.gain_percent(n):+5.2f})" for n in names)
            print(f"{label:<22}{coding:<10}{g.all_bpv:>8.4f}{g.previous_bpv:>10.4f}{cells}")
    print("\nLossless ratio with other reversible lifting transforms (ctx coder, +200 B header)")
    for label, vol in volumes.items():
        alt = lifting_alternatives(vol)
        print(f"{label:<22}" + "".join(f"{k:>12} {v:.3f}" for k, v in alt.items()))


if __name__ == "__main__":
    _print_gains()
