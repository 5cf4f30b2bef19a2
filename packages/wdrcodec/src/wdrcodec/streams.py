"""Independent streams in one payload (format 3, one stream per volume of a 4D series).

Coding the volumes of a series as independent embedded streams lets threads encode and decode
them at the same time. Two things keep the file what a single stream was:

* **the rate is still exact and spent where a single stream would spend it**:
  :func:`allocate` shares a byte budget among the streams so that they all stop at about the same
  bit plane, the point where one embedded stream over all volumes would stop (a rate model
  ``ics * H(new / ics) + new + refined`` bits per plane, from each stream's magnitudes);
  :func:`codec <wdrcodec.codec>` then gives any budget a stream cannot use (it ended, lossless,
  before its share) to the others;
* **any prefix still decodes**: :func:`interleave` lays the streams out in chunks of
  :data:`CHUNK` bytes, ordered by the fraction of its stream each chunk completes, so a prefix of
  the payload holds a prefix of every stream, of about the same fraction of each.
  :func:`deinterleave` undoes it for any prefix, from the stream lengths kept in the header.
"""

from __future__ import annotations

import numpy as np

CHUNK = 4096  # bytes of one stream between switches to another stream


def _schedule(
    lengths: np.ndarray, avail: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chunk order: ``(stream, offset in stream, size)`` per chunk, in payload order.

    With ``avail`` only the chunks that can start inside a prefix of ``avail`` bytes are listed
    (chunk ``j`` of a stream comes after its ``j`` earlier ones, so it starts at or after
    ``j * CHUNK``): the work is bounded by the bytes present, not by the lengths a header claims.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    n = (lengths + CHUNK - 1) // CHUNK
    if avail is not None:
        n = np.minimum(n, (int(avail) + CHUNK - 1) // CHUNK)
    stream = np.repeat(np.arange(lengths.size, dtype=np.int64), n)
    first = np.repeat(np.cumsum(n) - n, n)
    j = np.arange(stream.size, dtype=np.int64) - first
    off = j * CHUNK
    end = np.minimum(off + CHUNK, lengths[stream])
    key = end / lengths[stream]  # fraction of its stream complete after this chunk
    order = np.lexsort((stream, key))
    return stream[order], off[order], (end - off)[order]


def interleave(parts: list[bytes]) -> bytes:
    """Lay out ``parts`` (one byte string per stream) as one payload (see module docstring)."""
    lengths = np.array([len(p) for p in parts], dtype=np.int64)
    stream, off, size = _schedule(lengths)
    return b"".join(
        parts[s][o : o + z] for s, o, z in zip(stream.tolist(), off.tolist(), size.tolist())
    )


def deinterleave(payload: bytes, lengths: tuple[int, ...]) -> list[bytes]:
    """The stream prefixes held by ``payload``, a prefix of :func:`interleave`'s output for
    streams of ``lengths`` bytes."""
    stream, off, size = _schedule(np.asarray(lengths, dtype=np.int64), len(payload))
    pos = np.concatenate([[0], np.cumsum(size)])
    out: list[list[bytes]] = [[] for _ in lengths]
    avail = len(payload)
    last = int(np.searchsorted(pos, avail, side="left"))  # chunks [0, last) start before avail
    mv = memoryview(payload)
    for k in range(min(last, stream.size)):
        a, b = int(pos[k]), min(int(pos[k + 1]), avail)
        out[int(stream[k])].append(bytes(mv[a:b]))
    return [b"".join(p) for p in out]


def bit_lengths(mag: np.ndarray) -> np.ndarray:
    """``(65,)`` histogram of the magnitudes' bit lengths (``hist[b]``: how many have
    ``floor(log2 m) + 1 == b``, 0 for zeros): all :func:`plane_costs` needs, and the largest
    magnitude's plane, so one pass over a stream's magnitudes serves both."""
    # frexp's exponent is the bit length, exact below 2**53 (magnitudes stay below 2**40);
    # one GIL-free pass (the histogram of numpy's frexp + bincount took 3 passes, ~3.4 ms per
    # 524288 magnitudes, and held the GIL in bincount)
    from wdrcodec.coder import bit_length_hist

    hist = np.zeros(65, dtype=np.int64)
    bit_length_hist(np.ascontiguousarray(mag, dtype=np.int64).reshape(-1), hist)
    return hist


def top_plane(hist: np.ndarray) -> int:
    """Highest bit plane holding a magnitude (-1 when all are zero), from :func:`bit_lengths`."""
    nz = np.flatnonzero(hist)
    return int(nz[-1]) - 1 if nz.size else -1


def plane_costs(hist: np.ndarray, top: int, nplanes: int) -> np.ndarray:
    """Modelled bits of each bit plane ``top, top-1, ...`` of one stream (``(nplanes,)``) whose
    magnitudes have the bit-length histogram ``hist`` (:func:`bit_lengths`).

    Sorting pass: ``ics * H(new / ics) + new`` (which of the ``ics`` insignificant coefficients
    become significant, and their signs); refinement pass: one bit per coefficient already
    significant.
    """
    n = int(hist.sum())
    hist = np.concatenate([hist, np.zeros(max(0, top + 2 - hist.size), np.int64)])[: top + 2]
    ge = np.cumsum(hist[::-1])[::-1]  # ge[b] = count(bit length >= b)
    planes = top - np.arange(nplanes)
    sig_after = ge[np.minimum(planes + 1, top + 1)]  # count(mag >= 2**p)
    sig_before = np.where(planes + 1 <= top, ge[np.minimum(planes + 2, top + 1)], 0)
    sig_before = np.where(planes == top, 0, sig_before)
    new = (sig_after - sig_before).astype(np.float64)
    ics = (n - sig_before).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(ics > 0, new / ics, 0.0)
        h = -(q * np.log2(np.where(q > 0, q, 1)) + (1 - q) * np.log2(np.where(q < 1, 1 - q, 1)))
    return ics * h + new + sig_before + 2.0


def allocate(costs: list[np.ndarray], budget: int) -> list[int]:
    """Share ``budget`` bytes among streams whose modelled plane costs (bits) are ``costs``:
    every stream is given its modelled size up to the same fractional plane ``theta`` where the
    modelled sizes add up to the budget; the shares add up to ``budget`` exactly."""
    cum = np.stack([np.concatenate([[0.0], np.cumsum(c)]) for c in costs]) / 8.0  # bytes
    npl = cum.shape[1] - 1

    def sizes(theta: float) -> np.ndarray:
        k = min(int(theta), npl - 1) if npl > 0 else 0
        frac = theta - k
        if npl == 0:
            return np.zeros(cum.shape[0])
        return cum[:, k] + frac * (cum[:, k + 1] - cum[:, k])

    lo, hi = 0.0, float(npl)
    if sizes(hi).sum() <= budget:
        share = sizes(hi)
    else:
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if sizes(mid).sum() <= budget:
                lo = mid
            else:
                hi = mid
        share = sizes(hi)
    total = share.sum()
    if total <= 0:
        share = np.ones(cum.shape[0])
        total = share.sum()
    alloc = np.floor(share * (budget / total)).astype(np.int64)
    rest = budget - int(alloc.sum())
    if rest > 0:  # the remainder to the largest fractional parts, lowest index first on ties
        frac = share * (budget / total) - alloc
        alloc[np.argsort(-frac, kind="stable")[:rest]] += 1
    return [int(v) for v in alloc]
