"""Perfusion parameter maps from deconvolved residues, relative CBF and core masks.

Units and scaling (the convention of Fieselmann 2011 / most CT perfusion software):

* tissue and arterial curves are concentrations in the same units (HU enhancement for CT,
  delta R2* in 1/s for DSC); ``k(t) = F R(t)`` from :func:`perfdecon.deconvolution.deconvolve`
  is in 1/s (mL blood / mL tissue / s);
* ``CBF = 6000 * kH / rho * max_t k(t)``            [mL / 100 g / min]
* ``CBV = 100 * kH / rho * int c(t) dt / int c_a(t) dt``  [mL / 100 g] (trapezoidal integrals in
  seconds, so ``dt`` is honoured; CBV is an area ratio, not a sum)
* ``MTT = 60 * CBV / CBF``                             [s]
* ``Tmax``                                            [s] onset of the residue: the half-maximum
  crossing of its first lobe's rising edge (:func:`onset_time`, default), or its peak time
  refined below one frame (:func:`peak_time`), both from :mod:`perfdecon.tmax`; plus the
  differentiable :func:`soft_tmax`
* ``TTP = dt * argmax_t c(t)``                         [s] from the first frame

with ``rho = 1.04 g/mL`` brain density and ``kH = (1 - H_large) / (1 - H_small) = 0.73`` the
hematocrit correction.  Set ``rho = 1`` and ``hematocrit_factor = 1`` for raw units.
Maps are zero outside ``mask``; inside it they are finite (CBF, CBV >= 0, MTT clipped to
``[0, T dt]``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from perfdecon.config import (
    CORE_THRESHOLD,
    HEMATOCRIT_FACTOR,
    LAMBDA_REL,
    MIN_FRAMES,
    OSVD_TARGET,
    PENUMBRA_TMAX,
    RHO,
    SOFT_CORE_TEMPERATURE,
)
from perfdecon.deconvolution import deconvolve
from perfdecon.errors import PerfdeconError
from perfdecon.npmaps import REFERENCE_DEFINITIONS


@dataclass
class PerfusionMaps:
    """Perfusion maps, each ``(Z, Y, X)`` torch tensors (zero outside the mask).

    Attributes
    ----------
    cbf: mL/100 g/min.  cbv: mL/100 g.  mtt: s.  tmax: s (residue onset or peak).  ttp: s (tissue
    curve peak time from the first frame).  kmax: residue peak ``max k`` in 1/s.
    mask: bool ``(Z, Y, X)`` voxels that were deconvolved.
    """

    cbf: torch.Tensor
    cbv: torch.Tensor
    mtt: torch.Tensor
    tmax: torch.Tensor
    ttp: torch.Tensor
    kmax: torch.Tensor
    mask: torch.Tensor

    def as_dict(self) -> dict[str, torch.Tensor]:
        """Maps by name (``cbf``, ``cbv``, ``mtt``, ``tmax``, ``ttp``, ``kmax``)."""
        return {
            "cbf": self.cbf,
            "cbv": self.cbv,
            "mtt": self.mtt,
            "tmax": self.tmax,
            "ttp": self.ttp,
            "kmax": self.kmax,
        }


def _as_tensor(x, name: str, dtype=None, device=None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x
    else:
        try:
            t = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise PerfdeconError(f"{name} is not array-like: {exc}") from exc
    if dtype is not None:
        t = t.to(dtype)
    if device is not None:
        t = t.to(device)
    return t


def check_series(ctc: torch.Tensor, aif: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Validate a ``(Z, Y, X, T)`` series, its ``(T,)`` AIF and a ``(Z, Y, X)`` mask.

    Returns the boolean mask (all voxels when ``mask`` is None).  NaN/inf in the curves is
    checked when they are extracted (inside the mask only).
    """
    if ctc.ndim != 4:
        raise PerfdeconError(
            f"concentration series must be 4D (Z, Y, X, T), got {ctc.ndim}D {tuple(ctc.shape)}"
        )
    if ctc.shape[-1] < MIN_FRAMES:
        raise PerfdeconError(
            f"series has {ctc.shape[-1]} frames; at least {MIN_FRAMES} are needed for deconvolution"
        )
    if aif.ndim != 1 or aif.shape[0] != ctc.shape[-1]:
        raise PerfdeconError(
            f"aif must have shape (T,) = ({ctc.shape[-1]},), got {tuple(aif.shape)}"
        )
    if mask is None:
        return torch.ones(ctc.shape[:3], dtype=torch.bool, device=ctc.device)
    if tuple(mask.shape) != tuple(ctc.shape[:3]):
        raise PerfdeconError(
            f"mask shape {tuple(mask.shape)} does not match the series' spatial shape "
            f"{tuple(ctc.shape[:3])} (Z, Y, X)"
        )
    m = mask.to(ctc.device).bool()
    if not bool(m.any()):
        raise PerfdeconError("mask is empty: no voxel to analyse")
    return m


def _masked_curves(ctc: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``(n, T)`` curves of the mask's voxels; NaN/inf there is an error."""
    curves = ctc[m]
    with torch.no_grad():
        if not bool(torch.isfinite(curves).all()):
            raise PerfdeconError("concentration series contains NaN or inf inside the mask")
    return curves


def _numpy_tmax(fn, k: torch.Tensor, *args) -> torch.Tensor:
    out = fn(k.detach().cpu().numpy(), *args)
    return torch.from_numpy(np.ascontiguousarray(out)).to(device=k.device, dtype=k.dtype)


def peak_time(k: torch.Tensor, dt: float) -> torch.Tensor:
    """Residue peak time with sub-frame refinement (s), Tmax with ``tmax_method="peak"``.

    Torch wrapper of :func:`perfdecon.tmax.peak_time` (parabola vertex through the three samples
    around the global peak).  Not differentiable (computed from ``k.detach()``); use
    :func:`soft_tmax` for a gradient.

    Parameters
    ----------
    k:
        Residues ``(..., T)``.
    dt:
        Frame interval (s).

    Returns
    -------
    torch.Tensor
        ``(...)`` peak times in seconds (same dtype and device as ``k``).
    """
    from perfdecon import tmax

    return _numpy_tmax(tmax.peak_time, k, dt)


def onset_time(k: torch.Tensor, dt: float, fraction: float = 0.5) -> torch.Tensor:
    """Onset of the residue's first lobe (s), the default Tmax (``tmax_method="onset"``).

    Torch wrapper of :func:`perfdecon.tmax.onset_time`: the first local maximum reaching half
    the global maximum is the residue's peak (tissue residues are non-increasing, so later lobes
    as high are truncation ringing or noise), and Tmax is the ``fraction``-of-peak crossing of
    its rising edge, linearly interpolated; 0 when the residue is above it from the first frame.
    Regularisation smears the step at the arrival delay ``d`` into later frames, so the peak of
    the regularised residue lags ``d`` by 1.5-5 s (:func:`peak_time`) while the half-maximum
    crossing stays at ``d``. Not differentiable.

    Parameters
    ----------
    k:
        Residues ``(..., T)``.
    dt:
        Frame interval (s).
    fraction:
        Fraction of the peak that marks the onset, in (0, 1).

    Returns
    -------
    torch.Tensor
        ``(...)`` times in seconds (same dtype and device as ``k``).
    """
    from perfdecon import tmax

    return _numpy_tmax(tmax.onset_time, k, dt, fraction)


def soft_tmax(k: torch.Tensor, dt: float, temperature: float = 0.05) -> torch.Tensor:
    """Differentiable Tmax: ``sum_j t_j softmax(k_j / (temperature * max|k|))`` in seconds.

    Parameters
    ----------
    k:
        Residues ``(..., T)``.
    temperature:
        Softmax temperature relative to the peak height; -> 0 recovers ``argmax``.
    """
    scale = k.detach().abs().amax(-1, keepdim=True).clamp_min(1e-12) * temperature
    w = torch.softmax(k / scale, dim=-1)
    t = torch.arange(k.shape[-1], dtype=k.dtype, device=k.device) * dt
    return (w * t).sum(-1)


def compute_maps(
    ctc: torch.Tensor,
    aif: torch.Tensor,
    dt: float,
    *,
    method: str = "tikhonov",
    matrix: str = "volterra",
    lambda_rel: float = LAMBDA_REL,
    mask: torch.Tensor | None = None,
    rho: float = RHO,
    hematocrit_factor: float = HEMATOCRIT_FACTOR,
    threshold: float | None = None,
    osvd_target: float = OSVD_TARGET,
    cbv_aif_area: str = "full",
    tmax_method: str = "onset",
) -> PerfusionMaps:
    """All perfusion maps of a concentration series.

    Parameters
    ----------
    ctc:
        Concentration series ``(Z, Y, X, T)`` (baseline-subtracted; torch tensor or array).
    aif:
        Arterial curve ``(T,)`` in the same units.
    dt:
        Frame interval (s).
    method, matrix, lambda_rel, threshold, osvd_target:
        See :func:`perfdecon.deconvolution.deconvolve`.
    mask:
        Boolean ``(Z, Y, X)``; only these voxels are deconvolved (default: all).
    rho, hematocrit_factor:
        Tissue density (g/mL) and hematocrit correction ``kH`` (see module docstring).
    cbv_aif_area:
        ``"full"``: CBV divides by the AIF's area (it must be positive). ``"positive"``: by the
        area of its positive part, for a learned AIF with negative lobes (the paper's linear
        output), whose absolute scale is arbitrary anyway; CBF, rCBF and Tmax do not use it.
    tmax_method:
        ``"onset"`` (:func:`onset_time`, default), ``"peak"`` (:func:`peak_time`) or
        ``"calibrated"`` (the onset corrected for the regulariser's blur,
        :func:`perfdecon.npmaps.calibrated_tmax`; what ``perfdecon maps`` uses with Tikhonov).

    Returns
    -------
    PerfusionMaps
        Differentiable w.r.t. ``ctc`` and ``aif`` (except the argmax-based Tmax/TTP; Tmax is
        refined below one frame by :func:`peak_time`).
    """
    ctc = _as_tensor(ctc, "ctc")
    if not ctc.is_floating_point():
        ctc = ctc.float()
    aif = _as_tensor(aif, "aif", dtype=ctc.dtype, device=ctc.device)
    if mask is not None:
        mask = _as_tensor(mask, "mask")
    m = check_series(ctc, aif, mask)
    shape = ctc.shape[:3]
    n_t = ctc.shape[-1]
    curves = _masked_curves(ctc, m)  # (n, T)
    k = deconvolve(
        aif,
        curves,
        dt,
        method=method,
        matrix=matrix,
        lambda_rel=lambda_rel,
        threshold=threshold,
        osvd_target=osvd_target,
    )
    scale = hematocrit_factor / rho
    kmax = k.amax(-1)
    cbf = (6000.0 * scale * kmax).clamp_min(0.0)
    if cbv_aif_area not in ("full", "positive"):
        raise PerfdeconError(f"cbv_aif_area must be 'full' or 'positive', got {cbv_aif_area!r}")
    area_a = torch.trapezoid(aif.clamp_min(0.0) if cbv_aif_area == "positive" else aif, dx=dt)
    if float(area_a) <= 0:
        raise PerfdeconError("aif has a non-positive area; it must be a positive bolus curve")
    cbv = (100.0 * scale * torch.trapezoid(curves, dx=dt, dim=-1) / area_a).clamp_min(0.0)
    safe_cbf = torch.where(cbf > 1e-6, cbf, torch.ones_like(cbf))
    mtt = torch.where(cbf > 1e-6, 60.0 * cbv / safe_cbf, torch.zeros_like(cbf))
    mtt = mtt.clamp(0.0, n_t * dt)
    if tmax_method == "onset":
        tmax = onset_time(k, dt)
    elif tmax_method == "peak":
        tmax = peak_time(k, dt)
    elif tmax_method == "calibrated":
        from perfdecon.npmaps import calibrated_tmax

        def host(x: torch.Tensor) -> np.ndarray:
            return x.detach().cpu().numpy().astype(np.float64)

        cal = calibrated_tmax(host(aif), host(onset_time(k, dt)), host(mtt), dt, method=method,
                              matrix=matrix, lambda_rel=lambda_rel, threshold=threshold,
                              osvd_target=osvd_target)
        tmax = torch.from_numpy(cal).to(device=k.device, dtype=k.dtype)
    else:
        raise PerfdeconError(
            f"tmax_method must be 'calibrated', 'onset' or 'peak', got {tmax_method!r}"
        )
    ttp = curves.argmax(-1).to(ctc.dtype) * dt

    def scatter(v: torch.Tensor) -> torch.Tensor:
        out = v.new_zeros(shape)
        return out.index_put((m,), v) if v.requires_grad else out.masked_scatter(m, v)

    return PerfusionMaps(
        cbf=scatter(cbf),
        cbv=scatter(cbv),
        mtt=scatter(mtt),
        tmax=scatter(tmax),
        ttp=scatter(ttp),
        kmax=scatter(kmax),
        mask=m,
    )


def reference_cbf(
    cbf: torch.Tensor,
    brain_mask: torch.Tensor,
    reference: str = "median",
    *,
    exclude: torch.Tensor | None = None,
) -> float:
    """The healthy-tissue CBF that rCBF divides by (same units as ``cbf``).

    Parameters
    ----------
    cbf:
        ``(Z, Y, X)`` CBF map.
    brain_mask:
        Boolean ``(Z, Y, X)``.
    reference:
        ``"median"``: median CBF over the brain mask (robust as long as the lesion covers
        less than half of it; the default). ``"contralateral"``: median CBF of the hemisphere
        (split at the mask's centroid along X) with the higher median CBF.
    exclude:
        Optional boolean ``(Z, Y, X)`` of voxels left out of the reference (voxels that never
        enhance, vessels; see :func:`perfdecon.pipeline.run_case`). Ignored if it would leave
        fewer than 10 voxels.

    Computed by :func:`perfdecon.npmaps.reference_cbf` (one implementation for both backends).

    Raises
    ------
    PerfdeconError
        Mismatched or empty mask, an unknown reference, or a non-positive reference.
    """
    from perfdecon import npmaps

    def host(x) -> np.ndarray | None:
        if x is None:
            return None
        t = _as_tensor(x, "mask")
        return t.detach().cpu().numpy()

    return npmaps.reference_cbf(host(cbf), host(brain_mask), reference, exclude=host(exclude))


def relative_cbf(
    cbf: torch.Tensor,
    brain_mask: torch.Tensor,
    reference: str = "median",
    *,
    exclude: torch.Tensor | None = None,
) -> torch.Tensor:
    """CBF divided by :func:`reference_cbf` (unitless, 0 outside the mask)."""
    brain = _as_tensor(brain_mask, "brain_mask").to(cbf.device).bool()
    ref = reference_cbf(cbf, brain, reference, exclude=exclude)
    return torch.where(brain, cbf / ref, torch.zeros_like(cbf))


def core_mask(
    rcbf: torch.Tensor, *, soft: bool = False,
    threshold: float = CORE_THRESHOLD,
    temperature: float = SOFT_CORE_TEMPERATURE,

) -> torch.Tensor:
    """Ischaemic core from relative CBF.

    Hard: ``rcbf < threshold`` (bool).  Soft: ``sigmoid((threshold - rcbf) / temperature)``
    (float, differentiable), the paper's lesion probability.  Apply a brain mask yourself (rCBF
    is 0 outside the brain, which the hard rule would count as core).
    """
    if soft:
        return torch.sigmoid((threshold - rcbf) / temperature)
    return rcbf < threshold


def penumbra_mask(
    tmax: torch.Tensor,
    core: torch.Tensor,
    brain_mask: torch.Tensor,
    threshold_s: float = PENUMBRA_TMAX,
) -> torch.Tensor:
    """Penumbra: ``Tmax > threshold_s`` seconds inside the brain and outside the core (bool)."""
    return (tmax > threshold_s) & brain_mask.bool() & ~core.bool()


def soft_core_from_aif(
    ctc: torch.Tensor,
    aif: torch.Tensor,
    dt: float,
    brain_mask: torch.Tensor,
    *,
    lambda_rel: float = LAMBDA_REL,
    threshold: float = CORE_THRESHOLD,
    temperature: float = SOFT_CORE_TEMPERATURE,
) -> torch.Tensor:
    """Core probability ``(Z, Y, X)`` differentiable in ``aif`` (the paper's Fig. 1 pipeline).

    Tikhonov (``lambda_rel``) Volterra deconvolution of the brain voxels -> CBF -> rCBF against
    the whole-brain median -> ``sigmoid((threshold - rCBF) / temperature)``; zero outside the
    brain mask.  rCBF does not depend on the AIF's scale, only on its shape and timing.
    """
    ctc = _as_tensor(ctc, "ctc")
    if not ctc.is_floating_point():
        ctc = ctc.float()
    aif = _as_tensor(aif, "aif", device=ctc.device).to(ctc.dtype)
    brain_mask = _as_tensor(brain_mask, "brain_mask")
    m = check_series(ctc, aif, brain_mask)
    k = deconvolve(
        aif, _masked_curves(ctc, m), dt, method="tikhonov", matrix="volterra", lambda_rel=lambda_rel
    )
    cbf = k.amax(-1)
    ref = cbf.median()
    if float(ref.detach()) <= 0:
        ref = cbf.abs().mean().clamp_min(1e-12)
    prob = torch.sigmoid((threshold - cbf / ref) / temperature)
    return prob.new_zeros(m.shape).index_put((m,), prob)


__all__ = [
    "MIN_FRAMES",
    "PerfusionMaps",
    "REFERENCE_DEFINITIONS",
    "check_series",
    "compute_maps",
    "core_mask",
    "onset_time",
    "peak_time",
    "reference_cbf",
    "penumbra_mask",
    "relative_cbf",
    "soft_core_from_aif",
    "soft_tmax",
]
