"""Image in/out for perfdecon, through :mod:`medshared.io`'s one image record.

Files (NIfTI ``.nii``/``.nii.gz``, a DICOM series folder, 3D or 4D, or a DICOM file) are read with
:func:`medshared.io.read_image`, which gives every format the same convention: ``(X, Y, Z[, T])``,
a voxel -> RAS+ mm affine, spacing ``(dx, dy, dz)`` mm and ``dt`` in seconds.

The pipeline computes in ``(Z, Y, X[, T])``. The **one place** that converts between the two
orders is :func:`to_pipeline` / :func:`from_pipeline` below (reverse the three spatial axes);
:class:`Series` keeps the reader's :class:`~medshared.io.Image` beside the pipeline-order array,
and maps are written back in the input's voxel grid and affine, so outputs overlay the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from perfdecon.errors import PerfdeconError

if TYPE_CHECKING:  # pragma: no cover
    from medshared.io import Image


def to_pipeline(array: np.ndarray) -> np.ndarray:
    """``(X, Y, Z[, T])`` (file order) -> C-contiguous ``(Z, Y, X[, T])`` (pipeline order)."""
    arr = np.asarray(array)
    if arr.ndim not in (3, 4):
        raise PerfdeconError(f"expected a 3D or 4D array, got shape {arr.shape}")
    axes = (2, 1, 0) if arr.ndim == 3 else (2, 1, 0, 3)
    return np.ascontiguousarray(arr.transpose(axes))


def from_pipeline(array: np.ndarray) -> np.ndarray:
    """``(Z, Y, X[, T])`` (pipeline order) -> C-contiguous ``(X, Y, Z[, T])`` (file order)."""
    return to_pipeline(array)  # reversing the spatial axes is its own inverse


def _zyx(spacing_xyz: tuple[float, ...]) -> tuple[float, float, float]:
    return (float(spacing_xyz[2]), float(spacing_xyz[1]), float(spacing_xyz[0]))


@dataclass
class Series:
    """A 4D perfusion series.

    Attributes
    ----------
    image : medshared.io.Image
        The record as read: ``(X, Y, Z, T)`` data, voxel -> RAS+ mm affine, spacing, dt, path.
    data : np.ndarray
        float32 ``(Z, Y, X, T)``: ``to_pipeline(image.data)``, what the pipeline consumes.

    ``affine`` (the file's voxel ``(x, y, z)`` -> RAS+ mm), ``spacing`` ``(dz, dy, dx)`` mm,
    ``dt`` (s, None when the file has none) and ``path`` are read from ``image``.
    """

    image: Image
    data: np.ndarray

    @property
    def affine(self) -> np.ndarray:
        return self.image.affine

    @property
    def spacing(self) -> tuple[float, float, float]:
        return _zyx(self.image.spacing)

    @property
    def dt(self) -> float | None:
        return self.image.dt

    @property
    def path(self) -> Path:
        return Path(self.image.path) if self.image.path is not None else Path()


def read_image_checked(
    path: str | Path, ndim: int, *, allow_nonfinite: bool = True, **options: Any
) -> Image:
    """:func:`medshared.io.read_image` with its errors re-raised as :class:`PerfdeconError`.

    A missing extra (:class:`~medshared.errors.MissingExtraError`), a missing file
    (``MissingFileError``, also a ``FileNotFoundError``), a permission problem and a claim larger
    than the memory (``AllocationError``) keep their own medshared types. ``options`` go to the
    DICOM reader (``resample``, ``series_uid``, ``dt_tolerance``).
    """
    from medshared.errors import MedsharedError, MissingExtraError
    from medshared.io import read_image

    try:
        return read_image(path, ndim=ndim, allow_nonfinite=allow_nonfinite, **options)
    except MedsharedError as exc:
        if isinstance(exc, PerfdeconError | MissingExtraError | OSError | MemoryError):
            raise
        raise PerfdeconError(str(exc)) from exc


read_nifti_image = read_image_checked
"""Former name (NIfTI only then); reads DICOM too now."""


def read_series(path: str | Path, **options: Any) -> Series:
    """Read a 4D series (NIfTI, or a DICOM folder/file) -> :class:`Series`.

    ``options`` go to the DICOM reader, e.g. ``resample=True`` for irregular frame times.
    """
    img = read_image_checked(path, 4, **options)
    data = to_pipeline(np.asarray(img.data, dtype=np.float32))
    if not np.isfinite(data).all():
        raise PerfdeconError(f"{path}: series contains NaN or inf voxels")
    return Series(image=img, data=data)


def read_mask(
    path: str | Path, shape: tuple[int, int, int], *, like: Image | None = None
) -> np.ndarray:
    """Read a 3D mask -> bool ``(Z, Y, X)``; it must match ``shape`` ``(Z, Y, X)``.

    With ``like`` (the series' record) the mask's affine must also match (0.01 mm), so a mask
    drawn on another grid is refused instead of silently misplaced.
    """
    img = read_image_checked(path, 3)
    m = to_pipeline(img.data)
    if m.shape != tuple(shape):
        raise PerfdeconError(
            f"{path}: mask shape (x, y, z) {m.shape[::-1]} does not match the series "
            f"{tuple(shape)[::-1]}"
        )
    if like is not None and not np.allclose(img.affine, like.affine, atol=1e-2):
        raise PerfdeconError(f"{path}: mask affine differs from the series' {like.path}")
    if m.dtype.kind in "fc" and not np.isfinite(m).all():
        raise PerfdeconError(f"{path}: mask contains NaN or inf")
    return m > 0


def write_map(
    path: str | Path,
    data: np.ndarray,
    affine: np.ndarray,
    spacing: tuple[float, float, float],
    dt: float | None = None,
) -> None:
    """Write a ``(Z, Y, X)`` map or ``(Z, Y, X, T)`` series as NIfTI ``(X, Y, Z[, T])`` (atomic).

    ``affine`` maps the file's voxel ``(x, y, z)`` to RAS+ mm (``Series.affine``); ``spacing``
    is ``(dz, dy, dx)`` mm (``Series.spacing``); ``dt`` in seconds for a series.
    """
    from medshared.io import write_image

    write_image(path, from_pipeline(data), affine, spacing=_zyx(spacing), dt=dt)


def spacing_affine(spacing: tuple[float, float, float]) -> np.ndarray:
    """Diagonal affine for the file's voxel order ``(x, y, z)`` from ``(dz, dy, dx)`` mm."""
    return np.diag([spacing[2], spacing[1], spacing[0], 1.0])


__all__ = [
    "Series",
    "from_pipeline",
    "read_image_checked",
    "read_mask",
    "read_nifti_image",
    "read_series",
    "spacing_affine",
    "to_pipeline",
    "write_map",
]
