"""PyWavelets biorthogonal wavelets for the lossy mode (``--wavelet bior4.4`` and the others).

A biorthogonal wavelet has symmetric filters, so a signal of ``n`` samples extended
symmetrically has a symmetric transform and ``n`` coefficients determine it: ``ceil(n/2)`` low
and ``floor(n/2)`` high, the same layout as the built-in lifting CDF 9/7 (so subbands, scan order
and coder do not change). Odd-length filters (``bior2.x``, ``4.4``, ``5.5``, ``6.8``) use
whole-sample symmetry (``x[-1] = x[1]``), even-length ones (``bior1.x``, ``3.x``) half-sample
symmetry (``x[-1] = x[0]``); the extended signal is periodic, and PyWavelets' ``periodization``
transform of one period is computed along an axis of a whole array at once (no Python loop per
line). The kept coefficients are the first ``ceil(n/2)`` / ``floor(n/2)`` of each band; the
inverse rebuilds the full periodic bands from them with the symmetry map measured once per
wavelet and length (:func:`_plan`), and checks perfect reconstruction there.

PyWavelets is the optional extra ``wavelets`` (``pip install wdrcodec[wavelets]``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from wdrcodec.config import BUILTIN_WAVELET as BUILTIN
from wdrcodec.errors import WdrError

# PyWavelets' biorthogonal and reverse biorthogonal families (stable since PyWavelets 0.2)
_ORDERS = ("1.1", "1.3", "1.5", "2.2", "2.4", "2.6", "2.8", "3.1", "3.3", "3.5", "3.7", "3.9")
_ORDERS += ("4.4", "5.5", "6.8")
PYWT_WAVELETS: tuple[str, ...] = tuple(f"{f}{o}" for f in ("bior", "rbio") for o in _ORDERS)
WAVELETS: tuple[str, ...] = (BUILTIN, *PYWT_WAVELETS)


def _pywt():
    try:
        import pywt
    except ImportError as exc:
        from medshared.errors import MissingExtraError

        raise MissingExtraError(
            "--wavelet with a PyWavelets wavelet needs PyWavelets; install it with: "
            "pip install wdrcodec[wavelets]"
        ) from exc
    return pywt


class _Plan(NamedTuple):
    """How one wavelet treats an axis of ``n`` samples."""

    whole: bool  # whole-sample (True) or half-sample symmetric extension
    low_idx: np.ndarray  # full low band = kept_low[low_idx] * low_sign
    low_sign: np.ndarray
    high_idx: np.ndarray
    high_sign: np.ndarray


def _extend(x: np.ndarray, axis: int, whole: bool) -> np.ndarray:
    n = x.shape[axis]
    idx = np.arange(n - 2, 0, -1) if whole else np.arange(n - 1, -1, -1)
    return np.concatenate([x, np.take(x, idx, axis=axis)], axis=axis)


def _symmetry_map(full: np.ndarray, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(idx, sign)`` with ``full == kept[idx] * sign`` for a probe's band coefficients."""
    if kept.size == 0:
        return np.zeros(full.size, np.int64), np.zeros(full.size)
    diff = np.abs(np.abs(full)[:, None] - np.abs(kept)[None, :])
    idx = np.argmin(diff, axis=1)
    ref = kept[idx]
    tiny = 1e-9 * (1.0 + np.abs(full))
    sign = np.where(np.abs(full) < tiny, 0.0, np.sign(full) * np.sign(ref))
    return idx.astype(np.int64), sign


@lru_cache(maxsize=256)
def _plan(name: str, n: int) -> _Plan:
    pywt = _pywt()
    w = pywt.Wavelet(name)
    rng = np.random.default_rng(12345)
    x = rng.normal(size=n)
    nl, nh = (n + 1) // 2, n // 2
    for whole in (True, False):
        ca, cd = pywt.dwt(_extend(x, 0, whole), w, mode="periodization")
        if ca.size < nl or cd.size < nh:
            continue
        li, ls = _symmetry_map(ca, ca[:nl])
        hi, hs = _symmetry_map(cd, cd[:nh])
        scale = 1e-9 * (1.0 + float(np.max(np.abs(x))))
        ok_low = np.max(np.abs(ca[:nl][li] * ls - ca)) < scale
        ok_high = nh == 0 or np.max(np.abs(cd[:nh][hi] * hs - cd)) < scale
        if not (ok_low and ok_high):
            continue
        plan = _Plan(whole, li, ls, hi, hs)
        back = inverse_axis(forward_axis(x, 0, name, plan), 0, name, plan)
        if np.max(np.abs(back - x)) < 1e-8 * (1.0 + float(np.max(np.abs(x)))):
            return plan
    raise WdrError(f"--wavelet {name}: no non-expansive symmetric form for an axis of {n} samples")


def check_wavelet(name: str) -> None:
    """Refuse a name that is neither the built-in CDF 9/7 nor a PyWavelets biorthogonal one."""
    if name not in WAVELETS:
        raise WdrError(
            f"--wavelet: must be {BUILTIN} or a PyWavelets biorthogonal wavelet "
            f"(bior1.1 ... bior6.8, rbio1.1 ... rbio6.8), got {name!r}"
        )


def forward_axis(x: np.ndarray, axis: int, name: str, plan: _Plan | None = None) -> np.ndarray:
    """One analysis level of ``name`` along ``axis``: ``concat(low, high)``, float64."""
    n = x.shape[axis]
    if n < 2:
        return np.array(x, dtype=np.float64)
    pywt = _pywt()
    plan = plan or _plan(name, n)
    ca, cd = pywt.dwt(
        _extend(np.asarray(x, np.float64), axis, plan.whole), name, "periodization", axis=axis
    )
    low = np.take(ca, np.arange((n + 1) // 2), axis=axis)
    high = np.take(cd, np.arange(n // 2), axis=axis)
    return np.concatenate([low, high], axis=axis)


def inverse_axis(c: np.ndarray, axis: int, name: str, plan: _Plan | None = None) -> np.ndarray:
    """Inverse of :func:`forward_axis` along ``axis``."""
    n = c.shape[axis]
    if n < 2:
        return np.array(c, dtype=np.float64)
    pywt = _pywt()
    plan = plan or _plan(name, n)
    nl = (n + 1) // 2
    low = np.take(c, np.arange(nl), axis=axis)
    high = np.take(c, np.arange(nl, n), axis=axis)
    shape = [1] * c.ndim
    shape[axis] = -1
    ca = np.take(low, plan.low_idx, axis=axis) * plan.low_sign.reshape(shape)
    if high.shape[axis] == 0:
        cd = np.zeros_like(ca)
    else:
        cd = np.take(high, plan.high_idx, axis=axis) * plan.high_sign.reshape(shape)
    ext = pywt.idwt(ca, cd, name, "periodization", axis=axis)
    return np.take(ext, np.arange(n), axis=axis)
