"""Arterial input function: automatic selection, voxel mask, text file; gamma-variate fit.

Automatic selection (after Mouridsen et al. 2006 and Peruzzo et al. 2011):

1. candidates: brain voxels in the top 1 % of peak enhancement (at least 50), minus the
   roughest quarter (second-difference roughness relative to the peak);
2. k-means (k = 4, seeded) of the candidate curves; each cluster's mean curve is scored
   ``peak / (FWHM * first_moment)`` -- high, narrow and early wins (arteries beat veins, which
   are later and wider, and partial-volume voxels, which are lower);
3. a second k-means (k = 2) inside the winning cluster keeps the better half again;
4. the AIF is the mean curve of the selected voxels; a gamma variate is fitted to its first pass
   and ``quality = R^2(first pass) * (1 - exp(-SNR / 20))`` is reported (0..1), with SNR the peak
   over the pre-bolus standard deviation.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from perfdecon.errors import PerfdeconError
from perfdecon.phantom import gamma_variate


@dataclass
class GammaFit:
    """Gamma-variate fit ``a (t - t0)^b exp(-(t - t0)/c)`` of a first pass.

    Attributes: t0 (s), a, b, c (s); curve ``(T,)`` evaluated on all frames; r2 on the fitted
    window; n_fit frames used.
    """

    t0: float
    a: float
    b: float
    c: float
    curve: np.ndarray
    r2: float
    n_fit: int


@dataclass
class AifResult:
    """A chosen arterial input function.

    Attributes
    ----------
    curve: ``(T,)`` float64 AIF used for deconvolution (concentration units of the series).
    source: ``"auto"``, ``"mask"``, ``"file"``, ``"true"`` or ``"model"``.
    location: ``(z, y, x)`` representative voxel, or None (file / model).
    voxels: ``(n, 3)`` int array of the voxels averaged (z, y, x); empty for file / model.
    quality: heuristic 0..1 (see module docstring); NaN when not computed.
    fit: gamma-variate fit of the first pass (or None).
    details: extra diagnostics (candidate counts, cluster scores...).
    """

    curve: np.ndarray
    source: str
    location: tuple[int, int, int] | None = None
    voxels: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), int))
    quality: float = float("nan")
    fit: GammaFit | None = None
    details: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# curve features
# --------------------------------------------------------------------------------------------
def _fwhm_frames(c: np.ndarray, peak: np.ndarray) -> np.ndarray:
    """Full width at half maximum of each curve ``(n, T)`` in frames, with the two half-maximum
    crossings around the peak located by linear interpolation (sub-frame), batched."""
    n, n_t = c.shape
    idx = np.arange(n_t)[None, :]
    p = c.argmax(1)[:, None]
    half = 0.5 * peak[:, None]
    below = c < half
    rows = np.arange(n)
    left = np.where(below & (idx < p), idx, -1).max(1)  # last frame below half before the peak
    right = np.where(below & (idx > p), idx, n_t).min(1)  # first frame below half after it
    li = np.clip(left, 0, n_t - 2)
    c0, c1 = c[rows, li], c[rows, li + 1]
    t_left = np.where(left >= 0, li + (half[:, 0] - c0) / np.where(c1 != c0, c1 - c0, 1.0), 0.0)
    ri = np.clip(right, 1, n_t - 1)
    d0, d1 = c[rows, ri - 1], c[rows, ri]
    t_right = np.where(
        right < n_t, ri - 1 + (d0 - half[:, 0]) / np.where(d0 != d1, d0 - d1, 1.0), n_t - 1.0
    )
    return np.maximum(t_right - t_left, 0.0)


def curve_features(curves: np.ndarray, dt: float) -> dict[str, np.ndarray]:
    """Per-curve peak, time to peak (s), FWHM (s), first moment (s) and roughness.

    ``curves`` is ``(n, T)``; negative values are ignored for the moments.
    """
    c = np.asarray(curves, np.float64)
    t = np.arange(c.shape[1]) * dt
    peak = c.max(1)
    ttp = c.argmax(1) * dt
    fwhm = _fwhm_frames(c, peak) * dt
    pos = np.clip(c, 0, None)
    area = pos.sum(1)
    m1 = np.where(area > 0, (pos * t).sum(1) / np.where(area > 0, area, 1), t[-1])
    d2 = np.abs(np.diff(c, 2, axis=1)).sum(1)
    rough = np.where(peak > 0, d2 / (c.shape[1] * np.where(peak > 0, peak, 1)), np.inf)
    return {"peak": peak, "ttp": ttp, "fwhm": fwhm, "m1": m1, "roughness": rough}


def _cluster_score(mean_curve: np.ndarray, dt: float) -> float:
    f = curve_features(mean_curve[None], dt)
    return float(f["peak"][0] / (max(f["fwhm"][0], dt) * max(f["m1"][0], dt)))


def fit_gamma_variate(curve: np.ndarray, dt: float) -> GammaFit | None:
    """Fit a gamma variate to the first pass of ``curve`` (up to where it falls below 30 % of the
    peak after the peak).  Returns None when the fit fails."""
    from scipy import optimize  # imported when used: ~1 s of start-up otherwise

    y = np.asarray(curve, np.float64)
    t = np.arange(len(y)) * dt
    p = int(np.argmax(y))
    peak = y[p]
    if peak <= 0:
        return None
    after = np.nonzero(y[p:] < 0.3 * peak)[0]
    end = p + (int(after[0]) if len(after) else len(y) - p - 1) + 1
    rise = np.nonzero(y[: p + 1] < 0.1 * peak)[0]
    t0_guess = max(t[int(rise[-1])] if len(rise) else 0.0, 0.0)
    tp = max(t[p] - t0_guess, dt)
    b0, c0 = 3.0, tp / 3.0
    a0 = peak / ((b0 * c0) ** b0 * np.exp(-b0))
    win = slice(0, end)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            popt, _ = optimize.curve_fit(
                lambda tt, t0, a, b, c: gamma_variate(tt, t0, a, b, c),
                t[win],
                y[win],
                p0=(t0_guess, a0, b0, c0),
                bounds=([-dt, 0, 0.5, 0.1 * dt], [t[p], np.inf, 10.0, 20.0 * dt]),
                maxfev=2000,
            )
    except (RuntimeError, ValueError):
        return None
    fitted = gamma_variate(t, *popt)
    resid = y[win] - fitted[win]
    ss = np.sum((y[win] - y[win].mean()) ** 2)
    r2 = float(1 - np.sum(resid**2) / ss) if ss > 0 else 0.0
    return GammaFit(*(float(v) for v in popt), curve=fitted, r2=r2, n_fit=end)


def quality_score(
    curve: np.ndarray, dt: float, n_baseline: int | None = None
) -> tuple[float, GammaFit | None]:
    """Heuristic AIF quality in [0, 1]: ``R^2(gamma first pass) * (1 - exp(-SNR / 20))``."""
    y = np.asarray(curve, np.float64)
    fit = fit_gamma_variate(y, dt)
    if n_baseline is None:
        p = int(np.argmax(y))
        below = np.nonzero(y[: p + 1] < 0.1 * y[p])[0]
        n_baseline = max(int(below[-1]) if len(below) else 1, 2)
    noise = float(np.std(y[:n_baseline])) if n_baseline >= 2 else 0.0
    snr = float(y.max() / noise) if noise > 0 else 1e3
    r2 = max(fit.r2, 0.0) if fit is not None else 0.0
    return float(r2 * (1 - np.exp(-snr / 20.0))), fit


# --------------------------------------------------------------------------------------------
# sources
# --------------------------------------------------------------------------------------------
def _check(ctc: np.ndarray) -> np.ndarray:
    c = np.asarray(ctc.detach().cpu().numpy() if hasattr(ctc, "detach") else ctc)
    if c.ndim != 4:
        raise PerfdeconError(f"concentration series must be (Z, Y, X, T), got shape {c.shape}")
    return c


def _representative(vox: np.ndarray) -> tuple[int, int, int]:
    med = np.median(vox, axis=0)
    j = int(np.argmin(((vox - med) ** 2).sum(1)))
    return tuple(int(v) for v in vox[j])  # type: ignore[return-value]


def auto_aif(
    ctc: np.ndarray,
    dt: float,
    brain_mask: np.ndarray | None = None,
    *,
    top_fraction: float = 0.01,
    min_candidates: int = 50,
    n_clusters: int = 4,
    seed: int = 0,
) -> AifResult:
    """Automatic AIF from a concentration series ``(Z, Y, X, T)`` (see module docstring)."""
    c = _check(ctc)
    shape = c.shape[:3]
    m = np.ones(shape, bool) if brain_mask is None else np.asarray(brain_mask, bool)
    if m.shape != shape:
        raise PerfdeconError(f"brain mask shape {m.shape} does not match series {shape}")
    idx = np.flatnonzero(m)
    if len(idx) < 10:
        raise PerfdeconError("too few brain voxels for automatic AIF selection")
    flat = c.reshape(-1, c.shape[-1])
    peaks = flat[idx].max(1)
    n_cand = int(min(len(idx), max(min_candidates, round(top_fraction * len(idx)))))
    top = idx[np.argpartition(-peaks, n_cand - 1)[:n_cand]]
    curves = flat[top].astype(np.float64)
    feats = curve_features(curves, dt)
    smooth_enough = feats["roughness"] <= np.quantile(feats["roughness"], 0.75)
    top, curves = top[smooth_enough], curves[smooth_enough]
    if len(top) < 4:
        raise PerfdeconError("automatic AIF: not enough candidate voxels with a clear bolus")
    from scipy.cluster.vq import kmeans2

    rng = np.random.default_rng(seed)

    def best_cluster(cv: np.ndarray, k: int) -> tuple[np.ndarray, list[float]]:
        k = max(1, min(k, len(cv) // 3))
        if k == 1:
            return np.ones(len(cv), bool), [_cluster_score(cv.mean(0), dt)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, lab = kmeans2(cv, k, seed=rng, minit="++")
        scores = [
            _cluster_score(cv[lab == j].mean(0), dt) if np.any(lab == j) else -np.inf
            for j in range(k)
        ]
        return lab == int(np.argmax(scores)), scores

    sel1, scores1 = best_cluster(curves, n_clusters)
    top, curves = top[sel1], curves[sel1]
    sel2, scores2 = best_cluster(curves, 2)
    if sel2.sum() >= 2:
        top, curves = top[sel2], curves[sel2]
    aif = curves.mean(0)
    quality, fit = quality_score(aif, dt)
    vox = np.stack(np.unravel_index(top, shape), 1)
    return AifResult(
        curve=aif,
        source="auto",
        location=_representative(vox),
        voxels=vox,
        quality=quality,
        fit=fit,
        details={
            "n_candidates": int(n_cand),
            "n_selected": len(top),
            "cluster_scores": [float(s) for s in scores1],
        },
    )


VOF_MIN_LAG_S = 3.0
"""A venous curve peaks at least this long after the AIF (s)."""


def auto_vof(
    ctc: np.ndarray,
    dt: float,
    aif: AifResult,
    brain_mask: np.ndarray | None = None,
    *,
    top_fraction: float = 0.01,
    min_candidates: int = 50,
) -> AifResult:
    """Automatic venous output function (VOF) from a concentration series ``(Z, Y, X, T)``.

    Veins (the superior sagittal sinus in practice) carry late, high and broad curves whose
    area is that of the whole bolus, and they are large enough to escape partial volume.
    Candidates are the brain voxels in the top ``top_fraction`` of peak enhancement (at least
    ``min_candidates``) whose peak comes at least :data:`VOF_MIN_LAG_S` after the AIF's and whose
    FWHM is wider than the AIF's; the VOF is the mean curve of the quarter of them with the
    largest area (the least partial-volume-affected), at least 3 voxels.

    Raises
    ------
    PerfdeconError
        No late, broad, bright voxels (no vein in the field of view).
    """
    c = _check(ctc)
    shape = c.shape[:3]
    m = np.ones(shape, bool) if brain_mask is None else np.asarray(brain_mask, bool)
    idx = np.flatnonzero(m)
    flat = c.reshape(-1, c.shape[-1])
    peaks = flat[idx].max(1)
    n_cand = int(min(len(idx), max(min_candidates, round(top_fraction * len(idx)))))
    top = idx[np.argpartition(-peaks, n_cand - 1)[:n_cand]]
    curves = flat[top].astype(np.float64)
    f = curve_features(curves, dt)
    fa = curve_features(np.asarray(aif.curve, np.float64)[None], dt)
    late = (f["ttp"] >= fa["ttp"][0] + VOF_MIN_LAG_S) & (f["fwhm"] > fa["fwhm"][0])
    if late.sum() < 3:
        raise PerfdeconError(
            "VOF: no late, broad, bright voxels (no venous sinus in the field of view?); "
            "run without VOF correction"
        )
    top, curves = top[late], curves[late]
    area = np.trapezoid(curves, dx=dt, axis=1)
    keep = np.argsort(-area)[: max(3, len(area) // 4)]
    top, curves = top[keep], curves[keep]
    vox = np.stack(np.unravel_index(top, shape), 1)
    return AifResult(
        curve=curves.mean(0),
        source="vof",
        location=_representative(vox),
        voxels=vox,
        details={"n_candidates": int(n_cand), "n_late": int(late.sum()), "n_selected": len(top)},
    )


def vof_scaled(aif: AifResult, vof: AifResult, dt: float) -> tuple[AifResult, float]:
    """The AIF scaled so its area matches the VOF's (partial-volume correction).

    ``factor = max(1, area(VOF) / area(AIF))`` (trapezoidal areas over the whole series): the
    arterial curve is scaled up only; a VOF smaller than the AIF is itself partial-volume
    affected and is not trusted to scale it down.

    Returns
    -------
    (AifResult, float)
        The scaled AIF (``details['vof_factor']`` set) and the factor.
    """
    a_area = float(np.trapezoid(aif.curve, dx=dt))
    v_area = float(np.trapezoid(vof.curve, dx=dt))
    if not a_area > 0:
        raise PerfdeconError("VOF correction: the AIF has a non-positive area")
    factor = max(1.0, v_area / a_area)
    scaled = AifResult(
        curve=np.asarray(aif.curve, np.float64) * factor,
        source=aif.source,
        location=aif.location,
        voxels=aif.voxels,
        quality=aif.quality,
        fit=aif.fit,
        details={**aif.details, "vof_factor": factor, "vof_area_ratio": v_area / a_area},
    )
    return scaled, factor


def aif_from_mask(ctc: np.ndarray, mask: np.ndarray, dt: float = 1.0) -> AifResult:
    """AIF as the mean curve of the voxels in ``mask`` ``(Z, Y, X)`` (manual selection)."""
    c = _check(ctc)
    m = np.asarray(mask, bool)
    if m.shape != c.shape[:3]:
        raise PerfdeconError(
            f"AIF mask shape {m.shape} does not match the series' spatial shape {c.shape[:3]}"
        )
    if not m.any():
        raise PerfdeconError("AIF mask is empty: mark at least one arterial voxel")
    curve = c[m].astype(np.float64).mean(0)
    vox = np.argwhere(m)
    quality, fit = quality_score(curve, dt)
    return AifResult(
        curve=curve,
        source="mask",
        location=_representative(vox),
        voxels=vox,
        quality=quality,
        fit=fit,
    )


def aif_from_file(path: str | Path, n_frames: int, dt: float = 1.0) -> AifResult:
    """AIF from a text file with one value per frame (whitespace/newline separated; ``#``
    comments allowed)."""
    p = Path(path)
    if not p.is_file():
        raise PerfdeconError(f"{p}: AIF file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy warns on an empty file; we say it below
            vals = np.loadtxt(p, dtype=np.float64, comments="#", ndmin=1).ravel()
    except (ValueError, UnicodeDecodeError) as exc:
        raise PerfdeconError(f"{p}: not a list of numbers ({exc})") from exc
    if vals.size == 0:
        raise PerfdeconError(f"{p}: AIF file holds no values; expected {n_frames}, one per frame")
    if len(vals) != n_frames:
        raise PerfdeconError(f"{p}: has {len(vals)} values but the series has {n_frames} frames")
    if not np.isfinite(vals).all():
        raise PerfdeconError(f"{p}: contains NaN or inf")
    quality, fit = quality_score(vals, dt)
    return AifResult(curve=vals, source="file", quality=quality, fit=fit, details={"path": str(p)})


def save_aif_txt(path: str | Path, curve: np.ndarray) -> None:
    """Write one value per line (atomic)."""
    from medshared.io import atomic_write_text

    atomic_write_text(Path(path), "".join(f"{v:.6g}\n" for v in np.asarray(curve, float)))


def plot_aif(
    path: str | Path, aif: AifResult, dt: float, title: str = "", vof: AifResult | None = None
) -> None:
    """Plot the AIF (its gamma-variate fit, and the VOF if given) to a PNG (Agg, atomic)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medshared.io import atomic_path

    t = np.arange(len(aif.curve)) * dt
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    ax.plot(t, aif.curve, "o-", ms=3, label=f"AIF ({aif.source})")
    if aif.fit is not None:
        ax.plot(t, aif.fit.curve, "--", label=f"gamma fit (R²={aif.fit.r2:.2f})")
    if vof is not None:
        ax.plot(t, vof.curve, "s-", ms=2, label=f"VOF at (z,y,x)={vof.location}")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("concentration")
    loc = f" at (z,y,x)={aif.location}" if aif.location is not None else ""
    ax.set_title(title or f"AIF{loc}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


__all__ = [
    "AifResult",
    "GammaFit",
    "aif_from_file",
    "aif_from_mask",
    "VOF_MIN_LAG_S",
    "auto_aif",
    "auto_vof",
    "curve_features",
    "fit_gamma_variate",
    "plot_aif",
    "quality_score",
    "save_aif_txt",
    "vof_scaled",
]
