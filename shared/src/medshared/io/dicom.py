"""DICOM series folder -> 3D volume, via pydicom (extra ``dicom``).

Slices are sorted by their position along the slice normal: ``ImagePositionPatient`` projected
on ``cross(row_cosine, column_cosine)`` from ``ImageOrientationPatient``, so the file names and
their order do not matter. ``RescaleSlope``/``RescaleIntercept`` are applied per slice (values
become e.g. Hounsfield units for CT). Coordinates are DICOM patient coordinates (LPS, mm).

Files in the folder that are not DICOM (README, ``.txt``...), hidden files, sub-folders and
non-image DICOM files without pixel data (``DICOMDIR``, structured reports...) are skipped and
listed in :attr:`DicomSeries.skipped`; every other problem is an error (an image file without
pixel data counts as truncated; a ``.dcm``/``.dicom``/``.ima`` file that does not parse as DICOM
counts as corrupt).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medshared.errors import MedsharedError, require
from medshared.io._checks import PathLike, check_finite

__all__ = ["DicomSeries", "read_dicom_series"]

_KIND = "DICOM"
_DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")  # files so named must parse; others may be skipped
_TOL_ORIENT = 1e-4  # max abs difference of direction cosines between slices
_TOL_SPACING = 1e-2  # max relative deviation of slice gaps from their mean


@dataclass(frozen=True, eq=False)
class DicomSeries:
    """A DICOM series as a volume.

    Attributes
    ----------
    data : np.ndarray
        Shape ``(Z, Y, X)``: slices sorted along the slice normal, rows, columns. ``float32``
        after a non-trivial rescale (slope != 1 or intercept != 0 in any slice), else the stored
        pixel dtype (e.g. ``uint16``/``int16``).
    spacing : tuple of 3 float
        ``(dz, dy, dx)`` in mm: slice gap from the sorted positions (``SpacingBetweenSlices`` or
        ``SliceThickness`` for a single slice), then ``PixelSpacing`` (row gap, column gap).
    affine : np.ndarray
        ``(4, 4)`` float64 mapping voxel index ``(z, y, x, 1)`` to patient LPS mm.
    stored_dtype : np.dtype
        Dtype of the stored pixels before rescaling.
    rescaled : bool
        True if a non-trivial RescaleSlope/RescaleIntercept was applied.
    files : tuple of Path
        Slice files in volume order (``files[z]`` is ``data[z]``).
    skipped : tuple of Path
        Files ignored as non-DICOM or without pixel data.
    series_uid : str
        SeriesInstanceUID of the series read.
    """

    data: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray
    stored_dtype: np.dtype
    rescaled: bool
    files: tuple[Path, ...] = field(default_factory=tuple)
    skipped: tuple[Path, ...] = field(default_factory=tuple)
    series_uid: str = ""


def _floats(ds: Any, tag: str, n: int, f: Path) -> np.ndarray:
    value = ds.get(tag)
    if value is None:
        raise MedsharedError(f"{_KIND} file {f}: missing {tag} tag; cannot place the slice")
    try:
        arr = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MedsharedError(f"{_KIND} file {f}: bad {tag} value {value!r}") from exc
    if arr.shape != (n,) or not np.isfinite(arr).all():
        raise MedsharedError(f"{_KIND} file {f}: {tag} must hold {n} finite numbers, got {value!r}")
    return arr


def _looks_like_image(ds: Any, pydicom: Any) -> bool:
    """True if a dataset declares an image SOP class or image attributes."""
    meta = getattr(ds, "file_meta", None)
    sop = (meta.get("MediaStorageSOPClassUID") if meta is not None else None) or ds.get(
        "SOPClassUID"
    )
    name = pydicom.uid.UID(str(sop)).name if sop else ""
    return "Image Storage" in name or "Rows" in ds or "ImagePositionPatient" in ds


def _scan(folder: Path, pydicom: Any) -> tuple[list[tuple[Path, Any]], list[Path]]:
    """Read every DICOM image file of ``folder``; return (path, dataset) pairs and skipped files."""
    images: list[tuple[Path, Any]] = []
    skipped: list[Path] = []
    for f in sorted(folder.iterdir()):
        if f.name.startswith(".") or not f.is_file():
            continue
        try:
            ds = pydicom.dcmread(f)
        except pydicom.errors.InvalidDicomError as exc:
            if f.suffix.lower() in _DICOM_SUFFIXES:
                raise MedsharedError(
                    f"{_KIND} file {f}: not valid DICOM (corrupt or truncated: {exc})"
                ) from exc
            skipped.append(f)
            continue
        except (OSError, EOFError, ValueError, KeyError, TypeError, struct.error) as exc:
            raise MedsharedError(
                f"{_KIND} file {f}: cannot read, file is corrupt or truncated "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        if "PixelData" not in ds:
            if _looks_like_image(ds, pydicom):
                # pydicom stops silently at the end of a cut file: an image without pixels
                raise MedsharedError(
                    f"{_KIND} file {f}: image without pixel data; file is truncated or corrupt"
                )
            skipped.append(f)  # DICOMDIR, reports, presentation states...
            continue
        images.append((f, ds))
    return images, skipped


def read_dicom_series(
    folder: PathLike, *, series_uid: str | None = None, allow_nonfinite: bool = True
) -> DicomSeries:
    """Read one DICOM series from a folder into a ``(Z, Y, X)`` volume.

    Parameters
    ----------
    folder : str or PathLike
        Folder holding one single-frame image file per slice (not searched recursively).
    series_uid : str, optional
        SeriesInstanceUID to read when the folder holds several series (otherwise an error).
    allow_nonfinite : bool
        If False, NaN/inf after rescaling raise (only possible with float pixel data).

    Returns
    -------
    DicomSeries
        ``data`` ``(Z, Y, X)``, ``spacing`` ``(dz, dy, dx)`` mm, ``affine`` (z, y, x) -> LPS mm, ...

    Raises
    ------
    MedsharedError
        Naming the folder or file, for: missing folder, no DICOM image in it, several series
        (UIDs listed), missing/invalid ImagePositionPatient, ImageOrientationPatient or
        PixelSpacing, differing orientation or image size between slices, duplicate slice
        positions, irregular slice gaps (> 1 %), multi-frame files, corrupt/truncated files.
        :class:`~medshared.errors.MissingExtraError` without pydicom.
    """
    pydicom = require("pydicom", "dicom")
    d = Path(folder)
    if not d.exists():
        raise MedsharedError(f"{_KIND} folder {d}: no such folder")
    if not d.is_dir():
        raise MedsharedError(f"{_KIND} folder {d}: not a folder (pass the series folder)")
    images, skipped = _scan(d, pydicom)
    if not images:
        extra = f" ({len(skipped)} non-image file(s) skipped)" if skipped else ""
        raise MedsharedError(f"{_KIND} folder {d}: no DICOM image files found{extra}")

    uids: dict[str, int] = {}
    for _, ds in images:
        uid = str(ds.get("SeriesInstanceUID", ""))
        uids[uid] = uids.get(uid, 0) + 1
    if series_uid is not None:
        if series_uid not in uids:
            raise MedsharedError(
                f"{_KIND} folder {d}: no series {series_uid!r}; present: {sorted(uids)}"
            )
        images = [(f, ds) for f, ds in images if str(ds.get("SeriesInstanceUID", "")) == series_uid]
    elif len(uids) > 1:
        listing = ", ".join(f"{u or '<none>'} ({n} files)" for u, n in sorted(uids.items()))
        raise MedsharedError(
            f"{_KIND} folder {d}: mixed series ({listing}); pass series_uid= to pick one"
        )
    uid = str(images[0][1].get("SeriesInstanceUID", ""))

    f0, ds0 = images[0]
    orient = _floats(ds0, "ImageOrientationPatient", 6, f0)
    row_cos, col_cos = orient[:3], orient[3:]
    normal = np.cross(row_cos, col_cos)
    if not np.isclose(np.linalg.norm(normal), 1.0, atol=1e-3):
        raise MedsharedError(
            f"{_KIND} file {f0}: ImageOrientationPatient cosines are not orthonormal ({orient})"
        )
    dy, dx = _floats(ds0, "PixelSpacing", 2, f0)
    shape0 = (int(ds0.get("Rows", 0)), int(ds0.get("Columns", 0)))
    positions = np.empty((len(images), 3))
    slopes = np.ones(len(images))
    inters = np.zeros(len(images))
    for i, (f, ds) in enumerate(images):
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise MedsharedError(f"{_KIND} file {f}: multi-frame DICOM is not supported")
        if not np.allclose(_floats(ds, "ImageOrientationPatient", 6, f), orient, atol=_TOL_ORIENT):
            raise MedsharedError(
                f"{_KIND} file {f}: ImageOrientationPatient differs from {f0.name}"
            )
        if (int(ds.get("Rows", 0)), int(ds.get("Columns", 0))) != shape0:
            raise MedsharedError(f"{_KIND} file {f}: image size differs from {f0.name} {shape0}")
        if not np.allclose(_floats(ds, "PixelSpacing", 2, f), (dy, dx), rtol=1e-4):
            raise MedsharedError(f"{_KIND} file {f}: PixelSpacing differs from {f0.name}")
        positions[i] = _floats(ds, "ImagePositionPatient", 3, f)
        slopes[i] = float(ds.get("RescaleSlope", 1.0) or 1.0)
        inters[i] = float(ds.get("RescaleIntercept", 0.0) or 0.0)

    depth = positions @ normal
    order = np.argsort(depth, kind="stable")
    depth, positions = depth[order], positions[order]
    images = [images[i] for i in order]
    slopes, inters = slopes[order], inters[order]
    gaps = np.diff(depth)
    if len(gaps) and gaps.min() <= 1e-6:
        k = int(np.argmin(gaps))
        raise MedsharedError(
            f"{_KIND} folder {d}: duplicate slice position ({images[k][0].name} and "
            f"{images[k + 1][0].name}); several echoes/time points in one series are not supported"
        )
    if len(gaps):
        dz = float(gaps.mean())
        if np.abs(gaps - dz).max() > _TOL_SPACING * dz:
            raise MedsharedError(
                f"{_KIND} folder {d}: irregular slice gaps {gaps.min():.4g}..{gaps.max():.4g} mm "
                "(missing slices?)"
            )
        step = (positions[-1] - positions[0]) / (len(positions) - 1)
    else:
        dz = float(ds0.get("SpacingBetweenSlices", 0) or ds0.get("SliceThickness", 0) or 1.0)
        step = normal * dz

    pixels = []
    for f, ds in images:
        try:
            arr = ds.pixel_array
        except Exception as exc:  # pydicom raises many types for bad/unsupported pixel data
            raise MedsharedError(
                f"{_KIND} file {f}: cannot decode pixel data ({type(exc).__name__}: {exc})"
            ) from exc
        if arr.shape != shape0:
            raise MedsharedError(f"{_KIND} file {f}: pixel array shape {arr.shape} != {shape0}")
        pixels.append(arr)
    stack = np.stack(pixels)
    stored_dtype = stack.dtype
    rescaled = bool(np.any(slopes != 1.0) or np.any(inters != 0.0))
    if rescaled:
        data = stack.astype(np.float32) * slopes.astype(np.float32)[:, None, None]
        data += inters.astype(np.float32)[:, None, None]
    else:
        data = stack
    if not allow_nonfinite:
        check_finite(data, d, _KIND)

    affine = np.eye(4)
    affine[:3, 0] = step
    affine[:3, 1] = col_cos * dy
    affine[:3, 2] = row_cos * dx
    affine[:3, 3] = positions[0]
    return DicomSeries(
        data=data,
        spacing=(dz, float(dy), float(dx)),
        affine=affine,
        stored_dtype=stored_dtype,
        rescaled=rescaled,
        files=tuple(f for f, _ in images),
        skipped=tuple(skipped),
        series_uid=uid,
    )
