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
def _segment_end(m, p, q, i, N):
    e = i + 1
    while e < N and m[p, q, e]:
        e += 1
    return e


@njit(nogil=True, cache=True)
def _bands(s, e):
    """Low-band ``[i0, i1)`` and high-band ``[j0, j1)`` positions of segment ``[s, e)``."""
    i0 = (s + 1) >> 1
    i1 = ((e - 1) >> 1) + 1
    j0 = s >> 1
    j1 = ((e - 2) >> 1) + 1 if e >= 2 else 0
    return i0, i1, j0, j1


@njit(nogil=True, cache=True)
def _predict97(lo, hi, s, e, c):
    """``hi[j] += c * (L + R)`` over the segment's odd samples (Mallat halves ``lo``/``hi``),
    the mirrored neighbour at an end, the interior in one tight loop."""
    i0, i1, j0, j1 = _bands(s, e)
    a, b = j0, j1
    if s & 1:  # first odd sample is the segment start: left neighbour mirrored
        hi[a] += c * (lo[a + 1] + lo[a + 1])
        a += 1
    if (e - 1) & 1:  # last odd sample is the segment end
        hi[b - 1] += c * (lo[b - 1] + lo[b - 1])
        b -= 1
    for j in range(a, b):
        hi[j] += c * (lo[j] + lo[j + 1])


@njit(nogil=True, cache=True)
def _update97(lo, hi, s, e, c):
    """``lo[i] += c * (L + R)`` over the segment's even samples."""
    i0, i1, j0, j1 = _bands(s, e)
    a, b = i0, i1
    if not s & 1:
        lo[a] += c * (hi[a] + hi[a])
        a += 1
    if not (e - 1) & 1:
        lo[b - 1] += c * (hi[b - 2] + hi[b - 2])
        b -= 1
    for i in range(a, b):
        lo[i] += c * (hi[i - 1] + hi[i])


@njit(nogil=True, cache=True)
def _predict53(lo, hi, s, e, sign):
    """``hi[j] += sign * floor((L + R) / 2)`` over the segment's odd samples."""
    i0, i1, j0, j1 = _bands(s, e)
    a, b = j0, j1
    if s & 1:
        hi[a] += sign * ((lo[a + 1] + lo[a + 1]) >> 1)
        a += 1
    if (e - 1) & 1:
        hi[b - 1] += sign * ((lo[b - 1] + lo[b - 1]) >> 1)
        b -= 1
    for j in range(a, b):
        hi[j] += sign * ((lo[j] + lo[j + 1]) >> 1)


@njit(nogil=True, cache=True)
def _update53(lo, hi, s, e, sign):
    """``lo[i] += sign * floor((L + R + 2) / 4)`` over the segment's even samples."""
    i0, i1, j0, j1 = _bands(s, e)
    a, b = i0, i1
    if not s & 1:
        lo[a] += sign * ((hi[a] + hi[a] + 2) >> 2)
        a += 1
    if not (e - 1) & 1:
        lo[b - 1] += sign * ((hi[b - 2] + hi[b - 2] + 2) >> 2)
        b -= 1
    for i in range(a, b):
        lo[i] += sign * ((hi[i - 1] + hi[i] + 2) >> 2)


@njit(nogil=True, cache=True)
def _seg97(lo, hi, s, e, forward):
    """SA CDF 9/7 of segment ``[s, e)`` in the Mallat halves of one line."""
    if e - s == 1:
        if s & 1:
            hi[s >> 1] = hi[s >> 1] * SQRT2 if forward else hi[s >> 1] / SQRT2
        else:
            lo[s >> 1] = lo[s >> 1] * SQRT2 if forward else lo[s >> 1] / SQRT2
        return
    i0, i1, j0, j1 = _bands(s, e)
    if forward:
        _predict97(lo, hi, s, e, ALPHA)
        _update97(lo, hi, s, e, BETA)
        _predict97(lo, hi, s, e, GAMMA)
        _update97(lo, hi, s, e, DELTA)
        for i in range(i0, i1):
            lo[i] *= LOW_SCALE
        for j in range(j0, j1):
            hi[j] *= HIGH_SCALE
    else:
        for i in range(i0, i1):
            lo[i] /= LOW_SCALE
        for j in range(j0, j1):
            hi[j] /= HIGH_SCALE
        _update97(lo, hi, s, e, -DELTA)
        _predict97(lo, hi, s, e, -GAMMA)
        _update97(lo, hi, s, e, -BETA)
        _predict97(lo, hi, s, e, -ALPHA)


@njit(nogil=True, cache=True)
def _seg53(lo, hi, s, e, forward):
    """SA LeGall 5/3 of segment ``[s, e)`` in the Mallat halves of one line."""
    if e - s == 1:
        if s & 1:
            hi[s >> 1] = 2 * hi[s >> 1] if forward else hi[s >> 1] >> 1
        return
    if forward:
        _predict53(lo, hi, s, e, -1)
        _update53(lo, hi, s, e, 1)
    else:
        _update53(lo, hi, s, e, -1)
        _predict53(lo, hi, s, e, 1)


@njit(nogil=True, cache=True)
def _line_io(v, m, p, q, t, load, forward):
    """Line ``(p, q)`` of ``v`` to/from the scratch ``t`` in Mallat order (low half, high half),
    zero outside the mask; a load returns False when every in-mask value is 0 (line zeroed)."""
    N = v.shape[2]
    ns = (N + 1) // 2
    if load:
        nz = False
        for i in range(N):
            j = (i >> 1) if (i & 1) == 0 else ns + (i >> 1)
            x = v[p, q, i if forward else j] if m[p, q, i] else 0
            t[j] = x
            nz = nz or x != 0
        if not nz:
            for i in range(N):
                v[p, q, i] = 0
        return nz
    if forward:
        for i in range(N):
            v[p, q, i] = t[i]
    else:
        for i in range(N):
            v[p, q, i] = t[(i >> 1) if (i & 1) == 0 else ns + (i >> 1)]
    return True


@njit(nogil=True, cache=True)
def _lines53(v, m, forward):
    """SA LeGall 5/3 of every line of the int64 ``v`` ``(P, Q, N)`` along its last axis (any
    layout), in place; ``m`` (uint8, same shape) is the mask of the samples before a forward
    pass (after an inverse one). Out-of-mask outputs are zero."""
    P, Q, N = v.shape
    ns = (N + 1) // 2
    t = np.empty(N, dtype=np.int64)
    lo = t[:ns]
    hi = t[ns:]
    for p in range(P):
        for q in range(Q):
            if not _line_io(v, m, p, q, t, True, forward):
                continue
            i = 0
            while i < N:
                if not m[p, q, i]:
                    i += 1
                    continue
                e = _segment_end(m, p, q, i, N)
                _seg53(lo, hi, i, e, forward)
                i = e
            _line_io(v, m, p, q, t, False, forward)


@njit(nogil=True, cache=True)
def _lines97(v, m, forward):
    """:func:`_lines53` for the float64 CDF 9/7."""
    P, Q, N = v.shape
    ns = (N + 1) // 2
    t = np.empty(N, dtype=np.float64)
    lo = t[:ns]
    hi = t[ns:]
    for p in range(P):
        for q in range(Q):
            if not _line_io(v, m, p, q, t, True, forward):
                continue
            i = 0
            while i < N:
                if not m[p, q, i]:
                    i += 1
                    continue
                e = _segment_end(m, p, q, i, N)
                _seg97(lo, hi, i, e, forward)
                i = e
            _line_io(v, m, p, q, t, False, forward)


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
def _codes(m, p, a, code):
    """Segment role of every sample of slab ``(p, :, a, :)`` (int8 ``(N, Q2)``): 0 outside the
    mask, 1 both neighbours in the mask, 2 only the left one (a segment end: the left one
    mirrored), 3 only the right one (a segment start), 4 a one-sample segment."""
    N = m.shape[1]
    for k in range(N):
        for b in range(m.shape[3]):
            if m[p, k, a, b] == 0:
                code[k, b] = 0
                continue
            hl, hr = _sides(m, p, k, a, b, N)
            code[k, b] = 1 if hl and hr else (2 if hl else (3 if hr else 4))


@njit(nogil=True, cache=True)
def _step53(t, code, odd, update, sign):
    """One 5/3 lifting step over the ``odd`` (or even) rows of the Mallat-ordered slab ``t``:
    ``t[k] += sign * floor((L + R [+ 2]) / (2 | 4))`` for every lifted sample (:func:`_codes`)."""
    N = t.shape[0]
    ns = (N + 1) // 2
    for k in range(1 if odd else 0, N, 2):
        jk, jl, jr = _rows(N, ns, k, odd)
        ck = code[k]
        for b in range(t.shape[1]):
            c = ck[b]
            if c == 0 or c == 4:
                continue
            left = t[jl, b] if c != 3 else t[jr, b]
            right = t[jr, b] if c != 2 else t[jl, b]
            if update:
                t[jk, b] += sign * ((left + right + 2) >> 2)
            else:
                t[jk, b] += sign * ((left + right) >> 1)


@njit(nogil=True, cache=True)
def _step97(t, code, odd, coef):
    """One 9/7 lifting step: ``t[k] += coef * (L + R)`` (as :func:`_step53`)."""
    N = t.shape[0]
    ns = (N + 1) // 2
    for k in range(1 if odd else 0, N, 2):
        jk, jl, jr = _rows(N, ns, k, odd)
        ck = code[k]
        dst = t[jk]
        tl = t[jl]
        tr = t[jr]
        for b in range(t.shape[1]):
            c = ck[b]
            if c == 0 or c == 4:
                continue
            left = tl[b] if c != 3 else tr[b]
            right = tr[b] if c != 2 else tl[b]
            dst[b] += coef * (left + right)


@njit(nogil=True, cache=True)
def _scale97(t, code, forward):
    """Band scaling of the 9/7 (``sqrt(2)`` for one-sample segments), or its inverse."""
    N = t.shape[0]
    ns = (N + 1) // 2
    for k in range(N):
        odd = (k & 1) == 1
        jk = ns + (k >> 1) if odd else k >> 1
        sc = HIGH_SCALE if odd else LOW_SCALE
        ck = code[k]
        for b in range(t.shape[1]):
            c = ck[b]
            if c == 0:
                continue
            f = SQRT2 if c == 4 else sc
            if forward:
                t[jk, b] *= f
            else:
                t[jk, b] /= f


@njit(nogil=True, cache=True)
def _double53(t, code, forward):
    """One-sample segments at odd indices: ``2 x`` (forward) / ``y >> 1`` (inverse)."""
    N = t.shape[0]
    ns = (N + 1) // 2
    for k in range(1, N, 2):
        jk = ns + (k >> 1)
        for b in range(t.shape[1]):
            if code[k, b] == 4:
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
    code = np.empty((N, Q2), dtype=np.int8)
    for p in range(P):
        for a in range(Q1):
            if not _slab_io(v, m, t, p, a, True, forward):
                continue
            _codes(m, p, a, code)
            if forward:
                _step53(t, code, True, False, -1)
                _step53(t, code, False, True, 1)
                _double53(t, code, True)
            else:
                _double53(t, code, False)
                _step53(t, code, False, True, -1)
                _step53(t, code, True, False, 1)
            _slab_io(v, m, t, p, a, False, forward)


@njit(nogil=True, cache=True)
def _slabs97(v, m, forward):
    """:func:`_slabs53` for the float64 CDF 9/7."""
    P, N, Q1, Q2 = v.shape
    t = np.empty((N, Q2), dtype=np.float64)
    code = np.empty((N, Q2), dtype=np.int8)
    for p in range(P):
        for a in range(Q1):
            if not _slab_io(v, m, t, p, a, True, forward):
                continue
            _codes(m, p, a, code)
            if forward:
                _step97(t, code, True, ALPHA)
                _step97(t, code, False, BETA)
                _step97(t, code, True, GAMMA)
                _step97(t, code, False, DELTA)
                _scale97(t, code, True)
            else:
                _scale97(t, code, False)
                _step97(t, code, False, -DELTA)
                _step97(t, code, True, -GAMMA)
                _step97(t, code, False, -BETA)
                _step97(t, code, True, -ALPHA)
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
