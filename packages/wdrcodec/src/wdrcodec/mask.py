"""The object mask of the shape-adaptive mode: choosing it and coding it losslessly.

The mask of a ``(T, Z, Y, X)`` series is ``volume != background`` (the background value: the
series' minimum). It is coded before the coefficients, in the header (SPEC.md, mask section),
voxel by voxel in C order with the range coder of :mod:`wdrcodec.coder` and adaptive contexts
(:mod:`wdrcodec.ctxcoder`'s estimators and count-based start):

* a map of ``4 x 4 x 4`` blocks first, raster order: "uniform" (context: which of the left,
  upper and previous-slice blocks are mixed), then a uniform block's value (context: the left
  block's state); only the voxels of mixed blocks are coded below (a compact mask is mostly
  uniform blocks, so the decoder takes a decision for a small share of the voxels);
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
M_UNI = M_VT + 2 * M_NBR  # block "uniform": M_UNI + mixed W/N/U neighbour blocks (8)
M_VAL = M_UNI + 8  # uniform block's value: M_VAL + W block's state (0, 1, 2 mixed/none)
M_NCTX = M_VAL + 3
B = 4  # block edge (voxels) of the uniform-block map
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
def _block_states(m, t):
    """``(Z/B, Y/B, X/B)`` int8 states of volume ``t``'s blocks: 0/1 uniform, 2 mixed."""
    _, Z, Y, X = m.shape
    bz, by, bx = (Z + B - 1) // B, (Y + B - 1) // B, (X + B - 1) // B
    st = np.full((bz, by, bx), -1, dtype=np.int8)
    for z in range(Z):
        for y in range(Y):
            for x in range(X):
                v = m[t, z, y, x]
                k = st[z // B, y // B, x // B]
                if k == -1:
                    st[z // B, y // B, x // B] = v
                elif k != v:
                    st[z // B, y // B, x // B] = 2
    return st


@njit(nogil=True, cache=True, inline="always")
def _block_ctx(bs, k, j, i):
    """Contexts of block ``(k, j, i)``: mixed neighbours (uniform flag), left state (value)."""
    c = 0
    if i > 0 and bs[k, j, i - 1] == 2:
        c |= 1
    if j > 0 and bs[k, j - 1, i] == 2:
        c |= 2
    if k > 0 and bs[k - 1, j, i] == 2:
        c |= 4
    w = bs[k, j, i - 1] if i > 0 else 2
    return M_UNI + c, M_VAL + w


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
        bs = _block_states(m, t)
        for k in range(bs.shape[0]):
            for j in range(bs.shape[1]):
                for i in range(bs.shape[2]):
                    cu, cv = _block_ctx(bs, k, j, i)
                    _encode_bit(st, out, probs, cu, 1 if bs[k, j, i] < 2 else 0)
                    if bs[k, j, i] < 2:
                        _encode_bit(st, out, probs, cv, bs[k, j, i])
        for z in range(Z):
            for y in range(Y):
                for x in range(X):
                    if bs[z // B, y // B, x // B] < 2:
                        continue
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
    bs = np.empty(((Z + B - 1) // B, (Y + B - 1) // B, (X + B - 1) // B), dtype=np.int8)
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
        for k in range(bs.shape[0]):
            for j in range(bs.shape[1]):
                for i in range(bs.shape[2]):
                    cu, cv = _block_ctx(bs, k, j, i)
                    u = _decode_bit(st, data, probs, cu)
                    if u < 0:
                        return 1 if u == -1 else 2
                    if u == 1:
                        v = _decode_bit(st, data, probs, cv)
                        if v < 0:
                            return 1 if v == -1 else 2
                        bs[k, j, i] = v
                    else:
                        bs[k, j, i] = 2
        for z in range(Z):
            for y in range(Y):
                for x in range(X):
                    s = bs[z // B, y // B, x // B]
                    if s < 2:
                        m[t, z, y, x] = s
                        continue
                    c = _nbr(m, t, z, y, x)
                    ctx = M_V0 + c if t == 0 else M_VT + 2 * c + m[t - 1, z, y, x]
                    bit = _decode_bit(st, data, probs, ctx)
                    if bit < 0:
                        return 1 if bit == -1 else 2
                    m[t, z, y, x] = bit
        if not _consistent(m, t, bs):
            return 2
    return 0


@njit(nogil=True, cache=True)
def _consistent(m, t, bs):
    """Every block coded as mixed holds both values (an encoder never codes it otherwise)."""
    _, Z, Y, X = m.shape
    seen = np.zeros(bs.shape, dtype=np.uint8)  # bit 0: a 0 seen, bit 1: a 1 seen
    for z in range(Z):
        for y in range(Y):
            for x in range(X):
                seen[z // B, y // B, x // B] |= 1 << m[t, z, y, x]
    for k in range(bs.shape[0]):
        for j in range(bs.shape[1]):
            for i in range(bs.shape[2]):
                if bs[k, j, i] == 2 and seen[k, j, i] != 3:
                    return False
    return True


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
