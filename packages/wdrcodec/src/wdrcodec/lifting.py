"""Numba kernels for the lifting wavelets of :mod:`wdrcodec.wavelets` (same maths, in place).

Each kernel lifts along axis 1 of a 4D view ``v`` of shape ``(P, N, Q1, Q2)``; the other axes
are batch axes, so one kernel serves every axis of a 3D region (see :func:`lift_region`). Output
layout along the axis: low band (``ceil(N/2)``) then high band (``floor(N/2)``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from wdrcodec.wavelets import ALPHA, BETA, DELTA, GAMMA, HIGH_SCALE, LOW_SCALE


@njit(nogil=True, cache=True)
def _right(i, ns):
    return i + 1 if i + 1 < ns else i


@njit(nogil=True, cache=True)
def _lc(i, nd):
    left = i - 1 if i >= 1 else 0
    cur = i if i < nd else nd - 1
    return left, cur


_F4 = "void(float64[:, :, :, :], float64[:, :])"


@njit(nogil=True, cache=True)
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


@njit(_F4, nogil=True, cache=True)
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


@njit(_I4, nogil=True, cache=True)
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


@njit(_I4, nogil=True, cache=True)
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


@njit(_F3, nogil=True, cache=True)
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


@njit(nogil=True, cache=True)
def _inv97_line(v, t):
    """Inverse CDF 9/7 of the 1D view ``v`` (``t``: scratch of the same length).

    The low and high halves of ``t`` are separate views (``lo``, ``hi``) so that the compiler
    sees that a lifting step's output does not alias its inputs and vectorises it (3.5x
    faster than indexing one array at two offsets); the same operations in the same order.
    """
    N = v.shape[0]
    ns = (N + 1) // 2
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
    _inv97_line_hi(v, t, hi_nz)


@njit(nogil=True, cache=True)
def _inv97_line_hi(v, t, hi_nz):
    """:func:`_inv97_line` of a line with a nonzero value, told whether its high band holds
    one (``hi_nz``: False skips the first low-band update, a no-op then)."""
    N = v.shape[0]
    ns = (N + 1) // 2
    nd = N // 2
    lo = t[:ns]
    hi = t[ns:N]
    for i in range(ns):
        lo[i] = v[i] / LOW_SCALE
    for i in range(nd):
        hi[i] = v[ns + i] / HIGH_SCALE
    for step in range(2):
        coef_d = GAMMA if step == 0 else ALPHA
        coef_s = DELTA if step == 0 else BETA
        if step > 0 or hi_nz:
            # the boundary samples of _lc apart, so the interior loop vectorises
            lo[0] -= coef_s * (hi[0] + hi[0])
            for i in range(1, nd):
                lo[i] -= coef_s * (hi[i - 1] + hi[i])
            if ns > nd:
                lo[nd] -= coef_s * (hi[nd - 1] + hi[nd - 1])
        last = nd if ns > nd else nd - 1  # _right(i, ns) == i + 1 below ``last``
        for i in range(last):
            hi[i] -= coef_d * (lo[i] + lo[i + 1])
        if last < nd:
            hi[last] -= coef_d * (lo[last] + lo[last])
    for i in range(nd):
        v[2 * i] = lo[i]
        v[2 * i + 1] = hi[i]
    if ns > nd:
        v[2 * nd] = lo[nd]


@njit(nogil=True, cache=True)
def _inv97_lines(v, t):
    """Inverse CDF 9/7 along the last axis of ``v`` ``(P, Q, N)``. No explicit signature, so a
    C-contiguous ``v`` gets its own compilation with contiguous (vectorised) rows."""
    P, Q, N = v.shape
    for p in range(P):
        for q in range(Q):
            _inv97_line(v[p, q, :], t)


@njit(nogil=True, cache=True, inline="always")
def _lift_rows(dst, coef, a, b):
    """``dst -= coef * (a + b)`` on 1D rows (separate views: vectorised)."""
    for i in range(dst.shape[0]):
        dst[i] -= coef * (a[i] + b[i])


@njit(nogil=True, cache=True, inline="always")
def _scale_rows(dst, src, factor):
    """``dst = src * factor`` on 1D rows."""
    for i in range(dst.shape[0]):
        dst[i] = src[i] * factor


@njit(nogil=True, cache=True, inline="always")
def _copy_rows(dst, src):
    """``dst = src`` on 1D rows."""
    for i in range(dst.shape[0]):
        dst[i] = src[i]


@njit(nogil=True, cache=True)
def _inv97_slab(v, tmp):
    """Inverse CDF 9/7 along axis 0 of the 2D view ``v`` ``(N, Q2)`` (``tmp``: ``(N, Q2)``,
    its rows contiguous)."""
    N, Q2 = v.shape
    ns = (N + 1) // 2
    nd = N // 2
    # Zero skipping (low rates: whole detail subbands decode to zero). A slab that is
    # all zero stays zero; a zero high band leaves the first low-band update a no-op.
    # Both skips give the same values as the full lifting (up to the sign of zeros).
    hi_nz = _any_nz2(v, ns, N)
    if not hi_nz and not _any_nz2(v, 0, ns):
        return
    lo = tmp[:ns]
    hi = tmp[ns:N]
    # The load (with the band scaling) and the four lifting steps in one pipelined
    # sweep: at k, s1[k], d1[k-1], s2[k-1], d2[k-2] (each operand is final at that
    # point), so every value gets exactly the operations of the step-by-step form.
    # Rows are separate 1D views, so every inner loop vectorises.
    for k in range(ns + 2):
        if k < ns:
            if k < nd:
                _scale_rows(hi[k], v[ns + k], 1.0 / HIGH_SCALE)
            _scale_rows(lo[k], v[k], 1.0 / LOW_SCALE)
            if hi_nz:
                left, cur = _lc(k, nd)
                _lift_rows(lo[k], DELTA, hi[left], hi[cur])
        j = k - 1
        if 0 <= j < nd:
            _lift_rows(hi[j], GAMMA, lo[j], lo[_right(j, ns)])
        if 0 <= j < ns:
            left, cur = _lc(j, nd)
            _lift_rows(lo[j], BETA, hi[left], hi[cur])
        j = k - 2
        if 0 <= j < nd:
            _lift_rows(hi[j], ALPHA, lo[j], lo[_right(j, ns)])
    for i in range(nd):
        _copy_rows(v[2 * i], lo[i])
        _copy_rows(v[2 * i + 1], hi[i])
    if ns > nd:
        _copy_rows(v[2 * nd], lo[nd])


@njit(_F4, nogil=True, cache=True)
def _inv97(v, tmp):
    P, N, Q1, Q2 = v.shape
    for p in range(P):
        for a in range(Q1):
            _inv97_slab(v[p, :, a, :], tmp)


@njit(nogil=True, cache=True)
def _inv97_yx(v, t, tmp):
    """Inverse 9/7 along X then Y of a 3D region ``(Z, Y, X)``, one z-slice at a time (the
    slice stays in cache between the two passes; same operations as two separate passes).
    Compiled per layout: a C-contiguous region gets contiguous (vectorised) rows."""
    P, Q, N = v.shape
    for p in range(P):
        if N >= 2:
            for q in range(Q):
                _inv97_line(v[p, q, :], t)
        if Q >= 2:
            _inv97_slab(v[p], tmp)


# ----------------------------------------------------------------------------- inverse 9/7 on
# a box of a C-contiguous array. The kernels above take the region as a view of any layout
# ('A'), whose rows numba cannot prove contiguous, so their loops do not vectorise (2x slower).
# These take a C-contiguous parent and the box ``[:n0, :n1, :n2]``; every row they touch,
# ``v3[p, q, :n2]``, is typed contiguous. Same operations in the same order as the kernels above.


@njit(nogil=True, cache=True)
def _any_nz_rows(m2, off, i0, i1, nq):
    """True when a row ``m2[k, off:off + nq]``, ``i0 <= k < i1``, holds a nonzero value (or
    -0.0). A whole row's bits are OR-ed at once (vectorised), the exit is between rows."""
    u2 = m2.view(np.uint64)
    for k in range(i0, i1):
        if _chunk_nz(u2[k], off, off + nq):
            return True
    return False


@njit(nogil=True, cache=True)
def _inv97_rows(m2, off, N, nq, scratch):
    """:func:`_inv97_slab` of the slab ``m2[:N, off:off + nq]`` (``m2`` C-contiguous 2D, so
    every row ``m2[k, off:off + nq]`` is a contiguous view); ``scratch``: at least ``N * nq``
    values."""
    ns = (N + 1) // 2
    nd = N // 2
    hi_nz = _any_nz_rows(m2, off, ns, N, nq)
    if not hi_nz and not _any_nz_rows(m2, off, 0, ns, nq):
        return
    tmp = scratch[: N * nq].reshape((N, nq))
    lo = tmp[:ns]
    hi = tmp[ns:N]
    # The low half is loaded first, so that the outputs can be written back during the sweep
    # (output rows 2j, 2j + 1 overwrite low-half input rows, never a high-half row still to
    # be read: 2j + 1 = 2k - 3 < ns + k), while the rows are still in L1.
    for k in range(ns):
        _scale_rows(lo[k], m2[k, off : off + nq], 1.0 / LOW_SCALE)
    for k in range(ns + 2):
        if k < ns:
            if k < nd:
                _scale_rows(hi[k], m2[ns + k, off : off + nq], 1.0 / HIGH_SCALE)
            if hi_nz:
                left, cur = _lc(k, nd)
                _lift_rows(lo[k], DELTA, hi[left], hi[cur])
        j = k - 1
        if 0 <= j < nd:
            _lift_rows(hi[j], GAMMA, lo[j], lo[_right(j, ns)])
        if 0 <= j < ns:
            left, cur = _lc(j, nd)
            _lift_rows(lo[j], BETA, hi[left], hi[cur])
        j = k - 2
        if 0 <= j < nd:
            _lift_rows(hi[j], ALPHA, lo[j], lo[_right(j, ns)])
            # lo[j] and hi[j] are final
            _copy_rows(m2[2 * j, off : off + nq], lo[j])
            _copy_rows(m2[2 * j + 1, off : off + nq], hi[j])
        elif j == nd and ns > nd:
            _copy_rows(m2[2 * nd, off : off + nq], lo[nd])


Z_GROUP = 4  # up to 4 whole X rows lifted together along Z (longer contiguous reads)
Z_SCRATCH = 1 << 16  # values: the Z pass' scratch is kept within ~512 KiB (L2) when grouping


@njit(nogil=True, cache=True)
def inv97_box_lines(v3, n0, n1, n2, t):
    """Inverse 9/7 along axis 2 of the box ``v3[:n0, :n1, :n2]`` (``v3`` C-contiguous)."""
    for p in range(n0):
        for q in range(n1):
            _inv97_line(v3[p, q, :n2], t)


@njit(nogil=True, cache=True)
def inv97_box_axis(v3, axis, n0, n1, n2, scratch):
    """Inverse 9/7 along ``axis`` (0 or 1) of the box ``v3[:n0, :n1, :n2]``; ``scratch``: 1D,
    at least ``n_axis * n2 * Z_GROUP`` values. Along Z, when the box spans whole rows of
    ``v3``, ``Z_GROUP`` consecutive rows are lifted as one (longer contiguous reads; every
    value gets the same operations)."""
    if axis == 1:
        for p in range(n0):
            _inv97_rows(v3[p], 0, n1, n2, scratch)
        return
    X = v3.shape[2]
    m2 = v3.reshape((v3.shape[0], v3.shape[1] * X))
    group = max(1, min(Z_GROUP, Z_SCRATCH // max(1, n0 * X))) if n2 == X else 1
    for a in range(0, n1, group):
        rows = min(group, n1 - a)
        _inv97_rows(m2, a * X, n0, (rows - 1) * X + n2, scratch)


@njit(nogil=True, cache=True, inline="always")
def _final_rows(dst, src, mean, vmin, vmax):
    """``dst = clip(rint(src + mean), vmin, vmax)`` cast to ``dst``'s dtype, on 1D rows (the
    operations of :func:`wdrcodec.coder.finalize_to`, value for value)."""
    for i in range(dst.shape[0]):
        x = np.rint(src[i] + mean)
        if x < vmin:
            x = vmin
        elif x > vmax:
            x = vmax
        dst[i] = x


@njit(nogil=True, cache=True)
def _inv97_rows_final(m2, off, N, nq, scratch, o2, mean, vmin, vmax):
    """:func:`_inv97_rows` of the slab ``m2[:N, off:off + nq]`` with the decoder's finalize
    fused in: the lifted rows go to ``o2[:, off:off + nq]`` (an integer dtype, same 2D shape as
    ``m2``) as ``clip(rint(x + mean), vmin, vmax)``, never back to ``m2`` (left partly
    overwritten by nothing: ``m2`` is only read). Same float operations in the same order."""
    ns = (N + 1) // 2
    nd = N // 2
    hi_nz = _any_nz_rows(m2, off, ns, N, nq)
    if not hi_nz and not _any_nz_rows(m2, off, 0, ns, nq):
        for k in range(N):  # all +0.0: the unfused path finalizes them as they are
            _final_rows(o2[k, off : off + nq], m2[k, off : off + nq], mean, vmin, vmax)
        return
    tmp = scratch[: N * nq].reshape((N, nq))
    lo = tmp[:ns]
    hi = tmp[ns:N]
    for k in range(ns):
        _scale_rows(lo[k], m2[k, off : off + nq], 1.0 / LOW_SCALE)
    for k in range(ns + 2):
        if k < ns:
            if k < nd:
                _scale_rows(hi[k], m2[ns + k, off : off + nq], 1.0 / HIGH_SCALE)
            if hi_nz:
                left, cur = _lc(k, nd)
                _lift_rows(lo[k], DELTA, hi[left], hi[cur])
        j = k - 1
        if 0 <= j < nd:
            _lift_rows(hi[j], GAMMA, lo[j], lo[_right(j, ns)])
        if 0 <= j < ns:
            left, cur = _lc(j, nd)
            _lift_rows(lo[j], BETA, hi[left], hi[cur])
        j = k - 2
        if 0 <= j < nd:
            _lift_rows(hi[j], ALPHA, lo[j], lo[_right(j, ns)])
            _final_rows(o2[2 * j, off : off + nq], lo[j], mean, vmin, vmax)
            _final_rows(o2[2 * j + 1, off : off + nq], hi[j], mean, vmin, vmax)
        elif j == nd and ns > nd:
            _final_rows(o2[2 * nd, off : off + nq], lo[nd], mean, vmin, vmax)


@njit(nogil=True, cache=True)
def inv97_z_final(v3, o3, y0, y1, scratch, mean, vmin, vmax):
    """The decoder's last pass fused with its finalize: inverse 9/7 along axis 0 of the rows
    ``y0 <= y < y1`` of ``v3`` ``(Z, Y, X)`` (C-contiguous float64, only read), written to
    ``o3`` (C-contiguous, same shape, an integer dtype) as ``clip(rint(x + mean), vmin,
    vmax)``: the values of :func:`inv97_box_axis` (axis 0) then
    :func:`wdrcodec.coder.finalize_to`, bit for bit. ``scratch``: 1D, at least
    ``Z * X * Z_GROUP`` values; rows are grouped as in :func:`inv97_box_axis`."""
    n0, _n1, X = v3.shape
    m2 = v3.reshape((n0, v3.shape[1] * X))
    o2 = o3.reshape((n0, v3.shape[1] * X))
    group = max(1, min(Z_GROUP, Z_SCRATCH // max(1, n0 * X)))
    for a in range(y0, y1, group):
        rows = min(group, y1 - a)
        _inv97_rows_final(m2, a * X, n0, rows * X, scratch, o2, mean, vmin, vmax)


@njit(nogil=True, cache=True)
def inv97_box_yx_plain(v3, n0, n1, n2, t, tmp):
    """:func:`inv97_box_yx` without the sparse windows (every nonzero line and slab lifted
    whole): the reference the windowed path is tested against, bit for bit."""
    for p in range(n0):
        if n2 >= 2:
            for q in range(n1):
                _inv97_line(v3[p, q, :n2], t)
        if n1 >= 2:
            _inv97_rows(v3[p], 0, n1, n2, tmp)


# ----------------------------------------------------------------------------- sparse windows
# At low rates most fine-level coefficients are zero, and the few nonzero ones sit in a few
# lines. An operation of the lifting whose operands are all zero leaves an exact +0.0 (no -0.0
# ever arises: the decoder writes no zero, and ``x - c * (0 + 0)`` is ``x``), so it may be
# skipped. With the nonzero inputs of a line (or of a column chunk of a slab) inside the
# half-index range ``[u0, u1)`` (low index ``i`` = sample ``i``, high index ``i`` = sample
# ``ns + i``), the four lifting steps widen the support by at most 2 on each side; lifting only
# the window ``[u0 - 2, u1 + 2)`` (the rows just outside it are outside the support and read
# as the zeros they are) gives bit for bit the values of lifting the whole line.

NZ_CHUNK = 16  # values: granularity of the nonzero spans of a line
COL_CHUNK = 32  # columns: granularity of the windows of the Y pass
MARGIN = 2  # half-index samples added on each side of a nonzero span (the support growth)
WIDE = 4  # a window wider than 1/WIDE of a line (or a column chunk) is lifted whole


@njit(nogil=True, cache=True, inline="always")
def _chunk_nz(u, i0, i1):
    """True when ``u[i0:i1]`` (the bits of float64 values, uint64) holds a nonzero value
    (-0.0 counts as nonzero). No early exit inside, and the loop runs over a view from 0
    (numba adds a negative-index check to ``u[i]`` for ``i`` from a range not starting at a
    constant, which keeps the loop scalar): vectorises, ~0.15 ns a value."""
    ch = u[i0:i1]
    acc = np.uint64(0)
    for i in range(ch.shape[0]):
        acc |= ch[i]
    return acc != 0


@njit(nogil=True, cache=True)
def _nz_span(u, i0, i1):
    """``(a, b)``: ``u[i0:i1]`` (float64 bits, uint64) is zero outside ``[a, b)``
    (chunk-granular); ``(0, 0)`` when all of it is zero."""
    a = i0
    while a < i1:
        e = min(a + NZ_CHUNK, i1)
        if _chunk_nz(u, a, e):
            break
        a = e
    if a >= i1:
        return 0, 0
    b = i1
    while b > a:
        s = max(b - NZ_CHUNK, a)
        if _chunk_nz(u, s, b):
            break
        b = s
    return a, b


@njit(nogil=True, cache=True, inline="always")
def _window(u0, u1, ns):
    """The lifting window ``[w0, w1)`` (half indices) of a nonzero span ``[u0, u1)``."""
    return max(u0 - MARGIN, 0), min(u1 + MARGIN, ns)


@njit(nogil=True, cache=True, inline="always")
def _div_rows(dst, src, d):
    """``dst = src / d`` on 1D rows."""
    for i in range(dst.shape[0]):
        dst[i] = src[i] / d


@njit(nogil=True, cache=True)
def _inv97_line_win(v, t, w0, w1):
    """:func:`_inv97_line` of a line whose nonzero values all lie at half indices inside
    ``[w0 + MARGIN, w1 - MARGIN)`` (clipped at the ends): only the window ``[w0, w1)`` is
    lifted, with the same operations as the whole line on every value that can be nonzero
    (the loops run over views from 0, so they vectorise). Returns the output range
    ``(2 * w0, e)`` outside which the line is zero."""
    N = v.shape[0]
    ns = (N + 1) // 2
    nd = N // 2
    le = min(w1, ns)
    he = min(w1, nd)
    lo = t[:ns]
    hi = t[ns:N]
    if w0 >= 1:  # read just outside the window: their (zero) values
        lo[w0 - 1] = 0.0
        hi[w0 - 1] = 0.0
    if le < ns:
        lo[le] = 0.0
    if he < nd:
        hi[he] = 0.0
    _div_rows(lo[w0:le], v[w0:le], LOW_SCALE)
    _div_rows(hi[w0:he], v[ns + w0 : ns + he], HIGH_SCALE)
    a0 = max(w0, 1)  # low-band interior: left = i - 1, cur = i
    a1 = min(le, nd)
    j1 = min(he, ns - 1)  # high-band interior: right = i + 1
    for step in range(2):
        coef_s = DELTA if step == 0 else BETA
        coef_d = GAMMA if step == 0 else ALPHA
        if w0 == 0:
            lo[0] -= coef_s * (hi[0] + hi[0])
        if a1 > a0:
            _lift_rows(lo[a0:a1], coef_s, hi[a0 - 1 : a1 - 1], hi[a0:a1])
        if le > nd:
            lo[nd] -= coef_s * (hi[nd - 1] + hi[nd - 1])
        if j1 > w0:
            _lift_rows(hi[w0:j1], coef_d, lo[w0:j1], lo[w0 + 1 : j1 + 1])
        if he > j1 and j1 >= w0:  # the last high sample of an even line mirrors
            hi[j1] -= coef_d * (lo[j1] + lo[j1])
    s = 2 * w0
    e = le + he  # outputs 2i (i < le) and 2i + 1 (i < he) fill [2 * w0, le + he)
    for i in range(w0, le):  # inputs the outputs do not overwrite become zero
        if i < s or i >= e:
            v[i] = 0.0
    for i in range(ns + w0, ns + he):
        if i < s or i >= e:
            v[i] = 0.0
    out = v[s:e]
    lw = lo[w0:le]
    hw = hi[w0:he]
    for i in range(hw.shape[0]):
        out[2 * i] = lw[i]
        out[2 * i + 1] = hw[i]
    if le > he:
        out[e - s - 1] = lw[le - w0 - 1]
    return s, e


@njit(nogil=True, cache=True)
def _inv97_rows_win(m2, off, N, nq, scratch, w0, w1):
    """:func:`_inv97_rows` of a slab ``m2[:N, off:off + nq]`` whose nonzero rows all lie at
    half indices inside ``[w0 + MARGIN, w1 - MARGIN)`` (clipped at the ends): only the rows of
    the window ``[w0, w1)`` are lifted (same operations on every value that can be nonzero)."""
    ns = (N + 1) // 2
    nd = N // 2
    le = min(w1, ns)
    he = min(w1, nd)
    tmp = scratch[: N * nq].reshape((N, nq))
    lo = tmp[:ns]
    hi = tmp[ns:N]
    if w0 >= 1:
        lo[w0 - 1, :] = 0.0
        hi[w0 - 1, :] = 0.0
    if le < ns:
        lo[le, :] = 0.0
    if he < nd:
        hi[he, :] = 0.0
    for k in range(w0, le):
        _scale_rows(lo[k], m2[k, off : off + nq], 1.0 / LOW_SCALE)
    for k in range(w0, he):
        _scale_rows(hi[k], m2[ns + k, off : off + nq], 1.0 / HIGH_SCALE)
    for step in range(2):
        coef_s = DELTA if step == 0 else BETA
        coef_d = GAMMA if step == 0 else ALPHA
        for k in range(w0, le):
            left, cur = _lc(k, nd)
            _lift_rows(lo[k], coef_s, hi[left], hi[cur])
        for j in range(w0, he):
            _lift_rows(hi[j], coef_d, lo[j], lo[_right(j, ns)])
    s = 2 * w0
    e = le + he
    for k in range(w0, le):
        if k < s or k >= e:
            m2[k, off : off + nq] = 0.0
    for k in range(ns + w0, ns + he):
        if k < s or k >= e:
            m2[k, off : off + nq] = 0.0
    for i in range(w0, he):
        _copy_rows(m2[2 * i, off : off + nq], lo[i])
        _copy_rows(m2[2 * i + 1, off : off + nq], hi[i])
    if le > he:
        _copy_rows(m2[2 * he, off : off + nq], lo[he])


@njit(nogil=True, cache=True)
def _yx_slice(m2, n1, n2, t, tmp, xa, xb, ca, cb):
    """X then Y of the slice box ``m2[:n1, :n2]`` (``m2`` C-contiguous 2D), lifting only the
    windows around nonzero values (``xa``, ``xb``: ``(n1,)``; ``ca``, ``cb``: one per column
    chunk; int64 scratch)."""
    u2 = m2.view(np.uint64)
    if n2 >= 2:
        ns = (n2 + 1) // 2
        for q in range(n1):
            r = m2[q, :n2]
            a0, a1 = _nz_span(u2[q], 0, ns)
            b0, b1 = _nz_span(u2[q], ns, n2)
            if a1 == 0 and b1 == 0:
                xa[q] = 0
                xb[q] = 0
                continue
            u0 = a0 if a1 > 0 else ns
            u1 = a1 if a1 > 0 else 0
            if b1 > 0:
                u0 = min(u0, b0 - ns)
                u1 = max(u1, b1 - ns)
            w0, w1 = _window(u0, u1, ns)
            if WIDE * (w1 - w0) >= ns:
                _inv97_line_hi(r, t, b1 > 0)
                xa[q] = 0
                xb[q] = n2
            else:
                xa[q], xb[q] = _inv97_line_win(r, t, w0, w1)
    else:
        for q in range(n1):
            xa[q] = 0
            xb[q] = n2 if _chunk_nz(u2[q], 0, n2) else 0
    if n1 < 2:
        return
    ns = (n1 + 1) // 2
    nch = (n2 + COL_CHUNK - 1) // COL_CHUNK
    # per column chunk: span of the rows that may be nonzero, as half indices
    for c in range(nch):
        ca[c] = ns
        cb[c] = 0
    for q in range(n1):
        if xa[q] >= xb[q]:
            continue
        h = q if q < ns else q - ns
        for c in range(xa[q] // COL_CHUNK, (xb[q] - 1) // COL_CHUNK + 1):
            if h < ca[c]:
                ca[c] = h
            if h + 1 > cb[c]:
                cb[c] = h + 1
    # a slab whose windows would cover half of it is lifted whole (one call: narrow calls
    # cost more per value); else runs of dense chunks whole, sparse chunks in their windows
    work = 0
    for c in range(nch):
        if ca[c] < cb[c]:
            w0, w1 = _window(ca[c], cb[c], ns)
            work += (w1 - w0) * min(COL_CHUNK, n2 - c * COL_CHUNK)
    if 2 * work >= ns * n2:
        _inv97_rows(m2, 0, n1, n2, tmp)
        return
    c = 0
    while c < nch:
        if ca[c] >= cb[c]:
            c += 1
            continue
        w0, w1 = _window(ca[c], cb[c], ns)
        if WIDE * (w1 - w0) < ns:
            off = c * COL_CHUNK
            _inv97_rows_win(m2, off, n1, min(COL_CHUNK, n2 - off), tmp, w0, w1)
            c += 1
            continue
        e = c + 1
        while e < nch and ca[e] < cb[e]:
            v0, v1 = _window(ca[e], cb[e], ns)
            if WIDE * (v1 - v0) < ns:
                break
            e += 1
        off = c * COL_CHUNK
        _inv97_rows(m2, off, n1, min(e * COL_CHUNK, n2) - off, tmp)
        c = e


@njit(nogil=True, cache=True)
def inv97_box_yx(v3, n0, n1, n2, t, tmp):
    """:func:`_inv97_yx` of the box ``v3[:n0, :n1, :n2]``: X then Y, one z-slice at a time
    (``t``: ``(n2,)``; ``tmp``: 1D scratch of at least ``n1 * n2`` values). Lines and column
    chunks with few nonzero values are lifted only around them (see the sparse windows above):
    the same values as :func:`inv97_box_yx_plain`, bit for bit."""
    nch = (n2 + COL_CHUNK - 1) // COL_CHUNK
    xa = np.empty(n1, dtype=np.int64)
    xb = np.empty(n1, dtype=np.int64)
    ca = np.empty(nch, dtype=np.int64)
    cb = np.empty(nch, dtype=np.int64)
    for p in range(n0):
        _yx_slice(v3[p], n1, n2, t, tmp, xa, xb, ca, cb)


@njit(_I3, nogil=True, cache=True)
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


@njit(_I3, nogil=True, cache=True)
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


def c_parent(region: np.ndarray) -> np.ndarray | None:
    """A C-contiguous array whose box ``[:n0, :n1, :n2]`` is the 3D ``region`` (itself when it
    is C-contiguous; for a leading sub-box view of a C-contiguous array, that array's leading
    slices, checked to lie inside the memory ``region`` views), or None."""
    if region.flags.c_contiguous:
        return region
    item = region.itemsize
    sz, sy, sx = region.strides
    n0, n1, n2 = region.shape
    if sx != item or sy % item or sz % sy or sy < n2 * item or sz < n1 * sy:
        return None
    owner = region
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    if not (owner.flags.c_contiguous or owner.flags.f_contiguous):
        return None
    start = region.__array_interface__["data"][0]
    lo = owner.__array_interface__["data"][0]
    if start < lo or start + n0 * sz > lo + owner.nbytes:
        return None
    shape = (n0, sz // sy, sy // item)
    parent = np.lib.stride_tricks.as_strided(region, shape=shape, strides=(sz, sy, item))
    return parent if parent.flags.c_contiguous else None


def lift_region(region: np.ndarray, axis: int, lossless: bool, forward: bool) -> None:
    """Lift a 3D ``region`` (a view, float64 or int64) along ``axis`` in place."""
    if region.shape[axis] < 2:
        return
    if not lossless and not forward and region.dtype == np.float64:
        parent = c_parent(region)
        if parent is not None:
            n0, n1, n2 = region.shape
            if axis == 2:
                inv97_box_lines(parent, n0, n1, n2, np.empty(n2))
            else:
                scratch = np.empty(region.shape[axis] * n2 * Z_GROUP)
                inv97_box_axis(parent, axis, n0, n1, n2, scratch)
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
    parent = c_parent(region)
    if parent is not None:
        n0, n1, n2 = region.shape
        inv97_box_yx(parent, n0, n1, n2, np.empty(n2), np.empty(n1 * n2))
        return
    _inv97_yx(
        region,
        np.empty(region.shape[2], dtype=np.float64),
        np.empty((region.shape[1], region.shape[2]), dtype=np.float64),
    )
