"""Streamline geometry: cleaning, arc-length resampling and orientation (all vectorised).

Streamlines are ``(N_i, 3)`` arrays of RAS+ coordinates in mm; resampled sets are
``(M, P, 3)`` arrays (streamline, point, xyz).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from streamvq.errors import StreamvqError


@dataclass(frozen=True)
class CleanReport:
    """What :func:`clean_streamlines` removed (counts of streamlines)."""

    kept: int
    too_short: int
    non_finite: int
    zero_length: int

    @property
    def dropped(self) -> int:
        """Streamlines removed for any reason."""
        return self.too_short + self.non_finite + self.zero_length


def _flatten(streamlines: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate streamlines into ``(sum N_i, 3)`` points and ``(M,)`` lengths."""
    arrays = [np.asarray(s, dtype=np.float64).reshape(-1, 3) for s in streamlines]
    lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
    points = np.concatenate(arrays) if arrays else np.zeros((0, 3))
    return points, lengths


def clean_streamlines(
    streamlines: Sequence[np.ndarray],
) -> tuple[list[np.ndarray], np.ndarray, CleanReport]:
    """Drop streamlines that cannot be resampled, counting each reason.

    Removed: fewer than 2 points, any NaN/inf coordinate, zero arc length (all points equal).

    Parameters
    ----------
    streamlines : sequence of (N_i, 3) arrays, mm

    Returns
    -------
    kept : list of (N_i, 3) float64 arrays
    index : (K,) int64 array
        Position of every kept streamline in the input.
    report : CleanReport
    """
    for i, s in enumerate(streamlines):
        a = np.asarray(s)
        if a.ndim != 2 or a.shape[1] != 3:
            raise StreamvqError(f"streamline {i} has shape {a.shape}; expected (N, 3)")
    points, lengths = _flatten(streamlines)
    m = len(lengths)
    if m == 0:
        return [], np.zeros(0, np.int64), CleanReport(0, 0, 0, 0)
    owner = np.repeat(np.arange(m), lengths)
    bad_point = ~np.isfinite(points).all(axis=1)
    non_finite = np.bincount(owner[bad_point], minlength=m) > 0
    too_short = lengths < 2
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    same_owner = owner[1:] == owner[:-1]
    arc = np.bincount(owner[1:][same_owner], weights=np.nan_to_num(seg[same_owner]), minlength=m)
    zero_length = (arc <= 0) & ~too_short & ~non_finite
    drop = too_short | non_finite | zero_length
    index = np.flatnonzero(~drop)
    kept = [np.asarray(streamlines[i], dtype=np.float64) for i in index]
    report = CleanReport(
        kept=int(len(index)),
        too_short=int(too_short.sum()),
        non_finite=int((non_finite & ~too_short).sum()),
        zero_length=int(zero_length.sum()),
    )
    return kept, index, report


def resample_streamlines(streamlines: Sequence[np.ndarray], n_points: int = 64) -> np.ndarray:
    """Resample every streamline to ``n_points`` points equally spaced in arc length.

    Linear interpolation along the polyline; the first and last points are kept exactly.
    Vectorised over all streamlines at once (one ``searchsorted`` on the concatenated arc
    lengths).

    Parameters
    ----------
    streamlines : sequence of (N_i, 3) arrays, mm
        Finite, ``N_i >= 2``, positive length (see :func:`clean_streamlines`).
    n_points : int
        Points per output streamline (>= 2).

    Returns
    -------
    (M, n_points, 3) float64 array, mm
    """
    if n_points < 2:
        raise StreamvqError(f"n_points must be >= 2, got {n_points}")
    points, lengths = _flatten(streamlines)
    m = len(lengths)
    if m == 0:
        return np.zeros((0, n_points, 3))
    if (lengths < 2).any():
        raise StreamvqError("every streamline needs at least 2 points; clean them first")
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    seg[starts[1:] - 1] = 0.0  # the jump between consecutive streamlines is not a segment
    cum = np.concatenate([[0.0], np.cumsum(seg)])  # global running arc length, per point
    cum_local = cum - np.repeat(cum[starts], lengths)
    total = cum_local[starts + lengths - 1]
    if not np.all(total > 0):
        raise StreamvqError("a streamline has zero arc length; clean them first")
    # separate streamlines on one monotone axis: streamline i lives in [i * gap, i * gap + L_i]
    gap = float(total.max()) * 2.0 + 1.0
    owner = np.repeat(np.arange(m), lengths)
    axis = cum_local + owner * gap
    frac = np.linspace(0.0, 1.0, n_points)
    targets = (total[:, None] * frac[None, :]) + (np.arange(m) * gap)[:, None]
    hi = np.searchsorted(axis, targets.ravel(), side="right").reshape(m, n_points)
    hi = np.clip(hi, (starts + 1)[:, None], (starts + lengths - 1)[:, None])
    lo = hi - 1
    span = axis[hi] - axis[lo]
    w = np.where(span > 0, (targets - axis[lo]) / np.where(span > 0, span, 1.0), 0.0)
    w = np.clip(w, 0.0, 1.0)[..., None]
    out = points[lo] * (1.0 - w) + points[hi] * w
    out[:, 0] = points[starts]
    out[:, -1] = points[starts + lengths - 1]
    return out


@dataclass(frozen=True)
class Oriented:
    """Result of :func:`orient_bundle`."""

    streamlines: np.ndarray
    """(M, P, 3) streamlines, all running the same way, mm."""
    flipped: np.ndarray
    """(M,) bool, True where a streamline was reversed."""


def orient_bundle(streamlines: np.ndarray) -> Oriented:
    """Flip streamlines of one bundle so that they all run in a common direction.

    Step 1 aligns every end-minus-start vector with the dominant axis of those vectors (its sign
    fixed so that its largest component is positive, making the result independent of the input
    order); step 2 compares each streamline with the mean of the step-1 result, direct versus
    reversed (the MDF rule of dipy's ``orient_by_streamline``), which fixes U-shaped and
    ambiguous streamlines.

    Parameters
    ----------
    streamlines : (M, P, 3) array, mm
        Resampled streamlines of one bundle.
    """
    x = np.asarray(streamlines, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != 3:
        raise StreamvqError(f"orient_bundle expects (M, P, 3), got {x.shape}")
    if len(x) == 0:
        return Oriented(x, np.zeros(0, bool))
    v = x[:, -1] - x[:, 0]
    _, _, vt = np.linalg.svd(v, full_matrices=False)
    axis = vt[0]
    axis = axis * np.sign(axis[np.argmax(np.abs(axis))])
    flip1 = v @ axis < 0
    y = np.where(flip1[:, None, None], x[:, ::-1], x)
    mean = y.mean(axis=0)
    direct = np.linalg.norm(y - mean, axis=2).mean(axis=1)
    reverse = np.linalg.norm(y[:, ::-1] - mean, axis=2).mean(axis=1)
    flip2 = reverse < direct
    y = np.where(flip2[:, None, None], y[:, ::-1], y)
    return Oriented(y, flip1 ^ flip2)


def mdf(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean point-wise (direct) distance between paired streamlines, mm.

    Parameters
    ----------
    a, b : (..., P, 3) arrays, mm

    Returns
    -------
    (...) array: the mean over the P points of the Euclidean distance.
    """
    return np.linalg.norm(np.asarray(a) - np.asarray(b), axis=-1).mean(axis=-1)
