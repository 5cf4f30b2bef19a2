"""Reading codec inputs (NIfTI, DICOM series folder, ``.npy``) and writing decoded outputs.

NIfTI data keep NIfTI order ``(X, Y, Z[, T])`` and are coded with ``axes="xyz"`` (the codec
transposes them so slices run along Z). A DICOM series ``(Z, Y, X)`` in patient LPS is turned into
the same NIfTI convention on reading (array reversed to ``(X, Y, Z)``, affine converted to
voxel ``(i, j, k)`` -> RAS+ mm), so every file carries a RAS affine and can be written back as
NIfTI. ``.npy`` arrays are coded as given: ``(Y, X)``, ``(Z, Y, X)`` or ``(T, Z, Y, X)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medshared.errors import MedsharedError
from medshared.io import atomic_path, read_nifti, write_nifti
from wdrcodec.container import Header
from wdrcodec.errors import WdrError

NIFTI_SUFFIXES = (".nii", ".nii.gz")
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_ZYX_TO_XYZ = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


@dataclass(frozen=True)
class Volume:
    """An input read from disk: ``array`` with its ``axes`` layout, spacing (mm) and affine."""

    array: np.ndarray
    axes: str
    spacing: tuple[float, ...] | None
    affine: np.ndarray | None
    source: str


def is_nifti(path: Path) -> bool:
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def read_volume(path: str | Path) -> Volume:
    """Read ``.nii``/``.nii.gz``, ``.npy`` or a DICOM series folder (see module docstring).

    Raises
    ------
    WdrError
        Missing file, unknown extension or unreadable content (message names the path).
    """
    p = Path(path)
    try:
        if p.is_dir():
            from medshared.io import read_dicom_series

            s = read_dicom_series(p)
            data = np.ascontiguousarray(np.asarray(s.data).transpose(2, 1, 0))
            affine = _LPS_TO_RAS @ np.asarray(s.affine, dtype=np.float64) @ _ZYX_TO_XYZ
            spacing = tuple(float(v) for v in reversed(s.spacing))
            return Volume(data, "xyz", spacing, affine, "dicom")
        if not p.exists():
            raise WdrError(f"{p}: no such file or folder")
        if is_nifti(p):
            img = read_nifti(p, ndim=(2, 3, 4), allow_nonfinite=False)
            zooms = tuple(float(z) for z in img.zooms)[: img.data.ndim]
            zooms = zooms + (1.0,) * (img.data.ndim - len(zooms))
            return Volume(np.asarray(img.data), "xyz", zooms, img.affine, "nifti")
        if p.suffix.lower() == ".npy":
            try:
                arr = np.load(p, allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                raise WdrError(f"{p}: cannot read .npy file ({exc})") from exc
            return Volume(arr, "zyx", None, None, "npy")
    except MedsharedError as exc:
        raise WdrError(str(exc)) from exc
    raise WdrError(f"{p}: unsupported input (use .nii, .nii.gz, .npy or a DICOM series folder)")


def nifti_order(array: np.ndarray, header: Header) -> np.ndarray:
    """Decoded array in NIfTI order ``(X, Y, Z[, T])`` whatever its coded layout."""
    if header.axes_xyz:
        return array
    return array.transpose(tuple(reversed(range(array.ndim))))  # (T, Z, Y, X) -> (X, Y, Z, T)


def write_output(path: str | Path, array: np.ndarray, header: Header) -> None:
    """Write a decoded array to ``.npy`` (coded layout) or ``.nii``/``.nii.gz`` (atomically)."""
    p = Path(path)
    if not p.parent.exists():
        raise WdrError(f"{p}: folder {p.parent} does not exist")
    if is_nifti(p):
        data = nifti_order(array, header)
        spacing = header.spacing if header.axes_xyz else tuple(reversed(header.spacing))
        try:
            write_nifti(p, data, header.affine, zooms=tuple(spacing))
        except MedsharedError as exc:
            raise WdrError(str(exc)) from exc
        return
    if p.suffix.lower() == ".npy":
        with atomic_path(p) as tmp:
            np.save(tmp, array, allow_pickle=False)
        return
    raise WdrError(f"{p}: unsupported output (use .nii, .nii.gz or .npy)")
