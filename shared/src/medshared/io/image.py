"""The one image record every volume reader returns, and the format-dispatching read/write pair.

Convention (every reader, every format)
---------------------------------------
- ``data`` in voxel order ``(X, Y, Z[, T])``: ``data[i, j, k]`` is voxel ``(i, j, k)`` and a
  series has time last (``data[..., t]`` is frame ``t``). NIfTI is read as stored; a DICOM series
  is converted on reading (its ``(slice, row, column)`` stack becomes ``(column, row, slice)``,
  with ``X`` = column index, ``Y`` = row index, ``Z`` = slice index sorted along the slice normal).
- ``affine``: ``(4, 4)`` float64 mapping ``(i, j, k, 1)`` to **RAS+ world millimetres** (DICOM's
  LPS patient coordinates are converted by negating x and y).
- ``spacing``: voxel sizes ``(dx, dy, dz)`` in mm along ``X, Y, Z``.
- ``dt``: frame interval in **seconds** for a series, else None.

The transpose into a tool's own compute order (e.g. ``(Z, Y, X, T)``) is the tool's business and
happens in one named place inside the tool, never in a reader.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medshared.errors import MedsharedError

__all__ = ["Image", "read_image", "write_image"]

PathLike = str | os.PathLike[str]

_NIFTI = (".nii", ".nii.gz")
_DICOM = (".dcm", ".dicom", ".ima")


@dataclass(frozen=True, eq=False)
class Image:
    """A volume or series in the shared convention (see the module docstring).

    Attributes
    ----------
    data : np.ndarray
        Voxels, shape ``(X, Y, Z)`` or ``(X, Y, Z, T)`` (2D NIfTI: ``(X, Y)``). The stored dtype
        is kept unless the file asks for a rescale (NIfTI ``scl_slope``/``scl_inter``, DICOM
        ``RescaleSlope``/``RescaleIntercept``): then it is floating.
    affine : np.ndarray
        ``(4, 4)`` float64, voxel index ``(i, j, k, 1)`` -> RAS+ mm.
    spacing : tuple of 3 float
        ``(dx, dy, dz)`` voxel sizes in mm.
    dt : float or None
        Frame interval in seconds (series only).
    path : Path or None
        File or folder read.
    header : Any
        The format's own header: a nibabel ``Nifti1Header``/``Nifti2Header`` for NIfTI (pass it
        back to :func:`write_image` to keep codes/descriptions), the first pydicom dataset (pixel
        data not loaded) for DICOM, else None.
    meta : Mapping
        Format specifics. DICOM: ``files`` (in voxel order), ``skipped``, ``series_uid``,
        ``stored_dtype``, ``rescaled``, ``temporal_key``, ``frame_times`` (s, from the first
        frame), ``resampled``. NIfTI: ``stored_dtype``, ``scaled``, ``header_warnings``.
        Keys are also readable as attributes (``image.files``) for the older record types.
    """

    data: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    dt: float | None = None
    path: Path | None = None
    header: Any = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        # only called when normal lookup fails: expose meta keys (DicomSeries.files, ...)
        meta = object.__getattribute__(self, "meta")
        if name in meta:
            return meta[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def shape(self) -> tuple[int, ...]:
        """Array shape ``(X, Y, Z[, T])``."""
        return tuple(self.data.shape)

    @property
    def ndim(self) -> int:
        return int(self.data.ndim)

    @property
    def zooms(self) -> tuple[float, ...]:
        """Spacing per array axis: ``(dx, dy, dz)`` mm, plus ``dt`` s for a series (NIfTI style)."""
        n = self.data.ndim
        out = list(self.spacing[: min(n, 3)])
        if n > 3:
            out.append(float(self.dt) if self.dt is not None else 0.0)
            out.extend([1.0] * (n - 4))
        return tuple(out)

    def world(self, index: np.ndarray) -> np.ndarray:
        """RAS+ mm of voxel indices ``(..., 3)`` (fractional indices allowed)."""
        ijk = np.asarray(index, dtype=np.float64)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]


def _is_dicom_file(p: Path) -> bool:
    try:
        with open(p, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


def read_image(
    path: PathLike,
    *,
    ndim: int | tuple[int, ...] | None = None,
    allow_nonfinite: bool = True,
    series_uid: str | None = None,
    resample: bool = False,
    dt_tolerance: float | None = None,
) -> Image:
    """Read a NIfTI file, a DICOM file or a DICOM series folder into an :class:`Image`.

    Parameters
    ----------
    path : str or PathLike
        ``.nii`` / ``.nii.gz`` file, a DICOM file (``.dcm``/``.dicom``/``.ima`` or any file with
        the ``DICM`` preamble; a multi-frame file is a whole volume/series), or a folder holding
        one DICOM series (3D, or 4D with one file per slice and time point).
    ndim : int or tuple of int, optional
        Required dimensionality (e.g. ``4`` or ``(3, 4)``), checked before voxels are read.
    allow_nonfinite : bool
        If False, NaN/inf voxels raise.
    series_uid, resample, dt_tolerance :
        DICOM only, see :func:`medshared.io.dicom.read_dicom`.

    Returns
    -------
    Image
        ``data`` ``(X, Y, Z[, T])``, RAS+ mm ``affine``, ``spacing`` mm, ``dt`` s.

    Raises
    ------
    MissingFileError
        (also ``FileNotFoundError``) when nothing exists at ``path``; a FIFO, socket or device
        is refused without being opened.
    MedsharedError
        Naming the file, for an unsupported kind of file and every reader error.
    """
    from medshared.io._checks import check_input_path

    p = Path(path)
    name = p.name.lower()
    # stat only: missing, FIFO/socket/device and unreadable paths are refused unopened
    check_input_path(p, "DICOM" if p.is_dir() else "image", folder=p.is_dir())
    if p.is_dir() or name.endswith(_DICOM) or (p.is_file() and _is_dicom_file(p)):
        from medshared.io.dicom import read_dicom

        kw: dict[str, Any] = {"series_uid": series_uid, "resample": resample}
        if dt_tolerance is not None:
            kw["dt_tolerance"] = dt_tolerance
        img = read_dicom(p, allow_nonfinite=allow_nonfinite, **kw)
        if ndim is not None:
            from medshared.io._checks import check_ndim

            check_ndim(img.shape, ndim, p, "DICOM")
        return img
    if name.endswith(_NIFTI):
        from medshared.io.nifti import read_nifti

        return read_nifti(p, ndim=ndim, allow_nonfinite=allow_nonfinite)
    raise MedsharedError(
        f"image {p}: unsupported file (expected .nii, .nii.gz, a DICOM file or a DICOM folder)"
    )


def write_image(
    path: PathLike,
    image: Image | np.ndarray,
    affine: np.ndarray | None = None,
    *,
    spacing: tuple[float, float, float] | None = None,
    dt: float | None = None,
    header: Any = None,
) -> None:
    """Write an :class:`Image` or an ``(X, Y, Z[, T])`` array as NIfTI (``.nii``/``.nii.gz``).

    Parameters
    ----------
    path : str or PathLike
        Target ``.nii`` / ``.nii.gz`` (written atomically; the folder must exist).
    image : Image or np.ndarray
        The record (its affine, spacing, dt and NIfTI header are used unless overridden) or an
        array in ``(X, Y, Z[, T])`` order.
    affine : np.ndarray, optional
        ``(4, 4)`` voxel -> RAS+ mm; default the image's, else ``diag(spacing, 1)``.
    spacing : tuple of 3 float, optional
        Voxel sizes in mm written to ``pixdim``; default the image's, else the affine's column
        norms.
    dt : float, optional
        Frame interval in seconds for a series (``pixdim[4]``); default the image's. An unknown
        interval is written as 0 (read back as ``dt=None``).
    header : nibabel header, optional
        Template header; default the image's NIfTI header, if it has one.
    """
    from medshared.io.nifti import write_nifti

    if isinstance(image, Image):
        data = image.data
        affine = image.affine if affine is None else affine
        spacing = image.spacing if spacing is None else spacing
        dt = image.dt if dt is None else dt
        if header is None and type(image.header).__name__ in ("Nifti1Header", "Nifti2Header"):
            header = image.header
    else:
        data = np.asarray(image)
    if affine is None:
        diag = [1.0, 1.0, 1.0] if spacing is None else [float(s) for s in spacing]
        affine = np.diag([*diag, 1.0])
    affine = np.asarray(affine, dtype=np.float64)
    if spacing is None and affine.shape == (4, 4):
        spacing = tuple(float(v) for v in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
    zooms: tuple[float, ...] = tuple(float(s) for s in spacing)[: min(data.ndim, 3)]
    if data.ndim >= 4:
        zooms = zooms + (float(dt) if dt is not None else 0.0,)  # 0: frame interval unknown
    write_nifti(path, data, affine, zooms=zooms, header=header)
