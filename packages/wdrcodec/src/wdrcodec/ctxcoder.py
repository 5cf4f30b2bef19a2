"""Context-modelled bit-plane coder (``--coder ctx``): per-coefficient significance decisions
with contexts from already-coded neighbours, in place of WDR's run lengths.

Same input as :mod:`wdrcodec.coder` (scan-ordered magnitudes and signs) plus the layout's scan
boxes, which give every coefficient its 6 face neighbours inside its subband. For each plane
``p = top .. top - nplanes + 1``:

1. **significance pass**, scan order, in chunks of 64 scan positions: a chunk that still holds
   insignificant coefficients first codes one flag "some become significant at this plane"
   (context: subband class of its first coefficient x whether it already holds a significant
   one), so quiet chunks cost one skewed decision; in a flagged chunk every coefficient not yet
   significant codes "``|c| >= 2**p``" in context ``(subband class, number of its 6 neighbours
   already significant)`` (8 x 7 contexts; "already" includes those that became significant
   earlier in this pass), followed by its sign (one context) when it is 1;
2. **refinement pass**, scan order, every coefficient significant before ``p``: bit ``p`` in
   context "planes since significance - 1" (capped at 3), as in the WDR coder.

Measured motivation (:mod:`wdrcodec.contexts`): neighbour-count significance contexts are the
ones worth having; refinement and sign contexts gain < 0.6%. The binary decisions use the same
adaptive range coder as :mod:`wdrcodec.coder` (two-rate estimators, 12-bit probabilities, LZMA
carry handling), so the stream is embedded the same way: the encoder stops at an exact byte
budget, and the decoder's two code registers (``0x00``/``0xFF`` padding) take a decision only
when the available bytes determine it, so any prefix decodes. Every loop is bounded by the
coefficient count and the plane count, and every index by construction, so corrupt data cannot
crash or hang the decoder.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from wdrcodec.coder import (
    FAST,
    MASK32,
    MIX_SHIFT,
    P16,
    PROB_BITS,
    SLOW,
    STATUS_BUFFER,
    STATUS_COMPLETE,
    TOP,
    Midpoints,
    Stream,
    _shift_low,
    decoder_start,
)
from wdrcodec.errors import WdrError

NCLS = 8
C_SIG = 0  # NCLS * 7 significance contexts
C_SIGN = NCLS * 7
C_REF = C_SIGN + 1  # 4 refinement contexts
C_RUN = C_REF + 4  # NCLS * 2 chunk contexts
NCTX = C_RUN + 2 * NCLS
CHUNK = 64  # scan positions per chunk flag


@njit(cache=True)
def _encode_bit(st, out, probs, ctx, bit):
    """One adaptive binary decision (encoder); ``st``: low, range, cache, cache_size, pos, drop."""
    c = 2 * ctx
    pf = probs[c]
    ps = probs[c + 1]
    bound = (st[1] >> PROB_BITS) * ((pf + ps) >> MIX_SHIFT)
    if bit == 0:
        st[1] = bound
        probs[c] = pf + ((P16 - pf) >> FAST)
        probs[c + 1] = ps + ((P16 - ps) >> SLOW)
    else:
        st[0] += bound
        st[1] -= bound
        probs[c] = pf - (pf >> FAST)
        probs[c + 1] = ps - (ps >> SLOW)
    while st[1] < TOP:
        st[1] = (st[1] << 8) & MASK32
        _shift_low(st, out)


@njit(cache=True)
def _decode_bit(st, data, probs, ctx):
    """One decision (decoder; ``st``: range, lo, hi, pos, nbytes): 0/1, -1 undetermined by the
    available bytes, -2 inconsistent (corrupt)."""
    c = 2 * ctx
    pf = probs[c]
    ps = probs[c + 1]
    rng = st[0]
    lo = st[1]
    hi = st[2]
    bound = (rng >> PROB_BITS) * ((pf + ps) >> MIX_SHIFT)
    lo_less = lo < bound
    if lo_less != (hi < bound):
        return -1
    if lo_less:
        bit = 0
        rng = bound
        probs[c] = pf + ((P16 - pf) >> FAST)
        probs[c + 1] = ps + ((P16 - ps) >> SLOW)
    else:
        bit = 1
        lo -= bound
        hi -= bound
        rng -= bound
        probs[c] = pf - (pf >> FAST)
        probs[c + 1] = ps - (ps >> SLOW)
    if hi > rng - 1:
        hi = rng - 1
    if lo > hi:
        return -2
    pos = st[3]
    nbytes = st[4]
    while rng < TOP:
        rng = rng << 8
        if pos < nbytes:
            byte = np.int64(data[pos])
            lo = (lo << 8) | byte
            hi = (hi << 8) | byte
        else:
            lo = lo << 8
            hi = (hi << 8) | 0xFF
        pos += 1
    st[0] = rng
    st[1] = lo
    st[2] = hi
    st[3] = pos
    return bit


@njit(cache=True)
def _count(kp, i, x, y, z, w, h, nx, ny, nz):
    """Neighbours of scan index ``i`` (box-local ``x, y, z`` of a ``nz x ny x nx`` box, row
    ``w = nx``, slab ``h = nx * ny``) that are significant (``kp >= 0``)."""
    n = 0
    if x > 0 and kp[i - 1] >= 0:
        n += 1
    if x + 1 < nx and kp[i + 1] >= 0:
        n += 1
    if y > 0 and kp[i - w] >= 0:
        n += 1
    if y + 1 < ny and kp[i + w] >= 0:
        n += 1
    if z > 0 and kp[i - h] >= 0:
        n += 1
    if z + 1 < nz and kp[i + h] >= 0:
        n += 1
    return n


@njit(cache=True)
def ctx_encode(mag, neg, boxes, box_class, top, nplanes, limit, out):
    """Encode; returns ``(nbytes, status)``: 0 complete, 1 budget reached, 3 ``out`` too small."""
    n = mag.size
    st = np.zeros(6, dtype=np.int64)
    st[1] = MASK32
    st[3] = 1
    st[5] = 1
    probs = np.full(2 * NCTX, P16 // 2, dtype=np.int64)
    kp = np.full(n, -1, dtype=np.int8)  # plane where it became significant (-1: not yet)
    for k in range(nplanes):
        p = top - k
        thr = np.int64(1) << p
        i = 0
        active = False
        for b in range(boxes.shape[0]):
            nz = boxes[b, 4] - boxes[b, 3]
            ny = boxes[b, 6] - boxes[b, 5]
            nx = boxes[b, 8] - boxes[b, 7]
            cb = box_class[b] * 7
            for z in range(nz):
                for y in range(ny):
                    for x in range(nx):
                        if i % CHUNK == 0:
                            end = min(i + CHUNK, n)
                            has_open = False
                            has_sig = False
                            new = False
                            for j in range(i, end):
                                if kp[j] < 0:
                                    has_open = True
                                    if mag[j] >= thr:
                                        new = True
                                else:
                                    has_sig = True
                            active = False
                            if has_open:
                                ctx = C_RUN + 2 * box_class[b] + (1 if has_sig else 0)
                                _encode_bit(st, out, probs, ctx, 1 if new else 0)
                                active = new
                        if active and kp[i] < 0:
                            ctx = C_SIG + cb + _count(kp, i, x, y, z, nx, nx * ny, nx, ny, nz)
                            if mag[i] >= thr:
                                _encode_bit(st, out, probs, ctx, 1)
                                _encode_bit(st, out, probs, C_SIGN, neg[i])
                                kp[i] = p
                            else:
                                _encode_bit(st, out, probs, ctx, 0)
                            if st[4] >= limit:
                                return limit, 1
                            if st[4] > out.size:
                                return st[4], 3
                        i += 1
        for i in range(n):
            if kp[i] > p:
                a = kp[i] - p - 1
                _encode_bit(st, out, probs, C_REF + (a if a < 3 else 3), (mag[i] >> p) & 1)
                if st[4] >= limit:
                    return limit, 1
                if st[4] > out.size:
                    return st[4], 3
    for _ in range(5):
        _shift_low(st, out)
    if st[4] > out.size:
        return st[4], 3
    if st[4] >= limit:
        return limit, 1
    return st[4], 0


@njit(cache=True)
def ctx_decode(data, nbytes, boxes, box_class, top, nplanes, rec, scale):
    """Decode into ``rec`` (scan order, zero-filled, midpoint reconstruction times ``scale``);
    returns the status: 0 complete, 1 truncated, 2 corrupt."""
    n = rec.size
    if nbytes > data.size:
        nbytes = data.size
    st = decoder_start(data, nbytes)
    if st[1] > st[2]:
        return 2
    probs = np.full(2 * NCTX, P16 // 2, dtype=np.int64)
    kp = np.full(n, -1, dtype=np.int8)  # plane of significance
    low = np.full(n, 127, dtype=np.int8)  # lowest plane known (127: none)
    val = np.zeros(n, dtype=np.int64)
    sgn = np.zeros(n, dtype=np.uint8)
    status = 0
    for k in range(nplanes):
        p = top - k
        thr = np.int64(1) << p
        i = 0
        active = False
        for b in range(boxes.shape[0]):
            nz = boxes[b, 4] - boxes[b, 3]
            ny = boxes[b, 6] - boxes[b, 5]
            nx = boxes[b, 8] - boxes[b, 7]
            cb = box_class[b] * 7
            for z in range(nz):
                for y in range(ny):
                    for x in range(nx):
                        if i % CHUNK == 0:
                            end = min(i + CHUNK, n)
                            has_open = False
                            has_sig = False
                            for j in range(i, end):
                                if kp[j] < 0:
                                    has_open = True
                                else:
                                    has_sig = True
                            active = False
                            if has_open:
                                ctx = C_RUN + 2 * box_class[b] + (1 if has_sig else 0)
                                flag = _decode_bit(st, data, probs, ctx)
                                if flag < 0:
                                    status = 1 if flag == -1 else 2
                                    break
                                active = flag == 1
                        if active and kp[i] < 0:
                            ctx = C_SIG + cb + _count(kp, i, x, y, z, nx, nx * ny, nx, ny, nz)
                            bit = _decode_bit(st, data, probs, ctx)
                            if bit < 0:
                                status = 1 if bit == -1 else 2
                                break
                            if bit == 1:
                                s = _decode_bit(st, data, probs, C_SIGN)
                                if s < 0:
                                    status = 1 if s == -1 else 2
                                    break
                                kp[i] = p
                                low[i] = p
                                val[i] = thr
                                sgn[i] = s
                        i += 1
                    if status != 0:
                        break
                if status != 0:
                    break
            if status != 0:
                break
        if status != 0:
            break
        for i in range(n):
            if kp[i] > p:
                a = kp[i] - p - 1
                bit = _decode_bit(st, data, probs, C_REF + (a if a < 3 else 3))
                if bit < 0:
                    status = 1 if bit == -1 else 2
                    break
                val[i] += np.int64(bit) << p
                low[i] = p
        if status != 0:
            break
    if status == 2:
        return 2
    for i in range(n):
        if kp[i] >= 0:
            q = low[i]
            r = (float(val[i]) + ((np.int64(1) << q) - 1) / 2.0) * scale
            rec[i] = -r if sgn[i] == 1 else r
    return status


def encode_coefficients(mag, neg, boxes, box_class, top, nplanes, limit) -> Stream:
    """Run :func:`ctx_encode`; ``limit=None`` codes every plane."""
    n = mag.size
    if nplanes <= 0 or n == 0:
        return Stream(b"", STATUS_COMPLETE)
    cap = limit if limit is not None else 2**62
    size = min(cap, max(1024, n * 3)) + 64
    b = np.ascontiguousarray(boxes, dtype=np.int64)
    cls = np.ascontiguousarray(box_class, dtype=np.int64)
    while True:
        out = np.zeros(size, dtype=np.uint8)
        nbytes, status = ctx_encode(mag, neg, b, cls, top, nplanes, cap, out)
        if status != STATUS_BUFFER:
            return Stream(out[:nbytes].tobytes(), int(status))
        size = max(2 * size, int(nbytes) + 1024)


def decode_midpoints(payload, boxes, box_class, n, top, nplanes, scale) -> Midpoints:
    """Run :func:`ctx_decode`; returns ``(rec float64 scan order, status)``."""
    if n >= 2**31:
        raise WdrError("more than 2**31 - 1 coefficients: split the array")
    rec = np.zeros(n, dtype=np.float64)
    if nplanes <= 0:
        return Midpoints(rec, STATUS_COMPLETE)
    data = np.frombuffer(payload, dtype=np.uint8).copy()
    nbytes = data.size
    if nbytes == 0:
        data = np.zeros(1, dtype=np.uint8)
    b = np.ascontiguousarray(boxes, dtype=np.int64)
    cls = np.ascontiguousarray(box_class, dtype=np.int64)
    status = ctx_decode(data, nbytes, b, cls, top, nplanes, rec, scale)
    return Midpoints(rec, int(status))
