"""Numba kernels for the lifting wavelets of :mod:`wdrcodec.wavelets` (same maths, in place).

Each kernel lifts along axis 1 of a 4D view ``v`` of shape ``(P, N, Q1, Q2)``; the other axes
are batch axes, so one kernel serves every axis of a 3D region (see :func:`lift_region`). Output
layout along the axis: low band (``ceil(N/2)``) then high band (``floor(N/2)``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from wdrcodec.wavelets import ALPHA, BETA, DELTA, GAMMA, HIGH_SCALE, LOW_SCALE


@njit(cache=True)
def _right(i, ns):
    return i + 1 if i + 1 < ns else i


@njit(cache=True)
def _lc(i, nd):
    left = i - 1 if i >= 1 else 0
    cur = i if i < nd else nd - 1
    return left, cur


_F4 = "void(float64[:, :, :, :], float64[:, :])"


@njit(cache=True)
def _any_nz2(v, i0, i1):
    """True when ``v[i0:i1, :]`` holds a nonzero value."""
    for i in range(i0, i1):
        for b in range(v.shape[1]):
            if v[i, b] != 0.0:
                return True
    return False


_I4 = "void(int64[:, :, :, :], int64[:, :])"

# The 4D kernels work on one (N, Q2) slab at a time (fixed p and a), so the working set of a
# lifting step stays in cache even when the lifted axis is the slowest one.


@njit(_F4, cache=True)
def _fwd97(v, tmp):
    P, N, Q1, Q2 = v.shape
    ns = (N + 1) // 2
    nd = N // 2
    for p in range(P):
        for a in range(Q1):
            for i in range(N):
                j = (i >> 1) if (i & 1) == 0 else ns + (i >> 1)
                for b in range(Q2):
                    tmp[j, b] = v[p, i, a, b]
            for coef_d, coef_s in ((ALPHA, BETA), (GAMMA, DELTA)):
                for i in range(nd):
                    r = _right(i, ns)
                    for b in range(Q2):
                        tmp[ns + i, b] += coef_d * (tmp[i, b] + tmp[r, b])
                for i in range(ns):
                    left, cur = _lc(i, nd)
                    for b in range(Q2):
                        tmp[i, b] += coef_s * (tmp[ns + left, b] + tmp[ns + cur, b])
            for i in range(N):
                sc = LOW_SCALE if i < ns else HIGH_SCALE
                for b in range(Q2):
                    v[p, i, a, b] = tmp[i, b] * sc


@njit(_I4, cache=True)
def _fwd53(v, tmp):
    P, N, Q1, Q2 = v.shape
    ns = (N + 1) // 2
    nd = N // 2
    for p in range(P):
        for a in range(Q1):
            for i in range(N):
                j = (i >> 1) if (i & 1) == 0 else ns + (i >> 1)
                for b in range(Q2):
                    tmp[j, b] = v[p, i, a, b]
            for i in range(nd):
                r = _right(i, ns)
                for b in range(Q2):
                    tmp[ns + i, b] -= (tmp[i, b] + tmp[r, b]) >> 1
            for i in range(ns):
                left, cur = _lc(i, nd)
                for b in range(Q2):
                    tmp[i, b] += (tmp[ns + left, b] + tmp[ns + cur, b] + 2) >> 2
            for i in range(N):
                for b in range(Q2):
                    v[p, i, a, b] = tmp[i, b]


@njit(_I4, cache=True)
def _inv53(v, tmp):
    P, N, Q1, Q2 = v.shape
    ns = (N + 1) // 2
    nd = N // 2
    for p in range(P):
        for a in range(Q1):
            for i in range(N):
                for b in range(Q2):
                    tmp[i, b] = v[p, i, a, b]
            for i in range(ns):
                left, cur = _lc(i, nd)
                for b in range(Q2):
                    tmp[i, b] -= (tmp[ns + left, b] + tmp[ns + cur, b] + 2) >> 2
            for i in range(nd):
                r = _right(i, ns)
                for b in range(Q2):
                    tmp[ns + i, b] += (tmp[i, b] + tmp[r, b]) >> 1
            for i in range(N):
                j = (i >> 1) if (i & 1) == 0 else ns + (i >> 1)
                for b in range(Q2):
                    v[p, i, a, b] = tmp[j, b]


_F3 = "void(float64[:, :, :], float64[:])"
_I3 = "void(int64[:, :, :], int64[:])"


@njit(_F3, cache=True)
def _fwd97_lines(v, t):
    """CDF 9/7 along the last (contiguous) axis of ``v`` ``(P, Q, N)``, one line at a time."""
    P, Q, N = v.shape
    ns = (N + 1) // 2
    nd = N // 2
    for p in range(P):
        for q in range(Q):
            for i in range(ns):
                t[i] = v[p, q, 2 * i]
            for i in range(nd):
                t[ns + i] = v[p, q, 2 * i + 1]
            for coef_d, coef_s in ((ALPHA, BETA), (GAMMA, DELTA)):
                for i in range(nd):
                    t[ns + i] += coef_d * (t[i] + t[_right(i, ns)])
                for i in range(ns):
                    left, cur = _lc(i, nd)
                    t[i] += coef_s * (t[ns + left] + t[ns + cur])
            for i in range(ns):
                v[p, q, i] = t[i] * LOW_SCALE
            for i in range(ns, N):
                v[p, q, i] = t[i] * HIGH_SCALE


@njit(cache=True)
def _inv97_line(v, t):
    """Inverse CDF 9/7 of the 1D view ``v`` (``t``: scratch of the same length)."""
    N = v.shape[0]
    ns = (N + 1) // 2
    nd = N // 2
    # zero skipping, as in _inv97: an all-zero line stays zero, a zero high band makes
    # the first low-band update a no-op
    hi_nz = False
    for i in range(ns, N):
        if v[i] != 0.0:
            hi_nz = True
            break
    if not hi_nz:
        lo_nz = False
        for i in range(ns):
            if v[i] != 0.0:
                lo_nz = True
                break
        if not lo_nz:
            return
    for i in range(ns):
        t[i] = v[i] / LOW_SCALE
    for i in range(ns, N):
        t[i] = v[i] / HIGH_SCALE
    for step in range(2):
        coef_d = GAMMA if step == 0 else ALPHA
        coef_s = DELTA if step == 0 else BETA
        if step > 0 or hi_nz:
            # the boundary samples of _lc apart, so the interior loop vectorises
            t[0] -= coef_s * (t[ns] + t[ns])
            for i in range(1, nd):
                t[i] -= coef_s * (t[ns + i - 1] + t[ns + i])
            if ns > nd:
                t[nd] -= coef_s * (t[ns + nd - 1] + t[ns + nd - 1])
        last = nd if ns > nd else nd - 1  # _right(i, ns) == i + 1 below ``last``
        for i in range(last):
            t[ns + i] -= coef_d * (t[i] + t[i + 1])
        if last < nd:
            t[ns + last] -= coef_d * (t[last] + t[last])
    for i in range(ns):
        v[2 * i] = t[i]
    for i in range(nd):
        v[2 * i + 1] = t[ns + i]


@njit(_F3, cache=True)
def _inv97_lines(v, t):
    P, Q, N = v.shape
    for p in range(P):
        for q in range(Q):
            _inv97_line(v[p, q, :], t)


@njit(cache=True)
def _inv97_slab(v, tmp):
    """Inverse CDF 9/7 along axis 0 of the 2D view ``v`` ``(N, Q2)`` (``tmp``: ``(N, Q2)``)."""
    N, Q2 = v.shape
    ns = (N + 1) // 2
    nd = N // 2
    # Zero skipping (low rates: whole detail subbands decode to zero). A slab that is
    # all zero stays zero; a zero high band leaves the first low-band update a no-op.
    # Both skips give the same values as the full lifting (up to the sign of zeros).
    hi_nz = _any_nz2(v, ns, N)
    if not hi_nz and not _any_nz2(v, 0, ns):
        return
    # The load (with the band scaling) and the four lifting steps in one pipelined
    # sweep: at k, s1[k], d1[k-1], s2[k-1], d2[k-2] (each operand is final at that
    # point), so every value gets exactly the operations of the step-by-step form.
    for k in range(ns + 2):
        if k < ns:
            if k == 0:  # s1[0] reads d[0]
                for b in range(Q2):
                    tmp[ns, b] = v[ns, b] * (1.0 / HIGH_SCALE)
            elif k < nd:
                for b in range(Q2):
                    tmp[ns + k, b] = v[ns + k, b] * (1.0 / HIGH_SCALE)
            for b in range(Q2):
                tmp[k, b] = v[k, b] * (1.0 / LOW_SCALE)
            if hi_nz:
                left, cur = _lc(k, nd)
                for b in range(Q2):
                    tmp[k, b] -= DELTA * (tmp[ns + left, b] + tmp[ns + cur, b])
        j = k - 1
        if 0 <= j < nd:
            r = _right(j, ns)
            for b in range(Q2):
                tmp[ns + j, b] -= GAMMA * (tmp[j, b] + tmp[r, b])
        if 0 <= j < ns:
            left, cur = _lc(j, nd)
            for b in range(Q2):
                tmp[j, b] -= BETA * (tmp[ns + left, b] + tmp[ns + cur, b])
        j = k - 2
        if 0 <= j < nd:
            r = _right(j, ns)
            for b in range(Q2):
                tmp[ns + j, b] -= ALPHA * (tmp[j, b] + tmp[r, b])
    for i in range(N):
        j = (i >> 1) if (i & 1) == 0 else ns + (i >> 1)
        for b in range(Q2):
            v[i, b] = tmp[j, b]


@njit(_F4, cache=True)
def _inv97(v, tmp):
    P, N, Q1, Q2 = v.shape
    for p in range(P):
        for a in range(Q1):
            _inv97_slab(v[p, :, a, :], tmp)


@njit("void(float64[:, :, :], float64[:], float64[:, :])", cache=True)
def _inv97_yx(v, t, tmp):
    """Inverse 9/7 along X then Y of a 3D region ``(Z, Y, X)``, one z-slice at a time (the
    slice stays in cache between the two passes; same operations as two separate passes)."""
    P, Q, N = v.shape
    for p in range(P):
        if N >= 2:
            for q in range(Q):
                _inv97_line(v[p, q, :], t)
        if Q >= 2:
            _inv97_slab(v[p], tmp)


@njit(_I3, cache=True)
def _fwd53_lines(v, t):
    P, Q, N = v.shape
    ns = (N + 1) // 2
    nd = N // 2
    for p in range(P):
        for q in range(Q):
            for i in range(ns):
                t[i] = v[p, q, 2 * i]
            for i in range(nd):
                t[ns + i] = v[p, q, 2 * i + 1]
            for i in range(nd):
                t[ns + i] -= (t[i] + t[_right(i, ns)]) >> 1
            for i in range(ns):
                left, cur = _lc(i, nd)
                t[i] += (t[ns + left] + t[ns + cur] + 2) >> 2
            for i in range(N):
                v[p, q, i] = t[i]


@njit(_I3, cache=True)
def _inv53_lines(v, t):
    P, Q, N = v.shape
    ns = (N + 1) // 2
    nd = N // 2
    for p in range(P):
        for q in range(Q):
            for i in range(N):
                t[i] = v[p, q, i]
            for i in range(ns):
                left, cur = _lc(i, nd)
                t[i] -= (t[ns + left] + t[ns + cur] + 2) >> 2
            for i in range(nd):
                t[ns + i] += (t[i] + t[_right(i, ns)]) >> 1
            for i in range(ns):
                v[p, q, 2 * i] = t[i]
            for i in range(nd):
                v[p, q, 2 * i + 1] = t[ns + i]


_LINES = {
    (False, True): _fwd97_lines,
    (False, False): _inv97_lines,
    (True, True): _fwd53_lines,
    (True, False): _inv53_lines,
}
_KERNELS = {
    (False, True): _fwd97,
    (False, False): _inv97,
    (True, True): _fwd53,
    (True, False): _inv53,
}


def lift_region(region: np.ndarray, axis: int, lossless: bool, forward: bool) -> None:
    """Lift a 3D ``region`` (a view, float64 or int64) along ``axis`` in place."""
    if region.shape[axis] < 2:
        return
    if axis == 2:  # contiguous lines
        _LINES[(lossless, forward)](region, np.empty(region.shape[2], dtype=region.dtype))
        return
    v = region[None] if axis == 0 else region[:, :, None, :]
    tmp = np.empty((v.shape[1], v.shape[3]), dtype=region.dtype)
    _KERNELS[(lossless, forward)](v, tmp)


def inverse_yx(region: np.ndarray) -> None:
    """Inverse CDF 9/7 of a 3D float64 ``region`` along axis 2 then axis 1, in place (the same
    values as ``lift_region`` along 2 then 1, with one pass over memory instead of two)."""
    _inv97_yx(
        region,
        np.empty(region.shape[2], dtype=np.float64),
        np.empty((region.shape[1], region.shape[2]), dtype=np.float64),
    )
