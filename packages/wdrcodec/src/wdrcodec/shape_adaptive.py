"""Shape-adaptive wavelet transforms (SA-DWT) of a masked ``(Z, Y, X)`` block.

Li & Li, "Shape-adaptive discrete wavelet transforms for arbitrarily shaped visual object
coding" (IEEE TCSVT 2000), in the global-subsampling form of MPEG-4 / JPEG 2000 Part 2: every
axis pass of the decomposition (the same passes, in the same order, as
:mod:`wdrcodec.decomposition`) lifts each line **segment by segment**, a segment being a
maximal run of in-mask samples ``[s, e)``; out-of-mask samples take no part and give zero
coefficients. Inside a segment the lifting is the usual one with whole-sample symmetric
extension at *the segment's* ends (``x[s-1] = x[s+1]``, ``x[e] = x[e-2]``), and subsampling is
global: a sample at an even line index goes to the low band (position ``i // 2``), one at an odd
index to the high band (position ``ceil(N/2) + i // 2``), so the coefficients stay in the usual
Mallat layout and the mask of every subband is the mask deinterleaved the same way
(:func:`pass_masks`). A segment of one sample is scaled by its band's gain (JPEG 2000 Part 1's
rule for length-1 signals): LeGall 5/3 keeps an even sample and doubles an odd one; the CDF 9/7
of :mod:`wdrcodec.wavelets` (DC and Nyquist gains ``sqrt(2)``) multiplies both by ``sqrt(2)``.
A line that is wholly inside the mask is transformed exactly as :mod:`wdrcodec.lifting` does.

Lines are independent, so every pass is split over a :class:`wdrcodec.parallel.Pool`'s threads
(GIL-free kernels, the same values for any thread count).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from wdrcodec.decomposition import _dyadic_steps
from wdrcodec.wavelets import ALPHA, BETA, DELTA, GAMMA, HIGH_SCALE, LOW_SCALE

if TYPE_CHECKING:
    from wdrcodec.parallel import Pool

SQRT2 = float(np.sqrt(2.0))
MIN_SPLIT = 1 << 15  # samples: a pass over fewer is not split over threads


# ----------------------------------------------------------------------------- segment kernels


@njit(nogil=True, cache=True, inline="always")
def _mirror(k, s, e):
    """Left and right neighbours of line index ``k`` inside segment ``[s, e)`` (length >= 2),
    whole-sample symmetric at the segment's ends."""
    left = k - 1 if k - 1 >= s else k + 1
    right = k + 1 if k + 1 < e else k - 1
    return left, right


@njit(nogil=True, cache=True)
def _fwd53_seg(t, s, e):
    """Forward integer LeGall 5/3 of ``t[s:e]`` in place, global parity (odd = high)."""
    if e - s == 1:
        if s & 1:
            t[s] = 2 * t[s]
        return
    for k in range(s + ((s & 1) ^ 1), e, 2):  # odd indices: predict
        left, right = _mirror(k, s, e)
        t[k] -= (t[left] + t[right]) >> 1
    for k in range(s + (s & 1), e, 2):  # even indices: update
        left, right = _mirror(k, s, e)
        t[k] += (t[left] + t[right] + 2) >> 2


@njit(nogil=True, cache=True)
def _inv53_seg(t, s, e):
    """Inverse of :func:`_fwd53_seg`."""
    if e - s == 1:
        if s & 1:
            t[s] = t[s] >> 1
        return
    for k in range(s + (s & 1), e, 2):
        left, right = _mirror(k, s, e)
        t[k] -= (t[left] + t[right] + 2) >> 2
    for k in range(s + ((s & 1) ^ 1), e, 2):
        left, right = _mirror(k, s, e)
        t[k] += (t[left] + t[right]) >> 1


@njit(nogil=True, cache=True)
def _fwd97_seg(t, s, e):
    """Forward CDF 9/7 (:mod:`wdrcodec.wavelets` scaling) of ``t[s:e]`` in place."""
    if e - s == 1:
        t[s] *= SQRT2
        return
    odd0 = s + ((s & 1) ^ 1)
    even0 = s + (s & 1)
    for step in range(2):
        cd = ALPHA if step == 0 else GAMMA
        cs = BETA if step == 0 else DELTA
        for k in range(odd0, e, 2):
            left, right = _mirror(k, s, e)
            t[k] += cd * (t[left] + t[right])
        for k in range(even0, e, 2):
            left, right = _mirror(k, s, e)
            t[k] += cs * (t[left] + t[right])
    for k in range(even0, e, 2):
        t[k] *= LOW_SCALE
    for k in range(odd0, e, 2):
        t[k] *= HIGH_SCALE


@njit(nogil=True, cache=True)
def _inv97_seg(t, s, e):
    """Inverse of :func:`_fwd97_seg`."""
    if e - s == 1:
        t[s] /= SQRT2
        return
    odd0 = s + ((s & 1) ^ 1)
    even0 = s + (s & 1)
    for k in range(even0, e, 2):
        t[k] /= LOW_SCALE
    for k in range(odd0, e, 2):
        t[k] /= HIGH_SCALE
    for step in range(2):
        cd = GAMMA if step == 0 else ALPHA
        cs = DELTA if step == 0 else BETA
        for k in range(even0, e, 2):
            left, right = _mirror(k, s, e)
            t[k] -= cs * (t[left] + t[right])
        for k in range(odd0, e, 2):
            left, right = _mirror(k, s, e)
            t[k] -= cd * (t[left] + t[right])


@njit(nogil=True, cache=True)
def _load(v, m, p, q, t, forward):
    """Line ``(p, q)`` of ``v`` into ``t`` in line order (an inverse reads it from the Mallat
    positions), zero outside the mask; False when every in-mask value is 0 (the line is then
    zeroed: a linear transform of zeros, and the integer one too, is zero)."""
    N = v.shape[2]
    ns = (N + 1) // 2
    nz = False
    for i in range(N):
        j = i if forward else ((i >> 1) if (i & 1) == 0 else ns + (i >> 1))
        t[i] = v[p, q, j] if m[p, q, i] else 0
        if t[i] != 0:
            nz = True
    if not nz:
        for i in range(N):
            v[p, q, i] = 0
    return nz


@njit(nogil=True, cache=True)
def _store(v, p, q, t, forward):
    """``t`` back into line ``(p, q)`` of ``v`` (a forward pass writes the Mallat positions)."""
    N = v.shape[2]
    ns = (N + 1) // 2
    for i in range(N):
        j = ((i >> 1) if (i & 1) == 0 else ns + (i >> 1)) if forward else i
        v[p, q, j] = t[i]


@njit(nogil=True, cache=True, inline="always")
def _segment_end(m, p, q, i, N):
    e = i + 1
    while e < N and m[p, q, e]:
        e += 1
    return e


@njit(nogil=True, cache=True)
def _lines53(v, m, forward):
    """SA LeGall 5/3 of every line of the int64 ``v`` ``(P, Q, N)`` along its last axis (any
    layout), in place; ``m`` (uint8, same shape) is the mask of the samples before a forward
    pass (after an inverse one). Out-of-mask outputs are zero."""
    P, Q, N = v.shape
    t = np.empty(N, dtype=np.int64)
    for p in range(P):
        for q in range(Q):
            if not _load(v, m, p, q, t, forward):
                continue
            i = 0
            while i < N:
                if not m[p, q, i]:
                    i += 1
                    continue
                e = _segment_end(m, p, q, i, N)
                if forward:
                    _fwd53_seg(t, i, e)
                else:
                    _inv53_seg(t, i, e)
                i = e
            _store(v, p, q, t, forward)


@njit(nogil=True, cache=True)
def _lines97(v, m, forward):
    """:func:`_lines53` for the float64 CDF 9/7."""
    P, Q, N = v.shape
    t = np.empty(N, dtype=np.float64)
    for p in range(P):
        for q in range(Q):
            if not _load(v, m, p, q, t, forward):
                continue
            i = 0
            while i < N:
                if not m[p, q, i]:
                    i += 1
                    continue
                e = _segment_end(m, p, q, i, N)
                if forward:
                    _fwd97_seg(t, i, e)
                else:
                    _inv97_seg(t, i, e)
                i = e
            _store(v, p, q, t, forward)


# ----------------------------------------------------------------------------- slab kernels
# The passes along Z and Y lift whole (N, Q2) slabs row by row (rows contiguous in X), with the
# segment rule written per sample: an in-mask sample's left neighbour is k - 1 if that is in the
# mask, else k + 1 (and symmetrically), and a sample with neither is a one-sample segment. The
# same operations on the same operands as the segment kernels above, in cache-friendly order.


@njit(nogil=True, cache=True, inline="always")
def _rows(N, ns, k, odd):
    """Mallat row of line index ``k`` and of its two neighbours (clamped into range)."""
    nd = N // 2
    if odd:
        jk = ns + (k >> 1)
        jl = (k - 1) >> 1
        jr = (k + 1) >> 1 if k + 1 < N else jl
    else:
        jk = k >> 1
        jr = ns + (k >> 1) if (k >> 1) < nd else ns + nd - 1
        jl = ns + ((k - 1) >> 1) if k >= 1 else jr
    return jk, jl, jr


@njit(nogil=True, cache=True, inline="always")
def _sides(m, p, k, a, b, N):
    hl = k >= 1 and m[p, k - 1, a, b] != 0
    hr = k + 1 < N and m[p, k + 1, a, b] != 0
    return hl, hr


@njit(nogil=True, cache=True)
def _step53(t, m, p, a, odd, update, sign):
    """One 5/3 lifting step over the ``odd`` (or even) rows of the Mallat-ordered slab ``t``:
    ``t[k] += sign * floor((L + R [+ 2]) / (2 | 4))`` for every in-mask, non-single sample."""
    N = m.shape[1]
    ns = (N + 1) // 2
    for k in range(1 if odd else 0, N, 2):
        jk, jl, jr = _rows(N, ns, k, odd)
        for b in range(t.shape[1]):
            if m[p, k, a, b] == 0:
                continue
            hl, hr = _sides(m, p, k, a, b, N)
            if not (hl or hr):
                continue
            left = t[jl, b] if hl else t[jr, b]
            right = t[jr, b] if hr else t[jl, b]
            if update:
                t[jk, b] += sign * ((left + right + 2) >> 2)
            else:
                t[jk, b] += sign * ((left + right) >> 1)


@njit(nogil=True, cache=True)
def _step97(t, m, p, a, odd, coef):
    """One 9/7 lifting step: ``t[k] += coef * (L + R)`` (as :func:`_step53`)."""
    N = m.shape[1]
    ns = (N + 1) // 2
    for k in range(1 if odd else 0, N, 2):
        jk, jl, jr = _rows(N, ns, k, odd)
        for b in range(t.shape[1]):
            if m[p, k, a, b] == 0:
                continue
            hl, hr = _sides(m, p, k, a, b, N)
            if not (hl or hr):
                continue
            left = t[jl, b] if hl else t[jr, b]
            right = t[jr, b] if hr else t[jl, b]
            t[jk, b] += coef * (left + right)


@njit(nogil=True, cache=True)
def _scale97(t, m, p, a, forward):
    """Band scaling of the 9/7 (``sqrt(2)`` for one-sample segments), or its inverse."""
    N = m.shape[1]
    ns = (N + 1) // 2
    for k in range(N):
        odd = (k & 1) == 1
        jk = ns + (k >> 1) if odd else k >> 1
        sc = HIGH_SCALE if odd else LOW_SCALE
        for b in range(t.shape[1]):
            if m[p, k, a, b] == 0:
                continue
            hl, hr = _sides(m, p, k, a, b, N)
            f = sc if (hl or hr) else SQRT2
            if forward:
                t[jk, b] *= f
            else:
                t[jk, b] /= f


@njit(nogil=True, cache=True)
def _double53(t, m, p, a, forward):
    """One-sample segments at odd indices: ``2 x`` (forward) / ``y >> 1`` (inverse)."""
    N = m.shape[1]
    ns = (N + 1) // 2
    for k in range(1, N, 2):
        jk = ns + (k >> 1)
        for b in range(t.shape[1]):
            if m[p, k, a, b] == 0:
                continue
            hl, hr = _sides(m, p, k, a, b, N)
            if not (hl or hr):
                t[jk, b] = 2 * t[jk, b] if forward else t[jk, b] >> 1


@njit(nogil=True, cache=True)
def _slab_io(v, m, t, p, a, load, forward):
    """Move slab ``(p, :, a, :)`` between ``v`` and the Mallat-ordered scratch ``t`` (zero
    outside the mask); returns False when every in-mask value is 0 (the slab is then zeroed)."""
    N = v.shape[1]
    ns = (N + 1) // 2
    Q2 = v.shape[3]
    nz = False
    for k in range(N):
        j = ns + (k >> 1) if k & 1 else k >> 1
        src = k if forward else j  # where line index k's value lies in v
        for b in range(Q2):
            if load:
                x = v[p, src, a, b] if m[p, k, a, b] else 0
                t[j, b] = x
                nz = nz or x != 0
            else:
                v[p, j if forward else k, a, b] = t[j, b]
    if load and not nz:
        for k in range(N):
            for b in range(Q2):
                v[p, k, a, b] = 0
    return nz


@njit(nogil=True, cache=True)
def _slabs53(v, m, forward):
    """SA LeGall 5/3 along axis 1 of the int64 4D view ``v`` ``(P, N, Q1, Q2)``; ``m`` its
    pre-pass mask (uint8, same shape)."""
    P, N, Q1, Q2 = v.shape
    t = np.empty((N, Q2), dtype=np.int64)
    for p in range(P):
        for a in range(Q1):
            if not _slab_io(v, m, t, p, a, True, forward):
                continue
            if forward:
                _step53(t, m, p, a, True, False, -1)
                _step53(t, m, p, a, False, True, 1)
                _double53(t, m, p, a, True)
            else:
                _double53(t, m, p, a, False)
                _step53(t, m, p, a, False, True, -1)
                _step53(t, m, p, a, True, False, 1)
            _slab_io(v, m, t, p, a, False, forward)


@njit(nogil=True, cache=True)
def _slabs97(v, m, forward):
    """:func:`_slabs53` for the float64 CDF 9/7."""
    P, N, Q1, Q2 = v.shape
    t = np.empty((N, Q2), dtype=np.float64)
    for p in range(P):
        for a in range(Q1):
            if not _slab_io(v, m, t, p, a, True, forward):
                continue
            if forward:
                _step97(t, m, p, a, True, ALPHA)
                _step97(t, m, p, a, False, BETA)
                _step97(t, m, p, a, True, GAMMA)
                _step97(t, m, p, a, False, DELTA)
                _scale97(t, m, p, a, True)
            else:
                _scale97(t, m, p, a, False)
                _step97(t, m, p, a, False, -DELTA)
                _step97(t, m, p, a, True, -GAMMA)
                _step97(t, m, p, a, False, -BETA)
                _step97(t, m, p, a, True, -ALPHA)
            _slab_io(v, m, t, p, a, False, forward)


# ----------------------------------------------------------------------------- passes


def passes(
    shape: tuple[int, int, int], lv: tuple[int, ...], packet: bool
) -> list[tuple[tuple[int, int, int], int]]:
    """Forward axis passes of a block: ``(region shape, axis)`` in order, the region being the
    leading corner ``[:cz, :cy, :cx]`` (as :func:`wdrcodec.decomposition.forward`)."""
    out: list[tuple[tuple[int, int, int], int]] = []
    plans = [(lv[0], 0, 0), (0, lv[1], lv[2])] if packet and lv[0] > 0 else [tuple(lv)]
    for plan in plans:
        for _level, axes, cur in _dyadic_steps(shape, plan):
            for a in axes:
                if cur[a] >= 2:
                    out.append((tuple(int(c) for c in cur), a))
    return out


def _deinterleave(m: np.ndarray, axis: int) -> np.ndarray:
    """Even indices along ``axis`` first, then odd ones (the Mallat split of a mask)."""
    idx = np.concatenate([np.arange(0, m.shape[axis], 2), np.arange(1, m.shape[axis], 2)])
    return np.take(m, idx, axis=axis)


def pass_masks(mask: np.ndarray, plan: list[tuple[tuple[int, int, int], int]]):
    """The mask of every pass's region before the pass, and the coefficient mask after the
    last (``(Z, Y, X)`` bool): a coefficient is in the object when its sample was."""
    m = np.array(mask, dtype=np.uint8)
    before = []
    for (cz, cy, cx), axis in plan:
        reg = m[:cz, :cy, :cx]
        before.append(reg.copy())
        reg[...] = _deinterleave(reg, axis)
    return before, m.astype(bool)


@njit(nogil=True, cache=True)
def scan_skip(cmask, boxes, out):
    """``out[i] = 1 - cmask[position of scan index i]`` over the layout's scan ``boxes`` (rows
    ``(offset, ny, nx, z0, z1, y0, y1, x0, x1)``; ``cmask`` uint8, the concatenated blocks)."""
    i = 0
    for b in range(boxes.shape[0]):
        off, ny, nx = boxes[b, 0], boxes[b, 1], boxes[b, 2]
        for z in range(boxes[b, 3], boxes[b, 4]):
            for y in range(boxes[b, 5], boxes[b, 6]):
                base = off + (z * ny + y) * nx
                for x in range(boxes[b, 7], boxes[b, 8]):
                    out[i] = 1 - cmask[base + x]
                    i += 1


@njit(nogil=True, cache=True)
def scatter_kept(part, skip, boxes, out):
    """``out[position of scan index i] = part[j]`` for the ``j``-th scan index not skipped
    (``skip[i] == 0``); skipped positions are left as they are (zero)."""
    i = 0
    j = 0
    for b in range(boxes.shape[0]):
        off, ny, nx = boxes[b, 0], boxes[b, 1], boxes[b, 2]
        for z in range(boxes[b, 3], boxes[b, 4]):
            for y in range(boxes[b, 5], boxes[b, 6]):
                base = off + (z * ny + y) * nx
                for x in range(boxes[b, 7], boxes[b, 8]):
                    if skip[i] == 0:
                        out[base + x] = part[j]
                        j += 1
                    i += 1


def coefficient_mask(
    mask: np.ndarray, lv: tuple[int, ...], packet: bool
) -> np.ndarray:
    """Coefficient-domain mask (``(Z, Y, X)`` bool) of a block decomposed with ``lv``."""
    return pass_masks(mask, passes(mask.shape, lv, packet))[1]


def sa_masks(mask: np.ndarray, lv: tuple[int, ...], packet: bool):
    """``(pre-pass masks, coefficient mask)`` of :func:`pass_masks` for a block decomposed
    with ``lv`` (computed once and given to :func:`inverse_sa` and the coder)."""
    return pass_masks(mask, passes(mask.shape, lv, packet))


def _run(region: np.ndarray, m: np.ndarray, axis: int, forward: bool, lossless: bool, pool):
    """One pass: X lines with the line kernels, Z and Y with the slab kernels (rows along X),
    split over ``pool`` along an axis the pass does not lift."""
    if axis == 2:
        v, mm = region, m  # (Z, Y, N): split along Z
        kern = _lines53 if lossless else _lines97
    elif axis == 1:
        v, mm = region[:, :, None, :], m[:, :, None, :]  # (Z, N, 1, X): split along Z
        kern = _slabs53 if lossless else _slabs97
    else:
        # (1, N, Y, X) seen as (Y, N, 1, X) slabs: split along Y
        v = region.transpose(1, 0, 2)[:, :, None, :]
        mm = m.transpose(1, 0, 2)[:, :, None, :]
        kern = _slabs53 if lossless else _slabs97
    n0 = v.shape[0]
    parts = 1 if pool is None or region.size < MIN_SPLIT else min(pool.threads, n0)
    if parts <= 1:
        kern(v, mm, forward)
        return
    from wdrcodec.parallel import splits

    def part(r: tuple[int, int]) -> None:
        kern(v[r[0] : r[1]], mm[r[0] : r[1]], forward)

    pool.map(part, splits(n0, parts))


def forward_sa(
    block: np.ndarray,
    mask: np.ndarray,
    lv: tuple[int, ...],
    lossless: bool,
    packet: bool,
    pool: Pool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """SA decomposition of a ``(Z, Y, X)`` block inside ``mask`` (same shape, bool).

    Returns ``(coefficients, coefficient mask)``: int64 (LeGall 5/3, ``lossless``) or float64
    (CDF 9/7) in the Mallat layout of :func:`wdrcodec.decomposition.forward`, zero outside the
    coefficient mask.
    """
    dt = np.int64 if lossless else np.float64
    out = np.array(block, dtype=dt)
    if mask.shape != out.shape:
        raise ValueError("mask and block shapes differ")
    out[~mask] = 0
    plan = passes(out.shape, lv, packet)
    before, cmask = pass_masks(mask, plan)
    for ((cz, cy, cx), axis), m in zip(plan, before):
        _run(out[:cz, :cy, :cx], m, axis, True, lossless, pool)
    return out, cmask


def inverse_sa(
    coef: np.ndarray,
    mask: np.ndarray,
    lv: tuple[int, ...],
    lossless: bool,
    packet: bool,
    pool: Pool | None = None,
    before: list[np.ndarray] | None = None,
) -> np.ndarray:
    """Inverse of :func:`forward_sa` given the *sample* mask; zero outside it (``coef`` is
    overwritten when it already has the working dtype and is C-contiguous). ``before``: the
    pre-pass masks of :func:`sa_masks`, when already computed."""
    dt = np.int64 if lossless else np.float64
    out = np.ascontiguousarray(coef, dtype=dt)
    plan = passes(out.shape, lv, packet)
    if before is None:
        before, _ = pass_masks(mask, plan)
    for ((cz, cy, cx), axis), m in zip(reversed(plan), reversed(before)):
        _run(out[:cz, :cy, :cx], m, axis, False, lossless, pool)
    return out
