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


SPEED_SHAPE = (64, 256, 256)


def speed_volume(shape: tuple[int, int, int] = SPEED_SHAPE) -> np.ndarray:
    """The *smooth* ``(Z, Y, X)`` uint16 volume: dipy's S0 resampled (linear) and scaled by 8.

    Linear resampling makes it far smoother than any scan (it flatters a 3D codec)."""
    from scipy.ndimage import zoom

    s = dipy_s0().array.astype(np.float64)
    big = zoom(s, (shape[0] / s.shape[0], shape[1] / s.shape[1], shape[2] / s.shape[2]), order=1)
    return np.clip(np.rint(big * 8), 0, 65535).astype(np.uint16)


def noisy_volume(shape: tuple[int, int, int] = SPEED_SHAPE, seed: int = 0) -> np.ndarray:
    """A *noisy* MRI-like ``(Z, Y, X)`` uint16 volume: the smooth volume's anatomy with Rician
    noise (sigma = 3% of its 99th percentile, as in a magnitude image at SNR ~33) and a
    bias field, so every voxel carries incompressible noise as in a real acquisition."""
    rng = np.random.default_rng(seed)
    v = speed_volume(shape).astype(np.float64)
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    v *= 1.0 + 0.15 * (x * 0.7 - y * 0.5 + 0.3 * z)  # smooth receive-coil bias
    sigma = 0.03 * float(np.percentile(v, 99))
    mag = np.hypot(v + rng.normal(0, sigma, shape), rng.normal(0, sigma, shape))
    return np.clip(np.rint(mag), 0, 65535).astype(np.uint16)


def real_tiled_volume(shape: tuple[int, int, int] = SPEED_SHAPE) -> np.ndarray:
    """A *real* ``(Z, Y, X)`` uint16 volume: both volumes of nibabel's ``example4d`` (24 x 96 x
    128 each, real EPI with its noise), tiled with mirror flips to ``shape`` (no resampling)."""
    import nibabel

    path = Path(nibabel.__file__).parent / "tests" / "data" / "example4d.nii.gz"
    if not path.exists():
        raise WdrError(f"{path}: nibabel's test data is not installed")
    from medshared.io import read_nifti

    d = np.asarray(read_nifti(path).data)  # (X, Y, Z, T)
    zyx = np.concatenate([d[..., t].transpose(2, 1, 0) for t in range(d.shape[3])], axis=0)

    def tile(a: np.ndarray, axis: int, n: int) -> np.ndarray:
        reps = [a, np.flip(a, axis)]
        parts, total, k = [], 0, 0
        while total < n:
            parts.append(reps[k % 2])
            total += a.shape[axis]
            k += 1
        return np.take(np.concatenate(parts, axis=axis), np.arange(n), axis=axis)

    for ax, n in enumerate(shape):
        zyx = tile(zyx, ax, n)
    return np.clip(zyx, 0, 65535).astype(np.uint16)
