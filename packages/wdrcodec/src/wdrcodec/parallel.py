"""Threads inside one encode/decode: GIL-free kernels and the pool that runs them.

Why threads (``concurrent.futures.ThreadPoolExecutor``) over GIL-free numba kernels, and not
numba's ``parallel=True``/``prange``: the work splits into a few large independent tasks (the
volumes of a 4D series, slabs of one lifting pass, groups of subband boxes), which threads run
without copying or pickling any array; a pool lives only for the duration of one call, so a
``--jobs`` process pool can still ``fork`` safely afterwards (numba's OpenMP threading layer,
``omp`` on this machine, is not fork-safe once its threads have started); and the kernels keep
their on-disk cache (``prange`` kernels compile slower and make every call pay the threading
layer's start-up). The results do not depend on the thread count: every task computes exactly
the values the serial code computes, only on a different thread.

The WDR decoder (:func:`wdrcodec.coder.decode_into`) and the lifting entry points
(:func:`wdrcodec.lifting.lift_region`, :func:`wdrcodec.lifting.inverse_yx`) are ``nogil``
themselves and are called directly. The remaining kernels are called from thin ``nogil=True``
wrappers (numba compiles the callee into the wrapper), so the Python sources of those kernels
stay the only copy. The wrappers' cache key includes a hash of the three kernel source files, so
an edited kernel is recompiled here too (numba's own cache would not notice a change in a
callee).
"""

from __future__ import annotations

import hashlib
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import numpy as np
from numba import njit

from wdrcodec import coder, ctxcoder, lifting
from wdrcodec.config import available_cores, resolve_threads

__all__ = ["SERIAL", "Pool", "available_cores", "resolve_threads"]

T = TypeVar("T")
MIN_SPLIT = 1 << 15  # values: a lifting pass over fewer is not split into threads


def _source_stamp() -> int:
    """48-bit hash of the callee kernels' sources (part of the wrappers' numba cache key)."""
    h = hashlib.sha256()
    for mod in (coder, ctxcoder, lifting):
        h.update(Path(mod.__file__).read_bytes())
    return int(h.hexdigest()[:12], 16)


def _build(stamp: int) -> SimpleNamespace:
    """The ``nogil`` wrappers; ``stamp`` is captured so it enters numba's cache key."""

    @njit(nogil=True, cache=True)
    def wdr_encode(mag, neg, cls, top, nplanes, limit, out, ics, sig, sigp, smag):
        _ = stamp
        return coder.wdr_encode_ws(mag, neg, cls, top, nplanes, limit, out, ics, sig, sigp, smag)

    @njit(nogil=True, cache=True)
    def ctx_encode(mag, neg, boxes, box_class, top, nplanes, limit, out):
        _ = stamp
        return ctxcoder.ctx_encode(mag, neg, boxes, box_class, top, nplanes, limit, out)

    @njit(nogil=True, cache=True)
    def ctx_decode(data, nbytes, boxes, box_class, top, nplanes, rec, scale):
        _ = stamp
        return ctxcoder.ctx_decode(data, nbytes, boxes, box_class, top, nplanes, rec, scale)

    @njit(nogil=True, cache=True)
    def gather(flat, boxes, scale, mag, neg):
        _ = stamp
        coder.gather_magnitudes(flat, boxes, scale, mag, neg)

    @njit(nogil=True, cache=True)
    def scatter(rec, boxes, out):
        _ = stamp
        coder.scatter_values(rec, boxes, out)

    @njit(nogil=True, cache=True)
    def finalize(vol, mean, vmin, vmax):
        _ = stamp
        coder.finalize(vol, mean, vmin, vmax)

    @njit(nogil=True, cache=True)
    def finalize_to(vol, mean, vmin, vmax, out):
        _ = stamp
        coder.finalize_to(vol, mean, vmin, vmax, out)

    @njit(nogil=True, cache=True)
    def fwd97(v, tmp):
        _ = stamp
        lifting._fwd97(v, tmp)

    @njit(nogil=True, cache=True)
    def inv97(v, tmp):
        _ = stamp
        lifting._inv97(v, tmp)

    @njit(nogil=True, cache=True)
    def fwd53(v, tmp):
        _ = stamp
        lifting._fwd53(v, tmp)

    @njit(nogil=True, cache=True)
    def inv53(v, tmp):
        _ = stamp
        lifting._inv53(v, tmp)

    return SimpleNamespace(**{k: v for k, v in locals().items() if k != "stamp"})


K = _build(_source_stamp())
_SLABS = {
    (False, True): K.fwd97,
    (False, False): K.inv97,
    (True, True): K.fwd53,
    (True, False): K.inv53,
}


# ----------------------------------------------------------------------------- threads


class Pool:
    """A thread pool for the duration of one call (``with Pool(n) as pool:``).

    ``map`` runs the tasks on the pool's threads (inline when there is one thread or one task).
    A task must not call ``map`` of the same pool (give it :data:`SERIAL` instead): nested waits
    on a full pool would deadlock.
    """

    def __init__(self, threads: int = 1) -> None:
        self.threads = max(1, int(threads))
        self._ex: ThreadPoolExecutor | None = None
        self._owns_scratch = False

    def __enter__(self) -> Pool:
        if self.threads > 1:
            self._ex = ThreadPoolExecutor(
                self.threads, thread_name_prefix="wdrcodec", initializer=_scratch_on
            )
        else:
            self._owns_scratch = _scratch_on()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._ex is not None:
            # on an error or Ctrl-C, start no further task (running kernels end on their own)
            self._ex.shutdown(wait=True, cancel_futures=exc[0] is not None)
            self._ex = None
        elif self._owns_scratch:
            _scratch_off()
            self._owns_scratch = False

    def map(self, fn: Callable[[Any], T], items: Sequence[Any]) -> list[T]:
        """``[fn(x) for x in items]``, on the pool's threads; exceptions propagate."""
        if _ACCOUNT is not None:
            fn = _accounted(fn)
        if self._ex is None or len(items) <= 1:
            return [fn(x) for x in items]
        return list(self._ex.map(fn, items))


# Decoder work arrays and output arrays, reused by the decodes of one thread while a pool is
# open (the volumes of a 4D series: no page faults, no allocation, after the first), and
# freed with the pool: a worker thread's ``threading.local`` goes when the pool joins it, the
# calling thread's (a one-thread pool runs its tasks inline) when the pool's ``with`` ends.
_SCRATCH = threading.local()


def _scratch_on() -> bool:
    """Start reusing work arrays on this thread; False when it already does (nested pool)."""
    if getattr(_SCRATCH, "work", None) is not None:
        return False
    _SCRATCH.work = {}
    return True


def _scratch_off() -> None:
    _SCRATCH.work = None


def decoder_workspace(n: int) -> tuple[np.ndarray, ...] | None:
    """This thread's reusable :func:`wdrcodec.coder.workspace` of at least ``n`` values while a
    pool is open on it (grown when a larger one is asked for), else None (allocate)."""
    cache = getattr(_SCRATCH, "work", None)
    if cache is None:
        return None
    ws = cache.get("wdr")
    if ws is None or ws[0].shape[0] < n:
        ws = coder.workspace(n)
        cache["wdr"] = ws
    return ws


def encoder_workspace(n: int) -> tuple[np.ndarray, ...]:
    """:func:`wdrcodec.coder.encoder_workspace` of at least ``n`` values: this thread's
    reusable one while a pool is open on it (grown when a larger one is asked for), else a
    fresh one."""
    cache = getattr(_SCRATCH, "work", None)
    if cache is None:
        return coder.encoder_workspace(n)
    ws = cache.get("enc")
    if ws is None or ws[0].shape[0] < n:
        ws = coder.encoder_workspace(n)
        cache["enc"] = ws
    return ws


def decoder_output(n: int) -> np.ndarray | None:
    """This thread's reusable zero-filled float64 array of ``n`` coefficients to decode into,
    while a pool is open on it, else None (allocate). The array is handed out again only once
    nothing references it any more (the previous decode's volume is gone: its views hold the
    array), so a result still in use is never overwritten."""
    cache = getattr(_SCRATCH, "work", None)
    if cache is None:
        return None
    buf = cache.get("rec")
    # references when free: the cache's, ``buf`` here and getrefcount's argument
    if buf is None or buf.shape[0] < n or sys.getrefcount(buf) > 3:
        buf = np.zeros(n, dtype=np.float64)  # fresh pages: zero without a pass over them
        cache["rec"] = buf
        return buf[:n]
    out = buf[:n]
    out.fill(0.0)
    return out


# CPU accounting for the benchmark (:mod:`wdrcodec.parallel_bench`): with ``_ACCOUNT`` a dict,
# the CPU seconds of every outermost task are added up per thread id; None (the default) costs
# nothing.
_ACCOUNT: dict[int, float] | None = None
_DEPTH = threading.local()


def _accounted(fn: Callable[[Any], T]) -> Callable[[Any], T]:
    def run(x: Any) -> T:
        depth = getattr(_DEPTH, "d", 0)
        _DEPTH.d = depth + 1
        c0 = time.thread_time()
        try:
            return fn(x)
        finally:
            _DEPTH.d = depth
            if depth == 0 and _ACCOUNT is not None:
                tid = threading.get_ident()
                _ACCOUNT[tid] = _ACCOUNT.get(tid, 0.0) + time.thread_time() - c0

    return run


def critical_path(fn: Callable[[], T]) -> tuple[float, float, T]:
    """Run ``fn`` and return ``(critical CPU s, total CPU s, result)``: the CPU time of the
    calling thread outside pool tasks plus that of the busiest thread's tasks, i.e. the wall
    time ``fn`` would take on idle cores, whatever else the machine runs; and the CPU time of
    all threads (benchmark use; not thread-safe)."""
    global _ACCOUNT
    _ACCOUNT = {}
    me = threading.get_ident()
    c0 = time.thread_time()
    try:
        out = fn()
        mine = time.thread_time() - c0
        acc = _ACCOUNT
    finally:
        _ACCOUNT = None
    inline = acc.pop(me, 0.0)
    busiest = max([inline, *acc.values()])
    return mine - inline + busiest, mine + sum(acc.values()), out


SERIAL = Pool(1)  # GIL-free kernels, no threads: what a task of an outer pool uses


def splits(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` (at most ``n``) contiguous ``[start, stop)`` ranges covering ``range(n)``."""
    parts = max(1, min(parts, n))
    edges = [(n * i) // parts for i in range(parts + 1)]
    return [(edges[i], edges[i + 1]) for i in range(parts) if edges[i + 1] > edges[i]]


def _parts(pool: Pool, size: int, batch: int) -> int:
    return 1 if size < MIN_SPLIT else min(pool.threads, batch)


# ----------------------------------------------------------------------------- transforms


def lift_region(region: np.ndarray, axis: int, lossless: bool, forward: bool, pool: Pool) -> None:
    """:func:`wdrcodec.lifting.lift_region` with GIL-free kernels, split over ``pool``.

    The split runs along an axis the pass does not lift (Z for the Y and X passes, Y for the Z
    pass), so every task lifts whole lines/slabs with the serial kernel's exact operations. An
    unsplit pass, and the Y/X passes' z-slabs, go through :func:`wdrcodec.lifting.lift_region`
    itself (its contiguous-row inverse 9/7 kernels are GIL-free and give the same values).
    """
    if region.shape[axis] < 2:
        return
    dt = region.dtype
    batch = region.shape[1] if axis == 0 else region.shape[0]
    parts = _parts(pool, region.size, batch)
    if parts == 1:
        lifting.lift_region(region, axis, lossless, forward)
        return
    if axis in (1, 2):

        def zpart(r: tuple[int, int]) -> None:
            lifting.lift_region(region[r[0] : r[1]], axis, lossless, forward)

        pool.map(zpart, splits(region.shape[0], parts))
        return
    kern = _SLABS[(lossless, forward)]

    def zslabs(r: tuple[int, int]) -> None:
        v = region[None, :, r[0] : r[1], :]
        kern(v, np.empty((v.shape[1], v.shape[3]), dtype=dt))

    pool.map(zslabs, splits(region.shape[1], parts))


def inverse_yx(region: np.ndarray, pool: Pool) -> None:
    """:func:`wdrcodec.lifting.inverse_yx` (X then Y per z-slice), split over z-slices."""
    nz = region.shape[0]

    def part(r: tuple[int, int]) -> None:
        lifting.inverse_yx(region[r[0] : r[1]])

    pool.map(part, splits(nz, _parts(pool, region.size, nz)))


# ----------------------------------------------------------------------------- scan order


def _box_groups(boxes: np.ndarray, parts: int) -> list[tuple[int, int, int]]:
    """Split scan boxes into ``parts`` runs of about equal size: ``(b0, b1, first index)``."""
    sizes = (boxes[:, 4] - boxes[:, 3]) * (boxes[:, 6] - boxes[:, 5]) * (boxes[:, 8] - boxes[:, 7])
    ends = np.cumsum(sizes)
    total = int(ends[-1]) if ends.size else 0
    cuts = [0]
    for k in range(1, parts):
        b = int(np.searchsorted(ends, total * k // parts, side="right"))
        if cuts[-1] < b < boxes.shape[0]:
            cuts.append(b)
    cuts.append(boxes.shape[0])
    starts = np.concatenate([[0], ends]).astype(np.int64)
    return [(cuts[i], cuts[i + 1], int(starts[cuts[i]])) for i in range(len(cuts) - 1)]


def gather_magnitudes(
    flat: np.ndarray, boxes: np.ndarray, scale: float, mag: np.ndarray, neg: np.ndarray, pool: Pool
) -> None:
    """:func:`wdrcodec.coder.gather_magnitudes` split into runs of boxes over ``pool``."""
    if boxes.shape[0] == 0:
        return

    def part(g: tuple[int, int, int]) -> None:
        b0, b1, i0 = g
        K.gather(flat, boxes[b0:b1], scale, mag[i0:], neg[i0:])

    pool.map(part, _box_groups(boxes, _parts(pool, mag.size, boxes.shape[0])))


def finalize_to(
    vol: np.ndarray, mean: float, vmin: float, vmax: float, out: np.ndarray, pool: Pool
) -> None:
    """:func:`wdrcodec.coder.finalize_to` (rint, clip, cast) split along the first axis."""
    v = vol.reshape(vol.shape[0], -1)
    o = out.reshape(out.shape[0], -1)

    def part(r: tuple[int, int]) -> None:
        K.finalize_to(v[r[0] : r[1]], mean, vmin, vmax, o[r[0] : r[1]])

    pool.map(part, splits(v.shape[0], _parts(pool, v.size, v.shape[0])))


def finalize(vol: np.ndarray, mean: float, vmin: float, vmax: float, pool: Pool) -> None:
    """:func:`wdrcodec.coder.finalize` in place, split along the first axis."""
    v = vol.reshape(vol.shape[0], -1)

    def part(r: tuple[int, int]) -> None:
        K.finalize(v[r[0] : r[1]], mean, vmin, vmax)

    pool.map(part, splits(v.shape[0], _parts(pool, v.size, v.shape[0])))


# ----------------------------------------------------------------------------- coding


def encode_stream(
    mag: np.ndarray,
    neg: np.ndarray,
    top: int,
    nplanes: int,
    limit: int | None,
    cls: np.ndarray | None = None,
    ctx: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[bytes, int]:
    """One embedded stream, GIL-free: ``(payload, status)`` as
    :func:`wdrcodec.coder.encode_coefficients` (``ctx=(boxes, box_class)``: the ctx coder, as
    :func:`wdrcodec.ctxcoder.encode_coefficients`)."""
    n = mag.size
    if nplanes <= 0 or n == 0:
        return b"", coder.STATUS_COMPLETE
    cap = limit if limit is not None else 2**62
    size = min(cap, max(1024, n * 3)) + 64
    while True:
        out = np.zeros(size, dtype=np.uint8)
        if ctx is None:
            nbytes, _planes, status = K.wdr_encode(
                mag, neg, cls, top, nplanes, cap, out, *encoder_workspace(n)
            )
        else:
            b = np.ascontiguousarray(ctx[0], dtype=np.int64)
            c = np.ascontiguousarray(ctx[1], dtype=np.int64)
            nbytes, status = K.ctx_encode(mag, neg, b, c, top, nplanes, cap, out)
        if status != coder.STATUS_BUFFER:
            return out[:nbytes].tobytes(), int(status)
        size = max(2 * size, int(nbytes) + 1024)


def decode_stream(
    payload: bytes,
    top: int,
    nplanes: int,
    scale: float,
    boxes: np.ndarray,
    cls: np.ndarray,
    box_class: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Decode one stream, GIL-free, to the concatenated block coefficients (float64 ``(N,)``)
    and the status; the WDR coder (``box_class`` None) or the ctx coder."""
    n = cls.size
    b = np.ascontiguousarray(boxes, dtype=np.int64)
    if box_class is None:
        # GIL-free; numpy work arrays, reused across the volumes a thread decodes in one call
        m = coder.decode_into(
            payload, top, nplanes, cls, scale, b, decoder_workspace(n), decoder_output(n)
        )
        return m.rec, int(m.status)
    flat = np.zeros(n, dtype=np.float64)
    if nplanes <= 0:
        return flat, coder.STATUS_COMPLETE
    data = np.frombuffer(payload, dtype=np.uint8).copy()
    nbytes = data.size
    if nbytes == 0:
        data = np.zeros(1, dtype=np.uint8)
    rec = np.zeros(n, dtype=np.float64)
    c = np.ascontiguousarray(box_class, dtype=np.int64)
    status = K.ctx_decode(data, nbytes, b, c, top, nplanes, rec, scale)
    K.scatter(rec, b, flat)
    return flat, int(status)
