"""Tmax estimators on deconvolved residues (numpy; one implementation for every backend).

A tissue residue is ``k(t) = F R(t - d)`` with ``R`` non-increasing from ``R(0) = 1``, so the
noise-free residue peaks at its onset and the true Tmax is the arrival delay ``d`` of the tissue
relative to the AIF.  Deconvolution returns a *regularised* residue: Tikhonov and truncated SVD
are low-pass filters that smear the step at ``d`` into later frames, and truncated SVD adds
oscillations (Gibbs ringing of the kept singular vectors, amplified noise) whose later lobes can
be as high as the true first lobe.

* :func:`onset_time` (``--tmax onset``, the default): the residue's *first* lobe that reaches
  :data:`~perfdecon.config.TMAX_LOBE_FRACTION` of its global maximum (the physical peak comes
  first because ``R`` is non-increasing; a later lobe as high is ringing or noise), then the
  half-maximum crossing of that lobe's rising edge, linearly interpolated (a step blurred by a
  symmetric kernel crosses half height at the step).  Measured on the grid phantom (true AIF,
  MTT >= 4 s, zero delay, no smoothing): cSVD at 5 HU +1.5..+2.7 s with the global peak, +0.4..
  +0.7 s with the first lobe; Tikhonov/oSVD +0.0..+0.2 s either way.
* ``--tmax calibrated`` (the default with Tikhonov): the onset corrected for the regulariser's
  known blur.  The half-maximum of a residue that decays within the filter's width is crossed
  *early* (grid phantom: -0.5..-0.8 s at 2-8 s delays; -2 s with a sharp AIF at dt 1.5 s).  The
  AIF and regulariser of the case are applied to noise-free exponential residues of known
  delays and MTTs (:func:`perfdecon.npmaps.onset_table`), and each voxel's (onset, measured
  MTT) is mapped back to the delay that produces it (:func:`invert_onset`).
* :func:`peak_time` (``--tmax peak``): the global peak time refined below one frame by the
  vertex of a parabola (the classic definition; lags ``d`` by 1.5-5 s).

Residues are ``(..., T)`` arrays sampled at ``t_j = j dt``; results are ``(...)`` in seconds, in
the residues' floating dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perfdecon.config import TMAX_LOBE_FRACTION


@dataclass(frozen=True)
class OnsetTable:
    """Noise-free onsets of simulated residues through one AIF and regulariser.

    Attributes
    ----------
    delays:
        ``(D,)`` true delays (s), increasing.
    mtt:
        ``(M,)`` the MTT of each column's simulated residues (s, increasing).
    onset:
        ``(D, M)`` their :func:`onset_time` (s), increasing down each column.
    """

    delays: np.ndarray
    mtt: np.ndarray
    onset: np.ndarray


def _as_2d(k) -> tuple[np.ndarray, tuple[int, ...]]:
    a = np.asarray(k)
    if not np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
    return a.reshape(-1, a.shape[-1]), a.shape[:-1]


def first_lobe(k, fraction: float = TMAX_LOBE_FRACTION) -> np.ndarray:
    """Index of the first local maximum that reaches ``fraction`` of the global maximum.

    Parameters
    ----------
    k:
        Residues ``(..., T)``.
    fraction:
        In (0, 1]; 1 gives the global argmax.

    Returns
    -------
    np.ndarray
        ``(...)`` int64 frame indices (the global argmax where the maximum is <= 0).
    """
    a, lead = _as_2d(k)
    edge = np.full((a.shape[0], 1), -np.inf, a.dtype)
    left = np.concatenate([edge, a[:, :-1]], axis=1)
    right = np.concatenate([a[:, 1:], edge], axis=1)
    gmax = a.max(-1, keepdims=True)
    level = np.where(gmax > 0, fraction * gmax, gmax)
    ok = (a >= left) & (a >= right) & (a >= level)
    return ok.argmax(-1).reshape(lead)  # the global maximum always qualifies


def onset_time(
    k, dt: float, fraction: float = 0.5, lobe_fraction: float = TMAX_LOBE_FRACTION
) -> np.ndarray:
    """Half-maximum crossing of the rising edge of the residue's first lobe (s).

    Parameters
    ----------
    k:
        Residues ``(..., T)``.
    dt:
        Frame interval (s).
    fraction:
        Fraction of the lobe's peak that marks the onset, in (0, 1).
    lobe_fraction:
        A lobe counts as the peak when it reaches this fraction of the global maximum
        (:func:`first_lobe`); 1 uses the global maximum.

    Returns
    -------
    np.ndarray
        ``(...)`` times in seconds: the last frame before the lobe's peak that is below
        ``fraction * peak``, plus the linearly interpolated sub-frame crossing; 0 when the
        residue is above it from the first frame.
    """
    a, lead = _as_2d(k)
    n = a.shape[-1]
    j = first_lobe(a, lobe_fraction).reshape(-1, 1)
    h = fraction * np.take_along_axis(a, j, -1)
    idx = np.arange(n)[None, :]
    below = (a < h) & (idx < j)
    i = np.where(below, idx, -1).max(-1, keepdims=True)
    ic = np.clip(i, 0, max(n - 2, 0))
    k0 = np.take_along_axis(a, ic, -1)
    k1 = np.take_along_axis(a, np.minimum(ic + 1, n - 1), -1)
    step = np.where(k1 > k0, k1 - k0, 1.0)
    t = np.where(i >= 0, ic + np.clip((h - k0) / step, 0.0, 1.0), 0.0)
    return (t[:, 0] * dt).astype(a.dtype).reshape(lead)


def peak_time(k, dt: float) -> np.ndarray:
    """Global residue peak time with sub-frame refinement (s), ``--tmax peak``.

    ``dt * (j + delta)`` with ``j = argmax k`` and ``delta = (k[j-1] - k[j+1]) /
    (2 (k[j-1] - 2 k[j] + k[j+1]))`` the vertex of the parabola through the three samples around
    the peak, clipped to ``[-1/2, 1/2]``; ``delta = 0`` at the first/last frame or where the
    three samples are not strictly concave.

    Parameters
    ----------
    k:
        Residues ``(..., T)``.
    dt:
        Frame interval (s).

    Returns
    -------
    np.ndarray
        ``(...)`` peak times in seconds.
    """
    a, lead = _as_2d(k)
    n = a.shape[-1]
    j = a.argmax(-1)[:, None]
    if n < 3:
        return (j[:, 0] * dt).astype(a.dtype).reshape(lead)
    jc = np.clip(j, 1, n - 2)
    km = np.take_along_axis(a, jc - 1, -1)[:, 0]
    k0 = np.take_along_axis(a, jc, -1)[:, 0]
    kp = np.take_along_axis(a, jc + 1, -1)[:, 0]
    den = km - 2.0 * k0 + kp
    ok = (den < 0) & (jc == j)[:, 0]
    safe = np.where(ok, den, -1.0)
    delta = np.where(ok, np.clip(0.5 * (km - kp) / safe, -0.5, 0.5), 0.0)
    return ((j[:, 0] + delta) * dt).astype(a.dtype).reshape(lead)


def invert_onset(onset, mtt, table: OnsetTable) -> np.ndarray:
    """Calibrated Tmax (s): the delay whose simulated residue gives this onset at this MTT.

    Parameters
    ----------
    onset:
        Measured onsets ``(...)`` (s, :func:`onset_time`).
    mtt:
        Measured MTT ``(...)`` (s, the maps' CBV/CBF) of the same voxels.
    table:
        :class:`OnsetTable` of the AIF and regulariser that produced them
        (:func:`perfdecon.npmaps.onset_table`).

    Returns
    -------
    np.ndarray
        ``(...)`` delays in s: per MTT column the onset-to-delay curve is inverted by linear
        interpolation (beyond its last point by a constant offset), then interpolated linearly
        in log MTT between the two nearest columns (clamped at the first and last).
    """
    o = np.asarray(onset, np.float64).ravel()
    mu = np.asarray(mtt, np.float64).ravel()
    cols = []
    for j in range(table.onset.shape[1]):
        col = table.onset[:, j]
        d = np.interp(o, col, table.delays)
        cols.append(np.where(o > col[-1], o + (table.delays[-1] - col[-1]), d))
    d_all = np.stack(cols, 1)
    log_m = np.log(table.mtt)
    pos = np.interp(np.log(np.clip(mu, table.mtt[0], table.mtt[-1])), log_m,
                    np.arange(len(log_m), dtype=np.float64))
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, len(log_m) - 2)
    w = pos - i0
    rows = np.arange(len(o))
    out = (1 - w) * d_all[rows, i0] + w * d_all[rows, i0 + 1]
    return np.maximum(out, 0.0).astype(np.asarray(onset).dtype).reshape(np.shape(onset))


def tmax(k, dt: float, method: str = "onset") -> np.ndarray:
    """Tmax by ``method`` (``"onset"``: :func:`onset_time`, ``"peak"``: :func:`peak_time`)."""
    from perfdecon.errors import PerfdeconError

    if method == "onset":
        return onset_time(k, dt)
    if method == "peak":
        return peak_time(k, dt)
    raise PerfdeconError(f"tmax_method must be 'onset' or 'peak' here, got {method!r} "
                         "('calibrated' needs the AIF: perfdecon.npmaps.compute_maps)")


__all__ = ["OnsetTable", "first_lobe", "invert_onset", "onset_time", "peak_time", "tmax"]
