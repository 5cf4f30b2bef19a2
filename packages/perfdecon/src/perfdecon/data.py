"""Training data for the learned AIF: ISLES18 loader, phantom dataset, augmentation, k-fold split.

Arrays follow the package convention: perfusion series ``(Z, Y, X, T)`` (concentration in HU
above baseline for CT, frame interval ``dt`` in seconds), masks ``(Z, Y, X)`` bool, voxel
spacing ``(dz, dy, dx)`` in mm. NIfTI files store ``(X, Y, Z[, T])``; :func:`load_isles_case`
transposes on reading.

ISLES 2018 layout (training set)::

    ROOT/case_1/SMIR.Brain.XX.O.CT_4DPWI.345563/SMIR.Brain.XX.O.CT_4DPWI.345563.nii
    ROOT/case_1/SMIR.Brain.XX.O.OT.345565/SMIR.Brain.XX.O.OT.345565.nii      (core mask)
    ROOT/case_1/SMIR.Brain.XX.O.CT.345562/...   CT_CBF, CT_CBV, CT_MTT, CT_Tmax, MR_DWI...
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from perfdecon.errors import PerfdeconError

if TYPE_CHECKING:
    import torch

ISLES_MODALITIES = ("CT_4DPWI", "OT", "CT_CBF", "CT_CBV", "CT_MTT", "CT_Tmax", "CT")
"""Modalities the loader knows; ``CT_4DPWI`` is always required."""

_MOD_RE = re.compile(r"^SMIR\.Brain\.XX\.O\.(?P<mod>[A-Za-z0-9_]+)\.(?P<id>\d+)$")
_CASE_RE = re.compile(r"^case_(\d+)$")


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


def input_scale(ctc: np.ndarray, brain_mask: np.ndarray | None = None) -> float:
    """Robust intensity scale of a series: 99th percentile of the per-voxel peak (same units).

    Parameters
    ----------
    ctc:
        ``(Z, Y, X, T)`` concentration curves.
    brain_mask:
        Optional ``(Z, Y, X)`` bool; the percentile is taken inside it.

    Returns
    -------
    float
        Scale > 0 (at least 1e-6 so an all-zero series does not divide by zero).
    """
    peaks = np.asarray(ctc, dtype=np.float64).max(axis=-1)
    if brain_mask is not None and brain_mask.any():
        peaks = peaks[brain_mask]
    return float(max(np.percentile(peaks, 99.0), 1e-6))


def network_input(
    ctc: np.ndarray | torch.Tensor,
    brain_mask: np.ndarray | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Turn a series ``(Z, Y, X, T)`` into the network's input ``(1, T, Z, Y, X)`` float32.

    The series is divided by ``scale`` (default :func:`input_scale`) so that tissue curves are
    O(1) whatever the scanner's units; non-finite values raise
    :class:`~perfdecon.errors.PerfdeconError`.
    """
    import torch

    arr = ctc.detach().cpu().numpy() if isinstance(ctc, torch.Tensor) else np.asarray(ctc)
    if arr.ndim != 4:
        raise PerfdeconError(f"series must be (Z, Y, X, T), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise PerfdeconError("series contains NaN or inf values")
    if scale is None:
        scale = input_scale(arr, brain_mask)
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
                ctc, brain = _hu_to_ctc(case.ctp_hu)
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
# ISLES 2018


@dataclass
class IslesCase:
    """One ISLES18 case as stored on disk.

    Attributes
    ----------
    case_id:
        Case folder name, e.g. ``case_1``.
    ctp:
        CT perfusion series ``(Z, Y, X, T)`` float32 in HU.
    dt:
        Frame interval in seconds (NIfTI pixdim[4], converted from ms if the header says so).
    spacing:
        Voxel size ``(dz, dy, dx)`` in mm.
    affine:
        NIfTI affine ``(4, 4)`` of the perfusion series (voxel ``(x, y, z)`` to world mm).
    core:
        Ground-truth core ``(Z, Y, X)`` bool (from OT), None if absent and not required.
    images:
        Other loaded modalities by name (``CT_CBF``, ``CT``...), each ``(Z, Y, X)`` float32.
    """

    case_id: str
    ctp: np.ndarray
    dt: float
    spacing: tuple[float, float, float]
    affine: np.ndarray
    core: np.ndarray | None = None
    images: dict[str, np.ndarray] = field(default_factory=dict)


def find_isles_cases(root: str | Path) -> list[Path]:
    """Case folders ``root/case_N`` sorted by N.

    Raises
    ------
    PerfdeconError
        If ``root`` is not a folder or holds no ``case_N`` folders.
    """
    root = Path(root)
    if not root.is_dir():
        raise PerfdeconError(f"ISLES folder {root} does not exist")
    cases = [p for p in root.iterdir() if p.is_dir() and _CASE_RE.match(p.name)]
    if not cases:
        raise PerfdeconError(f"{root} contains no case_N folders (ISLES18 layout expected)")
    return sorted(cases, key=lambda p: int(_CASE_RE.match(p.name).group(1)))  # type: ignore[union-attr]


def _modality_files(case_dir: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for sub in sorted(case_dir.iterdir()):
        m = _MOD_RE.match(sub.name)
        if not sub.is_dir() or m is None:
            continue
        mod = m.group("mod")
        niis = sorted(sub.glob("*.nii")) + sorted(sub.glob("*.nii.gz"))
        if len(niis) != 1:
            raise PerfdeconError(
                f"{sub}: expected exactly one .nii file for modality {mod}, found {len(niis)}"
            )
        if mod in found:
            raise PerfdeconError(f"{case_dir}: modality {mod} appears in more than one folder")
        found[mod] = niis[0]
    return found


def _read(path: Path, ndim: int):  # -> medshared.io.NiftiImage
    from medshared.errors import MedsharedError
    from medshared.io import read_nifti

    try:
        return read_nifti(path, ndim=ndim, allow_nonfinite=False)
    except MedsharedError as exc:
        raise PerfdeconError(str(exc)) from exc


def _frame_interval(img, path: Path) -> float:
    # medshared.io.read_nifti already converts pixdim[4] to seconds (xyzt_units msec/usec).
    if len(img.zooms) < 4:
        raise PerfdeconError(f"{path}: no frame interval (pixdim[4]) in the header")
    dt = float(img.zooms[3])
    if not np.isfinite(dt) or dt <= 0:
        raise PerfdeconError(
            f"{path}: frame interval pixdim[4] = {img.zooms[3]} is not a positive number of "
            "seconds; fix the header"
        )
    return dt


def load_isles_case(
    case_dir: str | Path,
    *,
    modalities: Sequence[str] = ("CT_4DPWI", "OT"),
    require_core: bool = True,
) -> IslesCase:
    """Read one ISLES18 case folder.

    Parameters
    ----------
    case_dir:
        ``.../case_N`` folder holding ``SMIR.Brain.XX.O.<MOD>.<id>/*.nii`` sub-folders.
    modalities:
        Modalities to read (``CT_4DPWI`` is always read). Names from :data:`ISLES_MODALITIES`.
    require_core:
        If True, a missing ``OT`` (core mask) is an error (test-set cases have none).

    Raises
    ------
    PerfdeconError
        Missing folder or modality, several files for one modality, unreadable or non-finite
        NIfTI, wrong dimensionality, a missing/invalid frame interval, or an image whose grid
        does not match the perfusion series. The message names the file.
    """
    case_dir = Path(case_dir)
    if not case_dir.is_dir():
        raise PerfdeconError(f"ISLES case folder {case_dir} does not exist")
    wanted = ["CT_4DPWI"] + [m for m in modalities if m != "CT_4DPWI"]
    if require_core and "OT" not in wanted:
        wanted.append("OT")
    unknown = [m for m in wanted if m not in ISLES_MODALITIES]
    if unknown:
        raise PerfdeconError(f"unknown ISLES modalities {unknown}; known: {ISLES_MODALITIES}")
    files = _modality_files(case_dir)
    for mod in wanted:
        if mod not in files and (mod != "OT" or require_core):
            raise PerfdeconError(
                f"{case_dir}: modality {mod} is missing (no SMIR.Brain.XX.O.{mod}.<id> folder "
                f"with a .nii file); found {sorted(files) or 'none'}"
            )
    pwi = _read(files["CT_4DPWI"], 4)
    ctp = np.ascontiguousarray(np.transpose(np.asarray(pwi.data, dtype=np.float32), (2, 1, 0, 3)))
    dt = _frame_interval(pwi, files["CT_4DPWI"])
    zooms = tuple(float(z) for z in pwi.zooms[:3])
    spacing = (zooms[2], zooms[1], zooms[0])
    images: dict[str, np.ndarray] = {}
    core = None
    for mod in wanted[1:]:
        if mod not in files:
            continue
        img = _read(files[mod], 3)
        vol = np.ascontiguousarray(np.transpose(np.asarray(img.data), (2, 1, 0)))
        if vol.shape != ctp.shape[:3]:
            raise PerfdeconError(
                f"{files[mod]}: shape (Z, Y, X) = {vol.shape} does not match the perfusion "
                f"series {files['CT_4DPWI']} {ctp.shape[:3]}"
            )
        if mod == "OT":
            core = vol > 0
        else:
            images[mod] = vol.astype(np.float32)
    return IslesCase(
        case_id=case_dir.name,
        ctp=ctp,
        dt=dt,
        spacing=spacing,
        affine=np.asarray(pwi.affine, dtype=np.float64),
        core=core,
        images=images,
    )


def isles_sample(case: IslesCase) -> Sample:
    """Convert an :class:`IslesCase` (HU) to a training :class:`Sample` (concentration).

    Uses the package's preprocessing (:func:`perfdecon.pipeline.to_concentration`: automatic
    CT brain mask, bolus-arrival detection, baseline subtraction), as ``perfdecon maps`` does.
    """
    if case.core is None:
        raise PerfdeconError(f"{case.case_id}: no core mask (OT) to train or evaluate against")
    try:
        ctc, brain = _hu_to_ctc(case.ctp)
    except PerfdeconError as exc:
        raise PerfdeconError(f"{case.case_id}: {exc}") from exc
    return Sample(
        case_id=case.case_id,
        ctc=ctc,
        brain_mask=brain,
        core_mask=case.core & brain,
        dt=case.dt,
        spacing=case.spacing,
    )


def _hu_to_ctc(ctp_hu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """HU series ``(Z, Y, X, T)`` -> (concentration ``(Z, Y, X, T)`` float32, brain ``(Z, Y, X)``)."""
    from perfdecon.pipeline import PipelineConfig, to_concentration

    ctc, brain = to_concentration(ctp_hu, PipelineConfig(modality="ct"))
    return np.asarray(ctc, dtype=np.float32), np.asarray(brain, dtype=bool)


class IslesDataset:
    """ISLES18 cases with ground truth, loaded lazily and cached in memory as :class:`Sample`.

    Parameters
    ----------
    root:
        Folder holding ``case_N`` folders (the ISLES18 ``TRAINING`` folder).
    max_cases:
        Use only the first ``max_cases`` cases (sorted by N); None for all.
    n_frames:
        If given, every series is cropped/padded to this many frames (:func:`fit_frames`);
        None keeps the first case's length for all (ISLES18 series differ in length).
    """

    def __init__(
        self, root: str | Path, max_cases: int | None = None, n_frames: int | None = None
    ) -> None:
        self.case_dirs = find_isles_cases(root)
        if max_cases is not None:
            self.case_dirs = self.case_dirs[:max_cases]
        self.n_frames = n_frames
        self._cache: dict[int, Sample] = {}

    def __len__(self) -> int:
        return len(self.case_dirs)

    def __getitem__(self, i: int) -> Sample:
        if i not in self._cache:
            sample = isles_sample(load_isles_case(self.case_dirs[i]))
            if self.n_frames is None:
                self.n_frames = sample.ctc.shape[-1]
            sample.ctc = np.ascontiguousarray(fit_frames(sample.ctc, self.n_frames))
            self._cache[i] = sample
        return self._cache[i]


# --------------------------------------------------------------------------------------------
# Augmentation


@dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation ranges (all drawn from the ``rng`` passed to :func:`augment`).

    Attributes
    ----------
    max_shift_frames:
        Bolus delay shift drawn uniformly in ``[-max, +max]`` frames (sub-frame by linear
        interpolation; positive = later arrival).
    scale_range:
        Peak (concentration) scaling factor drawn uniformly in this range.
    flip:
        Random left-right and anterior-posterior flips (in-plane axes).
    rot90:
        Random in-plane rotation by a multiple of 90 degrees.
    noise_std:
        Gaussian noise standard deviation drawn uniformly in ``[0, noise_std]`` (series units,
        HU for CT).
    """

    max_shift_frames: float = 3.0
    scale_range: tuple[float, float] = (0.7, 1.3)
    flip: bool = True
    rot90: bool = True
    noise_std: float = 1.0


def shift_bolus(ctc: np.ndarray, shift_frames: float) -> np.ndarray:
    """Delay every curve of ``ctc`` (``(..., T)``) by ``shift_frames`` frames.

    ``out[..., t] = ctc(t - shift)`` with linear interpolation between frames and the first/last
    frame repeated beyond the ends, so a positive shift mimics a later bolus arrival and a
    whole-frame shift moves the peak by exactly that many frames. Vectorised over all voxels.
    """
    ctc = np.asarray(ctc)
    n = ctc.shape[-1]
    src = np.clip(np.arange(n, dtype=np.float64) - float(shift_frames), 0.0, n - 1.0)
    i0 = np.floor(src).astype(np.intp)
    i1 = np.minimum(i0 + 1, n - 1)
    w = (src - i0).astype(ctc.dtype if ctc.dtype.kind == "f" else np.float64)
    return ctc[..., i0] * (1 - w) + ctc[..., i1] * w


def augment(sample: Sample, rng: np.random.Generator, config: AugmentConfig) -> Sample:
    """Return a randomly augmented copy of ``sample`` (perfusion + geometric + noise).

    Perfusion augmentation (Robben & Suetens 2018): a bolus delay shift and a peak
    concentration scaling of the whole series (the network must follow them with its AIF).
    Geometric: in-plane flips and 90-degree rotations applied to the series and both masks.
    Noise: additive Gaussian on the series. The true AIF, if present, gets the same delay and
    scaling.
    """
    ctc = sample.ctc
    brain, core = sample.brain_mask, sample.core_mask
    aif = sample.aif
    shift = rng.uniform(-config.max_shift_frames, config.max_shift_frames)
    scale = rng.uniform(*config.scale_range)
    if config.max_shift_frames > 0:
        ctc = shift_bolus(ctc, shift)
        aif = None if aif is None else shift_bolus(aif, shift)
    ctc = ctc * np.float32(scale)
    aif = None if aif is None else aif * scale
    if config.flip:
        for axis in (1, 2):
            if rng.random() < 0.5:
                ctc, brain, core = (np.flip(a, axis) for a in (ctc, brain, core))
    if config.rot90:
        k = int(rng.integers(0, 4))
        ctc, brain, core = (np.rot90(a, k, axes=(1, 2)) for a in (ctc, brain, core))
    if config.noise_std > 0:
        sigma = rng.uniform(0.0, config.noise_std)
        ctc = ctc + rng.normal(0.0, sigma, size=ctc.shape).astype(np.float32)
    return dataclasses.replace(
        sample,
        ctc=np.ascontiguousarray(ctc, dtype=np.float32),
        brain_mask=np.ascontiguousarray(brain),
        core_mask=np.ascontiguousarray(core),
        aif=aif,
    )


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
