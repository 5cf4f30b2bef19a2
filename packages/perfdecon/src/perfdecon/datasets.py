"""Training samples and datasets for the learned AIF: phantom cases, frame fitting, k-fold split.

Arrays follow the package convention: perfusion series ``(Z, Y, X, T)`` (concentration in HU
above baseline for CT, frame interval ``dt`` in seconds), masks ``(Z, Y, X)`` bool, voxel
spacing ``(dz, dy, dx)`` in mm. ISLES18 cases are read by :mod:`perfdecon.isles` and
augmented by :mod:`perfdecon.augment`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from perfdecon.errors import PerfdeconError

if TYPE_CHECKING:
    import torch


DEFAULT_INPUT_PERCENTILE = 50.0
"""Input normalisation of new AIF models: the series is divided by the median (50th percentile)
of the brain voxels' peak concentration, so tissue curves are O(1)."""
LEGACY_INPUT_PERCENTILE = 99.0
"""Input normalisation of AIF models whose config predates ``input_percentile`` (arteries O(1),
tissue ~0.03: see :class:`perfdecon.models.AIFNetConfig`)."""


# --------------------------------------------------------------------------------------------
# Samples


@dataclass
class Sample:
    """One training/evaluation case.

    Attributes
    ----------
    case_id:
        Name of the case (ISLES folder name or ``phantom-<seed>-<i>``).
    ctc:
        Concentration-time curves ``(Z, Y, X, T)`` float32 (HU above baseline for CT).
    brain_mask, core_mask:
        ``(Z, Y, X)`` bool; ``core_mask`` is the ground-truth ischaemic core.
    dt:
        Frame interval in seconds.
    spacing:
        Voxel size ``(dz, dy, dx)`` in mm.
    aif:
        True AIF ``(T,)`` when known (phantom), else None.
    """

    case_id: str
    ctc: np.ndarray
    brain_mask: np.ndarray
    core_mask: np.ndarray
    dt: float
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    aif: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.ctc.ndim != 4:
            raise PerfdeconError(f"{self.case_id}: ctc must be (Z, Y, X, T), got {self.ctc.shape}")
        for name in ("brain_mask", "core_mask"):
            m = getattr(self, name)
            if m.shape != self.ctc.shape[:3]:
                raise PerfdeconError(
                    f"{self.case_id}: {name} shape {m.shape} does not match the series' "
                    f"spatial shape {self.ctc.shape[:3]}"
                )


def input_scale(
    ctc: np.ndarray,
    brain_mask: np.ndarray | None = None,
    percentile: float = DEFAULT_INPUT_PERCENTILE,
) -> float:
    """Robust intensity scale of a series: a percentile of the per-voxel peak (same units).

    Parameters
    ----------
    ctc:
        ``(Z, Y, X, T)`` concentration curves.
    brain_mask:
        Optional ``(Z, Y, X)`` bool; the percentile is taken inside it.
    percentile:
        Percentile in (0, 100] (the AIF network's ``input_percentile``: 50 for new models, so
        tissue curves are O(1); 99, the arteries' level, for models trained before it existed).
        Default :data:`DEFAULT_INPUT_PERCENTILE`.

    Returns
    -------
    float
        Scale > 0 (at least 1e-6 so an all-zero series does not divide by zero).
    """
    peaks = np.asarray(ctc, dtype=np.float64).max(axis=-1)
    if brain_mask is not None and brain_mask.any():
        peaks = peaks[brain_mask]
    return float(max(np.percentile(peaks, float(percentile)), 1e-6))


def network_input(
    ctc: np.ndarray | torch.Tensor,
    brain_mask: np.ndarray | None = None,
    scale: float | None = None,
    percentile: float = DEFAULT_INPUT_PERCENTILE,
) -> torch.Tensor:
    """Turn a series ``(Z, Y, X, T)`` into the network's input ``(1, T, Z, Y, X)`` float32.

    The series is divided by ``scale`` (default :func:`input_scale` at ``percentile``, the
    model's ``AIFNetConfig.input_percentile``) so its values do not depend on the scanner's
    units; non-finite values raise :class:`~perfdecon.errors.PerfdeconError`.
    """
    import torch

    arr = ctc.detach().cpu().numpy() if isinstance(ctc, torch.Tensor) else np.asarray(ctc)
    if arr.ndim != 4:
        raise PerfdeconError(f"series must be (Z, Y, X, T), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise PerfdeconError("series contains NaN or inf values")
    if scale is None:
        scale = input_scale(arr, brain_mask, percentile)
    scaled = arr.astype(np.float32) / np.float32(scale)
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(scaled, -1, 0))[None])


def fit_frames(ctc: np.ndarray, n_frames: int) -> np.ndarray:
    """Crop or pad the time axis (last) of ``ctc`` to ``n_frames``.

    Longer series lose their last frames; shorter ones repeat their last frame (the curves'
    late, slowly varying part). Used because the AIF network has a fixed number of
    frames (its input channels and outputs) while ISLES18 series differ in length.
    """
    if n_frames < 2:
        raise PerfdeconError(f"n_frames must be >= 2, got {n_frames}")
    n = ctc.shape[-1]
    if n >= n_frames:
        return ctc[..., :n_frames]
    pad = [(0, 0)] * (ctc.ndim - 1) + [(0, n_frames - n)]
    return np.pad(ctc, pad, mode="edge")


def ct_concentration(ctp_hu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CT series in HU ``(Z, Y, X, T)`` -> (concentration ``(Z, Y, X, T)`` float32, brain ``(Z, Y, X)``).

    The package's CT preprocessing (:func:`perfdecon.pipeline.to_concentration`: automatic brain
    mask, bolus-arrival detection, baseline subtraction), as ``perfdecon maps`` applies it.
    """
    from perfdecon.pipeline import PipelineConfig, to_concentration

    ctc, brain = to_concentration(ctp_hu, PipelineConfig(modality="ct"))
    return np.asarray(ctc, dtype=np.float32), np.asarray(brain, dtype=bool)


# --------------------------------------------------------------------------------------------
# Phantom dataset


class PhantomDataset:
    """Brain-like phantom cases from :func:`perfdecon.phantom.brain_case`, generated lazily.

    Case ``i`` uses ``np.random.default_rng([seed, i])`` so every case is distinct and any subset
    is reproducible on its own (a k-fold split does not change the cases).

    With ``from_hu=True`` (default) the concentration and brain mask come from the package's
    preprocessing of the simulated HU series (:func:`perfdecon.pipeline.to_concentration`:
    automatic brain mask, bolus-arrival detection, baseline subtraction), exactly what
    ``perfdecon maps`` and ``perfdecon evaluate`` feed the AIF model at inference. With
    ``from_hu=False`` the phantom's true concentration and brain mask are used.

    Parameters
    ----------
    n_cases:
        Number of cases.
    seed:
        Base seed.
    size, n_slices, n_frames, dt, noise_hu:
        Forwarded to ``brain_case`` (in-plane size in voxels, Z, T, frame interval in s, noise
        standard deviation in HU).
    """

    def __init__(
        self,
        n_cases: int,
        seed: int = 0,
        *,
        size: int = 64,
        n_slices: int = 4,
        n_frames: int = 50,
        dt: float = 1.0,
        noise_hu: float = 2.0,
        from_hu: bool = True,
    ) -> None:
        if n_cases < 1:
            raise PerfdeconError(f"n_cases must be >= 1, got {n_cases}")
        self.n_cases = n_cases
        self.seed = seed
        self.kwargs = dict(
            n_slices=n_slices, size=size, n_frames=n_frames, dt=dt, noise_hu=noise_hu
        )
        self.from_hu = from_hu
        self._cache: dict[int, Sample] = {}

    def __len__(self) -> int:
        return self.n_cases

    def __getitem__(self, i: int) -> Sample:
        if not 0 <= i < self.n_cases:
            raise IndexError(i)
        if i not in self._cache:
            from perfdecon.phantom import brain_case

            case = brain_case(np.random.default_rng([self.seed, i]), **self.kwargs)
            if self.from_hu:
                ctc, brain = ct_concentration(case.ctp_hu)
            else:
                ctc, brain = case.ctc, case.brain_mask
            self._cache[i] = Sample(
                case_id=f"phantom-{self.seed}-{i}",
                ctc=np.asarray(ctc, dtype=np.float32),
                brain_mask=np.asarray(brain, dtype=bool),
                core_mask=np.asarray(case.core_mask, dtype=bool),
                dt=float(case.dt),
                spacing=tuple(float(s) for s in case.spacing),
                aif=np.asarray(case.aif, dtype=np.float64),
            )
        return self._cache[i]


# --------------------------------------------------------------------------------------------
# Cross-validation


class Fold(NamedTuple):
    """Indices of one cross-validation fold (sorted)."""

    train: np.ndarray
    val: np.ndarray


def kfold_split(n_items: int, n_folds: int, seed: int = 0) -> list[Fold]:
    """Seeded k-fold split of ``range(n_items)``: validation sets are disjoint and cover all items.

    Parameters
    ----------
    n_items:
        Number of cases.
    n_folds:
        Number of folds, 2 <= n_folds <= n_items.
    seed:
        Seed of the shuffle (``np.random.default_rng(seed)``).
    """
    if n_folds < 2 or n_folds > n_items:
        raise PerfdeconError(f"need 2 <= folds <= number of cases ({n_items}), got {n_folds}")
    perm = np.random.default_rng(seed).permutation(n_items)
    parts = np.array_split(perm, n_folds)
    folds = []
    for k in range(n_folds):
        val = np.sort(parts[k])
        train = np.sort(np.concatenate([parts[j] for j in range(n_folds) if j != k]))
        folds.append(Fold(train=train, val=val))
    return folds
