"""NIfTI-1/NIfTI-2 volumes (``.nii``, ``.nii.gz``) via nibabel, in the shared image convention.

Axis convention
---------------
Data stay in NIfTI voxel order ``(X, Y, Z[, T])`` (no transpose here); ``affine`` maps voxel
indices ``(i, j, k, 1)`` to RAS+ world coordinates in mm (nibabel's best affine: sform, else
qform). ``spacing`` is ``pixdim[1:4]`` in mm and, for a series, ``dt`` is ``pixdim[4]`` in
**seconds** (converted from the header's ``xyzt_units`` when it says ms or us; taken as seconds
when the unit is unknown). The result is a :class:`~medshared.io.image.Image`.

Header claims never allocate
----------------------------
The shape and dtype in the header are checked before any voxel is read: against the file size
(``.nii``: the file must hold ``vox_offset + nbytes``; ``.nii.gz``: no deflate stream
decompresses to more than 1032 times its size), then against the available memory
(:func:`~medshared.io._limits.check_allocation`). The voxels are then decompressed in chunks
into an array whose pages are only committed as real data arrive, and a stream that ends early
is reported as truncated.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError
from nibabel.volumeutils import apply_read_scaling

from medshared.errors import MedsharedError
from medshared.io._checks import (
    NdimSpec,
    PathLike,
    check_finite,
    check_input_file,
    check_ndim,
    check_suffix,
    reraise_write_errors,
)
from medshared.io._limits import check_allocation, check_file_holds, nbytes_of
from medshared.io._reading import captured_library_messages, read_errors
from medshared.io.atomic import atomic_path
from medshared.io.image import Image

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
_CHUNK = 1 << 24  # bytes decompressed per read (16 MiB)

NiftiImage = Image
"""Former name of the NIfTI record; it is now the shared :class:`~medshared.io.image.Image`."""


def _spacing_dt(
    header: Any, affine: np.ndarray, ndim: int, p: Path, notes: list[str]
) -> tuple[tuple[float, float, float], float | None]:
    """``pixdim[1:4]`` in mm (affine column norms where unusable) and ``pixdim[4]`` in s."""
    pixdim = np.asarray(header["pixdim"], dtype=np.float64)
    space, time = header.get_xyzt_units()
    s, t = _SPACE_TO_MM.get(space, 1.0), _TIME_TO_S.get(time, 1.0)
    norms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    spacing = []
    for axis in range(3):
        v = float(pixdim[axis + 1]) * s
        if not np.isfinite(v) or v <= 0:
            if axis < ndim:
                notes.append(f"pixdim[{axis + 1}] = {pixdim[axis + 1]} is not a voxel size")
            v = float(norms[axis]) if np.isfinite(norms[axis]) and norms[axis] > 0 else 1.0
        spacing.append(v)
    dt = None
    if ndim >= 4:
        raw = float(pixdim[4])
        if np.isfinite(raw) and raw > 0:
            dt = raw * t
        elif raw != 0:  # 0 is the usual "unknown"
            notes.append(f"pixdim[4] = {raw} is not a frame interval; dt unknown")
    return (spacing[0], spacing[1], spacing[2]), dt


def _read_voxels(p: Path, offset: int, nbytes: int, shape: tuple[int, ...], dtype: np.dtype):
    """Read ``nbytes`` at ``offset`` (decompressing ``.gz`` in chunks) into a ``(X, Y, ...)``
    Fortran-order array of ``dtype`` in native byte order; raise if the stream is short."""
    gz = p.name.lower().endswith(".gz")
    buf = np.empty(nbytes, dtype=np.uint8)
    view = memoryview(buf)
    pos = 0
    opener = gzip.open if gz else open
    with opener(p, "rb") as fh:
        fh.seek(offset)
        while pos < nbytes:
            n = fh.readinto(view[pos : pos + _CHUNK])
            if not n:
                break
            pos += n
        if gz and pos == nbytes:
            fh.read(1)  # reach the end of the stream so gzip verifies its CRC and length
    if pos < nbytes:
        raise MedsharedError(
            f"{_KIND} file {p}: truncated: the header declares {nbytes} bytes of voxel data "
            f"{shape} {dtype.name}, the file holds {pos}"
        )
    arr = buf.view(dtype).reshape(shape, order="F")
    if dtype.fields is None and not dtype.isnative:
        arr = arr.byteswap(inplace=True).view(dtype.newbyteorder("="))
    return arr


def read_nifti(path: PathLike, *, ndim: NdimSpec = None, allow_nonfinite: bool = True) -> Image:
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
    Image
        ``data`` ``(X, Y, Z[, T])`` (stored dtype in native byte order; floating only if the
        header sets a non-trivial ``scl_slope``/``scl_inter``), ``affine`` ``(4, 4)`` voxel ->
        RAS+ mm, ``spacing`` ``(dx, dy, dz)`` mm, ``dt`` s (series), ``header`` (the nibabel
        header), ``meta`` (``stored_dtype``, ``scaled``, ``header_warnings``: nibabel's log
        lines and unusable pixdim values, kept instead of printed).

    Raises
    ------
    MedsharedError
        Naming the file, for: wrong extension, missing file (a ``MissingFileError``), corrupt
        or truncated file, a header whose shape the file cannot hold, wrong ``ndim``, a
        non-finite affine, non-finite voxels when ``allow_nonfinite=False``.
    AllocationError
        The declared voxel data would not fit in the available memory.
    """
    p = check_input_file(path, NIFTI_SUFFIXES, _KIND)
    gz = p.name.lower().endswith(".gz")
    with read_errors(p, _KIND, _LIB_ERRORS), captured_library_messages("nibabel") as notes:
        img = nib.load(p, mmap=False)  # reads the header only
        if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
            raise MedsharedError(f"{_KIND} file {p}: not a NIfTI image ({type(img).__name__})")
        header = img.header
        shape = tuple(int(s) for s in header.get_data_shape())
        check_ndim(shape, ndim, p, _KIND)
        dtype = np.dtype(header.get_data_dtype())
        offset = int(img.dataobj.offset)
        nbytes = nbytes_of(shape, dtype.itemsize)
        what = f"the header declares shape {shape} {dtype.name}"
        check_file_holds(p, offset + nbytes, what, compressed=gz, kind=_KIND)
        slope, inter = img.dataobj.slope, img.dataobj.inter
        scaled = (float(slope), float(inter)) != (1.0, 0.0)
        need = nbytes + (nbytes_of(shape, 8) if scaled else 0)
        check_allocation(need, p, f"voxel data {shape} {dtype.name}")
        raw = _read_voxels(p, offset, nbytes, shape, dtype)
        with np.errstate(all="ignore"):
            data = apply_read_scaling(raw, np.asanyarray(slope), np.asanyarray(inter))
        affine = np.asarray(img.affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.isfinite(affine).all():
        raise MedsharedError(
            f"{_KIND} file {p}: the header's affine (sform/qform) is not finite; fix the header"
        )
    spacing, dt = _spacing_dt(header, affine, len(shape), p, notes)
    if not allow_nonfinite:
        check_finite(data, p, _KIND)
    meta = {"stored_dtype": dtype, "scaled": scaled, "header_warnings": tuple(notes)}
    return Image(data=data, affine=affine, spacing=spacing, dt=dt, path=p, header=header, meta=meta)


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
