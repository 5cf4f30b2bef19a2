"""Torch-free deconvolution and perfusion maps (numpy): what ``perfdecon maps`` runs.

The same algorithms as :mod:`perfdecon.deconvolution` and :mod:`perfdecon.maps` (Volterra and
block-circulant matrices, Tikhonov / sSVD / cSVD / oSVD, the Fieselmann scaling of CBF, CBV,
MTT, Tmax and TTP, rCBF, core and penumbra), forward only.  The torch modules stay the
differentiable implementation (gradients w.r.t. the AIF for the learned AIF, CUDA); this one
spares a ``maps`` call without a learned AIF the ~2.5 s torch import.  The two agree to float32
precision (tests compare them for every method and matrix).

One SVD per AIF in float64 (``T x T``, or ``2T x 2T`` circulant), then every voxel in one matrix
product in the curves' dtype; oSVD evaluates all candidate thresholds in one batched pass per
voxel chunk.  Axes are ``(Z, Y, X, T)``; times in s; concentrations in HU enhancement (CT) or
1/s (DSC).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from perfdecon.config import (
    CIRCULANT_ONLY,
    CORE_THRESHOLD,
    DEFAULT_THRESHOLDS,
    HEMATOCRIT_FACTOR,
    LAMBDA_REL,
    MATRICES,
    METHODS,
    MIN_FRAMES,
    OSVD_TARGET,
    PENUMBRA_TMAX,
    RHO,
    TMAX_CALIBRATION_MTTS,
)
from perfdecon.errors import PerfdeconError
from perfdecon.tmax import OnsetTable, invert_onset, onset_time

#: Candidate relative thresholds evaluated by oSVD (same as :mod:`perfdecon.deconvolution`).
OSVD_CANDIDATES = (0.01, 0.02, 0.04, 0.07, 0.1, 0.15, 0.2, 0.3)
_CHUNK = 4096  # voxels per oSVD chunk

REFERENCE_DEFINITIONS = {
    "median": "median CBF over the whole brain mask",
    "contralateral": "median CBF of the hemisphere (split at the mask's X centroid) with the "
    "higher median",
}
"""What rCBF divides by, per ``reference`` (written to ``summary.json``)."""


# --------------------------------------------------------------------------------------------
# convolution matrices and the regularised inverse
# --------------------------------------------------------------------------------------------
def volterra_matrix(aif: np.ndarray, dt: float) -> np.ndarray:
    """Volterra (linear-linear) convolution matrix ``(T, T)`` of Sourbron 2007 (float64).

    Same entries as :func:`perfdecon.deconvolution.volterra_matrix`.
    """
    a = np.asarray(aif, np.float64)
    n = a.shape[0]
    cp = np.concatenate([[0.0], a, [0.0]])  # cp[m + 1] = aif[m]
    i = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    m = np.clip(i - j, 0, n - 1)
    mid = (cp[m] + 4.0 * cp[m + 1] + cp[np.minimum(m + 2, n + 1)]) / 6.0
    first = np.broadcast_to((cp[i] + 2.0 * cp[i + 1]) / 6.0, (n, n))
    diag = (2.0 * a[0] + a[1]) / 6.0
    out = np.where((j > 0) & (j < i), mid, 0.0)
    out = np.where((j == 0) & (i >= 1), first, out)
    out = np.where((j == i) & (i >= 1), diag, out)
    return out * dt


def circulant_matrix(aif: np.ndarray, dt: float) -> np.ndarray:
    """Block-circulant matrix ``(2T, 2T)`` of Wu 2003, ``D[i, j] = dt a[(i - j) mod 2T]``."""
    a = np.asarray(aif, np.float64)
    n = a.shape[0]
    padded = np.concatenate([a, np.zeros(n)])
    i = np.arange(2 * n)[:, None]
    j = np.arange(2 * n)[None, :]
    return padded[(i - j) % (2 * n)] * dt


def filtered_inverse(a: np.ndarray, kind: str, param: float) -> np.ndarray:
    """``X = V diag(f_i / s_i) U^T`` of a square matrix (float64).

    ``kind="tikhonov"``: ``f = s^2 / (s^2 + lambda^2)``, ``lambda = param * s_max``;
    ``kind="tsvd"``: ``f = 1`` where ``s >= param * s_max`` (and ``s > 0``), else 0.
    """
    u, s, vh = np.linalg.svd(np.asarray(a, np.float64))
    smax = s[0]
    if kind == "tikhonov":
        lam = param * smax
        h = s / (s * s + lam * lam)
    else:
        kept = (s >= param * smax) & (s > 0)
        h = np.where(kept, 1.0 / np.where(kept, s, 1.0), 0.0)
    return (vh.T * h) @ u.T


# --------------------------------------------------------------------------------------------
# deconvolution
# --------------------------------------------------------------------------------------------
def _check_inputs(aif: np.ndarray, tissue: np.ndarray, dt: float) -> None:
    if aif.ndim != 1:
        raise PerfdeconError(f"aif must have shape (T,), got {aif.shape}")
    if aif.shape[0] < 2:
        raise PerfdeconError("aif must have at least 2 time points")
    if tissue.ndim < 1 or tissue.shape[-1] != aif.shape[0]:
        raise PerfdeconError(
            f"tissue must have shape (..., T) with T = len(aif) = {aif.shape[0]}, "
            f"got {tissue.shape}"
        )
    if not (math.isfinite(dt) and dt > 0):
        raise PerfdeconError(f"dt must be a positive number of seconds, got {dt!r}")
    if not np.isfinite(aif).all():
        raise PerfdeconError("aif contains NaN or inf values")
    if not np.isfinite(tissue).all():
        raise PerfdeconError("tissue curves contain NaN or inf values")
    amax = float(np.abs(aif).max())
    if amax == 0.0:
        raise PerfdeconError("aif is all zero: no contrast bolus in the arterial curve")
    if float(aif.max() - aif.min()) <= 1e-6 * amax:
        raise PerfdeconError(
            "aif is constant: no contrast bolus (did you pass an un-subtracted baseline?)"
        )


def deconvolve(
    aif,
    tissue,
    dt: float,
    *,
    method: str = "tikhonov",
    matrix: str = "volterra",
    lambda_rel: float = LAMBDA_REL,
    threshold: float | None = None,
    osvd_target: float = OSVD_TARGET,
) -> np.ndarray:
    """Residues ``k(t) = F R(t)`` (1/s) of tissue curves, numpy version of
    :func:`perfdecon.deconvolution.deconvolve` (same parameters and conventions).

    Parameters
    ----------
    aif:
        ``(T,)`` arterial curve.
    tissue:
        ``(..., T)`` tissue curves (float32 stays float32; anything else becomes float64).

    Returns
    -------
    np.ndarray
        ``(..., T)`` residues sampled at ``t_j = j dt``.
    """
    c = np.asarray(tissue)
    if c.dtype not in (np.float32, np.float64):
        c = c.astype(np.float64)
    a_in = np.asarray(aif, np.float64)
    _check_inputs(a_in, c, dt)
    if method not in METHODS:
        raise PerfdeconError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if matrix not in MATRICES:
        raise PerfdeconError(f"unknown matrix {matrix!r}; choose one of {', '.join(MATRICES)}")
    if method in CIRCULANT_ONLY:
        matrix = "circulant"
    n = a_in.shape[0]
    lead = c.shape[:-1]
    flat = c.reshape(-1, n)
    a = circulant_matrix(a_in, dt) if matrix == "circulant" else volterra_matrix(a_in, dt)
    if method == "osvd":
        return _osvd(a, flat, osvd_target).reshape(*lead, n)
    if method == "tikhonov":
        if not lambda_rel > 0:
            raise PerfdeconError(f"lambda_rel must be > 0, got {lambda_rel}")
        x = filtered_inverse(a, "tikhonov", lambda_rel)
    else:
        thr = DEFAULT_THRESHOLDS.get(method, 0.2) if threshold is None else float(threshold)
        if not 0 < thr < 1:
            raise PerfdeconError(f"threshold must be in (0, 1), got {thr}")
        x = filtered_inverse(a, "tsvd", thr)
    # circulant: only the top-left (T, T) block acts on the zero-padded curve's first T samples
    xt = np.ascontiguousarray(x[:n, :n].T, dtype=flat.dtype)
    return (flat @ xt).reshape(*lead, n)


def _osvd(a: np.ndarray, c: np.ndarray, target: float) -> np.ndarray:
    """Per-voxel oSVD (Wu 2003): least-regularised candidate with oscillation index <= target.

    One float64 SVD; per voxel chunk the residues of all candidates are built cumulatively by
    rank updates with their second differences (no loop per voxel), as in
    :func:`perfdecon.deconvolution._osvd`.
    """
    u, s, vh = np.linalg.svd(a)
    smax = s[0]
    cands = sorted(OSVD_CANDIDATES, reverse=True)  # most regularised first
    ranks = [int(((s >= t * smax) & (s > 0)).sum()) for t in cands]
    dtype = c.dtype
    inv_s = np.where(s > 0, 1.0 / np.where(s > 0, s, 1.0), 0.0).astype(dtype)
    vh_t = vh.astype(dtype)
    d2v = np.ascontiguousarray(vh_t[:, 2:] - 2.0 * vh_t[:, 1:-1] + vh_t[:, :-2])
    length = a.shape[0]
    n_t = c.shape[1]
    u_top = np.ascontiguousarray(u[:n_t].astype(dtype))  # the zero padding does not contribute
    vh_out = np.ascontiguousarray(vh_t[:, :n_t])
    out = np.empty((c.shape[0], n_t), dtype)
    pos = np.arange(length)
    for start in range(0, c.shape[0], _CHUNK):
        cc = c[start : start + _CHUNK]
        q = (cc @ u_top) * inv_s  # (n, L): (u_i^T c) / s_i
        k = np.zeros((cc.shape[0], length), dtype)
        d2 = np.zeros((cc.shape[0], length - 2), dtype)
        best = np.full(cc.shape[0], ranks[0])
        prev = 0
        for ci, r in enumerate(ranks):
            if r > prev:
                k += q[:, prev:r] @ vh_t[prev:r]
                d2 += q[:, prev:r] @ d2v[prev:r]
                prev = r
            if ci == 0 or r == ranks[ci - 1]:
                continue
            kmax = k.max(-1)
            oi = np.abs(d2).sum(-1) / (length * np.maximum(kmax, 1e-30))
            best = np.where((oi <= target) & (kmax > 0), r, best)
        keep = (pos[None, :] < best[:, None]).astype(dtype)
        out[start : start + _CHUNK] = (q * keep) @ vh_out
    return out


# --------------------------------------------------------------------------------------------
# Tmax calibration
# --------------------------------------------------------------------------------------------
def onset_table(aif, dt: float, **deconv) -> OnsetTable:
    """Onsets of noise-free exponential residues through this AIF and regulariser.

    Residues ``k = exp(-(t - d) / m)`` for ``t >= d`` (0 before), delays ``d`` every quarter
    frame up to 3/4 of the window and MTTs ``m`` :data:`perfdecon.config.TMAX_CALIBRATION_MTTS`,
    are convolved with the AIF by the Volterra matrix, deconvolved with ``deconv`` (the case's
    method, matrix, lambda, threshold) and their :func:`perfdecon.tmax.onset_time` recorded.
    The columns are indexed by the simulated ``m`` and looked up with a voxel's *measured* MTT
    (measured against indexing them by the simulated residues' own measured MTT: grid phantom
    box residues +0.24..+0.40 s against +1.1 s, independent phantom penumbra Dice 0.684 against
    0.656).

    Returns
    -------
    OnsetTable
        Onsets made non-decreasing down each column (a 1e-9 s ramp makes them strictly
        increasing).
    """
    a = np.asarray(aif, np.float64)
    n = a.shape[0]
    t = np.arange(n) * dt
    delays = np.arange(0.0, 0.75 * n * dt, dt / 4.0)
    fwd = volterra_matrix(a, dt)
    s = t[None, :] - delays[:, None]
    onsets = []
    for m in TMAX_CALIBRATION_MTTS:
        k_true = np.where(s >= 0, np.exp(-np.clip(s, 0, None) / m), 0.0)
        onsets.append(onset_time(deconvolve(a, k_true @ fwd.T, dt, **deconv), dt))
    table = np.maximum.accumulate(np.stack(onsets, 1), axis=0)
    table = table + 1e-9 * np.arange(len(delays))[:, None]
    return OnsetTable(delays=delays, mtt=np.asarray(TMAX_CALIBRATION_MTTS, np.float64),
                      onset=table)


def calibrated_tmax(aif, onset, mtt, dt: float, **deconv) -> np.ndarray:
    """Onset Tmax corrected for the regulariser's blur (s); see :mod:`perfdecon.tmax`."""
    return invert_onset(onset, mtt, onset_table(aif, dt, **deconv))


# --------------------------------------------------------------------------------------------
# maps
# --------------------------------------------------------------------------------------------
@dataclass
class PerfusionArrays:
    """Perfusion maps ``(Z, Y, X)`` as numpy arrays (zero outside ``mask``).

    cbf mL/100 g/min, cbv mL/100 g, mtt s, tmax s, ttp s (from the first frame), kmax 1/s
    (residue peak); mask bool, the voxels that were deconvolved.
    """

    cbf: np.ndarray
    cbv: np.ndarray
    mtt: np.ndarray
    tmax: np.ndarray
    ttp: np.ndarray
    kmax: np.ndarray
    mask: np.ndarray


def check_series(ctc: np.ndarray, aif: np.ndarray, mask) -> np.ndarray:
    """Validate a ``(Z, Y, X, T)`` series, its ``(T,)`` AIF and a ``(Z, Y, X)`` mask.

    Returns the boolean mask (every voxel when ``mask`` is None).
    """
    if ctc.ndim != 4:
        raise PerfdeconError(
            f"concentration series must be 4D (Z, Y, X, T), got {ctc.ndim}D {ctc.shape}"
        )
    if ctc.shape[-1] < MIN_FRAMES:
        raise PerfdeconError(
            f"series has {ctc.shape[-1]} frames; at least {MIN_FRAMES} are needed for deconvolution"
        )
    if aif.ndim != 1 or aif.shape[0] != ctc.shape[-1]:
        raise PerfdeconError(f"aif must have shape (T,) = ({ctc.shape[-1]},), got {aif.shape}")
    if mask is None:
        return np.ones(ctc.shape[:3], bool)
    m = np.asarray(mask).astype(bool)
    if m.shape != ctc.shape[:3]:
        raise PerfdeconError(
            f"mask shape {m.shape} does not match the series' spatial shape {ctc.shape[:3]} "
            "(Z, Y, X)"
        )
    if not m.any():
        raise PerfdeconError("mask is empty: no voxel to analyse")
    return m


def compute_maps(
    ctc,
    aif,
    dt: float,
    *,
    method: str = "tikhonov",
    matrix: str = "volterra",
    lambda_rel: float = LAMBDA_REL,
    mask=None,
    rho: float = RHO,
    hematocrit_factor: float = HEMATOCRIT_FACTOR,
    threshold: float | None = None,
    osvd_target: float = OSVD_TARGET,
    cbv_aif_area: str = "full",
    tmax_method: str = "onset",
) -> PerfusionArrays:
    """All perfusion maps of a concentration series (numpy :func:`perfdecon.maps.compute_maps`).

    Parameters
    ----------
    ctc:
        ``(Z, Y, X, T)`` baseline-subtracted concentration.
    aif:
        ``(T,)`` arterial curve in the same units.
    dt:
        Frame interval (s).
    method, matrix, lambda_rel, threshold, osvd_target:
        See :func:`deconvolve`.
    mask:
        Boolean ``(Z, Y, X)``; only these voxels are deconvolved (default: all).
    rho, hematocrit_factor:
        Tissue density (g/mL) and hematocrit correction ``kH``.
    cbv_aif_area:
        ``"full"`` (the AIF's area, which must be positive) or ``"positive"`` (the area of its
        positive part; a learned AIF with negative lobes).
    tmax_method:
        ``"calibrated"`` (onset corrected for the regulariser's blur, :func:`calibrated_tmax`),
        ``"onset"`` (:func:`perfdecon.tmax.onset_time`) or ``"peak"``
        (:func:`perfdecon.tmax.peak_time`).
    """
    from perfdecon.tmax import tmax as tmax_of

    c = np.asarray(ctc)
    if c.dtype not in (np.float32, np.float64):
        c = c.astype(np.float32)
    a = np.asarray(aif, np.float64)
    m = check_series(c, a, mask)
    if cbv_aif_area not in ("full", "positive"):
        raise PerfdeconError(f"cbv_aif_area must be 'full' or 'positive', got {cbv_aif_area!r}")
    curves = c[m]
    if not np.isfinite(curves).all():
        raise PerfdeconError("concentration series contains NaN or inf inside the mask")
    area_a = float(np.trapezoid(np.clip(a, 0.0, None) if cbv_aif_area == "positive" else a,
                                dx=dt))
    if area_a <= 0:
        raise PerfdeconError("aif has a non-positive area; it must be a positive bolus curve")
    k = deconvolve(a, curves, dt, method=method, matrix=matrix, lambda_rel=lambda_rel,
                   threshold=threshold, osvd_target=osvd_target)
    scale = hematocrit_factor / rho
    kmax = k.max(-1)
    cbf = np.clip(6000.0 * scale * kmax, 0.0, None)
    cbv = np.clip(100.0 * scale * np.trapezoid(curves, dx=dt, axis=-1) / area_a, 0.0, None)
    mtt = np.where(cbf > 1e-6, 60.0 * cbv / np.where(cbf > 1e-6, cbf, 1.0), 0.0)
    mtt = np.clip(mtt, 0.0, c.shape[-1] * dt)
    if tmax_method == "calibrated":
        tmax = calibrated_tmax(a, onset_time(k, dt), mtt, dt, method=method, matrix=matrix,
                               lambda_rel=lambda_rel, threshold=threshold,
                               osvd_target=osvd_target)
    else:
        tmax = tmax_of(k, dt, tmax_method)
    ttp = curves.argmax(-1) * dt

    def scatter(v: np.ndarray) -> np.ndarray:
        out = np.zeros(c.shape[:3], c.dtype)
        out[m] = v
        return out

    return PerfusionArrays(cbf=scatter(cbf), cbv=scatter(cbv), mtt=scatter(mtt),
                           tmax=scatter(tmax), ttp=scatter(ttp), kmax=scatter(kmax), mask=m)


# --------------------------------------------------------------------------------------------
# rCBF, core, penumbra
# --------------------------------------------------------------------------------------------
def _lower_median(v: np.ndarray) -> float:
    """The lower of the two middle values (a voxel's own value; ``torch.median``'s rule)."""
    j = (v.size - 1) // 2
    return float(np.partition(v.ravel(), j)[j])


def reference_cbf(cbf, brain_mask, reference: str = "median", *, exclude=None) -> float:
    """The healthy-tissue CBF that rCBF divides by (same units as ``cbf``).

    Parameters
    ----------
    cbf:
        ``(Z, Y, X)`` CBF map.
    brain_mask:
        Boolean ``(Z, Y, X)``.
    reference:
        ``"median"`` (median over the mask) or ``"contralateral"`` (median of the hemisphere,
        split at the mask's X centroid, with the higher median).  Medians are the lower middle
        value (a voxel's own CBF, so that voxel's rCBF is exactly 1).
    exclude:
        Optional boolean ``(Z, Y, X)`` left out of the reference (voxels that never enhance,
        vessels); ignored if it would leave fewer than 10 voxels.

    Raises
    ------
    PerfdeconError
        Mismatched or empty mask, an unknown reference, or a non-positive reference.
    """
    cbf = np.asarray(cbf)
    brain = np.asarray(brain_mask).astype(bool)
    if brain.shape != cbf.shape:
        raise PerfdeconError(f"brain mask shape {brain.shape} does not match CBF {cbf.shape}")
    if not brain.any():
        raise PerfdeconError("brain mask is empty")
    region = brain
    if exclude is not None:
        kept = brain & ~np.asarray(exclude).astype(bool)
        if int(kept.sum()) >= 10:
            region = kept
    if reference == "median":
        ref = _lower_median(cbf[region])
    elif reference == "contralateral":
        cx = np.nonzero(region)[-1].mean()
        xgrid = np.arange(cbf.shape[-1])
        left, right = region & (xgrid < cx), region & (xgrid >= cx)
        if not (left.any() and right.any()):
            raise PerfdeconError("cannot split the brain mask into two hemispheres along X")
        ref = max(_lower_median(cbf[left]), _lower_median(cbf[right]))
    else:
        raise PerfdeconError(f"reference must be 'median' or 'contralateral', got {reference!r}")
    if not ref > 0:
        raise PerfdeconError("reference CBF is not positive; check the AIF and the brain mask")
    return ref


def relative_cbf(cbf, brain_mask, reference: str = "median", *, exclude=None) -> np.ndarray:
    """CBF divided by :func:`reference_cbf` (unitless, 0 outside the mask)."""
    cbf = np.asarray(cbf)
    brain = np.asarray(brain_mask).astype(bool)
    ref = reference_cbf(cbf, brain, reference, exclude=exclude)
    return np.where(brain, cbf / ref, 0.0).astype(cbf.dtype)


def core_mask(rcbf, threshold: float = CORE_THRESHOLD) -> np.ndarray:
    """Ischaemic core ``rcbf < threshold`` (bool; apply the brain mask yourself)."""
    return np.asarray(rcbf) < threshold


def penumbra_mask(tmax, core, brain_mask, threshold_s: float = PENUMBRA_TMAX) -> np.ndarray:
    """Penumbra: ``Tmax > threshold_s`` seconds inside the brain and outside the core (bool)."""
    return (np.asarray(tmax) > threshold_s) & np.asarray(brain_mask, bool) & ~np.asarray(core,
                                                                                         bool)


__all__ = [
    "OSVD_CANDIDATES",
    "REFERENCE_DEFINITIONS",
    "PerfusionArrays",
    "calibrated_tmax",
    "check_series",
    "circulant_matrix",
    "compute_maps",
    "core_mask",
    "deconvolve",
    "filtered_inverse",
    "onset_table",
    "penumbra_mask",
    "reference_cbf",
    "relative_cbf",
    "volterra_matrix",
]
