"""perfdecon's settings: every default is declared here, once (no torch import).

:class:`MapsConfig` is one ``perfdecon maps`` run (saved, with the settings actually used, in
``summary.json``); the learned-AIF training config (:mod:`perfdecon.train_config`) takes its
deconvolution, core and smoothing defaults from the constants below, so maps and training can
not drift apart.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from perfdecon.errors import PerfdeconError

# --- deconvolution -------------------------------------------------------------------------
METHODS = ("tikhonov", "ssvd", "csvd", "osvd")
"""Deconvolution methods (see :func:`perfdecon.deconvolution.deconvolve`)."""
MATRICES = ("volterra", "circulant")
"""Convolution matrices; cSVD and oSVD always use ``"circulant"``."""
CIRCULANT_ONLY = ("csvd", "osvd")
"""Methods that are defined on the block-circulant matrix only."""
LAMBDA_REL = 0.3
"""Tikhonov lambda relative to the largest singular value (the paper's setting)."""
DEFAULT_THRESHOLDS = {"ssvd": 0.2, "csvd": 0.1}
"""Truncation threshold relative to ``s_max`` of the truncated-SVD methods."""
OSVD_TARGET = 0.035
"""oSVD oscillation-index target (Wu 2003)."""

# --- maps, core, penumbra -------------------------------------------------------------------
RHO = 1.04
"""Brain tissue density (g/mL)."""
HEMATOCRIT_FACTOR = 0.73
"""Hematocrit correction ``kH = (1 - H_large) / (1 - H_small)``."""
CORE_THRESHOLD = 0.38
"""Ischaemic core: rCBF below this (unitless)."""
SOFT_CORE_TEMPERATURE = 0.02
"""Width of the soft core ``sigmoid((CORE_THRESHOLD - rCBF) / T)`` at inference (rCBF units)."""
TRAIN_CORE_TEMPERATURE = 0.1
"""Soft-core width used by the training loss. Wider than :data:`SOFT_CORE_TEMPERATURE`: an
untrained AIF puts every voxel far from the cut-off, and at 0.02 the loss of a fresh network is
often exactly 1 with zero gradient. Validation Dice uses the hard rule and does not depend on it."""
PENUMBRA_TMAX = 6.0
"""Penumbra: Tmax above this (s), outside the core."""

# --- preprocessing --------------------------------------------------------------------------
SMOOTH_XY = 1.5
"""In-plane Gaussian sigma of the concentration before deconvolution (voxels; 0 = off)."""
SMOOTH_T = 1.0
"""Temporal Gaussian sigma (frames; 0 = off)."""

# --- input plausibility ---------------------------------------------------------------------
MIN_FRAMES = 10
"""Fewest frames a series may have for deconvolution."""
MAX_FRAMES = 1024
"""Most frames accepted: the convolution matrix is ``T x T`` (``2T x 2T`` circulant) and its SVD
costs ``O(T^3)``; clinical CTP/DSC series have 20-200 frames."""
DT_RANGE = (0.05, 60.0)
"""Plausible frame interval (s): ``--dt`` and header values outside it are refused."""
MIN_AIF_QUALITY = 0.5
"""AIF quality ``R^2(gamma first pass) * (1 - exp(-SNR / 20))`` below which ``maps`` refuses
the AIF (``--force`` proceeds with a warning). Measured on brain phantoms: the automatic AIF
scores 1.0 at 0-5 HU noise and 0.76 at 20 HU; the curve of a tissue voxel scores 0.04-0.29 at
2-10 HU and pure noise 0.16."""

REF_MIN_CBV = 0.5
"""Robust rCBF reference: voxels with CBV below this (mL/100 g) never enhance (CSF-like) and are
left out of the healthy reference (grey/white matter: 2-5 mL/100 g)."""
REF_MAX_CBV = 8.0
"""Robust rCBF reference: voxels with CBV above this (mL/100 g) are vessels and left out."""

TMAX_METHODS = ("calibrated", "onset", "peak")
"""Tmax estimators (see :mod:`perfdecon.tmax`): the onset corrected for the regulariser's blur,
the plain half-maximum onset, the residue peak."""
TMAX_DEFAULT = "calibrated"
"""Default Tmax estimator; applied as ``"onset"`` for the truncated-SVD methods (their mild
truncation blur needs no correction and the correction over-shoots there; see
:attr:`MapsConfig.effective_tmax`)."""
TMAX_CALIBRATED_METHODS = ("tikhonov",)
"""Methods whose Tmax the ``"calibrated"`` estimator corrects."""
TMAX_CALIBRATION_MTTS = (1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0)
"""MTTs (s) of the simulated residues of the Tmax calibration table."""
TMAX_LOBE_FRACTION = 0.5
"""Onset Tmax: the residue's first local maximum reaching this fraction of its global maximum is
its peak (later lobes as high are truncation ringing or noise; see :mod:`perfdecon.tmax`)."""

REFERENCES = ("median", "contralateral")
MODALITIES = ("ct", "dsc")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise PerfdeconError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def _check_range(name: str, value: float, lo: float, hi: float, *, lo_open: bool = False) -> None:
    ok = math.isfinite(value) and (value > lo if lo_open else value >= lo) and value <= hi
    if not ok:
        lo_txt = f"> {lo}" if lo_open else f">= {lo}"
        raise PerfdeconError(f"{name} must be {lo_txt} and <= {hi}, got {value}")


@dataclass
class MapsConfig:
    """Settings of one ``maps`` run (saved in ``summary.json``).

    Attributes
    ----------
    method, matrix, lambda_rel:
        Deconvolution (see :func:`perfdecon.deconvolution.deconvolve`); cSVD/oSVD always use the
        circulant matrix (:meth:`effective` says which one was used).
    threshold:
        Truncation threshold relative to ``s_max`` for sSVD/cSVD (None: 0.2 / 0.1).
    modality:
        ``"ct"`` (HU) or ``"dsc"`` (MR signal, needs ``te`` in s).
    te:
        DSC echo time (s).
    smooth_xy, smooth_t:
        In-plane Gaussian sigma in voxels, temporal sigma in frames (0 = off).
    reference:
        rCBF reference, ``"median"`` (whole brain) or ``"contralateral"``.
    robust_reference:
        Leave voxels that never enhance (CBV < :data:`REF_MIN_CBV`) and vessels
        (CBV > :data:`REF_MAX_CBV`) out of the reference (skipped for a learned AIF, whose CBV
        scale is arbitrary).
    core_threshold:
        rCBF cut-off of the core (unitless).
    penumbra_tmax:
        Tmax cut-off of the penumbra (s).
    tmax_method:
        ``"calibrated"`` (default: the onset corrected for the regulariser's blur; Tikhonov
        only, the onset otherwise), ``"onset"`` (half-maximum of the rising edge of the
        residue's first lobe) or ``"peak"``.
    rho, hematocrit_factor:
        Tissue density (g/mL) and hematocrit correction (see :mod:`perfdecon.maps`).
    min_aif_quality:
        AIF quality below which the AIF is refused (0 disables the check).
    vof_correction:
        Scale the AIF so its area matches the automatic venous output function's
        (:func:`perfdecon.aif.vof_scaled`; partial-volume correction of absolute CBF/CBV).
    """

    method: str = "tikhonov"
    matrix: str = "volterra"
    lambda_rel: float = LAMBDA_REL
    threshold: float | None = None
    modality: str = "ct"
    te: float | None = None
    smooth_xy: float = SMOOTH_XY
    smooth_t: float = SMOOTH_T
    reference: str = "median"
    robust_reference: bool = True
    core_threshold: float = CORE_THRESHOLD
    penumbra_tmax: float = PENUMBRA_TMAX
    tmax_method: str = TMAX_DEFAULT
    rho: float = RHO
    hematocrit_factor: float = HEMATOCRIT_FACTOR
    min_aif_quality: float = MIN_AIF_QUALITY
    vof_correction: bool = False

    def __post_init__(self) -> None:
        _check_choice("method", self.method, METHODS)
        _check_choice("matrix", self.matrix, MATRICES)
        _check_choice("modality", self.modality, MODALITIES)
        _check_choice("reference", self.reference, REFERENCES)
        _check_choice("tmax_method", self.tmax_method, TMAX_METHODS)
        _check_range("lambda_rel", self.lambda_rel, 0.0, 10.0, lo_open=True)
        if self.threshold is not None:
            _check_range("threshold", self.threshold, 0.0, 1.0, lo_open=True)
        if self.te is not None:
            _check_range("te", self.te, 0.0, 1.0, lo_open=True)
        _check_range("smooth_xy", self.smooth_xy, 0.0, 20.0)
        _check_range("smooth_t", self.smooth_t, 0.0, 20.0)
        _check_range("core_threshold", self.core_threshold, 0.0, 1.0, lo_open=True)
        _check_range("penumbra_tmax", self.penumbra_tmax, 0.0, 60.0, lo_open=True)
        _check_range("rho", self.rho, 0.0, 10.0, lo_open=True)
        _check_range("hematocrit_factor", self.hematocrit_factor, 0.0, 10.0, lo_open=True)
        _check_range("min_aif_quality", self.min_aif_quality, 0.0, 1.0)

    @property
    def effective_matrix(self) -> str:
        """The convolution matrix actually used (``"circulant"`` for cSVD/oSVD)."""
        return "circulant" if self.method in CIRCULANT_ONLY else self.matrix

    @property
    def effective_tmax(self) -> str:
        """The Tmax estimator actually used (``"calibrated"`` only for Tikhonov)."""
        if self.tmax_method == "calibrated" and self.method not in TMAX_CALIBRATED_METHODS:
            return "onset"
        return self.tmax_method

    @property
    def effective_threshold(self) -> float | None:
        """The truncation threshold actually used (None for Tikhonov and oSVD)."""
        if self.method not in DEFAULT_THRESHOLDS:
            return None
        return DEFAULT_THRESHOLDS[self.method] if self.threshold is None else self.threshold

    def as_dict(self) -> dict[str, Any]:
        """The fields as given, JSON-able."""
        return asdict(self)

    def effective(self) -> dict[str, Any]:
        """The settings actually used: ``matrix``/``threshold`` resolved, unused ones None."""
        d = self.as_dict()
        d["matrix"] = self.effective_matrix
        d["threshold"] = self.effective_threshold
        d["lambda_rel"] = self.lambda_rel if self.method == "tikhonov" else None
        d["osvd_target"] = OSVD_TARGET if self.method == "osvd" else None
        d["tmax_method"] = self.effective_tmax
        if self.modality != "dsc":
            d["te"] = None
        return d


__all__ = [
    "CIRCULANT_ONLY",
    "CORE_THRESHOLD",
    "DEFAULT_THRESHOLDS",
    "DT_RANGE",
    "HEMATOCRIT_FACTOR",
    "LAMBDA_REL",
    "MATRICES",
    "MAX_FRAMES",
    "METHODS",
    "MIN_AIF_QUALITY",
    "MIN_FRAMES",
    "MODALITIES",
    "OSVD_TARGET",
    "PENUMBRA_TMAX",
    "REFERENCES",
    "REF_MAX_CBV",
    "REF_MIN_CBV",
    "RHO",
    "SMOOTH_T",
    "SMOOTH_XY",
    "SOFT_CORE_TEMPERATURE",
    "TMAX_CALIBRATED_METHODS",
    "TMAX_CALIBRATION_MTTS",
    "TMAX_DEFAULT",
    "TMAX_LOBE_FRACTION",
    "TMAX_METHODS",
    "TRAIN_CORE_TEMPERATURE",
    "MapsConfig",
]
