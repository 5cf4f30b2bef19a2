"""Numba WDR bit-plane coder with an integrated adaptive binary range coder.

Input to the encoder is the coefficient list in scan order: integer magnitudes ``mag`` (int64,
fixed point) and signs ``neg`` (uint8, 1 = negative). For threshold ``T = 2**p``,
``p = top, top-1, ..., top-nplanes+1``:

* **sorting pass** over the insignificant coefficient set (ICS, scan order): for every
  coefficient with ``mag >= T`` the gap since the previous newly significant one (1-based positions
  in the ICS as it was at the start of the pass) is sent in binary, most significant 1 dropped,
  followed by its sign, which also terminates the run bits; the pass ends with the gap to position
  ``len(ICS) + 1`` and a ``+`` (end-of-pass marker); the ICS is then renumbered (compacted);
* **refinement pass**: bit ``p`` of every coefficient that was significant before this pass.

Symbols ``{0, 1, +, -}`` are coded as binary decisions with adaptive models: ``term[k, t]``
(sign/terminator vs run bit, ``t`` = run bits sent so far in this gap, capped at 23),
``bit[k, t]`` (run bit value), ``sign``, and ``ref[a]`` for refinement bits (``a`` = planes since
the coefficient became significant, minus 1, capped at 3). ``k`` is the subband class (0 low band,
else the detail level) of the previous newly significant coefficient. This is WDR's 4-symbol
context split by run-bit position; measured against a single position context on dipy
S0_10slices / nibabel example4d it gains 0.3-0.5 dB at 0.25-1 bpv, up to 1.3 dB at 2 bpv, and
lossless ratios 2.33 -> 2.39 and 4.03 -> 4.25 (the class split adds ~0.02 dB). Each model
averages two probability estimators kept at 16-bit precision (adaptation shifts 5 and 8).

The range coder is LZMA's (carry-less with a cache byte; the always-zero first byte is dropped).
The encoder stops as soon as ``limit`` bytes are final, so any prefix of the output is a valid
stream. The decoder runs two code registers, one padded with ``0x00`` and one with ``0xFF`` past
the end of the data; a decision is taken only when both agree, so a prefix decodes exactly the
symbols it determines and nothing else. Every index in the decoder is guarded by construction
(a gap is checked against the rest of the ICS before it is used, input reads against the byte
count) and its loops are bounded by ``n``, ``nplanes`` and the run length, so corrupt data can
neither crash nor hang it.

The ICS is kept in chunks of 64 entries with their count (and, in the encoder, their largest
magnitude), so a pass skips chunks that hold no newly significant coefficient; positions and
gaps are exactly those of the flat list.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from wdrcodec.errors import WdrError

PROB_BITS = 12
P16 = 1 << 16  # estimators run at 16-bit precision
FAST = 5  # two estimators per context, averaged: fast (shift 5) and slow (shift 8)
SLOW = 8
MIX_SHIFT = 17 - PROB_BITS  # (fast + slow) / 2 at 16 bits -> 12 bits
TOP = 1 << 24
MASK32 = (1 << 32) - 1
NRUN = 24
# context layout
NCLS = 8  # subband classes (0 low band, l = detail level, capped)
C_TERM = 0
C_BIT = NCLS * NRUN
C_SIGN = 2 * NCLS * NRUN
C_REF = 2 * NCLS * NRUN + 1
NCTX = 2 * NCLS * NRUN + 1 + 4

CHUNK = 64  # ICS chunk length (see wdr_encode)
GONE = 255  # decoder ICS: a removed entry (offsets inside a chunk are 0 .. CHUNK - 1)

STATUS_COMPLETE = 0
STATUS_TRUNCATED = 1
STATUS_CORRUPT = 2
STATUS_BUFFER = 3


# ----------------------------------------------------------------------------- encoder
# state: 0 low, 1 range, 2 cache, 3 cache_size, 4 pos, 5 drop-first-byte flag


@njit(nogil=True, cache=True)
def _shift_low(st, out):
    low = st[0]
    if low < 0xFF000000 or low > MASK32:
        carry = low >> 32
        temp = st[2]
        while True:
            b = (temp + carry) & 0xFF
            if st[5] == 1:
                st[5] = 0
            else:
                if st[4] < out.size:
                    out[st[4]] = b
                st[4] += 1
            temp = 0xFF
            st[3] -= 1
            if st[3] == 0:
                break
        st[2] = (low >> 24) & 0xFF
    st[3] += 1
    st[0] = (low & 0x00FFFFFF) << 8


@njit(nogil=True, cache=True)
def _enc_gap(st, out, probs, gap, negative, cb):
    """Encode a gap (digits below its leading 1) and its sign: ``2 * digits + 2`` decisions.

    The decisions share one inlined encoder step with ``low``/``range`` in local variables.
    """
    nb = 0
    g = gap
    while g > 1:
        g >>= 1
        nb += 1
    low = st[0]
    rng = st[1]
    for d in range(2 * nb + 2):
        t = d >> 1
        c = t if t < NRUN else NRUN - 1
        if d == 2 * nb + 1:
            ctx = 2 * C_SIGN
            bit = negative
        elif d & 1 == 0:
            ctx = 2 * (C_TERM + cb + c)
            bit = 1 if d == 2 * nb else 0
        else:
            ctx = 2 * (C_BIT + cb + c)
            bit = (gap >> (nb - 1 - t)) & 1
        pf = probs[ctx]
        ps = probs[ctx + 1]
        bound = (rng >> PROB_BITS) * ((pf + ps) >> MIX_SHIFT)
        if bit == 0:
            rng = bound
            probs[ctx] = pf + ((P16 - pf) >> FAST)
            probs[ctx + 1] = ps + ((P16 - ps) >> SLOW)
        else:
            low += bound
            rng -= bound
            probs[ctx] = pf - (pf >> FAST)
            probs[ctx + 1] = ps - (ps >> SLOW)
        while rng < TOP:
            rng = (rng << 8) & MASK32
            st[0] = low
            _shift_low(st, out)
            low = st[0]
    st[0] = low
    st[1] = rng


@njit(nogil=True, cache=True)
def _enc_refine(st, out, probs, sigp, smag, count, p, limit):
    """Refinement pass of plane ``p``; returns how many bits were coded before ``limit``."""
    low = st[0]
    rng = st[1]
    i = 0
    while i < count:
        a = sigp[i] - p - 1
        if a > 3:
            a = 3
        ctx = 2 * (C_REF + a)
        pf = probs[ctx]
        ps = probs[ctx + 1]
        bound = (rng >> PROB_BITS) * ((pf + ps) >> MIX_SHIFT)
        if (smag[i] >> p) & 1 == 0:
            rng = bound
            probs[ctx] = pf + ((P16 - pf) >> FAST)
            probs[ctx + 1] = ps + ((P16 - ps) >> SLOW)
        else:
            low += bound
            rng -= bound
            probs[ctx] = pf - (pf >> FAST)
            probs[ctx + 1] = ps - (ps >> SLOW)
        i += 1
        if rng < TOP:
            while rng < TOP:
                rng = (rng << 8) & MASK32
                st[0] = low
                _shift_low(st, out)
                low = st[0]
            if st[4] >= limit:
                break
    st[0] = low
    st[1] = rng
    return i


@njit(nogil=True, cache=True)
def wdr_encode(mag, neg, cls, top, nplanes, limit, out):
    """Encode; returns ``(nbytes, planes_started, status)``.

    ``out`` must have room for at least ``limit`` bytes; coding stops once ``limit`` bytes are
    final (status 1) or after the last plane (status 0, stream flushed). Status 3 means ``out``
    overflowed before ``limit`` and the call must be repeated with a larger buffer.
    """
    n = mag.size
    return wdr_encode_ws(
        mag,
        neg,
        cls,
        top,
        nplanes,
        limit,
        out,
        np.empty(n, dtype=np.int32),
        np.empty(n, dtype=np.int32),
        np.empty(n, dtype=np.int8),
        np.empty(n, dtype=np.int64),
    )


@njit(nogil=True, cache=True)
def wdr_encode_ws(mag, neg, cls, top, nplanes, limit, out, ics, sig, sigp, smag):
    """:func:`wdr_encode` with caller-provided work arrays (contents ignored, at least
    ``mag.size`` each): ``ics``/``sig`` int32, ``sigp`` int8, ``smag`` int64 (numpy's large
    allocations get transparent huge pages, and a pool's threads reuse them:
    :func:`encoder_workspace`)."""
    n = mag.size
    st = np.zeros(6, dtype=np.int64)
    st[1] = MASK32
    st[3] = 1
    st[5] = 1
    probs = np.full(2 * NCTX, P16 // 2, dtype=np.int64)
    # chunked ICS: chunk c holds cnt[c] entries at ics[c*CHUNK : c*CHUNK + cnt[c]]; cmax[c] is
    # the largest magnitude among them, so a chunk without a new significant one is skipped
    nch = (n + CHUNK - 1) // CHUNK
    for i in range(n):
        ics[i] = i
    cnt = np.full(nch, CHUNK, dtype=np.int64)
    cnt[nch - 1] = n - (nch - 1) * CHUNK
    cmax = np.zeros(nch, dtype=np.int64)
    for i in range(n):
        if mag[i] > cmax[i // CHUNK]:
            cmax[i // CHUNK] = mag[i]
    nics = n
    # sig, sigp, smag: index, plane and magnitude in significance order (sequential refinement)
    nsig = 0
    for k in range(nplanes):
        p = top - k
        thr = np.int64(1) << p
        nsig_old = nsig
        last = 0
        cb = 0  # context block: subband class of the previous new significant coefficient
        start = 0  # position (0-based, in the ICS at the start of the pass) of the chunk
        nics_new = 0
        for c in range(nch):
            m = cnt[c]
            if cmax[c] < thr:
                start += m
                nics_new += m
                continue
            base = c * CHUNK
            w = base
            newmax = 0
            for j in range(m):
                idx = ics[base + j]
                v = mag[idx]
                if v >= thr:
                    _enc_gap(st, out, probs, start + j + 1 - last, neg[idx], cb)
                    cb = cls[idx] * NRUN
                    last = start + j + 1
                    sig[nsig] = idx
                    smag[nsig] = v
                    sigp[nsig] = p
                    nsig += 1
                    if st[4] >= limit:
                        return limit, k + 1, 1
                    if st[4] > out.size:
                        return st[4], k + 1, 3
                else:
                    ics[w] = idx
                    w += 1
                    if v > newmax:
                        newmax = v
            cnt[c] = w - base
            cmax[c] = newmax
            nics_new += w - base
            start += m
        _enc_gap(st, out, probs, nics + 1 - last, 0, cb)
        nics = nics_new
        if st[4] >= limit:
            return limit, k + 1, 1
        _enc_refine(st, out, probs, sigp, smag, nsig_old, p, limit)
        if st[4] >= limit:
            return limit, k + 1, 1
        if st[4] > out.size:
            return st[4], k + 1, 3
    for _ in range(5):
        _shift_low(st, out)
    if st[4] > out.size:
        return st[4], nplanes, 3
    if st[4] >= limit:
        return limit, nplanes, 1
    return st[4], nplanes, 0


# ----------------------------------------------------------------------------- decoder
# state: 0 range, 1 code_lo, 2 code_hi, 3 pos, 4 nbytes


@njit(nogil=True, cache=True)
def _dec_gap(st, data, probs, maxgap, cb):
    """Decode a gap and its sign; returns ``(gap, negative)``, gap < 0 on stop (-1/-2).

    A small state machine (run-bit flag, run bit, sign) around one inlined binary decision,
    with the coder state in local variables. A decision is taken only when the 0x00-padded and
    0xFF-padded code registers agree (-1 otherwise: the available bytes do not determine it).
    """
    rng = st[0]
    lo = st[1]
    hi = st[2]
    pos = st[3]
    nbytes = st[4]
    g = 1
    t = 0
    phase = 0  # 0: terminator flag, 1: run bit, 2: sign
    result = 0
    sign = 0
    while True:
        c = t if t < NRUN else NRUN - 1
        if phase == 0:
            ctx = 2 * (C_TERM + cb + c)
        elif phase == 1:
            ctx = 2 * (C_BIT + cb + c)
        else:
            ctx = 2 * C_SIGN
        pf = probs[ctx]
        ps = probs[ctx + 1]
        bound = (rng >> PROB_BITS) * ((pf + ps) >> MIX_SHIFT)
        lo_less = lo < bound
        if lo_less != (hi < bound):
            result = -1
            break
        if lo_less:
            bit = 0
            rng = bound
            probs[ctx] = pf + ((P16 - pf) >> FAST)
            probs[ctx + 1] = ps + ((P16 - ps) >> SLOW)
        else:
            bit = 1
            lo -= bound
            hi -= bound
            rng -= bound
            probs[ctx] = pf - (pf >> FAST)
            probs[ctx + 1] = ps - (ps >> SLOW)
        if hi > rng - 1:
            hi = rng - 1
        if lo > hi:
            result = -2
            break
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
        if phase == 0:
            phase = 2 if bit == 1 else 1
        elif phase == 1:
            g = 2 * g + bit
            t += 1
            if g > maxgap:
                result = -2
                break
            phase = 0
        else:
            sign = bit
            result = g
            break
    st[0] = rng
    st[1] = lo
    st[2] = hi
    st[3] = pos
    return result, sign


# A gap has at most 2 * 62 + 2 decisions and a decision reads at most 2 bytes (after one the
# range is >= 2**15: the probability of either outcome is >= 8 / 4096), so with more than
# FAST_MARGIN bytes left no read of the gap passes the end of the data.
FAST_MARGIN = 2 * (2 * 62 + 2) + 8


@njit(nogil=True, cache=True, inline="always")
def _decide(rng, code, pos, data, probs, ctx):
    """One binary decision with a single code register, branchless (the decided bit as a mask,
    as in :func:`_refine`); returns ``(bit, range, code, pos)``, corrupt when ``code >= range``
    (then the state is not used). The caller guarantees that two bytes can be read at
    ``pos``."""
    pf = probs[ctx]
    ps = probs[ctx + 1]
    bound = (rng >> PROB_BITS) * ((pf + ps) >> MIX_SHIFT)
    bit = np.int64(code >= bound)
    m = -bit
    code -= bound & m
    rng = bound + ((rng - 2 * bound) & m)
    probs[ctx] = pf + (((P16 - pf) >> FAST) & ~m) - ((pf >> FAST) & m)
    probs[ctx + 1] = ps + (((P16 - ps) >> SLOW) & ~m) - ((ps >> SLOW) & m)
    # renormalisation without a branch: range >= 2**15 after any decision (both outcomes have
    # probability >= 8 / 4096), so 0, 1 or 2 bytes are shifted in, as many as the loop
    # ``while range < 2**24`` of :func:`_dec_gap` takes
    nb = np.int64(rng < TOP) + np.int64(rng < (1 << 16))
    two = (np.int64(data[pos]) << 8) | np.int64(data[pos + 1])
    sh = nb << 3
    rng = rng << sh
    code = (code << sh) | (two >> (16 - sh))
    pos += nb
    return bit, rng, code, pos


@njit(nogil=True, cache=True, inline="always")
def _dec_gap_fast(rng, code, pos, data, probs, maxgap, cb):
    """:func:`_dec_gap` while at least ``FAST_MARGIN`` bytes are left: same decisions, same
    results, same stops on corrupt data, with one code register instead of two and the coder
    state in scalars; returns ``(gap, negative, range, code, pos)``.

    While no byte past the end has been read the 0x00- and 0xFF-padded registers are equal
    (the range decoder's ``high`` only departs from ``low`` through padding, or through the
    clamp to ``range - 1`` that flags corruption), so they always agree and ``low > high``
    after the clamp is ``low >= range``. Decisions are branchless (:func:`_decide`); the only
    data-dependent branch is the end of the gap.
    """
    g = 1
    t = 0
    result = 0
    sign = 0
    while True:
        c = t if t < NRUN else NRUN - 1
        term, rng, code, pos = _decide(rng, code, pos, data, probs, 2 * (C_TERM + cb + c))
        if code >= rng:
            result = -2
            break
        if term == 1:
            sign, rng, code, pos = _decide(rng, code, pos, data, probs, 2 * C_SIGN)
            result = -2 if code >= rng else g
            break
        bit, rng, code, pos = _decide(rng, code, pos, data, probs, 2 * (C_BIT + cb + c))
        if code >= rng:
            result = -2
            break
        g = 2 * g + bit
        t += 1
        if g > maxgap:
            result = -2
            break
    return result, sign, rng, code, pos


@njit(nogil=True, cache=True)
def decoder_start(data, nbytes):
    """Range-decoder state ``[range, low, high, next byte, nbytes]`` after its first 4 bytes.

    Missing bytes read as 0 for ``low`` and 0xFF for ``high`` (a truncated stream); the stream is
    corrupt when ``low > high`` on return (callers check ``st[1] > st[2]``).
    """
    st = np.zeros(5, dtype=np.int64)
    st[0] = MASK32
    st[4] = nbytes
    for i in range(4):
        if i < nbytes:
            b = np.int64(data[i])
            st[1] = (st[1] << 8) | b
            st[2] = (st[2] << 8) | b
        else:
            st[1] = st[1] << 8
            st[2] = (st[2] << 8) | 0xFF
    st[3] = 4
    if st[2] > st[0] - 1:
        st[2] = st[0] - 1
    return st


@njit(nogil=True, cache=True)
def wdr_decode(data, nbytes, cls, top, nplanes, val, kp, neg, rec, scale, boxes, starts):
    """Decode the stream of ``cls.size`` coefficients.

    Outputs (scan order; pass empty arrays to skip one kind): ``val`` (int64 magnitudes),
    ``kp`` (lowest known plane, -1 insignificant), ``neg`` (uint8 sign) and/or ``rec`` (float64
    signed midpoint reconstruction times ``scale``; must be zero-filled). With non-empty
    ``boxes`` (layout rows, see :func:`gather_magnitudes`) and ``starts`` (scan index of each
    box's first coefficient), ``rec`` is indexed by the coefficient's position in the blocks
    instead of its scan index, which saves the scatter pass. Returns ``(status,
    planes_started)``: 0 complete, 1 truncated, 2 corrupt.

    The work arrays are allocated here; :func:`wdr_decode_ws` takes them from the caller
    (numpy's large allocations get transparent huge pages, numba's do not: a fresh 4 KiB page
    costs ~2.5 us to fault in on this machine, ~20 ms for a 64x256x256 float64 array).
    """
    n = cls.size
    return wdr_decode_ws(
        data,
        nbytes,
        cls,
        top,
        nplanes,
        val,
        kp,
        neg,
        rec,
        scale,
        boxes,
        starts,
        np.empty(n, dtype=np.uint8),
        np.empty(n, dtype=np.int32),
        np.empty(n, dtype=np.int8),
        np.empty(n, dtype=np.int64),
        np.empty(n, dtype=np.uint8),
        np.empty(n if boxes.shape[0] > 0 else 0, dtype=np.int32),
    )


@njit(nogil=True, cache=True)
def wdr_decode_ws(
    data, nbytes, cls, top, nplanes, val, kp, neg, rec, scale, boxes, starts,
    ics, sig, sigp, sval, sneg, spos,
):  # fmt: skip
    """:func:`wdr_decode` with caller-provided work arrays (contents ignored, ``n`` each):
    ``ics`` uint8, ``sig``/``spos`` int32, ``sigp`` int8, ``sval`` int64, ``sneg`` uint8.
    Untouched pages of them are never faulted in.

    The ICS starts as the identity; a chunk's entries are written only when a coefficient first
    leaves it (``state`` 0 = identity, not stored), so a low-rate decode never writes the
    ``n``-entry index list of the finest subbands. Chunks never exchange entries, so an entry
    is stored as its offset inside its chunk (uint8, :data:`GONE` once removed): a quarter of
    the memory traffic and page faults of int32 indices. With ``boxes``, a coefficient's block
    position is found when it becomes significant (``spos``): scan indices rise during a pass,
    so its box is found by stepping forward, and the final write needs no search, division or
    scan-order buffer.
    """
    n = cls.size
    if nbytes > data.size:
        nbytes = data.size
    st = decoder_start(data, nbytes)
    if st[1] > st[2]:
        return 2, 0
    probs = np.full(2 * NCTX, P16 // 2, dtype=np.int64)
    nch = (n + CHUNK - 1) // CHUNK
    cnt = np.full(nch, CHUNK, dtype=np.int64)
    cnt[nch - 1] = n - (nch - 1) * CHUNK
    nbox = boxes.shape[0]
    to_block = nbox > 0 and rec.size > 0
    # per box: row length, slice area and their reciprocals (positions without a division)
    bw = boxes[:, 8] - boxes[:, 7]
    bhw = (boxes[:, 6] - boxes[:, 5]) * bw
    iw = 1.0 / np.maximum(bw, 1)
    ihw = 1.0 / np.maximum(bhw, 1)
    # chunk state: 0 identity (not stored), 1 stored and compact, 2 stored with entries removed
    # (-1) in pass mark[c], compacted when a later pass first needs the chunk (a chunk that
    # no later pass reaches is never compacted); the chunks a pass removed from are listed in
    # ``touched`` so the counts are updated without a sweep over every chunk
    state = np.zeros(nch, dtype=np.uint8)
    mark = np.full(nch, -1, dtype=np.int64)
    plen = cnt.copy()  # stored entries, removed ones included
    removed = np.zeros(nch, dtype=np.int64)
    touched = np.empty(nch, dtype=np.int64)
    nics = n
    nsig = 0
    for k in range(nplanes):
        p = top - k
        thr = np.int64(1) << p
        nsig_old = nsig
        last = 0
        cb = 0
        c = 0
        start = 0  # ICS position (0-based, start of pass) of chunk c
        ntouched = 0
        bc = 0  # box of the previous new significant coefficient (scan indices rise)
        rng = st[0]  # the coder state in scalars for the fast gaps (stored back below)
        lo = st[1]
        hi = st[2]
        bpos = st[3]
        while True:
            if lo == hi and nbytes - bpos > FAST_MARGIN:
                gap, s, rng, lo, bpos = _dec_gap_fast(
                    rng, lo, bpos, data, probs, nics + 1 - last, cb
                )
                hi = lo if lo < rng else rng - 1  # the clamp of the two-register form
            else:
                st[0] = rng
                st[1] = lo
                st[2] = hi
                st[3] = bpos
                gap, s = _dec_gap(st, data, probs, nics + 1 - last, cb)
                rng = st[0]
                lo = st[1]
                hi = st[2]
                bpos = st[3]
            if gap < 0:
                _finish(
                    sig, sval, sigp, sneg, nsig, p, 0, val, kp, neg, rec, scale, boxes, starts,
                    spos,
                )  # fmt: skip
                return (1 if gap == -1 else 2), k + 1
            pos = last + gap
            if pos == nics + 1:
                break
            while start + cnt[c] < pos:  # bounded: pos <= nics = sum(cnt)
                start += cnt[c]
                c += 1
            base = c * CHUNK
            if state[c] == 0:  # identity chunk: store it before its first removal
                for j in range(cnt[c]):
                    ics[base + j] = j
                state[c] = 1
            elif state[c] == 2 and mark[c] != k:  # removals of an earlier pass: compact
                w = base
                for j in range(base, base + plen[c]):  # branchless: ~half are removed
                    e = ics[j]
                    ics[w] = e
                    w += e != GONE
                plen[c] = w - base
                state[c] = 1
            if state[c] == 1:
                state[c] = 2
                mark[c] = k
                touched[ntouched] = c
                ntouched += 1
            removed[c] += 1
            slot = base + (pos - 1 - start)
            idx = base + np.int64(ics[slot])
            ics[slot] = GONE  # removed from the counts at the end of the pass
            sneg[nsig] = s
            cb = cls[idx] * NRUN
            sig[nsig] = idx
            if to_block:
                while bc + 1 < nbox and idx >= starts[bc + 1]:
                    bc += 1
                local = idx - starts[bc]
                z = _quotient(local, bhw[bc], ihw[bc])
                rz = local - z * bhw[bc]
                y = _quotient(rz, bw[bc], iw[bc])
                spos[nsig] = (
                    boxes[bc, 0]
                    + ((boxes[bc, 3] + z) * boxes[bc, 1] + boxes[bc, 5] + y) * boxes[bc, 2]
                    + (boxes[bc, 7] + rz - y * bw[bc])
                )
            sval[nsig] = thr
            sigp[nsig] = p
            nsig += 1
            last = pos
        st[0] = rng
        st[1] = lo
        st[2] = hi
        st[3] = bpos
        for i in range(ntouched):
            c = touched[i]
            cnt[c] -= removed[c]
            nics -= removed[c]
            removed[c] = 0
        i, b = _refine(st, data, probs, sigp, sval, nsig_old, p)
        if b < 0:
            _finish(
                sig, sval, sigp, sneg, nsig, p, i, val, kp, neg, rec, scale, boxes, starts, spos
            )
            return (1 if b == -1 else 2), k + 1
    _finish(
        sig,
        sval,
        sigp,
        sneg,
        nsig,
        top - nplanes + 1,
        nsig,
        val,
        kp,
        neg,
        rec,
        scale,
        boxes,
        starts,
        spos,
    )
    return 0, nplanes


@njit(nogil=True, cache=True)
def _refine(st, data, probs, sigp, sval, count, p):
    """Refinement pass of plane ``p`` over the first ``count`` significant coefficients.

    Same binary decision as in :func:`_dec_gap`, coder state in local variables. Returns
    ``(i, status)``: ``status`` 0 when done, else -1/-2 at ``i``. While more than 8 bytes are
    left the decisions take the single-register path of :func:`_decide` (the registers are
    equal there, see :func:`_dec_gap_fast`).
    """
    rng = st[0]
    lo = st[1]
    hi = st[2]
    pos = st[3]
    nbytes = st[4]
    status = 0
    i = 0
    if lo == hi:
        while i < count and nbytes - pos > 8:
            a = sigp[i] - p - 1
            if a > 3:
                a = 3
            bit, rng, lo, pos = _decide(rng, lo, pos, data, probs, 2 * (C_REF + a))
            if lo >= rng:  # corrupt: where the two-register form finds low > high
                status = -2
                break
            sval[i] += (np.int64(1) << p) & -bit
            i += 1
        hi = lo
    while i < count and status == 0:
        a = sigp[i] - p - 1
        if a > 3:
            a = 3
        ctx = 2 * (C_REF + a)
        pf = probs[ctx]
        ps = probs[ctx + 1]
        bound = (rng >> PROB_BITS) * ((pf + ps) >> MIX_SHIFT)
        lo_less = lo < bound
        if lo_less != (hi < bound):
            status = -1
            break
        # branchless (refinement bits are close to random, a branch mispredicts half the
        # time): m is all ones for a 1 bit, 0 for a 0 bit; same arithmetic as the branches
        m = np.int64(0) - np.int64(1 - lo_less)
        lo -= bound & m
        hi -= bound & m
        rng = bound + ((rng - 2 * bound) & m)
        probs[ctx] = pf + (((P16 - pf) >> FAST) & ~m) - ((pf >> FAST) & m)
        probs[ctx + 1] = ps + (((P16 - ps) >> SLOW) & ~m) - ((ps >> SLOW) & m)
        sval[i] += (np.int64(1) << p) & m
        if hi > rng - 1:
            hi = rng - 1
        if lo > hi:
            status = -2
            break
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
        i += 1
    st[0] = rng
    st[1] = lo
    st[2] = hi
    st[3] = pos
    return i, status


@njit(nogil=True, cache=True)
def _position(idx, boxes, starts):
    """Position in the concatenated blocks of the coefficient with scan index ``idx``."""
    return _pos_in_box(idx, np.searchsorted(starts, idx, side="right") - 1, boxes, starts)


@njit(nogil=True, cache=True)
def _pos_in_box(idx, b, boxes, starts):
    """:func:`_position` of a coefficient known to lie in scan box ``b``."""
    w = boxes[b, 8] - boxes[b, 7]
    hw = (boxes[b, 6] - boxes[b, 5]) * w
    local = idx - starts[b]
    z = local // hw
    r = local - z * hw
    y = r // w
    x = r - y * w
    return (
        boxes[b, 0]
        + ((boxes[b, 3] + z) * boxes[b, 1] + boxes[b, 5] + y) * boxes[b, 2]
        + (boxes[b, 7] + x)
    )


@njit(nogil=True, cache=True, inline="always")
def _quotient(a, d, inv):
    """``a // d`` for ``0 <= a < 2**53``, ``d >= 1``, with ``inv = 1 / d``: the float estimate is
    off by at most one, and is corrected (a multiply instead of a 64-bit division)."""
    q = np.int64(a * inv)
    if q * d > a:
        q -= 1
    elif (q + 1) * d <= a:
        q += 1
    return q


@njit(nogil=True, cache=True)
def _finish(
    sig, sval, sigp, sneg, nsig, p_cur, refined, val, kp, neg, rec, scale, boxes, starts, spos
):
    """Scatter significance-ordered results to scan order (or block positions, ``boxes``).

    Decoding stopped at plane ``p_cur`` after refining the first ``refined`` old entries:
    those and the entries found at ``p_cur`` are known down to ``p_cur``, the rest to
    ``p_cur + 1``. A magnitude known down to plane ``k`` lies in ``[v, v + 2**k - 1]`` and is
    reconstructed at its centre ``v + (2**k - 1) / 2``. ``spos``: the block positions (with
    ``boxes``), see :func:`wdr_decode_ws`.
    """
    to_block = boxes.shape[0] > 0  # rec indexed by block position: spos[i], found while sorting
    for i in range(nsig):
        idx = sig[i]
        k = p_cur if (sigp[i] == p_cur or i < refined) else p_cur + 1
        if val.size > 0:
            val[idx] = sval[i]
            kp[idx] = k
            neg[idx] = sneg[i]
        if rec.size > 0:
            r = (float(sval[i]) + ((np.int64(1) << k) - 1) / 2.0) * scale
            at = spos[i] if to_block else idx
            rec[at] = -r if sneg[i] == 1 else r


class Stream(NamedTuple):
    """Encoder output: the payload bytes and the coder status (0 complete, 1 budget reached)."""

    payload: bytes
    status: int


class Coefficients(NamedTuple):
    """Decoder output in scan order: magnitudes, lowest known plane (-1: insignificant),
    signs (1 = negative) and the status (0 complete, 1 truncated, 2 corrupt)."""

    val: np.ndarray
    kp: np.ndarray
    neg: np.ndarray
    status: int


class Midpoints(NamedTuple):
    """Signed midpoint reconstruction in scan order and the decoder status."""

    rec: np.ndarray
    status: int


def encode_coefficients(
    mag: np.ndarray,
    neg: np.ndarray,
    top: int,
    nplanes: int,
    limit: int | None,
    cls: np.ndarray | None = None,
) -> Stream:
    """Run :func:`wdr_encode`; returns :class:`Stream` ``(payload, status)`` (``limit=None``: code everything).

    ``cls`` (uint8, scan order, values < NCLS) is each coefficient's subband class; the gap
    contexts are chosen by the class of the previous newly significant coefficient.
    """
    if cls is None:
        cls = np.zeros(mag.size, dtype=np.uint8)
    n = mag.size
    if n >= 2**31:
        raise WdrError("more than 2**31 - 1 coefficients: split the array")  # int32 indices
    if nplanes <= 0 or n == 0:
        return Stream(b"", STATUS_COMPLETE)
    cap = limit if limit is not None else 2**62
    size = min(cap, max(1024, n * 3)) + 64
    while True:
        out = np.zeros(size, dtype=np.uint8)
        nbytes, _planes, status = wdr_encode(mag, neg, cls, top, nplanes, cap, out)
        if status != STATUS_BUFFER:
            return Stream(out[:nbytes].tobytes(), int(status))
        size = max(2 * size, int(nbytes) + 1024)


def decode_coefficients(
    payload: bytes, n: int, top: int, nplanes: int, cls: np.ndarray | None = None
) -> Coefficients:
    """Run :func:`wdr_decode`; returns :class:`Coefficients` ``(val, kp, neg, status)`` (``cls`` as for encoding)."""
    if cls is None:
        cls = np.zeros(n, dtype=np.uint8)
    data = np.frombuffer(payload, dtype=np.uint8).copy()  # one (writable) signature only
    if data.size == 0:
        data = np.zeros(1, dtype=np.uint8)
        nbytes = 0
    else:
        nbytes = data.size
    val = np.zeros(n, dtype=np.int64)
    kp = np.full(n, -1, dtype=np.int64)
    neg = np.zeros(n, dtype=np.uint8)
    if nplanes <= 0:
        return Coefficients(val, kp, neg, STATUS_COMPLETE)
    none = np.zeros(0, dtype=np.float64)
    nob, nos = np.zeros((0, 9), dtype=np.int64), np.zeros(0, dtype=np.int64)
    status, _planes = wdr_decode(data, nbytes, cls, top, nplanes, val, kp, neg, none, 1.0, nob, nos)
    return Coefficients(val, kp, neg, int(status))


def decode_midpoints(
    payload: bytes, top: int, nplanes: int, cls: np.ndarray, scale: float
) -> Midpoints:
    """Decode straight to the signed midpoint reconstruction (scan order) times ``scale``;
    returns :class:`Midpoints` ``(rec float64 (N,), status)``. Same result as :func:`decode_coefficients` +
    :func:`midpoint`, without the per-coefficient intermediate arrays."""
    n = cls.size
    if n >= 2**31:
        raise WdrError("more than 2**31 - 1 coefficients: split the array")  # int32 indices
    rec = np.zeros(n, dtype=np.float64)
    if nplanes <= 0:
        return Midpoints(rec, STATUS_COMPLETE)
    data = np.frombuffer(payload, dtype=np.uint8).copy()
    nbytes = data.size
    if nbytes == 0:
        data = np.zeros(1, dtype=np.uint8)
    e64 = np.zeros(0, dtype=np.int64)
    e8 = np.zeros(0, dtype=np.uint8)
    nob = np.zeros((0, 9), dtype=np.int64)
    status, _planes = wdr_decode(
        data, nbytes, cls, top, nplanes, e64, e64, e8, rec, scale, nob, e64
    )
    return Midpoints(rec, int(status))


def decode_into(
    payload: bytes,
    top: int,
    nplanes: int,
    cls: np.ndarray,
    scale: float,
    boxes: np.ndarray,
    work: tuple[np.ndarray, ...] | None = None,
    out: np.ndarray | None = None,
) -> Midpoints:
    """Like :func:`decode_midpoints`, but ``rec`` is the concatenated block coefficients
    (``boxes``: the layout's scan boxes), written directly: no scan-order array, no scatter.
    ``work``: the decoder's work arrays (:func:`workspace`, at least ``cls.size`` long each;
    their contents are ignored), to reuse them across decodes; None allocates them. ``out``:
    a zero-filled C-contiguous float64 ``(cls.size,)`` array to decode into (it is the
    returned ``rec``), None allocates it."""
    n = cls.size
    if n >= 2**31:
        raise WdrError("more than 2**31 - 1 coefficients: split the array")  # int32 indices
    if out is None:
        rec = np.zeros(n, dtype=np.float64)
    else:
        if out.shape != (n,) or out.dtype != np.float64 or not out.flags.c_contiguous:
            raise ValueError("decode_into: out must be a C-contiguous float64 (cls.size,) array")
        rec = out
    if nplanes <= 0:
        return Midpoints(rec, STATUS_COMPLETE)
    data = np.frombuffer(payload, dtype=np.uint8).copy()
    nbytes = data.size
    if nbytes == 0:
        data = np.zeros(1, dtype=np.uint8)
    e64 = np.zeros(0, dtype=np.int64)
    e8 = np.zeros(0, dtype=np.uint8)
    sizes = (boxes[:, 4] - boxes[:, 3]) * (boxes[:, 6] - boxes[:, 5]) * (boxes[:, 8] - boxes[:, 7])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    if work is None:
        ws = workspace(n)
    else:
        if len(work) != 6 or any(w.shape[0] < n for w in work):
            raise ValueError("decode_into: work must be 6 arrays of at least cls.size values")
        ws = tuple(w[:n] for w in work)
    status, _planes = wdr_decode_ws(
        data,
        nbytes,
        cls,
        top,
        nplanes,
        e64,
        e64,
        e8,
        rec,
        scale,
        np.ascontiguousarray(boxes),
        starts,
        *ws,
    )
    return Midpoints(rec, int(status))


def encoder_workspace(n: int) -> tuple[np.ndarray, ...]:
    """The work arrays of :func:`wdr_encode_ws` for ``n`` coefficients (numpy: huge pages)."""
    return (
        np.empty(n, dtype=np.int32),
        np.empty(n, dtype=np.int32),
        np.empty(n, dtype=np.int8),
        np.empty(n, dtype=np.int64),
    )


def workspace(n: int) -> tuple[np.ndarray, ...]:
    """The work arrays of :func:`wdr_decode_ws` for ``n`` coefficients, allocated by numpy
    (huge pages where the system offers them; pages are faulted in only where written)."""
    return (
        np.empty(n, dtype=np.uint8),
        np.empty(n, dtype=np.int32),
        np.empty(n, dtype=np.int8),
        np.empty(n, dtype=np.int64),
        np.empty(n, dtype=np.uint8),
        np.empty(n, dtype=np.int32),
    )


def midpoint(val: np.ndarray, kp: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Signed midpoint reconstruction (float64) of integer magnitudes known down to plane ``kp``.

    A magnitude known down to plane ``p`` lies in ``[val, val + 2**p - 1]``; its centre is
    ``val + (2**p - 1) / 2``. Insignificant coefficients (``kp < 0``) reconstruct to 0.
    """
    half = np.where(kp > 0, (np.left_shift(1, np.maximum(kp, 0)) - 1) / 2.0, 0.0)
    rec = np.where(kp >= 0, val + half, 0.0)
    return np.where(neg == 1, -rec, rec)


@njit(nogil=True, cache=True)
def gather_magnitudes(flat, boxes, scale, mag, neg):
    """Scan the subband ``boxes`` of ``flat`` in order: ``mag = rint(|c| * scale)``, ``neg``.

    ``boxes`` rows are ``(offset, ny, nx, z0, z1, y0, y1, x0, x1)`` (see layout.Layout).
    """
    i = 0
    for b in range(boxes.shape[0]):
        off, ny, nx = boxes[b, 0], boxes[b, 1], boxes[b, 2]
        for z in range(boxes[b, 3], boxes[b, 4]):
            for y in range(boxes[b, 5], boxes[b, 6]):
                base = off + (z * ny + y) * nx
                for x in range(boxes[b, 7], boxes[b, 8]):
                    c = flat[base + x]
                    if c < 0:
                        neg[i] = 1
                        c = -c
                    else:
                        neg[i] = 0
                    mag[i] = np.int64(np.rint(c * scale))
                    i += 1


@njit(nogil=True, cache=True)
def bit_length_hist(mag, hist):
    """``hist[b] +=`` how many of the 1D int64 ``mag`` have ``frexp(float(m))`` exponent ``b``
    (the bit length for ``0 <= m < 2**53``, 0 for zeros), for ``b < hist.size``: the exponent
    field of the float64 value, read in blocks (the conversion vectorises; GIL-free)."""
    buf = np.empty(256, dtype=np.float64)
    bits = buf.view(np.uint64)
    nb = hist.size
    n = mag.size
    for s in range(0, n, 256):
        m = min(256, n - s)
        f = buf[:m]
        src = mag[s : s + m]
        for i in range(m):
            f[i] = src[i]
        u = bits[:m]
        for i in range(m):
            e = np.int64((u[i] >> np.uint64(52)) & np.uint64(0x7FF))
            b = e - 1022 if e > 0 else 0
            if b < nb:
                hist[b] += 1


@njit(nogil=True, cache=True)
def scatter_values(rec, boxes, out):
    """Inverse of the box scan: ``out[position of coefficient i] = rec[i]``."""
    i = 0
    for b in range(boxes.shape[0]):
        off, ny, nx = boxes[b, 0], boxes[b, 1], boxes[b, 2]
        for z in range(boxes[b, 3], boxes[b, 4]):
            for y in range(boxes[b, 5], boxes[b, 6]):
                base = off + (z * ny + y) * nx
                for x in range(boxes[b, 7], boxes[b, 8]):
                    out[base + x] = rec[i]
                    i += 1


@njit(nogil=True, cache=True)
def finalize(vol, mean, vmin, vmax):
    """In place: ``vol = clip(rint(vol + mean), vmin, vmax)`` (C-contiguous float64)."""
    finalize_to(vol, mean, vmin, vmax, vol)


@njit(nogil=True, cache=True)
def finalize_to(vol, mean, vmin, vmax, out):
    """:func:`finalize` and the cast to an integer dtype in one pass: ``out`` (C-contiguous,
    same size as ``vol``) ``= clip(rint(vol + mean), vmin, vmax)``; ``vol`` is left as is."""
    v = vol.ravel()
    o = out.ravel()
    for i in range(v.size):
        x = np.rint(v[i] + mean)
        if x < vmin:
            x = vmin
        elif x > vmax:
            x = vmax
        o[i] = x
