"""Multi-level separable decompositions of a 3D block ``(Z, Y, X)`` and their subband layout.

Two structures are supported:

* **dyadic**: at level ``l = 1, 2, ...`` every axis whose level budget is ``>= l`` is split once,
  inside the current low-pass region (Mallat layout, low band first along each axis);
* **packet** (slice axis): the slice axis ``Z`` is first decomposed on its own with its full level
  budget, then every resulting z-band is decomposed dyadically in ``(Y, X)``.

Subbands are returned as boxes ``(z0, z1, y0, y1, x0, x1)`` with a scan rank: 0 for the final
low-pass band, then ``100 - level`` (coarse details before fine ones). The coder scans subbands by
increasing rank and, inside a box, in C (raster) order ``z, then y, then x``.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import TYPE_CHECKING

import numpy as np

from wdrcodec.lifting import Z_GROUP, inv97_z_final, inverse_yx, lift_region

if TYPE_CHECKING:
    from wdrcodec.parallel import Pool


@dataclass(frozen=True)
class Subband:
    """One subband box of a block: ``rank`` orders the scan (lower first)."""

    rank: int
    box: tuple[int, int, int, int, int, int]

    @property
    def size(self) -> int:
        z0, z1, y0, y1, x0, x1 = self.box
        return (z1 - z0) * (y1 - y0) * (x1 - x0)


def axis_levels(shape: tuple[int, ...], levels: int, transform_z: bool = True) -> tuple[int, ...]:
    """Per-axis level budget: ``min(levels, floor(log2 n) - 1)``, at least 0.

    An axis of 8-15 samples gets 2 levels, 4-7 gets 1, 1-3 gets none, so the last low band keeps
    at least 2 samples. ``transform_z=False`` leaves axis 0 untransformed (2D coding of slices).
    """
    out = []
    for a, n in enumerate(shape):
        lv = 0 if n < 2 else max(0, int(np.floor(np.log2(n))) - 1)
        if a == 0 and not transform_z:
            lv = 0
        out.append(min(levels, lv))
    return tuple(out)


def _dyadic_steps(shape: tuple[int, int, int], lv: tuple[int, int, int]):
    """Yield ``(level, axes, cur_sizes)`` for each dyadic level, before the split."""
    cur = list(shape)
    for level in range(1, max(lv, default=0) + 1):
        axes = [a for a in range(3) if lv[a] >= level]
        yield level, axes, tuple(cur)
        for a in axes:
            cur[a] = (cur[a] + 1) // 2


def _dyadic_subbands(
    shape: tuple[int, int, int], lv: tuple[int, int, int], origin=(0, 0, 0)
) -> list[Subband]:
    bands: list[Subband] = []
    for level, axes, cur in _dyadic_steps(shape, lv):
        for mask in product((0, 1), repeat=len(axes)):
            if not any(mask):
                continue
            box = []
            for a in range(3):
                n = cur[a]
                if a in axes:
                    half = (n + 1) // 2
                    lo, hi = (half, n) if mask[axes.index(a)] else (0, half)
                else:
                    lo, hi = 0, n
                box += [origin[a] + lo, origin[a] + hi]
            bands.append(Subband(100 - level, tuple(box)))
    final = list(shape)
    for _level, axes, _cur in _dyadic_steps(shape, lv):
        for a in axes:
            final[a] = (final[a] + 1) // 2
    ll = []
    for a in range(3):
        ll += [origin[a], origin[a] + final[a]]
    bands.insert(0, Subband(0, tuple(ll)))
    return [b for b in bands if b.size > 0]


def subbands(shape: tuple[int, int, int], lv: tuple[int, int, int], packet: bool) -> list[Subband]:
    """Subband boxes of a block of ``shape`` decomposed with per-axis levels ``lv``."""
    if not packet or lv[0] == 0:
        return _dyadic_subbands(shape, lv)
    # z-bands of a 1D dyadic decomposition of axis 0
    zbands = []  # (level, z0, z1); level = lv[0] + 1 for the z low band
    n = shape[0]
    for level in range(1, lv[0] + 1):
        half = (n + 1) // 2
        zbands.append((level, half, n))
        n = half
    zbands.append((lv[0] + 1, 0, n))
    spatial = _dyadic_subbands((1, shape[1], shape[2]), (0, lv[1], lv[2]))
    out = []
    slv = max(lv[1], lv[2])
    for zl, z0, z1 in zbands:
        for sb in spatial:
            s_level = slv + 1 if sb.rank == 0 else 100 - sb.rank
            both_low = zl == lv[0] + 1 and sb.rank == 0
            rank = 0 if both_low else 100 - min(zl, s_level)
            _, _, y0, y1, x0, x1 = sb.box
            out.append(Subband(rank, (z0, z1, y0, y1, x0, x1)))
    return [b for b in out if b.size > 0]


def forward(
    block: np.ndarray,
    lv: tuple[int, int, int],
    lossless: bool,
    packet: bool,
    copy: bool = True,
    pool: Pool | None = None,
    wavelet: str | None = None,
) -> np.ndarray:
    """Decompose a ``(Z, Y, X)`` block; float64 (CDF 9/7) or int64 (LeGall 5/3) output.

    With ``copy=False`` a C-contiguous input of the output dtype is transformed in place. With a
    :class:`wdrcodec.parallel.Pool` every lifting pass runs GIL-free, split over its threads
    (same values, see :mod:`wdrcodec.parallel`). ``wavelet`` (lossy only): a PyWavelets
    biorthogonal wavelet instead of the built-in CDF 9/7 (:mod:`wdrcodec.biorthogonal`).
    """
    dt = np.int64 if lossless else np.float64
    out = np.array(block, dtype=dt) if copy else np.ascontiguousarray(block, dtype=dt)
    if packet and lv[0] > 0:
        _dyadic_forward(out, (lv[0], 0, 0), lossless, pool, wavelet)
        _dyadic_forward(out, (0, lv[1], lv[2]), lossless, pool, wavelet)
    else:
        _dyadic_forward(out, lv, lossless, pool, wavelet)
    return out


def inverse(
    coef: np.ndarray,
    lv: tuple[int, int, int],
    lossless: bool,
    packet: bool,
    copy: bool = True,
    pool: Pool | None = None,
    wavelet: str | None = None,
) -> np.ndarray:
    """Inverse of :func:`forward` (``copy=False``: in place when possible; ``pool`` and
    ``wavelet`` as there)."""
    dt = np.int64 if lossless else np.float64
    out = np.array(coef, dtype=dt) if copy else np.ascontiguousarray(coef, dtype=dt)
    if packet and lv[0] > 0:
        _dyadic_inverse(out, (0, lv[1], lv[2]), lossless, pool, wavelet)
        _dyadic_inverse(out, (lv[0], 0, 0), lossless, pool, wavelet)
    else:
        _dyadic_inverse(out, lv, lossless, pool, wavelet)
    return out


FUSE = True  # False: :func:`inverse_to` always declines (tests compare against the old path)


def fusable(shape: tuple[int, int, int], lv: tuple[int, int, int], out: np.ndarray) -> bool:
    """True when :func:`inverse_to` can decode a block of ``shape`` with levels ``lv`` straight
    into ``out``: the last pass is the Z pass over the whole block (``lv[0] >= 1``, dyadic or
    packet) and ``out`` is a C-contiguous native integer array of that shape."""
    return (
        FUSE
        and lv[0] >= 1
        and shape[0] >= 2
        and tuple(out.shape) == tuple(shape)
        and out.dtype.kind in "iu"
        and out.dtype.isnative
        and out.flags.c_contiguous
        and out.flags.writeable
    )


def inverse_to(
    coef: np.ndarray,
    lv: tuple[int, int, int],
    packet: bool,
    out: np.ndarray,
    mean: float,
    vmin: float,
    vmax: float,
    pool: Pool | None = None,
) -> bool:
    """Lossy (CDF 9/7) :func:`inverse` of the C-contiguous float64 block ``coef`` ``(Z, Y, X)``
    (overwritten) followed by the decoder's finalize, ``out = clip(rint(x + mean), vmin, vmax)``
    in ``out``'s integer dtype, with the last pass (Z over the whole block) and the finalize
    fused into one kernel (:func:`wdrcodec.lifting.inv97_z_final`: one read of the volume
    instead of a read + write and another read); bit for bit the unfused result. Returns False,
    touching nothing, when :func:`fusable` says no (the caller takes the unfused path)."""
    if not (fusable(coef.shape, lv, out) and coef.dtype == np.float64 and coef.flags.c_contiguous):
        return False

    def final(region: np.ndarray) -> None:
        n0, n1, n2 = region.shape
        mf, lo, hi = float(mean), float(vmin), float(vmax)

        def part(r: tuple[int, int]) -> None:
            scratch = np.empty(n0 * n2 * Z_GROUP)
            inv97_z_final(region, out, r[0], r[1], scratch, mf, lo, hi)

        if pool is None:
            part((0, n1))
            return
        from wdrcodec.parallel import MIN_SPLIT, splits

        parts = 1 if region.size < MIN_SPLIT else min(pool.threads, n1)
        pool.map(part, splits(n1, parts))

    if packet and lv[0] > 0:
        _dyadic_inverse(coef, (0, lv[1], lv[2]), False, pool)
        _dyadic_inverse(coef, (lv[0], 0, 0), False, pool, final=final)
    else:
        _dyadic_inverse(coef, lv, False, pool, final=final)
    return True


def _dyadic_forward(arr: np.ndarray, lv, lossless: bool, pool: Pool | None, wavelet=None) -> None:
    if pool is not None:
        from wdrcodec import parallel
    if wavelet is not None and not lossless:
        from wdrcodec.biorthogonal import forward_axis
    for _level, axes, cur in _dyadic_steps(arr.shape, lv):
        region = arr[: cur[0], : cur[1], : cur[2]]
        for a in axes:
            if wavelet is not None and not lossless:
                region[...] = forward_axis(region, a, wavelet)
            elif pool is None:
                lift_region(region, a, lossless, True)
            else:
                parallel.lift_region(region, a, lossless, True, pool)


def _dyadic_inverse(
    arr: np.ndarray, lv, lossless: bool, pool: Pool | None, wavelet=None, final=None
) -> None:
    """``final`` (lossy, built-in wavelet): a callable that does the level-1 Z pass over the
    whole ``arr`` instead of :func:`lift_region` (:func:`inverse_to`)."""
    if pool is not None:
        from wdrcodec import parallel
    steps = list(_dyadic_steps(arr.shape, lv))
    if wavelet is not None and not lossless:
        from wdrcodec.biorthogonal import inverse_axis

        for _level, axes, cur in reversed(steps):
            region = arr[: cur[0], : cur[1], : cur[2]]
            for a in axes[::-1]:
                region[...] = inverse_axis(region, a, wavelet)
        return
    for _level, axes, cur in reversed(steps):
        region = arr[: cur[0], : cur[1], : cur[2]]
        rev = axes[::-1]
        if not lossless and rev[:2] == [2, 1]:
            # X then Y, one z-slice at a time
            if pool is None:
                inverse_yx(region)
            else:
                parallel.inverse_yx(region, pool)
            rev = rev[2:]
        for a in rev:
            if final is not None and a == 0 and _level == 1:
                final(region)
            elif pool is None:
                lift_region(region, a, lossless, False)
            else:
                parallel.lift_region(region, a, lossless, False, pool)
