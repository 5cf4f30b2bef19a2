"""ISLES 2018 (CT perfusion) training set: case discovery, NIfTI loading, dataset.

Arrays follow the package convention: perfusion series ``(Z, Y, X, T)`` in HU, masks
``(Z, Y, X)`` bool, voxel spacing ``(dz, dy, dx)`` in mm, frame interval in seconds. Files are
read through :func:`perfdecon.io.read_image_checked` (medshared's one image record,
``(X, Y, Z[, T])`` + RAS+ affine) and put in pipeline order by :func:`perfdecon.io.to_pipeline`,
the package's one conversion.

ISLES 2018 layout (training set)::

    ROOT/case_1/SMIR.Brain.XX.O.CT_4DPWI.345563/SMIR.Brain.XX.O.CT_4DPWI.345563.nii
    ROOT/case_1/SMIR.Brain.XX.O.OT.345565/SMIR.Brain.XX.O.OT.345565.nii      (core mask)
    ROOT/case_1/SMIR.Brain.XX.O.CT.345562/...   CT_CBF, CT_CBV, CT_MTT, CT_Tmax, MR_DWI...
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from perfdecon.datasets import Sample, ct_concentration, fit_frames
from perfdecon.errors import PerfdeconError
from perfdecon.io import read_image_checked, to_pipeline

ISLES_MODALITIES = ("CT_4DPWI", "OT", "CT_CBF", "CT_CBV", "CT_MTT", "CT_Tmax", "CT")
"""Modalities the loader knows; ``CT_4DPWI`` is always required."""

_MOD_RE = re.compile(r"^SMIR\.Brain\.XX\.O\.(?P<mod>[A-Za-z0-9_]+)\.(?P<id>\d+)$")
_CASE_RE = re.compile(r"^case_(\d+)$")


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
        Affine ``(4, 4)`` of the perfusion series (file voxel ``(x, y, z)`` to RAS+ mm).
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


def _frame_interval(img, path: Path) -> float:
    # medshared.io gives dt in seconds (pixdim[4] converted from xyzt_units msec/usec); it is
    # None when pixdim[4] is missing, zero or not finite.
    if img.dt is None:
        raw = img.header["pixdim"][4] if img.header is not None and img.ndim == 4 else None
        raise PerfdeconError(
            f"{path}: frame interval pixdim[4] = {raw} is not a positive number of seconds; "
            "fix the header"
        )
    dt = float(img.dt)
    if not np.isfinite(dt) or dt <= 0:
        raise PerfdeconError(
            f"{path}: frame interval pixdim[4] = {dt} is not a positive number of "
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
    pwi = read_image_checked(files["CT_4DPWI"], 4, allow_nonfinite=False)
    ctp = to_pipeline(np.asarray(pwi.data, dtype=np.float32))
    dt = _frame_interval(pwi, files["CT_4DPWI"])
    spacing = (pwi.spacing[2], pwi.spacing[1], pwi.spacing[0])
    images: dict[str, np.ndarray] = {}
    core = None
    for mod in wanted[1:]:
        if mod not in files:
            continue
        img = read_image_checked(files[mod], 3, allow_nonfinite=False)
        vol = to_pipeline(img.data)
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
        ctc, brain = ct_concentration(case.ctp)
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
