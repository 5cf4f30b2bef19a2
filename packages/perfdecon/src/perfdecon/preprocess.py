"""Preprocessing of perfusion series (numpy, axes ``(Z, Y, X, T)``).

* bolus-arrival detection on the brain-mean curve and pre-bolus baseline subtraction;
* CT: HU enhancement (HU minus the pre-bolus mean) is used as the concentration (linear in
  iodine concentration, ~25 HU per mg/mL; the factor cancels in every map);
* DSC-MR: ``delta R2*(t) = -ln(S(t) / S0) / TE`` (1/s) with ``S0`` the pre-bolus mean;
* brain mask from the pre-bolus image;
* optional Gaussian spatio-temporal smoothing (in-plane and along time).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perfdecon.errors import PerfdeconError

#: CT pre-bolus HU window of brain parenchyma (and vessels); CSF, bone, air fall outside.
CT_BRAIN_HU = (15.0, 80.0)


@dataclass
class Baseline:
    """Bolus arrival and baseline window.

    Attributes
    ----------
    arrival: index of the first frame of the bolus rise (brain-mean curve).
    n_baseline: number of pre-bolus frames averaged (frames ``[0, n_baseline)``).
    """

    arrival: int
    n_baseline: int


def _as_series(x, name: str = "series") -> np.ndarray:
    a = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)
    if a.ndim != 4:
        raise PerfdeconError(f"{name} must be 4D (Z, Y, X, T), got shape {a.shape}")
    if a.shape[-1] < 3:
        raise PerfdeconError(f"{name} has {a.shape[-1]} frames; a perfusion series needs more")
    return a


def detect_bolus_arrival(
    series: np.ndarray, mask: np.ndarray | None = None, *, sign: float = 1.0, fraction: float = 0.1
) -> Baseline:
    """Detect the bolus arrival on the mask-mean curve.

    Parameters
    ----------
    series:
        ``(Z, Y, X, T)`` HU (CT) or signal (DSC).
    mask:
        Voxels to average (default: all).
    sign:
        +1 when the bolus raises the values (CT), -1 when it lowers them (DSC signal drop).
    fraction:
        Arrival = first frame where the mean curve has covered ``fraction`` of its excursion from
        the early baseline (median of the first 3 frames) to its extreme.

    Returns
    -------
    Baseline
        ``n_baseline = max(1, arrival - 1)`` frames (the frame just before the rise is excluded).
    """
    s = _as_series(series)
    if mask is not None:
        m = np.asarray(mask, bool)
        if m.shape != s.shape[:3]:
            raise PerfdeconError(f"mask shape {m.shape} does not match series {s.shape[:3]}")
        curve = s[m].mean(0) if m.any() else s.reshape(-1, s.shape[-1]).mean(0)
    else:
        curve = s.reshape(-1, s.shape[-1]).mean(0)
    curve = sign * curve.astype(np.float64)
    base = np.median(curve[:3])
    peak_i = int(np.argmax(curve))
    excursion = curve[peak_i] - base
    if not np.isfinite(excursion) or excursion <= 0:
        return Baseline(arrival=1, n_baseline=1)
    above = np.nonzero(curve[: peak_i + 1] >= base + fraction * excursion)[0]
    arrival = int(above[0]) if len(above) else peak_i
    return Baseline(arrival=arrival, n_baseline=max(1, arrival - 1))


def baseline_subtract(
    series: np.ndarray, n_baseline: int | None = None, mask: np.ndarray | None = None
) -> tuple[np.ndarray, Baseline]:
    """Subtract the per-voxel pre-bolus mean (``n_baseline`` frames, auto-detected if None).

    Returns ``(enhancement (Z, Y, X, T) float32, Baseline)``.
    """
    s = _as_series(series)
    info = (
        detect_bolus_arrival(s, mask)
        if n_baseline is None
        else Baseline(arrival=int(n_baseline) + 1, n_baseline=int(n_baseline))
    )
    if not 1 <= info.n_baseline < s.shape[-1]:
        raise PerfdeconError(f"n_baseline must be in [1, {s.shape[-1] - 1}], got {info.n_baseline}")
    s = s.astype(np.float32, copy=False)
    base = s[..., : info.n_baseline].mean(-1, keepdims=True)
    return s - base, info


def ct_to_concentration(
    ctp_hu: np.ndarray,
    dt: float = 1.0,
    *,
    n_baseline: int | None = None,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """CT HU series ``(Z, Y, X, T)`` -> concentration (HU enhancement) ``(Z, Y, X, T)`` float32.

    ``dt`` (s) is accepted for a uniform signature (the conversion is frame-wise).  The bolus
    arrival is detected on the mean of ``mask`` (default: the automatic brain mask).
    """
    s = _as_series(ctp_hu, "CT series")
    if not np.isfinite(s).all():
        raise PerfdeconError("CT series contains NaN or inf values")
    if mask is None and n_baseline is None:
        mask = brain_mask(s)
    return baseline_subtract(s, n_baseline, mask)[0]


def dsc_to_concentration(
    signal: np.ndarray,
    te: float,
    *,
    n_baseline: int | None = None,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """DSC-MR signal ``(Z, Y, X, T)`` -> ``delta R2* = -ln(S / S0) / TE`` (1/s) float32.

    ``te`` is the echo time in seconds.  ``S0`` is the pre-bolus mean; voxels with ``S0 <= 0`` are
    set to 0 and ``S / S0`` is clipped to ``[1e-3, inf)``.
    """
    if not (np.isfinite(te) and te > 0):
        raise PerfdeconError(f"echo time TE must be a positive number of seconds, got {te!r}")
    s = _as_series(signal, "DSC series").astype(np.float64)
    if not np.isfinite(s).all():
        raise PerfdeconError("DSC series contains NaN or inf values")
    if mask is None:
        mask = brain_mask(s, modality="dsc")
    info = (
        detect_bolus_arrival(s, mask, sign=-1.0)
        if n_baseline is None
        else Baseline(int(n_baseline) + 1, int(n_baseline))
    )
    s0 = s[..., : info.n_baseline].mean(-1, keepdims=True)
    ok = s0 > 0
    ratio = np.where(ok, s / np.where(ok, s0, 1.0), 1.0)
    return (-np.log(np.clip(ratio, 1e-3, None)) / te).astype(np.float32)


def brain_mask(series: np.ndarray, *, modality: str = "ct", n_baseline: int = 2) -> np.ndarray:
    """Automatic brain mask ``(Z, Y, X)`` from the first ``n_baseline`` frames.

    CT: pre-bolus HU inside :data:`CT_BRAIN_HU` (parenchyma and vessels; CSF, bone, air and fat
    excluded), largest 3D connected component.  DSC: baseline signal above 10 % of its 99th
    percentile, largest component, holes filled per slice.
    """
    s = _as_series(series)
    base = s[..., :n_baseline].astype(np.float64).mean(-1)
    if modality == "ct":
        m = (base >= CT_BRAIN_HU[0]) & (base <= CT_BRAIN_HU[1])
    elif modality == "dsc":
        m = base > 0.1 * np.percentile(base, 99)
    else:
        raise PerfdeconError(f"modality must be 'ct' or 'dsc', got {modality!r}")
    from scipy import ndimage  # imported when used (~0.3 s of start-up)

    lab, n = ndimage.label(m)
    if n == 0:
        raise PerfdeconError(
            "no brain found: no voxel with a plausible pre-bolus value "
            + ("(15-80 HU); is this a CT perfusion series in HU?" if modality == "ct" else "")
        )
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    m = lab == int(np.argmax(sizes))
    if modality == "dsc":
        m = np.stack([ndimage.binary_fill_holes(sl) for sl in m])
    return m


def _gauss_matrix(n: int, sigma: float) -> np.ndarray:
    """``(n, n)`` float32 Gaussian smoothing matrix (radius 4 sigma, zero padding, not
    renormalised)."""
    radius = int(4.0 * sigma + 0.5)
    i = np.arange(n, dtype=np.float64)
    d = i[:, None] - i[None, :]
    g = np.exp(-0.5 * (d / sigma) ** 2) * (np.abs(d) <= radius)
    r = np.arange(-radius, radius + 1, dtype=np.float64)
    return (g / np.exp(-0.5 * (r / sigma) ** 2).sum()).astype(np.float32)


def smooth(
    series: np.ndarray, sigma_xy: float = 1.0, sigma_t: float = 0.0, mask: np.ndarray | None = None
) -> np.ndarray:
    """Gaussian smoothing, ``sigma_xy`` voxels in-plane (Y, X) and ``sigma_t`` frames in time.

    Separable filtering as batched matrix products with banded Gaussian matrices (numpy BLAS;
    radius 4 sigma) on the mask's bounding box.  With ``mask``, the in-plane part is a
    normalised convolution (values outside the mask do not leak in) and voxels outside the mask
    are returned unchanged; time edges are renormalised the same way (equivalent to dropping
    missing frames).

    Parameters
    ----------
    series:
        ``(Z, Y, X, T)``.
    sigma_xy, sigma_t:
        Gaussian sigma in voxels (Y, X) and frames (T); 0 = off.
    mask:
        Optional boolean ``(Z, Y, X)``.

    Returns
    -------
    np.ndarray
        float32 ``(Z, Y, X, T)``.
    """
    s = _as_series(series).astype(np.float32, copy=False)
    if sigma_xy <= 0 and sigma_t <= 0:
        return s
    m = np.ones(s.shape[:3], bool) if mask is None else np.asarray(mask, bool)
    if m.shape != s.shape[:3]:
        raise PerfdeconError(f"mask shape {m.shape} does not match series {s.shape[:3]}")
    if not m.any():
        return s
    # work on the mask's bounding box only (the products cost ~ Y^2 X + X^2 Y per frame)
    ys, xs = np.nonzero(m.any(0))
    box = (
        slice(None),
        slice(int(ys.min()), int(ys.max()) + 1),
        slice(int(xs.min()), int(xs.max()) + 1),
    )
    xt = s[box]
    mt = np.ascontiguousarray(m[box])
    z, y, x, t = xt.shape
    out = xt
    if sigma_t > 0:  # per-voxel and linear, so it commutes with the in-plane part
        gt = _gauss_matrix(t, float(sigma_t))
        out = (out.reshape(-1, t) @ (gt / gt.sum(0))).reshape(z, y, x, t)  # edges renormalised
    if sigma_xy > 0:
        gy = _gauss_matrix(y, float(sigma_xy))
        gx = _gauss_matrix(x, float(sigma_xy))
        mf = mt.astype(np.float32)
        num = out * mf[..., None]
        num = np.matmul(gx, num)  # along X: (X, X) @ (Z, Y, X, T)
        num = (gy @ np.ascontiguousarray(num.transpose(1, 0, 2, 3)).reshape(y, -1))
        num = num.reshape(y, z, x, t).transpose(1, 0, 2, 3)  # along Y
        w = np.matmul(gy, np.matmul(mf, gx.T))  # (Z, Y, X)
        out = num / np.maximum(w, 1e-6)[..., None]
    out = np.where(mt[..., None], out, xt).astype(np.float32)
    if mask is None:
        return np.ascontiguousarray(out)
    result = s.copy()
    result[box] = out
    return result


__all__ = [
    "Baseline",
    "CT_BRAIN_HU",
    "baseline_subtract",
    "brain_mask",
    "ct_to_concentration",
    "detect_bolus_arrival",
    "dsc_to_concentration",
    "smooth",
]
