"""Super-resolution metrics of the paper's Table 1 (after 4DFlowNet and SRFlow).

All are computed over the fluid voxels ``F`` of the high-res mask of one frame, for velocity
fields ``(3, X, Y, Z)`` in m/s (``v`` = prediction, ``r`` = reference). Segmentation overlap
uses :func:`medshared.metrics.iou`.

- relative error (%): ``E_rel = 100 * mean_F tanh(|v - r| / |r|)`` (``|r|`` floored at 1e-6
  m/s; tanh bounds the contribution of near-zero reference voxels);
- PVNR (dB): ``20 log10(max_F |r| / sqrt(mean_F |v - r|^2))``, the peak speed over the RMS
  vector error;
- nRMS of speed: ``sqrt(mean_F (|v| - |r|)^2) / (max_F |r| - min_F |r|)``;
- direction error: ``E_dir = mean_F (1 - cos theta)``, ``cos theta = v.r / (|v| |r|)``
  (norms floored at 1e-6 m/s, so a zero prediction counts as error 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from flowsr.errors import FlowsrError

_EPS = 1e-6


@dataclass(frozen=True)
class FlowMetrics:
    """Metrics of one frame (see the module docstring for the formulas).

    Attributes
    ----------
    rel_error, rel_error_std : float
        Relative error mean and standard deviation over the fluid (%).
    pvnr : float
        Peak velocity-to-noise ratio (dB).
    nrms_speed : float
        Normalised RMS error of speed (unit-free).
    dir_error, dir_error_std : float
        Direction error ``1 - cos`` mean and standard deviation (unit-free).
    iou : float or None
        IoU of the thresholded segmentation with the reference mask.
    """

    rel_error: float
    rel_error_std: float
    pvnr: float
    nrms_speed: float
    dir_error: float
    dir_error_std: float
    iou: float | None = None

    def as_dict(self) -> dict:
        """Plain dict (for JSON)."""
        return asdict(self)


def _fluid(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, r = np.asarray(pred, np.float64), np.asarray(ref, np.float64)
    m = np.asarray(mask, dtype=bool)
    if p.shape != r.shape or p.ndim != 4 or p.shape[0] != 3 or m.shape != p.shape[1:]:
        raise FlowsrError(
            f"metrics: need prediction and reference (3, X, Y, Z) and a mask (X, Y, Z) of the "
            f"same grid; got {p.shape}, {r.shape}, {m.shape}"
        )
    if not m.any():
        raise FlowsrError("metrics: the reference mask has no fluid voxel")
    return p[:, m], r[:, m]


def relative_error(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """``100 * tanh(|v - r| / |r|)``: mean and std over the fluid (%)."""
    p, r = _fluid(pred, ref, mask)
    e = 100.0 * np.tanh(np.linalg.norm(p - r, axis=0) / np.maximum(np.linalg.norm(r, axis=0), _EPS))
    return float(e.mean()), float(e.std())


def pvnr(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> float:
    """``20 log10(max|r| / RMS|v - r|)`` over the fluid (dB); +inf for a perfect prediction."""
    p, r = _fluid(pred, ref, mask)
    rmse = np.sqrt(np.mean(np.sum((p - r) ** 2, axis=0)))
    peak = np.linalg.norm(r, axis=0).max()
    return float("inf") if rmse == 0 else float(20.0 * np.log10(peak / rmse))


def nrms_speed(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> float:
    """RMS speed error over the fluid divided by the reference speed range."""
    p, r = _fluid(pred, ref, mask)
    sp, sr = np.linalg.norm(p, axis=0), np.linalg.norm(r, axis=0)
    rng = max(float(sr.max() - sr.min()), _EPS)
    return float(np.sqrt(np.mean((sp - sr) ** 2)) / rng)


def direction_error(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """``1 - cos(angle(v, r))``: mean and std over the fluid."""
    p, r = _fluid(pred, ref, mask)
    cos = np.sum(p * r, axis=0) / (
        np.maximum(np.linalg.norm(p, axis=0), _EPS) * np.maximum(np.linalg.norm(r, axis=0), _EPS)
    )
    e = 1.0 - np.clip(cos, -1.0, 1.0)
    return float(e.mean()), float(e.std())


def frame_metrics(
    pred: np.ndarray, ref: np.ndarray, mask: np.ndarray, seg: np.ndarray | None = None
) -> FlowMetrics:
    """All metrics of one frame; ``seg`` is the predicted binary mask ``(X, Y, Z)``."""
    from medshared.metrics import iou

    rel, rel_sd = relative_error(pred, ref, mask)
    d, d_sd = direction_error(pred, ref, mask)
    overlap = None if seg is None else float(iou(np.asarray(seg, bool), np.asarray(mask, bool)))
    return FlowMetrics(rel, rel_sd, pvnr(pred, ref, mask), nrms_speed(pred, ref, mask), d, d_sd,
                       overlap)
