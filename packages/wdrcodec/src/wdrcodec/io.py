"""Reading codec inputs (NIfTI, DICOM file or series folder, ``.npy``) and writing decoded outputs.

NIfTI and DICOM are read through :func:`medshared.io.read_image`, which returns every format in
one convention: ``(X, Y, Z[, T])`` with a voxel -> RAS+ mm affine (DICOM is converted by the
reader, so nothing is transposed here). They are coded with ``axes="xyz"`` (slices along axis 2,
time along axis 3; see :func:`wdrcodec.files.volume_layout`) and can be written back as NIfTI.
``.npy`` arrays are coded as given: ``(Y, X)``, ``(Z, Y, X)`` or ``(T, Z, Y, X)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medshared.errors import MedsharedError, MissingExtraError
from wdrcodec.container import Header
from wdrcodec.errors import WdrError

if TYPE_CHECKING:  # nibabel/pydicom load only for NIfTI/DICOM files (~0.15 s of every call)
    from medshared.io import Image

NIFTI_SUFFIXES = (".nii", ".nii.gz")
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")


@dataclass(frozen=True)
class Volume:
    """An input read from disk.

    Attributes
    ----------
    array : np.ndarray
        ``(X, Y, Z[, T])`` for NIfTI/DICOM (``axes == "xyz"``), as stored for ``.npy``.
    axes : str
        ``"xyz"`` (image convention) or ``"zyx"`` (``.npy``, codec order).
    spacing : tuple of float or None
        Per-axis sizes: mm for X, Y, Z and seconds for T (``image.zooms``); None for ``.npy``.
    affine : np.ndarray or None
        ``(4, 4)`` voxel ``(i, j, k)`` -> RAS+ mm; None for ``.npy``.
    source : str
        ``"nifti"``, ``"dicom"`` or ``"npy"``.
    image : medshared.io.Image or None
        The reader's record (NIfTI/DICOM), for headers and metadata.
    """

    array: np.ndarray
    axes: str
    spacing: tuple[float, ...] | None
    affine: np.ndarray | None
    source: str
    image: Image | None = None


def is_nifti(path: Path) -> bool:
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def _is_image_input(p: Path) -> bool:
    name = p.name.lower()
    return p.is_dir() or name.endswith(NIFTI_SUFFIXES) or name.endswith(DICOM_SUFFIXES)


def read_volume(path: str | Path) -> Volume:
    """Read ``.nii``/``.nii.gz``, a DICOM file or series folder, or ``.npy`` (module docstring).

    Raises
    ------
    WdrError
        Unknown extension or unreadable content (message names the path).
        :class:`~medshared.errors.MissingExtraError` (DICOM without pydicom),
        :class:`~medshared.errors.MissingFileError`, ``FilePermissionError`` and
        ``AllocationError`` (a header claiming more than the memory) pass unchanged.
    """
    from medshared.io import read_image

    p = Path(path)
    try:
        if _is_image_input(p):
            img = read_image(p, ndim=(2, 3, 4), allow_nonfinite=False)
            zooms = tuple(float(z) for z in img.zooms)[: img.ndim]
            zooms = zooms + (1.0,) * (img.ndim - len(zooms))
            source = "nifti" if is_nifti(p) else "dicom"
            return Volume(np.asarray(img.data), "xyz", zooms, img.affine, source, img)
        if not p.exists():
            raise WdrError(f"{p}: no such file or folder")
        if p.suffix.lower() == ".npy":
            try:
                arr = np.load(p, allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                raise WdrError(f"{p}: cannot read .npy file ({exc})") from exc
            return Volume(arr, "zyx", None, None, "npy")
    except MedsharedError as exc:
        # a missing extra, a missing file (FileNotFoundError), a permission problem and a claim
        # larger than the memory (MemoryError) keep their medshared types
        if isinstance(exc, WdrError | MissingExtraError | OSError | MemoryError):
            raise
        raise WdrError(str(exc)) from exc
    raise WdrError(
        f"{p}: unsupported input (use .nii, .nii.gz, .npy, a DICOM file or a DICOM series folder)"
    )


def nifti_order(array: np.ndarray, header: Header) -> np.ndarray:
    """Decoded array in NIfTI order ``(X, Y, Z[, T])`` whatever its coded layout."""
    if header.axes_xyz:
        return array
    return array.transpose(tuple(reversed(range(array.ndim))))  # (T, Z, Y, X) -> (X, Y, Z, T)


def write_output(path: str | Path, array: np.ndarray, header: Header) -> None:
    """Write a decoded array to ``.npy`` (coded layout) or ``.nii``/``.nii.gz`` (atomically)."""
    from medshared.io import atomic_path, write_nifti

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
