"""NIfTI in/out for perfdecon (through :mod:`medshared.io`).

NIfTI stores ``(X, Y, Z[, T])``; perfdecon works in ``(Z, Y, X[, T])``.  :func:`read_series` and
:func:`read_mask` transpose on the way in (``data.transpose(2, 1, 0[, 3])``) and
:func:`write_map` transposes back, keeping the input's affine, so outputs overlay the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perfdecon.errors import PerfdeconError


@dataclass
class Series:
    """A 4D perfusion series: data ``(Z, Y, X, T)``, affine (4, 4) for NIfTI voxel order,
    spacing ``(dz, dy, dx)`` mm, dt s (None when the header has none), path."""

    data: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    dt: float | None
    path: Path


def read_nifti_image(path: str | Path, ndim: int, *, allow_nonfinite: bool = True):
    """:func:`medshared.io.read_nifti` with its errors re-raised as :class:`PerfdeconError`.

    Returns the ``NiftiImage`` as stored: data ``(X, Y, Z[, T])``, zooms in mm (and seconds).
    """
    from medshared.errors import MedsharedError
    from medshared.io import read_nifti

    try:
        return read_nifti(path, ndim=ndim, allow_nonfinite=allow_nonfinite)
    except MedsharedError as exc:
        raise PerfdeconError(str(exc)) from exc


def read_series(path: str | Path) -> Series:
    """Read a 4D NIfTI (X, Y, Z, T) -> :class:`Series` with data ``(Z, Y, X, T)`` float32."""
    img = read_nifti_image(path, 4)
    data = np.ascontiguousarray(np.asarray(img.data, dtype=np.float32).transpose(2, 1, 0, 3))
    if not np.isfinite(data).all():
        raise PerfdeconError(f"{path}: series contains NaN or inf voxels")
    zooms = img.zooms
    dt = float(zooms[3]) if len(zooms) > 3 and zooms[3] > 0 else None
    return Series(
        data=data, affine=img.affine, spacing=(zooms[2], zooms[1], zooms[0]), dt=dt, path=Path(path)
    )


def read_mask(path: str | Path, shape: tuple[int, int, int]) -> np.ndarray:
    """Read a 3D NIfTI mask -> bool ``(Z, Y, X)``; it must match ``shape`` (Z, Y, X)."""
    img = read_nifti_image(path, 3)
    m = np.asarray(img.data).transpose(2, 1, 0)
    if m.shape != tuple(shape):
        raise PerfdeconError(
            f"{path}: mask shape (x, y, z) {m.shape[::-1]} does not match the series "
            f"{tuple(shape)[::-1]}"
        )
    if not np.isfinite(m).all():
        raise PerfdeconError(f"{path}: mask contains NaN or inf")
    return m > 0


def write_map(
    path: str | Path,
    data: np.ndarray,
    affine: np.ndarray,
    spacing: tuple[float, float, float],
    dt: float | None = None,
) -> None:
    """Write a ``(Z, Y, X)`` map or ``(Z, Y, X, T)`` series in NIfTI order (atomic)."""
    from medshared.io import write_nifti

    arr = np.asarray(data)
    arr = arr.transpose(2, 1, 0) if arr.ndim == 3 else arr.transpose(2, 1, 0, 3)
    zooms = (spacing[2], spacing[1], spacing[0]) + ((dt,) if arr.ndim == 4 and dt else ())
    write_nifti(path, np.ascontiguousarray(arr), affine, zooms=zooms)


def spacing_affine(spacing: tuple[float, float, float]) -> np.ndarray:
    """Diagonal affine for NIfTI voxel order from ``(dz, dy, dx)`` mm."""
    return np.diag([spacing[2], spacing[1], spacing[0], 1.0])


__all__ = [
    "Series",
    "read_mask",
    "read_nifti_image",
    "read_series",
    "spacing_affine",
    "write_map",
]
