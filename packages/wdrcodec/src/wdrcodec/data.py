"""Built-in test volumes: real MRI shipped in the dipy and nibabel wheels, and a speed volume.

Both are read through :func:`medshared.io.read_nifti` and returned in coding order
``(Z, Y, X)`` (NIfTI ``(X, Y, Z)`` reversed), with spacing ``(dz, dy, dx)`` in mm.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wdrcodec.errors import WdrError


@dataclass(frozen=True)
class Sample:
    """A named real volume ``(Z, Y, X)`` with its spacing in mm."""

    name: str
    array: np.ndarray
    spacing: tuple[float, float, float]


def _nifti_volume(path: Path, name: str) -> Sample:
    from medshared.io import read_nifti

    img = read_nifti(path)
    data = np.asarray(img.data)
    if data.ndim == 4:
        data = data[..., 0]
    zyx = np.ascontiguousarray(data.transpose(2, 1, 0))
    sp = tuple(float(z) for z in img.zooms[:3])
    return Sample(name, zyx, (sp[2], sp[1], sp[0]))


def dipy_s0() -> Sample:
    """dipy's ``S0_10slices.nii.gz``: 10 slices of 128 x 128, uint16 (needs dipy installed)."""
    if importlib.util.find_spec("dipy") is None:
        raise WdrError('dipy is not installed; install it with: pip install "wdrcodec[demo]"')
    path = importlib.resources.files("dipy") / "data" / "files" / "S0_10slices.nii.gz"
    return _nifti_volume(Path(str(path)), "dipy S0_10slices")


def nibabel_example4d() -> Sample:
    """Volume 0 of nibabel's ``tests/data/example4d.nii.gz``: 24 x 96 x 128, int16."""
    import nibabel

    path = Path(nibabel.__file__).parent / "tests" / "data" / "example4d.nii.gz"
    if not path.exists():
        raise WdrError(f"{path}: nibabel's test data is not installed")
    return _nifti_volume(path, "nibabel example4d[0]")


def speed_volume() -> np.ndarray:
    """A 64 x 256 x 256 uint16 volume: dipy's S0 resampled (linear) and scaled by 8."""
    from scipy.ndimage import zoom

    s = dipy_s0().array.astype(np.float64)
    big = zoom(s, (64 / s.shape[0], 256 / s.shape[1], 256 / s.shape[2]), order=1)
    return np.clip(np.rint(big * 8), 0, 65535).astype(np.uint16)
