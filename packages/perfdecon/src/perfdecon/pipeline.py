"""Whole-case pipeline: raw series -> concentration -> AIF -> maps -> rCBF, core, penumbra.

Axes are ``(Z, Y, X, T)`` throughout (the CLI transposes NIfTI's ``(X, Y, Z, T)``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from perfdecon.aif import AifResult, aif_from_mask, auto_aif
from perfdecon.config import MIN_FRAMES, REF_MAX_CBV, REF_MIN_CBV, MapsConfig
from perfdecon.errors import PerfdeconError

PipelineConfig = MapsConfig
"""Former name of :class:`perfdecon.config.MapsConfig`."""


@dataclass
class CaseResult:
    """Outputs of :func:`run_case`; maps are float32 ``(Z, Y, X)`` numpy arrays.

    cbf mL/100 g/min, cbv mL/100 g, mtt s, tmax s, ttp s, rcbf unitless; core, penumbra and
    brain_mask bool; ctc the concentration series ``(Z, Y, X, T)`` float32; timings in s.
    """

    cbf: np.ndarray
    cbv: np.ndarray
    mtt: np.ndarray
    tmax: np.ndarray
    ttp: np.ndarray
    rcbf: np.ndarray
    core: np.ndarray
    penumbra: np.ndarray
    brain_mask: np.ndarray
    aif: AifResult
    ctc: np.ndarray
    config: MapsConfig
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    reference: dict = field(default_factory=dict)
    vof: AifResult | None = None


def check_aif_quality(aif: AifResult, min_quality: float, force: bool = False) -> list[str]:
    """Refuse an AIF whose quality is below ``min_quality`` (unless ``force``).

    The quality is ``R^2(gamma first pass) * (1 - exp(-SNR / 20))`` in [0, 1]
    (:func:`perfdecon.aif.quality_score`); a learned AIF has none (NaN) and is not checked.

    Returns
    -------
    list of str
        Warnings (one when ``force`` let a poor AIF through), empty otherwise.

    Raises
    ------
    PerfdeconError
        Quality below ``min_quality`` and ``force`` is False.
    """
    curve = np.asarray(aif.curve, np.float64)
    if not np.isfinite(curve).all():
        raise PerfdeconError(f"AIF ({aif.source}) contains NaN or inf")
    if not np.any(curve):
        raise PerfdeconError(f"AIF ({aif.source}) is all zero: no contrast bolus in it")
    if not curve.max() > 0:
        raise PerfdeconError(f"AIF ({aif.source}) has no positive peak: no contrast bolus in it")
    q = float(aif.quality)
    if not np.isfinite(q) or q >= min_quality:
        return []
    where = f" at (z,y,x)={aif.location}" if aif.location is not None else ""
    text = (
        f"AIF ({aif.source}{where}) quality {q:.2f} is below {min_quality:.2f}: it does not "
        "look like an arterial bolus (noisy, flat or late), so CBF/CBV/MTT would be unreliable"
    )
    if not force:
        raise PerfdeconError(
            text + "; choose an artery with --aif-mask or --aif-file, or pass --force"
        )
    return [f"WARNING: {text}; continuing because of --force"]


def apply_smoothing(conc: np.ndarray, config: MapsConfig, brain: np.ndarray) -> np.ndarray:
    """Spatio-temporal smoothing of the concentration inside the brain (no-op when off)."""
    if config.smooth_xy > 0 or config.smooth_t > 0:
        from perfdecon.preprocess import smooth

        return smooth(conc, config.smooth_xy, config.smooth_t, mask=brain)
    return conc


def to_concentration(
    series: np.ndarray, config: MapsConfig, brain_mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Raw series -> (concentration ``(Z, Y, X, T)`` float32, brain mask ``(Z, Y, X)``).

    Not smoothed (see :func:`apply_smoothing`; the AIF is selected before smoothing, which
    would blur the few-voxel-wide arteries).
    """
    from perfdecon import preprocess

    s = np.asarray(series)
    if s.ndim != 4:
        raise PerfdeconError(f"perfusion series must be 4D (Z, Y, X, T), got shape {s.shape}")
    if s.shape[-1] < MIN_FRAMES:
        raise PerfdeconError(
            f"series has {s.shape[-1]} frames; at least {MIN_FRAMES} are needed for deconvolution"
        )
    if not np.isfinite(s).all():
        raise PerfdeconError("perfusion series contains NaN or inf values")
    if brain_mask is None:
        brain = preprocess.brain_mask(s, modality=config.modality)
    else:
        brain = np.asarray(brain_mask, bool)
        if brain.shape != s.shape[:3]:
            raise PerfdeconError(
                f"brain mask shape {brain.shape} does not match the series' spatial shape "
                f"{s.shape[:3]}"
            )
        if not brain.any():
            raise PerfdeconError("brain mask is empty")
    if config.modality == "ct":
        conc = preprocess.ct_to_concentration(s, mask=brain)
    elif config.modality == "dsc":
        if config.te is None:
            raise PerfdeconError("DSC modality needs the echo time TE: pass --te SECONDS")
        conc = preprocess.dsc_to_concentration(s, config.te, mask=brain)
    else:
        raise PerfdeconError(f"modality must be 'ct' or 'dsc', got {config.modality!r}")
    return conc, brain


def run_case(
    series: np.ndarray,
    dt: float,
    *,
    config: MapsConfig | None = None,
    aif: str | np.ndarray | AifResult = "auto",
    aif_mask: np.ndarray | None = None,
    brain_mask: np.ndarray | None = None,
    is_concentration: bool = False,
    force: bool = False,
) -> CaseResult:
    """Run the whole pipeline on one case.

    Parameters
    ----------
    series:
        ``(Z, Y, X, T)`` CT HU / DSC signal (or concentration if ``is_concentration``).
    dt:
        Frame interval (s).
    aif:
        ``"auto"``, ``"mask"`` (with ``aif_mask``), a ``(T,)`` curve, or an :class:`AifResult`.
    brain_mask:
        ``(Z, Y, X)`` bool; automatic when None.
    force:
        Proceed (with a warning in ``CaseResult.warnings``) when the AIF quality is below
        ``config.min_aif_quality``; by default such an AIF is refused.
    """
    from perfdecon.npmaps import (
        REFERENCE_DEFINITIONS,
        compute_maps,
        core_mask,
        penumbra_mask,
        reference_cbf,
    )

    cfg = config or MapsConfig()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if is_concentration:
        conc = np.asarray(series, np.float32)
        if conc.ndim != 4:
            raise PerfdeconError(f"series must be 4D (Z, Y, X, T), got shape {conc.shape}")
        brain = (
            np.ones(conc.shape[:3], bool) if brain_mask is None else np.asarray(brain_mask, bool)
        )
        if brain.shape != conc.shape[:3]:
            raise PerfdeconError(f"brain mask shape {brain.shape} does not match {conc.shape[:3]}")
    else:
        conc, brain = to_concentration(series, cfg, brain_mask)
    timings["preprocess"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    if isinstance(aif, AifResult):
        chosen = aif
    elif isinstance(aif, str) and aif == "auto":
        chosen = auto_aif(conc, dt, brain)
    elif isinstance(aif, str) and aif == "mask":
        if aif_mask is None:
            raise PerfdeconError("aif='mask' needs aif_mask")
        chosen = aif_from_mask(conc, aif_mask, dt)
    elif isinstance(aif, str):
        raise PerfdeconError(f"aif must be 'auto', 'mask', a curve or an AifResult, got {aif!r}")
    else:
        curve = np.asarray(aif, np.float64)
        chosen = AifResult(curve=curve, source="given")
    if chosen.curve.shape != (conc.shape[-1],):
        raise PerfdeconError(
            f"AIF has {chosen.curve.shape} values but the series has {conc.shape[-1]} frames"
        )
    warns = check_aif_quality(chosen, cfg.min_aif_quality, force)
    vof = None
    if cfg.vof_correction and chosen.source != "model":
        from perfdecon.aif import auto_vof, vof_scaled

        vof = auto_vof(conc, dt, chosen, brain)
        chosen, _ = vof_scaled(chosen, vof, dt)
    timings["aif"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    conc = apply_smoothing(conc, cfg, brain)
    timings["smooth"] = time.perf_counter() - t2
    t2 = time.perf_counter()
    maps = compute_maps(
        conc,
        chosen.curve,
        dt,
        method=cfg.method,
        matrix=cfg.matrix,
        lambda_rel=cfg.lambda_rel,
        threshold=cfg.threshold,
        mask=brain,
        cbv_aif_area="positive" if chosen.source == "model" else "full",
        tmax_method=cfg.effective_tmax,
        rho=cfg.rho,
        hematocrit_factor=cfg.hematocrit_factor,
    )
    exclude = None
    robust = cfg.robust_reference and chosen.source != "model"
    if robust:
        exclude = (maps.cbv < REF_MIN_CBV) | (maps.cbv > REF_MAX_CBV)
    ref_value = reference_cbf(maps.cbf, brain, cfg.reference, exclude=exclude)
    rcbf = np.where(brain, maps.cbf / ref_value, 0.0).astype(np.float32)
    n_ref = int((brain & ~exclude).sum()) if exclude is not None else int(brain.sum())
    reference = {
        "kind": cfg.reference,
        "definition": REFERENCE_DEFINITIONS[cfg.reference]
        + (
            f", excluding voxels with CBV < {REF_MIN_CBV} (never enhance) or > "
            f"{REF_MAX_CBV} mL/100g (vessels)"
            if robust
            else ""
        ),
        "cbf_ml_100g_min": ref_value,
        "n_voxels": n_ref if n_ref >= 10 else int(brain.sum()),
    }
    core = core_mask(rcbf, threshold=cfg.core_threshold) & brain
    pen = penumbra_mask(maps.tmax, core, brain, cfg.penumbra_tmax)
    timings["maps"] = time.perf_counter() - t2
    timings["total"] = time.perf_counter() - t0

    return CaseResult(
        cbf=maps.cbf.astype(np.float32),
        cbv=maps.cbv.astype(np.float32),
        mtt=maps.mtt.astype(np.float32),
        tmax=maps.tmax.astype(np.float32),
        ttp=maps.ttp.astype(np.float32),
        rcbf=rcbf,
        core=core,
        penumbra=pen,
        brain_mask=brain,
        aif=chosen,
        ctc=conc,
        config=cfg,
        timings=timings,
        warnings=warns,
        reference=reference,
        vof=vof,
    )


__all__ = [
    "CaseResult",
    "MapsConfig",
    "PipelineConfig",
    "apply_smoothing",
    "check_aif_quality",
    "run_case",
    "to_concentration",
]
