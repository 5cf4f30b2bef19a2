"""The object mask of the shape-adaptive mode: choosing it and coding it losslessly.

The mask of a ``(T, Z, Y, X)`` series is ``volume != background`` (the background value: the
series' minimum). It is coded before the coefficients, in the header (SPEC.md, mask section),
voxel by voxel in C order with the range coder of :mod:`wdrcodec.coder` and adaptive contexts
(:mod:`wdrcodec.ctxcoder`'s estimators and count-based start):

* volume 0: context = the 6 causal neighbours ``(x-1), (y-1), (y-1, x-1), (y-1, x+1), (z-1),
  (z-1, y+1)`` (outside the array: 0), 64 contexts;
* volume ``t > 0``: first one decision "identical to volume ``t - 1``" (a static mask costs a
  few bits per volume); if not, each voxel in context (its 6 neighbours, the co-located voxel
  of volume ``t - 1``), 128 contexts.

:func:`decode_mask` refuses (:class:`WdrError`) a section that does not decode consistently, or
that decodes to a different number of object voxels than the header states.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from wdrcodec.coder import MASK32, P16, _shift_low, decoder_start
from wdrcodec.ctxcoder import _decode_bit, _encode_bit
from wdrcodec.errors import WdrError

M_NBR = 64  # 6 neighbour bits
M_SAME = 0  # "volume identical to the previous one"
M_V0 = 1  # first volume: M_V0 + nbr
M_VT = M_V0 + M_NBR  # later volumes: M_VT + 2 * nbr + previous volume's voxel
M_NCTX = M_VT + 2 * M_NBR
# auto rule (EncodeConfig.background == "auto"): on when at least this fraction of the voxels
# equal the minimum and the coded mask costs at most MAX_MASK_BPV bits per voxel
MIN_BACKGROUND_FRACTION = 0.2
MAX_MASK_BPV = 0.125


@dataclass(frozen=True)
class ObjectMask:
    """A coded object mask: ``mask`` ``(T, Z, Y, X)`` bool (True: object), the ``background``
    value (stored units, quantised for float input) and the coded ``data``."""

    mask: np.ndarray
    background: int
    data: bytes

    @property
    def count(self) -> int:
        """Object voxels."""
        return int(self.mask.sum())


@njit(nogil=True, cache=True, inline="always")
def _nbr(m, t, z, y, x):
    """The 6 causal neighbour bits of voxel ``(t, z, y, x)`` as a number 0-63."""
    _, Z, Y, X = m.shape
    c = 0
    if x > 0 and m[t, z, y, x - 1]:
        c |= 1
    if y > 0:
        if m[t, z, y - 1, x]:
            c |= 2
        if x > 0 and m[t, z, y - 1, x - 1]:
            c |= 4
        if x + 1 < X and m[t, z, y - 1, x + 1]:
            c |= 8
    if z > 0:
        if m[t, z - 1, y, x]:
            c |= 16
        if y + 1 < Y and m[t, z - 1, y + 1, x]:
            c |= 32
    return c


@njit(nogil=True, cache=True)
def _encode(m, out):
    """Code the uint8 mask ``m`` ``(T, Z, Y, X)`` into ``out``; returns the byte count (larger
    than ``out.size``: ``out`` too small)."""
    st = np.zeros(6, dtype=np.int64)
    st[1] = MASK32
    st[3] = 1
    st[5] = 1
    probs = np.full(3 * M_NCTX, P16 // 2, dtype=np.int64)
    probs[2::3] = 0
    T, Z, Y, X = m.shape
    for t in range(T):
        if t > 0:
            same = 1
            for z in range(Z):
                for y in range(Y):
                    for x in range(X):
                        if m[t, z, y, x] != m[t - 1, z, y, x]:
                            same = 0
            _encode_bit(st, out, probs, M_SAME, same)
            if same:
                continue
        for z in range(Z):
            for y in range(Y):
                for x in range(X):
                    c = _nbr(m, t, z, y, x)
                    ctx = M_V0 + c if t == 0 else M_VT + 2 * c + m[t - 1, z, y, x]
                    _encode_bit(st, out, probs, ctx, m[t, z, y, x])
            if st[4] > out.size:
                return st[4]
    for _ in range(5):
        _shift_low(st, out)
    return st[4]


@njit(nogil=True, cache=True)
def _decode(data, nbytes, m):
    """Decode into the zeroed uint8 ``m``; 0 done, 1 the bytes end early, 2 inconsistent."""
    st = decoder_start(data, nbytes)
    if st[1] > st[2]:
        return 2
    probs = np.full(3 * M_NCTX, P16 // 2, dtype=np.int64)
    probs[2::3] = 0
    T, Z, Y, X = m.shape
    for t in range(T):
        if t > 0:
            same = _decode_bit(st, data, probs, M_SAME)
            if same < 0:
                return 1 if same == -1 else 2
            if same:
                for z in range(Z):
                    for y in range(Y):
                        for x in range(X):
                            m[t, z, y, x] = m[t - 1, z, y, x]
                continue
        for z in range(Z):
            for y in range(Y):
                for x in range(X):
                    c = _nbr(m, t, z, y, x)
                    ctx = M_V0 + c if t == 0 else M_VT + 2 * c + m[t - 1, z, y, x]
                    bit = _decode_bit(st, data, probs, ctx)
                    if bit < 0:
                        return 1 if bit == -1 else 2
                    m[t, z, y, x] = bit
    return 0


def encode_mask(mask: np.ndarray, background: int) -> ObjectMask:
    """Code a ``(T, Z, Y, X)`` bool mask (see the module docstring)."""
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    if m.ndim != 4:
        raise ValueError("mask must be (T, Z, Y, X)")
    size = m.size // 8 + 1024
    while True:
        out = np.zeros(size, dtype=np.uint8)
        n = int(_encode(m, out))
        if n <= out.size:
            return ObjectMask(m.astype(bool), int(background), out[:n].tobytes())
        size = max(2 * size, n + 1024)


def decode_mask(
    data: bytes, shape4: tuple[int, int, int, int], count: int, background: int, name: str
) -> ObjectMask:
    """Decode a mask section; :class:`WdrError` naming ``name`` when it is corrupt."""
    m = np.zeros(shape4, dtype=np.uint8)
    buf = np.frombuffer(bytes(data), dtype=np.uint8).copy()
    nbytes = buf.size
    if nbytes == 0:
        buf = np.zeros(1, dtype=np.uint8)
    status = int(_decode(buf, nbytes, m))
    if status != 0:
        what = "ends early" if status == 1 else "is inconsistent"
        raise WdrError(f"{name}: corrupted header (the object mask section {what})")
    got = int(m.sum(dtype=np.int64))
    if got != count:
        raise WdrError(
            f"{name}: corrupted header (the object mask holds {got} voxels, the header says "
            f"{count})"
        )
    return ObjectMask(m.astype(bool), int(background), bytes(data))


def choose_mask(q4: np.ndarray, setting: str, mode: str) -> ObjectMask | None:
    """The object mask an encode uses, or None (the mode off).

    ``setting`` is :attr:`wdrcodec.config.EncodeConfig.background`: ``off``; ``on`` (the mask
    ``q4 != min(q4)`` whenever some voxel equals the minimum and some does not); ``auto`` (the
    same, only when at least :data:`MIN_BACKGROUND_FRACTION` of the voxels equal the minimum and
    the coded mask costs at most :data:`MAX_MASK_BPV` bits per voxel). Only ``mode == "3d"``
    uses it (``on`` with another mode is refused by the config).
    """
    if setting == "off" or mode != "3d":
        return None
    bg = int(q4.min())
    mask = q4 != bg
    n_in = int(mask.sum())
    if n_in == 0 or n_in == mask.size:
        return None
    if setting == "auto" and (mask.size - n_in) < MIN_BACKGROUND_FRACTION * mask.size:
        return None
    om = encode_mask(mask, bg)
    if setting == "auto" and 8 * len(om.data) > MAX_MASK_BPV * mask.size:
        return None
    return om
