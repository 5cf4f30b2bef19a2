"""NIfTI-1/NIfTI-2 volumes (``.nii``, ``.nii.gz``) via nibabel, keeping affine, zooms and dtype.

Axis convention
---------------
Data stay in NIfTI voxel order ``(X, Y, Z[, T])`` (no transpose here); ``affine`` maps voxel
indices ``(i, j, k, 1)`` to RAS+ world coordinates in mm. For a 4D series the 4th axis is time:
``data[..., t]`` is frame ``t`` and ``zooms[3]`` is the frame interval in **seconds** (converted
from the header's ``xyzt_units`` when it says ms or us; taken as seconds when the unit is unknown).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from medshared.errors import MedsharedError
from medshared.io._checks import (
    NdimSpec,
    PathLike,
    check_finite,
    check_input_file,
    check_ndim,
    check_suffix,
    reraise_as_corrupt,
    reraise_write_errors,
)
from medshared.io.atomic import atomic_path

__all__ = ["NiftiImage", "read_nifti", "write_nifti"]

NIFTI_SUFFIXES = (".nii", ".nii.gz")
_KIND = "NIfTI"
_LIB_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    ValueError,
    zlib.error,
    struct.error,
    ImageFileError,
    HeaderDataError,
)
_SPACE_TO_MM = {"meter": 1000.0, "mm": 1.0, "micron": 1e-3, "unknown": 1.0}
_TIME_TO_S = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6, "unknown": 1.0}


@dataclass(frozen=True, eq=False)
class NiftiImage:
    """A NIfTI volume as read from disk.

    Attributes
    ----------
    data : np.ndarray
        Voxel array, shape ``(X, Y, Z)`` or ``(X, Y, Z, T)`` (NIfTI order, never transposed).
        On-disk dtype is kept; only if the header sets a non-trivial ``scl_slope``/``scl_inter``
        is the scaling applied (then the dtype is floating).
    affine : np.ndarray
        ``(4, 4)`` float64 voxel -> RAS+ mm (nibabel's best affine: sform, else qform).
    zooms : tuple of float
        Voxel sizes in mm for the spatial axes; for 4D, ``zooms[3]`` is the frame interval in
        seconds.
    header : nibabel.Nifti1Header or nibabel.Nifti2Header
        The full header (pass it back to :func:`write_nifti` to keep codes/descriptions).
    path : Path or None
        File the image was read from.
    """

    data: np.ndarray
    affine: np.ndarray
    zooms: tuple[float, ...]
    header: Any
    path: Path | None = None


def _zooms_in_mm_s(header: Any) -> tuple[float, ...]:
    zooms = [float(z) for z in header.get_zooms()]
    space, time = header.get_xyzt_units()
    s, t = _SPACE_TO_MM.get(space, 1.0), _TIME_TO_S.get(time, 1.0)
    out = [z * s for z in zooms[:3]]
    if len(zooms) > 3:
        out.append(zooms[3] * t)
        out.extend(zooms[4:])
    return tuple(out)


def read_nifti(
    path: PathLike, *, ndim: NdimSpec = None, allow_nonfinite: bool = True
) -> NiftiImage:
    """Read a ``.nii`` / ``.nii.gz`` file (NIfTI-1 or NIfTI-2).

    Parameters
    ----------
    path : str or PathLike
        File to read.
    ndim : int or tuple of int, optional
        Required dimensionality, e.g. ``3`` or ``(3, 4)``; checked from the header before the
        voxels are read.
    allow_nonfinite : bool
        If False, NaN or +-inf voxels raise.

    Returns
    -------
    NiftiImage
        ``data`` ``(X, Y, Z[, T])``, ``affine`` ``(4, 4)`` voxel -> RAS+ mm, ``zooms`` (mm, and
        seconds for the 4th axis), ``header``, ``path``.

    Raises
    ------
    MedsharedError
        Naming the file, for: wrong extension, missing file, corrupt/truncated file, wrong
        ``ndim``, non-finite voxels when ``allow_nonfinite=False``.
    """
    p = check_input_file(path, NIFTI_SUFFIXES, _KIND)
    with reraise_as_corrupt(p, _KIND, _LIB_ERRORS):
        img = nib.load(p, mmap=False)
        if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
            raise MedsharedError(f"{_KIND} file {p}: not a NIfTI image ({type(img).__name__})")
        check_ndim(tuple(img.shape), ndim, p, _KIND)
        # asarray(dataobj) keeps the on-disk dtype unless scl_slope/scl_inter are non-trivial.
        data = np.asarray(img.dataobj)
        zooms = _zooms_in_mm_s(img.header)
    if not allow_nonfinite:
        check_finite(data, p, _KIND)
    return NiftiImage(
        data=data,
        affine=np.asarray(img.affine, dtype=np.float64),
        zooms=zooms,
        header=img.header,
        path=p,
    )


def write_nifti(
    path: PathLike,
    data: np.ndarray,
    affine: np.ndarray | None = None,
    *,
    zooms: tuple[float, ...] | None = None,
    header: Any = None,
) -> None:
    """Write a volume to ``.nii`` / ``.nii.gz`` atomically, keeping its dtype.

    Parameters
    ----------
    path : str or PathLike
        Target file; ``.nii.gz`` is gzip-compressed. The folder must exist.
    data : np.ndarray
        Voxels in NIfTI order ``(X, Y, Z[, T])`` (2 to 7 axes). The dtype is stored as is
        (``bool`` is stored as ``uint8``); dtypes NIfTI cannot hold (e.g. float16) raise.
    affine : np.ndarray, optional
        ``(4, 4)`` voxel -> RAS+ mm. Default: the header's affine if ``header`` is given, else
        ``diag(zooms[:3], 1)`` (identity when ``zooms`` is None too).
    zooms : tuple of float, optional
        Voxel sizes in mm (and frame interval in seconds as 4th value for 4D); when given, the
        header's ``xyzt_units`` are set to ``("mm", "sec")``.
    header : nibabel.Nifti1Header or nibabel.Nifti2Header, optional
        Template header (e.g. ``NiftiImage.header``), copied; a Nifti2Header writes NIfTI-2.

    Raises
    ------
    MedsharedError
        Wrong extension, missing folder, unsupported dtype/shape, or a write failure; the target
        is then left untouched and no temporary file remains.
    """
    p = check_suffix(path, NIFTI_SUFFIXES, _KIND)
    arr = np.asarray(data)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if not 2 <= arr.ndim <= 7:
        raise MedsharedError(f"{_KIND} file {p}: cannot write ndim={arr.ndim} (NIfTI holds 2-7)")
    if zooms is not None and len(zooms) > arr.ndim:
        raise MedsharedError(f"{_KIND} file {p}: {len(zooms)} zooms given for ndim={arr.ndim} data")
    image_cls = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
    if affine is None:
        if header is not None:
            affine = header.get_best_affine()
        else:
            diag = [1.0, 1.0, 1.0, 1.0]
            if zooms is not None:
                diag[: min(3, len(zooms))] = [float(z) for z in zooms[:3]]
            affine = np.diag(diag)
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.isfinite(affine).all():
        raise MedsharedError(f"{_KIND} file {p}: affine must be a finite (4, 4) array")
    try:
        # an explicit dtype keeps e.g. int64 as is (nibabel refuses it otherwise)
        img = image_cls(
            arr, affine, header=None if header is None else header.copy(), dtype=arr.dtype
        )
        if zooms is not None:
            full = list(img.header.get_zooms())
            full[: len(zooms)] = [float(z) for z in zooms]
            img.header.set_zooms(full)
            img.header.set_xyzt_units("mm", "sec")
    except (HeaderDataError, ValueError, TypeError) as exc:
        raise MedsharedError(
            f"{_KIND} file {p}: cannot store data of dtype {arr.dtype} / shape {arr.shape} ({exc})"
        ) from exc
    with reraise_write_errors(p, _KIND), atomic_path(p) as tmp:
        nib.save(img, tmp)
