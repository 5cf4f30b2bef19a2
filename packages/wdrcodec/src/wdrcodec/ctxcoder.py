"""Context-modelled bit-plane coder (``--coder ctx``): per-coefficient significance, sign and
refinement decisions with contexts from already-coded neighbours, parent and children, in place
of WDR's run lengths.

Same input as :mod:`wdrcodec.coder` (scan-ordered magnitudes and signs) plus the layout's scan
boxes, which give every coefficient its 6 face neighbours inside its subband box and its
**parent**: the co-located coefficient of the next-coarser subband of the same orientation in
the same block (:func:`parents`; along an axis that the coarser level splits again the position
is halved, along one it does not split the position inside the box is kept). Its **children**
are the coefficients whose parent it is. For each plane ``p = top .. top - nplanes + 1``:

1. **significance pass**, scan order, in chunks of 64 scan positions: a chunk that still holds
   insignificant coefficients first codes one flag "some become significant at this plane"
   (context: subband class of its first coefficient x whether it already holds a significant
   one), so quiet chunks cost one skewed decision; in a flagged chunk every coefficient not yet
   significant codes "``|c| >= 2**p``" in context ``(class, nbr, family)``:

   * ``class``: the subband class (0 low band, else the level, capped at 7);
   * ``nbr``: how many of its 6 face neighbours are already significant (0-6);
   * ``family`` (8 values): ``2 f + c``, ``f`` = 0 parent absent or not significant, else
     ``1 + min(q_parent - p, 2)``; ``c`` = 1 if a child is already significant.

   "Already" is causal in both directions (encoder and decoder compute every context from the
   same decoded state, the plane ``q`` at which each coefficient became significant): the
   parent (a coarser subband) is scanned before the coefficient in every pass, so its significance at ``p`` is known; the children are scanned
   after it, so ``c`` says one of them became significant at a plane above ``p``; the neighbours
   before it in the box are known at ``p``, the ones after it above ``p``. A newly significant
   coefficient then codes its sign (one context);
2. **refinement pass**, scan order, every coefficient significant above ``p``: bit ``p`` in
   context ``(a, r)``, ``a`` = planes since significance - 1 (capped at 3), ``r`` = 0 without a
   significant neighbour, else 1, 2, 3 for the neighbours' mean magnitude ``S / k`` below, up to
   twice, above twice its own ``2**min(q - p, 7)``, where ``S = sum 2**min(q_j - p, 7)`` over the
   ``k`` significant neighbours and ``q`` is the plane at which a coefficient became significant
   (its most significant bit).

Every context keeps the two probability estimators of :mod:`wdrcodec.coder` (fast and slow,
averaged to a 12-bit probability) and a count ``n`` of the decisions it has seen: the ``n``-th
decision updates them with shifts ``min(bit_length(n + 1), 5)`` and ``min(bit_length(n + 1),
8)`` (count-based adaptation: a new context learns at rate 1/2, 1/4, ... like a frequency
count; from ``n = 127`` on the fixed rates 1/32 and 1/256). The probability stays within
``[8, 4087] / 4096`` (the fast estimator cannot fall below 31 nor the slow one below 255 of
65536, and symmetrically at the top), so no decision has a zero-width interval.
:func:`ctx_encode_features` can switch each context and the count-based start off (``F_*``
flags) to measure their gains (:mod:`wdrcodec.contexts`); files always use :data:`F_ALL`.

The binary decisions go through the range coder of :mod:`wdrcodec.coder` (LZMA carry handling),
so the stream is embedded the same way: the encoder stops at an exact byte budget, and the
decoder's two code registers (``0x00``/``0xFF`` padding) take a decision only when the available
bytes determine it, so any prefix decodes. Every loop is bounded by the coefficient count and
the plane count, and every index by construction, so corrupt data cannot crash or hang the
decoder.
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
NNB = 7  # neighbour contexts: 0-6 significant face neighbours
NFAM = 8  # parent x children contexts
C_SIG = 0  # NCLS * NNB * NFAM significance contexts
C_SIGN = NCLS * NNB * NFAM
C_REF = C_SIGN + 1  # 4 ages x 4 neighbour buckets
C_RUN = C_REF + 16  # NCLS * 2 chunk contexts
NCTX = C_RUN + 2 * NCLS
# count-based adaptation: the n-th decision of a context (n = 0, 1, ...) updates its estimators
# with shifts min(bit_length(n + 1), FAST | SLOW); from n = 127 on both are at their cap
COUNT_CAP = 127
_SHIFT = np.array([(n + 1).bit_length() for n in range(COUNT_CAP + 1)], dtype=np.int64)
SHF = np.minimum(_SHIFT, FAST)
SHS = np.minimum(_SHIFT, SLOW)
CHUNK = 64  # scan positions per chunk flag

# context switches (ctx_encode_features / ctx_decode_features); files use F_ALL
F_NBR = 1  # significant-neighbour count in significance contexts
F_PARENT = 2  # parent significance / magnitude
F_CHILD = 4  # a child already significant
F_REFCTX = 8  # neighbour magnitude context for refinement bits
F_COUNT = 16  # count-based adaptation (else the fixed two-speed rates from the start)
F_ALL = F_NBR | F_PARENT | F_CHILD | F_REFCTX | F_COUNT


@njit(cache=True, nogil=True)
def _model(feat):
    """Initial model: per context ``(fast, slow, count)``, estimators at 1/2; the count starts at
    0 with :data:`F_COUNT` (fast learning), else at its cap (fixed rates from the start)."""
    probs = np.full(3 * NCTX, P16 // 2, dtype=np.int64)
    probs[2::3] = 0 if feat & F_COUNT else COUNT_CAP
    return probs


@njit(cache=True, nogil=True)
def _encode_bit(st, out, probs, ctx, bit):
    """One adaptive binary decision (encoder); ``st``: low, range, cache, cache_size, pos, drop."""
    c = 3 * ctx
    pf = probs[c]
    ps = probs[c + 1]
    cn = probs[c + 2]
    sf = SHF[cn]
    ss = SHS[cn]
    probs[c + 2] = cn + (1 if cn < COUNT_CAP else 0)
    q = (pf + ps) >> MIX_SHIFT
    bound = (st[1] >> PROB_BITS) * q
    if bit == 0:
        st[1] = bound
        probs[c] = pf + ((P16 - pf) >> sf)
        probs[c + 1] = ps + ((P16 - ps) >> ss)
    else:
        st[0] += bound
        st[1] -= bound
        probs[c] = pf - (pf >> sf)
        probs[c + 1] = ps - (ps >> ss)
    while st[1] < TOP:
        st[1] = (st[1] << 8) & MASK32
        _shift_low(st, out)


@njit(cache=True, nogil=True)
def _decode_bit(st, data, probs, ctx):
    """One decision (decoder; ``st``: range, lo, hi, pos, nbytes): 0/1, -1 undetermined by the
    available bytes, -2 inconsistent (corrupt)."""
    rng = st[0]
    lo = st[1]
    hi = st[2]
    c = 3 * ctx
    pf = probs[c]
    ps = probs[c + 1]
    cn = probs[c + 2]
    q = (pf + ps) >> MIX_SHIFT
    bound = (rng >> PROB_BITS) * q
    lo_less = lo < bound
    if lo_less != (hi < bound):
        return -1
    sf = SHF[cn]
    ss = SHS[cn]
    probs[c + 2] = cn + (1 if cn < COUNT_CAP else 0)
    if lo_less:
        bit = 0
        rng = bound
        probs[c] = pf + ((P16 - pf) >> sf)
        probs[c + 1] = ps + ((P16 - ps) >> ss)
    else:
        bit = 1
        lo -= bound
        hi -= bound
        rng -= bound
        probs[c] = pf - (pf >> sf)
        probs[c + 1] = ps - (ps >> ss)
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


@njit(cache=True, nogil=True)
def _neighbours(kp, i, x, y, z, w, h, nx, ny, nz, p):
    """``(k, S)``: significant face neighbours of scan index ``i`` (box-local ``x, y, z`` of a
    ``nz x ny x nx`` box, row ``w``, slab ``h``) and ``S = sum 2**min(q_j - p, 7)``."""
    k = 0
    s = 0
    if x > 0 and kp[i - 1] >= 0:
        k += 1
        s += 1 << min(kp[i - 1] - p, 7)
    if x + 1 < nx and kp[i + 1] >= 0:
        k += 1
        s += 1 << min(kp[i + 1] - p, 7)
    if y > 0 and kp[i - w] >= 0:
        k += 1
        s += 1 << min(kp[i - w] - p, 7)
    if y + 1 < ny and kp[i + w] >= 0:
        k += 1
        s += 1 << min(kp[i + w] - p, 7)
    if z > 0 and kp[i - h] >= 0:
        k += 1
        s += 1 << min(kp[i - h] - p, 7)
    if z + 1 < nz and kp[i + h] >= 0:
        k += 1
        s += 1 << min(kp[i + h] - p, 7)
    return k, s


@njit(cache=True, nogil=True)
def _count(kp, i, x, y, z, w, h, nx, ny, nz):
    """Significant face neighbours of scan index ``i`` (as :func:`_neighbours`, count only)."""
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


@njit(cache=True, nogil=True)
def _ref_ctx(kp, i, x, y, z, w, h, nx, ny, nz, p):
    """Refinement context ``(age, neighbours)`` of significant scan index ``i`` at plane ``p``
    (:data:`F_REFCTX`)."""
    a = kp[i] - p - 1
    if a > 3:
        a = 3
    r = 0
    k, s = _neighbours(kp, i, x, y, z, w, h, nx, ny, nz, p)
    if k > 0:
        own = 1 << min(kp[i] - p, 7)
        r = 1 if s < k * own else (2 if s <= 2 * k * own else 3)
    return C_REF + 4 * a + r


@njit(cache=True, nogil=True)
def parents(boxes, box_class):
    """Scan index of every coefficient's parent (int32, -1 none): for a detail box of class
    ``l`` of a block, the box of class ``l + 1`` of the same block that holds the co-located
    position (halved along the axes that level ``l + 1`` splits, kept inside the box along the
    others)."""
    nb = boxes.shape[0]
    starts = np.zeros(nb + 1, dtype=np.int64)
    for b in range(nb):
        size = (boxes[b, 4] - boxes[b, 3]) * (boxes[b, 6] - boxes[b, 5])
        starts[b + 1] = starts[b] + size * (boxes[b, 8] - boxes[b, 7])
    n = starts[nb]
    par = np.full(n, -1, dtype=np.int32)
    cand = np.empty(nb, dtype=np.int64)
    for b in range(nb):
        lvl = box_class[b]
        if lvl <= 0 or lvl >= NCLS - 1:
            continue
        nc = 0
        split = np.zeros(3, dtype=np.int64)
        for c in range(nb):
            if boxes[c, 0] == boxes[b, 0] and box_class[c] == lvl + 1:
                cand[nc] = c
                nc += 1
                for a in range(3):
                    if boxes[c, 3 + 2 * a] > 0:
                        split[a] = 1
        if nc == 0:
            continue
        z0, y0, x0 = boxes[b, 3], boxes[b, 5], boxes[b, 7]
        i = starts[b]
        for z in range(z0, boxes[b, 4]):
            mz = z // 2 if split[0] else z - z0
            for y in range(y0, boxes[b, 6]):
                my = y // 2 if split[1] else y - y0
                for x in range(x0, boxes[b, 8]):
                    mx = x // 2 if split[2] else x - x0
                    for j in range(nc):
                        c = cand[j]
                        if (
                            boxes[c, 3] <= mz < boxes[c, 4]
                            and boxes[c, 5] <= my < boxes[c, 6]
                            and boxes[c, 7] <= mx < boxes[c, 8]
                        ):
                            cny = boxes[c, 6] - boxes[c, 5]
                            cnx = boxes[c, 8] - boxes[c, 7]
                            local = ((mz - boxes[c, 3]) * cny + my - boxes[c, 5]) * cnx
                            par[i] = starts[c] + local + mx - boxes[c, 7]
                            break
                    i += 1
    return par


@njit(cache=True, nogil=True)
def _box_starts(boxes):
    """Scan index of the first coefficient of every box, and the total count last."""
    starts = np.zeros(boxes.shape[0] + 1, dtype=np.int64)
    for b in range(boxes.shape[0]):
        size = (boxes[b, 4] - boxes[b, 3]) * (boxes[b, 6] - boxes[b, 5])
        starts[b + 1] = starts[b] + size * (boxes[b, 8] - boxes[b, 7])
    return starts


@njit(cache=True, nogil=True)
def _enc_significance(
    st,
    out,
    probs,
    mag,
    neg,
    kp,
    csig,
    parent,
    boxes,
    box_class,
    starts,
    nsc,
    nsk,
    cmax,
    dirty,
    p,
    limit,
    feat,
):
    """Significance pass of plane ``p`` (encoder); returns 0, 1 budget reached, 3 overflow.

    ``nsc[c]``: significant coefficients in chunk ``c``; ``cmax[c]``: largest magnitude of its
    insignificant ones (``dirty[c]``: to be recomputed), so a quiet chunk is skipped whole. The
    box-local coordinates are computed where a chunk starts being coded, then incremented."""
    n = kp.size
    thr = np.int64(1) << p
    use_nbr = (feat & F_NBR) != 0
    use_par = (feat & F_PARENT) != 0
    use_child = (feat & F_CHILD) != 0
    skip_to = 0
    for b in range(boxes.shape[0]):
        s0 = starts[b]
        s1 = starts[b + 1]
        if s1 <= skip_to:
            continue
        ny = boxes[b, 6] - boxes[b, 5]
        nx = boxes[b, 8] - boxes[b, 7]
        nz = boxes[b, 4] - boxes[b, 3]
        h = nx * ny
        cb = box_class[b] * NNB
        i = s0 if s0 > skip_to else skip_to
        x = 0
        y = 0
        z = 0
        fresh = True
        while i < s1:
            if i % CHUNK == 0:
                c = i // CHUNK
                clen = min(CHUNK, n - i)
                new = False
                if nsc[c] < clen:
                    new = cmax[c] >= thr
                    ctx = C_RUN + 2 * box_class[b] + (1 if nsc[c] > nsk[c] else 0)
                    _encode_bit(st, out, probs, ctx, 1 if new else 0)
                if not new:
                    skip_to = i + clen
                    i = skip_to
                    fresh = True
                    continue
            if kp[i] == -1:
                if fresh:
                    local = i - s0
                    z = local // h
                    y = (local - z * h) // nx
                    x = local - z * h - y * nx
                    fresh = False
                # significance context (class, nbr, family), see the module docstring
                nb = _count(kp, i, x, y, z, nx, h, nx, ny, nz) if use_nbr else 0
                fam = csig[i] if use_child else 0
                par = parent[i] if use_par else -1
                if par >= 0 and kp[par] >= 0:
                    d = kp[par] - p
                    fam += 2 * (1 + (d if d < 2 else 2))
                ctx = C_SIG + (cb + nb) * NFAM + fam
                if mag[i] >= thr:
                    _encode_bit(st, out, probs, ctx, 1)
                    _encode_bit(st, out, probs, C_SIGN, neg[i])
                    kp[i] = p
                    nsc[i // CHUNK] += 1
                    dirty[i // CHUNK] = 1
                    if parent[i] >= 0:
                        csig[parent[i]] = 1
                else:
                    _encode_bit(st, out, probs, ctx, 0)
                if st[4] >= limit:
                    return 1
                if st[4] > out.size:
                    return 3
            i += 1
            if not fresh:
                x += 1
                if x == nx:
                    x = 0
                    y += 1
                    if y == ny:
                        y = 0
                        z += 1
    return 0


@njit(cache=True, nogil=True)
def _enc_refinement(st, out, probs, mag, kp, boxes, starts, nsc, nsk, p, limit, feat):
    """Refinement pass of plane ``p`` (encoder), chunks without a significant coefficient
    skipped; contexts by age, or ``(age, neighbours)`` (:func:`_ref_ctx`) with
    :data:`F_REFCTX`. Returns 0, 1 budget reached, 3 ``out`` too small."""
    n = kp.size
    if not feat & F_REFCTX:
        for c in range(nsc.size):
            if nsc[c] == nsk[c]:
                continue
            for i in range(c * CHUNK, min(c * CHUNK + CHUNK, n)):
                if kp[i] > p:
                    a = kp[i] - p - 1
                    _encode_bit(st, out, probs, C_REF + 4 * (a if a < 3 else 3), (mag[i] >> p) & 1)
                    if st[4] >= limit:
                        return 1
                    if st[4] > out.size:
                        return 3
        return 0
    for b in range(boxes.shape[0]):
        s0 = starts[b]
        s1 = starts[b + 1]
        ny = boxes[b, 6] - boxes[b, 5]
        nx = boxes[b, 8] - boxes[b, 7]
        nz = boxes[b, 4] - boxes[b, 3]
        h = nx * ny
        i = s0
        x = 0
        y = 0
        z = 0
        fresh = True
        while i < s1:
            c = i // CHUNK
            if nsc[c] == nsk[c]:
                i = min((c + 1) * CHUNK, s1)
                fresh = True
                continue
            if kp[i] > p:
                if fresh:
                    local = i - s0
                    z = local // h
                    y = (local - z * h) // nx
                    x = local - z * h - y * nx
                    fresh = False
                ctx = _ref_ctx(kp, i, x, y, z, nx, h, nx, ny, nz, p)
                _encode_bit(st, out, probs, ctx, (mag[i] >> p) & 1)
                if st[4] >= limit:
                    return 1
                if st[4] > out.size:
                    return 3
            i += 1
            if not fresh:
                x += 1
                if x == nx:
                    x = 0
                    y += 1
                    if y == ny:
                        y = 0
                        z += 1
    return 0


@njit(cache=True, nogil=True)
def ctx_encode_features(mag, neg, boxes, box_class, top, nplanes, limit, out, feat):
    """:func:`ctx_encode` with the contexts chosen by ``feat`` (``F_*`` flags)."""
    return ctx_encode_skip(
        mag, neg, boxes, box_class, top, nplanes, limit, out, feat, np.zeros(0, dtype=np.uint8)
    )


@njit(cache=True, nogil=True)
def _skip_state(kp, nsk, skip):
    """Mark the skipped coefficients (``skip[i] == 1``, outside a shape-adaptive object)
    ``kp = -2`` (never coded, never significant) and count them per chunk in ``nsk``."""
    if skip.size != kp.size:
        return
    for i in range(kp.size):
        if skip[i]:
            kp[i] = -2
            nsk[i // CHUNK] += 1


@njit(cache=True, nogil=True)
def ctx_encode_skip(mag, neg, boxes, box_class, top, nplanes, limit, out, feat, skip):
    """:func:`ctx_encode_features` that codes nothing for the coefficients with ``skip[i] == 1``
    (scan order, uint8; their magnitudes must be 0; an empty ``skip`` skips none: the same
    stream as :func:`ctx_encode_features`). A skipped coefficient counts as insignificant in
    every context and its chunk counts it as done, so a chunk wholly outside the object codes
    no flag."""
    n = mag.size
    st = np.zeros(6, dtype=np.int64)
    st[1] = MASK32
    st[3] = 1
    st[5] = 1
    probs = _model(feat)
    kp = np.full(n, -1, dtype=np.int8)  # plane where it became significant (-1: not yet)
    csig = np.zeros(n, dtype=np.int8)  # 1: a child is significant
    parent = parents(boxes, box_class)
    starts = _box_starts(boxes)
    nch = (n + CHUNK - 1) // CHUNK
    nsc = np.zeros(nch, dtype=np.int64)
    cmax = np.zeros(nch, dtype=np.int64)
    dirty = np.zeros(nch, dtype=np.uint8)
    nsk = np.zeros(nch, dtype=np.int64)
    _skip_state(kp, nsk, skip)
    nsc[:] = nsk
    for i in range(n):
        if mag[i] > cmax[i // CHUNK]:
            cmax[i // CHUNK] = mag[i]
    for k in range(nplanes):
        p = top - k
        for c in range(nch):
            if dirty[c] == 1:
                m = 0
                for i in range(c * CHUNK, min(c * CHUNK + CHUNK, n)):
                    if kp[i] == -1 and mag[i] > m:
                        m = mag[i]
                cmax[c] = m
                dirty[c] = 0
        stop = _enc_significance(
            st,
            out,
            probs,
            mag,
            neg,
            kp,
            csig,
            parent,
            boxes,
            box_class,
            starts,
            nsc,
            nsk,
            cmax,
            dirty,
            p,
            limit,
            feat,
        )
        if stop == 0:
            stop = _enc_refinement(
                st, out, probs, mag, kp, boxes, starts, nsc, nsk, p, limit, feat
            )
        if stop != 0:
            return (limit, 1) if stop == 1 else (st[4], 3)
    for _ in range(5):
        _shift_low(st, out)
    if st[4] > out.size:
        return st[4], 3
    if st[4] >= limit:
        return limit, 1
    return st[4], 0


@njit(cache=True, nogil=True)
def ctx_encode(mag, neg, boxes, box_class, top, nplanes, limit, out):
    """Encode; returns ``(nbytes, status)``: 0 complete, 1 budget reached, 3 ``out`` too small."""
    return ctx_encode_features(mag, neg, boxes, box_class, top, nplanes, limit, out, F_ALL)


@njit(cache=True, nogil=True)
def _dec_significance(
    st, data, probs, kp, csig, parent, low, val, sgn, boxes, box_class, starts, nsc, nsk, p, feat
):
    """Decoder side of :func:`_enc_significance`; returns 0, 1 truncated, 2 corrupt."""
    n = kp.size
    thr = np.int64(1) << p
    use_nbr = (feat & F_NBR) != 0
    use_par = (feat & F_PARENT) != 0
    use_child = (feat & F_CHILD) != 0
    skip_to = 0
    for b in range(boxes.shape[0]):
        s0 = starts[b]
        s1 = starts[b + 1]
        if s1 <= skip_to:
            continue
        ny = boxes[b, 6] - boxes[b, 5]
        nx = boxes[b, 8] - boxes[b, 7]
        nz = boxes[b, 4] - boxes[b, 3]
        h = nx * ny
        cb = box_class[b] * NNB
        i = s0 if s0 > skip_to else skip_to
        x = 0
        y = 0
        z = 0
        fresh = True
        while i < s1:
            if i % CHUNK == 0:
                c = i // CHUNK
                clen = min(CHUNK, n - i)
                flag = 0
                if nsc[c] < clen:
                    ctx = C_RUN + 2 * box_class[b] + (1 if nsc[c] > nsk[c] else 0)
                    flag = _decode_bit(st, data, probs, ctx)
                    if flag < 0:
                        return 1 if flag == -1 else 2
                if flag == 0:
                    skip_to = i + clen
                    i = skip_to
                    fresh = True
                    continue
            if kp[i] == -1:
                if fresh:
                    local = i - s0
                    z = local // h
                    y = (local - z * h) // nx
                    x = local - z * h - y * nx
                    fresh = False
                nb = _count(kp, i, x, y, z, nx, h, nx, ny, nz) if use_nbr else 0
                fam = csig[i] if use_child else 0
                par = parent[i] if use_par else -1
                if par >= 0 and kp[par] >= 0:
                    d = kp[par] - p
                    fam += 2 * (1 + (d if d < 2 else 2))
                bit = _decode_bit(st, data, probs, C_SIG + (cb + nb) * NFAM + fam)
                if bit < 0:
                    return 1 if bit == -1 else 2
                if bit == 1:
                    sg = _decode_bit(st, data, probs, C_SIGN)
                    if sg < 0:
                        return 1 if sg == -1 else 2
                    kp[i] = p
                    nsc[i // CHUNK] += 1
                    if parent[i] >= 0:
                        csig[parent[i]] = 1
                    low[i] = p
                    val[i] = thr
                    sgn[i] = sg
            i += 1
            if not fresh:
                x += 1
                if x == nx:
                    x = 0
                    y += 1
                    if y == ny:
                        y = 0
                        z += 1
    return 0


@njit(cache=True, nogil=True)
def _dec_refinement(st, data, probs, kp, low, val, boxes, starts, nsc, nsk, p, feat):
    """Decoder side of :func:`_enc_refinement`; returns 0, 1 truncated, 2 corrupt."""
    n = kp.size
    if not feat & F_REFCTX:
        for c in range(nsc.size):
            if nsc[c] == nsk[c]:
                continue
            for i in range(c * CHUNK, min(c * CHUNK + CHUNK, n)):
                if kp[i] > p:
                    a = kp[i] - p - 1
                    bit = _decode_bit(st, data, probs, C_REF + 4 * (a if a < 3 else 3))
                    if bit < 0:
                        return 1 if bit == -1 else 2
                    val[i] += np.int64(bit) << p
                    low[i] = p
        return 0
    for b in range(boxes.shape[0]):
        s0 = starts[b]
        s1 = starts[b + 1]
        ny = boxes[b, 6] - boxes[b, 5]
        nx = boxes[b, 8] - boxes[b, 7]
        nz = boxes[b, 4] - boxes[b, 3]
        h = nx * ny
        i = s0
        x = 0
        y = 0
        z = 0
        fresh = True
        while i < s1:
            c = i // CHUNK
            if nsc[c] == nsk[c]:
                i = min((c + 1) * CHUNK, s1)
                fresh = True
                continue
            if kp[i] > p:
                if fresh:
                    local = i - s0
                    z = local // h
                    y = (local - z * h) // nx
                    x = local - z * h - y * nx
                    fresh = False
                bit = _decode_bit(st, data, probs, _ref_ctx(kp, i, x, y, z, nx, h, nx, ny, nz, p))
                if bit < 0:
                    return 1 if bit == -1 else 2
                val[i] += np.int64(bit) << p
                low[i] = p
            i += 1
            if not fresh:
                x += 1
                if x == nx:
                    x = 0
                    y += 1
                    if y == ny:
                        y = 0
                        z += 1
    return 0


@njit(cache=True, nogil=True)
def ctx_decode_features(data, nbytes, boxes, box_class, top, nplanes, rec, scale, feat):
    """:func:`ctx_decode` with the contexts chosen by ``feat`` (``F_*`` flags)."""
    return ctx_decode_skip(
        data, nbytes, boxes, box_class, top, nplanes, rec, scale, feat, np.zeros(0, np.uint8)
    )


@njit(cache=True, nogil=True)
def ctx_decode_skip(data, nbytes, boxes, box_class, top, nplanes, rec, scale, feat, skip):
    """Decoder of :func:`ctx_encode_skip` (the same ``skip``; skipped coefficients stay 0)."""
    n = rec.size
    if nbytes > data.size:
        nbytes = data.size
    st = decoder_start(data, nbytes)
    if st[1] > st[2]:
        return 2
    probs = _model(feat)
    kp = np.full(n, -1, dtype=np.int8)  # plane of significance
    csig = np.zeros(n, dtype=np.int8)
    parent = parents(boxes, box_class)
    starts = _box_starts(boxes)
    if starts[-1] != n:
        return 2
    nsc = np.zeros((n + CHUNK - 1) // CHUNK, dtype=np.int64)
    nsk = np.zeros((n + CHUNK - 1) // CHUNK, dtype=np.int64)
    _skip_state(kp, nsk, skip)
    nsc[:] = nsk
    low = np.full(n, 127, dtype=np.int8)  # lowest plane known (127: none)
    val = np.zeros(n, dtype=np.int64)
    sgn = np.zeros(n, dtype=np.uint8)
    status = 0
    for k in range(nplanes):
        p = top - k
        status = _dec_significance(
            st,
            data,
            probs,
            kp,
            csig,
            parent,
            low,
            val,
            sgn,
            boxes,
            box_class,
            starts,
            nsc,
            nsk,
            p,
            feat,
        )
        if status == 0:
            status = _dec_refinement(
                st, data, probs, kp, low, val, boxes, starts, nsc, nsk, p, feat
            )
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


@njit(cache=True, nogil=True)
def ctx_decode(data, nbytes, boxes, box_class, top, nplanes, rec, scale):
    """Decode into ``rec`` (scan order, zero-filled, midpoint reconstruction times ``scale``);
    returns the status: 0 complete, 1 truncated, 2 corrupt."""
    return ctx_decode_features(data, nbytes, boxes, box_class, top, nplanes, rec, scale, F_ALL)


def encode_coefficients(
    mag, neg, boxes, box_class, top, nplanes, limit, features: int = F_ALL, skip=None
) -> Stream:
    """Run :func:`ctx_encode_skip`; ``limit=None`` codes every plane. ``features`` other than
    :data:`F_ALL` give a stream only :func:`decode_midpoints` with the same ``features`` reads
    (for measuring what each context gains). ``skip`` (uint8 ``(N,)``, scan order, or None):
    coefficients outside a shape-adaptive object, not coded."""
    n = mag.size
    if nplanes <= 0 or n == 0:
        return Stream(b"", STATUS_COMPLETE)
    if n >= 2**31:
        raise WdrError("more than 2**31 - 1 coefficients: split the array")
    cap = limit if limit is not None else 2**62
    size = min(cap, max(1024, n * 3)) + 64
    b = np.ascontiguousarray(boxes, dtype=np.int64)
    cls = np.ascontiguousarray(box_class, dtype=np.int64)
    sk = _skip_array(skip, n, mag)
    while True:
        out = np.zeros(size, dtype=np.uint8)
        nbytes, status = ctx_encode_skip(mag, neg, b, cls, top, nplanes, cap, out, features, sk)
        if status != STATUS_BUFFER:
            return Stream(out[:nbytes].tobytes(), int(status))
        size = max(2 * size, int(nbytes) + 1024)


def _skip_array(skip, n: int, mag=None) -> np.ndarray:
    """``skip`` as the kernels take it (empty: none); checks its length and, at encoding, that
    every skipped magnitude is 0 (the decoder reconstructs 0 there)."""
    if skip is None:
        return np.zeros(0, dtype=np.uint8)
    sk = np.ascontiguousarray(skip, dtype=np.uint8)
    if sk.size != n:
        raise ValueError(f"skip has {sk.size} entries for {n} coefficients")
    if mag is not None and np.any(mag[sk != 0]):
        raise ValueError("a skipped coefficient has a nonzero magnitude")
    return sk


def decode_midpoints(
    payload, boxes, box_class, n, top, nplanes, scale, features: int = F_ALL, skip=None
) -> Midpoints:
    """Run :func:`ctx_decode_skip`; returns ``(rec float64 scan order, status)`` (``skip`` as
    for :func:`encode_coefficients`)."""
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
    sk = _skip_array(skip, n)
    status = ctx_decode_skip(data, nbytes, b, cls, top, nplanes, rec, scale, features, sk)
    return Midpoints(rec, int(status))
