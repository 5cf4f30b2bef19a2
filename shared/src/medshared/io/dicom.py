"""DICOM -> :class:`~medshared.io.image.Image` (3D volume or 4D series), via pydicom (extra ``dicom``).

What is read
------------
- a folder of single-frame files (one per slice, or one per slice *and* time point), in any file
  order and with any file names;
- one multi-frame (enhanced) file: per-frame functional groups (``PlanePositionSequence``,
  ``PlaneOrientationSequence``, ``PixelMeasuresSequence``, ``PixelValueTransformationSequence``,
  ``FrameContentSequence`` with ``TemporalPositionIndex`` / ``FrameAcquisitionDateTime``), an
  RT dose grid (``GridFrameOffsetVector``, ``DoseGridScaling`` applied), or a single-position
  cine file with ``FrameTime``;
- a folder may mix both (every frame of every file is one 2D image to place).

Conversion to the shared convention
-----------------------------------
Images are sorted along the slice normal ``cross(row_cosine, column_cosine)`` of
``ImageOrientationPatient``. The stack ``(slice, row, column)`` becomes ``data`` ``(X, Y, Z[, T])``
with ``X`` = column, ``Y`` = row, ``Z`` = slice (a transposed view, no copy). The affine maps
``(i, j, k)`` to **RAS+ mm**: DICOM patient coordinates (LPS) with x and y negated.
``spacing`` is ``(PixelSpacing[1], PixelSpacing[0], slice gap)`` mm. ``RescaleSlope`` /
``RescaleIntercept`` are applied per image (e.g. Hounsfield units for CT; data then float32).

Time series
-----------
When several images share a slice position, they are frames of a series. They are ordered in
time by the first of these tags that every image carries and that tells the images at one
position apart: ``TemporalPositionIdentifier`` (``TemporalPositionIndex`` in enhanced files),
``AcquisitionTime`` (or ``AcquisitionDateTime``/``FrameAcquisitionDateTime``), ``ContentTime``,
``TriggerTime``, ``AcquisitionNumber``. Frame ``t`` is the ``t``-th image at every position. The
frame times (seconds, the mean over slice positions; from the time tags, whichever the series
carries) give ``dt``; frame intervals that differ from their median by more than
``dt_tolerance`` (relative) are an error unless ``resample=True``, which interpolates every
slice's time course linearly onto a uniform grid (keeping each slice's own acquisition offset).
A series that crosses midnight (``TM`` values) is unwrapped.

Files that are not DICOM (README, ``.txt``...), hidden files, sub-folders and non-image DICOM
files (``DICOMDIR``, reports...) are skipped and listed in ``meta["skipped"]``; an image file
without pixel data, or a ``.dcm``/``.dicom``/``.ima`` file that does not parse, is an error.

Sizes are checked before pixels are decoded: uncompressed pixel data must be as long as
``Rows * Columns * frames * BitsAllocated / 8`` and lie inside the file, and the whole volume
must fit in the available memory (:func:`~medshared.io._limits.check_allocation`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medshared.errors import (
    FilePermissionError,
    MedsharedError,
    MissingFileError,
    require,
)
from medshared.io._checks import PathLike, check_finite, check_input_path
from medshared.io._limits import check_allocation, nbytes_of
from medshared.io._reading import captured_library_messages
from medshared.io.image import Image

__all__ = ["DT_TOLERANCE", "DicomSeries", "read_dicom", "read_dicom_series"]

_KIND = "DICOM"
_DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")  # files so named must parse; others may be skipped
_TOL_ORIENT = 1e-4  # max abs difference of direction cosines between images
_TOL_SPACING = 1e-2  # max relative deviation of slice gaps from their mean
_TOL_POSITION = 1e-3  # mm: images closer than this along the normal share a slice position
_PIXEL_TAG = 0x7FE00010
_UNDEFINED = 0xFFFFFFFF

DT_TOLERANCE = 0.05
"""Largest relative deviation of a frame interval from the median interval (5 %)."""

# temporal keys in order of preference; the value says whether it is a time in seconds
_TEMPORAL_KEYS: tuple[tuple[str, bool], ...] = (
    ("TemporalPositionIdentifier", False),
    ("TemporalPositionIndex", False),
    ("AcquisitionTime", True),
    ("AcquisitionDateTime", True),
    ("ContentTime", True),
    ("TriggerTime", True),
    ("AcquisitionNumber", False),
    ("FrameIndex", False),
)
_TIME_KEYS = tuple(k for k, is_time in _TEMPORAL_KEYS if is_time) + ("FrameTime",)

DicomSeries = Image
"""Former name of the DICOM record; it is now the shared :class:`~medshared.io.image.Image`."""


@dataclass
class _Frame:
    """One 2D image: a single-frame file or one frame of a multi-frame file."""

    file: Path
    ds: Any
    frame: int | None  # index inside a multi-frame file
    position: np.ndarray
    orientation: np.ndarray
    pixel_spacing: np.ndarray  # (row gap, column gap) mm
    slope: float
    inter: float
    keys: dict[str, float]


# ----------------------------------------------------------------------------- tag values


def _floats(value: Any, tag: str, n: int, f: Path) -> np.ndarray:
    if value is None:
        raise MedsharedError(f"{_KIND} file {f}: missing {tag} tag; cannot place the image")
    try:
        arr = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MedsharedError(f"{_KIND} file {f}: bad {tag} value {value!r}") from exc
    if arr.shape != (n,) or not np.isfinite(arr).all():
        raise MedsharedError(f"{_KIND} file {f}: {tag} must hold {n} finite numbers, got {value!r}")
    return arr


def _number(value: Any, tag: str, f: Path, default: float) -> float:
    if value is None or value == "":
        return default
    try:
        out = float(value)
    except (TypeError, ValueError) as exc:
        raise MedsharedError(f"{_KIND} file {f}: bad {tag} value {value!r}") from exc
    if not np.isfinite(out):
        raise MedsharedError(f"{_KIND} file {f}: {tag} is not finite ({value!r})")
    return out


def _tm_seconds(value: str) -> float | None:
    """DICOM TM ``HHMMSS.FFFFFF`` (or ``HH:MM:SS``) -> seconds after midnight."""
    text = str(value).strip().replace(":", "")
    if not text:
        return None
    try:
        whole, _, frac = text.partition(".")
        hh = int(whole[0:2])
        mm = int(whole[2:4]) if len(whole) >= 4 else 0
        ss = int(whole[4:6]) if len(whole) >= 6 else 0
        return hh * 3600.0 + mm * 60.0 + ss + (float(f"0.{frac}") if frac else 0.0)
    except ValueError:
        return None


def _dt_seconds(value: str) -> float | None:
    """DICOM DT ``YYYYMMDDHHMMSS.FFFFFF[&ZZXX]`` -> seconds (POSIX time, UTC offset ignored)."""
    text = str(value).strip()
    for sign in "+-":
        if sign in text[8:]:
            text = text[: 8 + text[8:].index(sign)]
    if len(text) < 8:
        return None
    try:
        day = _dt.datetime.strptime(text[:8], "%Y%m%d").replace(tzinfo=_dt.UTC)
    except ValueError:
        return None
    rest = _tm_seconds(text[8:]) if len(text) > 8 else 0.0
    return None if rest is None else day.timestamp() + rest


def _temporal_keys(source: Any, f: Path, extra: dict[str, float] | None = None) -> dict[str, float]:
    """The temporal tags a dataset (or functional-group item) carries, as floats (s for times)."""
    keys: dict[str, float] = dict(extra or {})
    for tag in ("TemporalPositionIdentifier", "AcquisitionNumber"):
        v = source.get(tag)
        if v not in (None, ""):
            keys[tag] = _number(v, tag, f, 0.0)
    for tag in ("AcquisitionTime", "ContentTime"):
        v = source.get(tag)
        if v not in (None, "") and (s := _tm_seconds(v)) is not None:
            keys[tag] = s
    v = source.get("AcquisitionDateTime")
    if v not in (None, "") and (s := _dt_seconds(v)) is not None:
        keys["AcquisitionDateTime"] = s
    v = source.get("TriggerTime")
    if v not in (None, ""):
        keys["TriggerTime"] = _number(v, "TriggerTime", f, 0.0) / 1000.0  # ms -> s
    return keys


# ----------------------------------------------------------------------------- scanning


def _looks_like_image(ds: Any, pydicom: Any) -> bool:
    """True if a dataset declares an image SOP class or image attributes."""
    meta = getattr(ds, "file_meta", None)
    sop = (meta.get("MediaStorageSOPClassUID") if meta is not None else None) or ds.get(
        "SOPClassUID"
    )
    name = pydicom.uid.UID(str(sop)).name if sop else ""
    return "Image Storage" in name or "Rows" in ds or "ImagePositionPatient" in ds


def _parse(f: Path, pydicom: Any, must_parse: bool) -> Any | None:
    """The dataset of ``f`` with its pixel data deferred (not read), or None to skip ``f``."""
    try:
        return pydicom.dcmread(f, defer_size=1024)
    except pydicom.errors.InvalidDicomError as exc:
        if must_parse or f.suffix.lower() in _DICOM_SUFFIXES:
            raise MedsharedError(
                f"{_KIND} file {f}: not valid DICOM (no 'DICM' marker and no readable "
                "DICOM header: corrupt, truncated or another format)"
            ) from exc
        return None
    except PermissionError as exc:
        raise FilePermissionError(f"{_KIND} file {f}: permission denied") from exc
    except (OSError, EOFError, ValueError, KeyError, TypeError, struct.error) as exc:
        raise MedsharedError(
            f"{_KIND} file {f}: cannot read, file is corrupt or truncated "
            f"({type(exc).__name__}: {exc})"
        ) from exc


def _scan(path: Path, pydicom: Any) -> tuple[list[tuple[Path, Any]], list[Path]]:
    """(file, dataset) pairs of every image file at ``path`` (a folder or one file) + skipped."""
    single = not path.is_dir()
    files = [path] if single else sorted(path.iterdir())
    images: list[tuple[Path, Any]] = []
    skipped: list[Path] = []
    for f in files:
        # is_file() follows links and is False for FIFOs/sockets/devices: never opened
        if not single and (f.name.startswith(".") or not f.is_file()):
            continue
        ds = _parse(f, pydicom, must_parse=single)
        if ds is None:
            skipped.append(f)
            continue
        if _PIXEL_TAG not in ds:
            if single or _looks_like_image(ds, pydicom):
                # pydicom stops silently at the end of a cut file: an image without pixels
                raise MedsharedError(
                    f"{_KIND} file {f}: image without pixel data; file is truncated or corrupt"
                )
            skipped.append(f)  # DICOMDIR, reports, presentation states...
            continue
        images.append((f, ds))
    return images, skipped


def _pick_series(
    d: Path, images: list[tuple[Path, Any]], series_uid: str | None
) -> list[tuple[Path, Any]]:
    uids: dict[str, int] = {}
    for _, ds in images:
        uid = str(ds.get("SeriesInstanceUID", ""))
        uids[uid] = uids.get(uid, 0) + 1
    if series_uid is not None:
        if series_uid not in uids:
            raise MedsharedError(
                f"{_KIND} folder {d}: no series {series_uid!r}; present: {sorted(uids)}"
            )
        return [(f, ds) for f, ds in images if str(ds.get("SeriesInstanceUID", "")) == series_uid]
    if len(uids) > 1:
        listing = ", ".join(f"{u or '<none>'} ({n} files)" for u, n in sorted(uids.items()))
        raise MedsharedError(
            f"{_KIND} folder {d}: mixed series ({listing}); pass series_uid= to pick one"
        )
    return images


# ----------------------------------------------------------------------------- frames


def _group_item(ds: Any, item: Any, seq: str) -> Any:
    """``item.<seq>[0]`` (per-frame) else ``SharedFunctionalGroupsSequence[0].<seq>[0]``."""
    for source in (item, (ds.get("SharedFunctionalGroupsSequence") or [None])[0]):
        if source is not None and seq in source and len(source[seq].value):
            return source[seq].value[0]
    return None


def _frames_of(f: Path, ds: Any) -> list[_Frame]:
    n_frames = int(_number(ds.get("NumberOfFrames"), "NumberOfFrames", f, 1.0))
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is None:
        orient = _floats(ds.get("ImageOrientationPatient"), "ImageOrientationPatient", 6, f)
        spacing = _floats(ds.get("PixelSpacing"), "PixelSpacing", 2, f)
        position = _floats(ds.get("ImagePositionPatient"), "ImagePositionPatient", 3, f)
        slope = _number(ds.get("RescaleSlope"), "RescaleSlope", f, 1.0)
        inter = _number(ds.get("RescaleIntercept"), "RescaleIntercept", f, 0.0)
        slope *= _number(ds.get("DoseGridScaling"), "DoseGridScaling", f, 1.0)  # RT dose, Gy
        if n_frames == 1:
            keys = _temporal_keys(ds, f)
            return [_Frame(f, ds, None, position, orient, spacing, slope, inter, keys)]
        offsets = ds.get("GridFrameOffsetVector")  # RT dose: frames stacked along the normal
        if offsets not in (None, ""):
            offs = _floats(offsets, "GridFrameOffsetVector", n_frames, f)
            normal = np.cross(orient[:3], orient[3:])
            return [
                _Frame(f, ds, i, position + offs[i] * normal, orient, spacing, slope, inter, {})
                for i in range(n_frames)
            ]
        frame_ms = ds.get("FrameTime")
        if frame_ms in (None, ""):
            raise MedsharedError(
                f"{_KIND} file {f}: multi-frame file without per-frame functional groups or "
                "FrameTime; cannot place its frames"
            )
        step = _number(frame_ms, "FrameTime", f, 0.0) / 1000.0
        return [
            _Frame(
                f,
                ds,
                i,
                position,
                orient,
                spacing,
                slope,
                inter,
                {"FrameIndex": float(i), "FrameTime": i * step},
            )
            for i in range(n_frames)
        ]
    if len(per_frame) != n_frames:
        raise MedsharedError(
            f"{_KIND} file {f}: {len(per_frame)} per-frame functional groups for "
            f"NumberOfFrames={n_frames}; file is corrupt"
        )
    frames = []
    for i, item in enumerate(per_frame):
        plane = _group_item(ds, item, "PlanePositionSequence")
        orient_item = _group_item(ds, item, "PlaneOrientationSequence")
        measures = _group_item(ds, item, "PixelMeasuresSequence")
        value_tf = _group_item(ds, item, "PixelValueTransformationSequence")
        content = _group_item(ds, item, "FrameContentSequence")
        where = Path(f"{f} frame {i + 1}")
        position = _floats(
            plane.get("ImagePositionPatient") if plane is not None else None,
            "PlanePositionSequence ImagePositionPatient",
            3,
            where,
        )
        orient = _floats(
            (orient_item or ds).get("ImageOrientationPatient"),
            "PlaneOrientationSequence ImageOrientationPatient",
            6,
            where,
        )
        spacing = _floats(
            (measures or ds).get("PixelSpacing"), "PixelMeasuresSequence PixelSpacing", 2, where
        )
        tf = value_tf if value_tf is not None else ds
        slope = _number(tf.get("RescaleSlope"), "RescaleSlope", where, 1.0)
        inter = _number(tf.get("RescaleIntercept"), "RescaleIntercept", where, 0.0)
        extra: dict[str, float] = {}
        if content is not None:
            v = content.get("TemporalPositionIndex")
            if v not in (None, ""):
                extra["TemporalPositionIndex"] = _number(v, "TemporalPositionIndex", where, 0.0)
            for tag in ("FrameAcquisitionDateTime", "FrameReferenceDateTime"):
                v = content.get(tag)
                if v not in (None, "") and (s := _dt_seconds(v)) is not None:
                    extra.setdefault("AcquisitionDateTime", s)
        keys = _temporal_keys(ds, f, extra)
        keys.pop("AcquisitionTime", None)  # file-level times are the same for every frame
        keys.pop("ContentTime", None)
        frames.append(_Frame(f, ds, i, position, orient, spacing, slope, inter, keys))
    return frames


def _check_consistent(frames: list[_Frame]) -> tuple[int, int]:
    first = frames[0]
    rows, cols = int(first.ds.get("Rows", 0) or 0), int(first.ds.get("Columns", 0) or 0)
    for fr in frames:
        if not np.allclose(fr.orientation, first.orientation, atol=_TOL_ORIENT):
            raise MedsharedError(
                f"{_KIND} file {fr.file}: ImageOrientationPatient differs from {first.file.name}"
            )
        size = (int(fr.ds.get("Rows", 0) or 0), int(fr.ds.get("Columns", 0) or 0))
        if size != (rows, cols):
            raise MedsharedError(
                f"{_KIND} file {fr.file}: image size differs from {first.file.name} {(rows, cols)}"
            )
        if not np.allclose(fr.pixel_spacing, first.pixel_spacing, rtol=1e-4):
            raise MedsharedError(
                f"{_KIND} file {fr.file}: PixelSpacing differs from {first.file.name}"
            )
    if rows <= 0 or cols <= 0:
        raise MedsharedError(f"{_KIND} file {first.file}: Rows/Columns missing or zero")
    return rows, cols


# ----------------------------------------------------------------------------- geometry and time


def _position_groups(depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group index of every image (0 = lowest along the normal) and each group's mean depth."""
    order = np.argsort(depth, kind="stable")
    new = np.concatenate([[True], np.diff(depth[order]) > _TOL_POSITION])
    group_sorted = np.cumsum(new) - 1
    group = np.empty_like(group_sorted)
    group[order] = group_sorted
    means = np.bincount(group, weights=depth) / np.bincount(group)
    return group, means


def _choose_temporal_key(frames: list[_Frame], group: np.ndarray, n_t: int, d: Path) -> str:
    for key, _ in _TEMPORAL_KEYS:
        if not all(key in fr.keys for fr in frames):
            continue
        values = np.array([fr.keys[key] for fr in frames])
        pairs = np.unique(np.stack([group, values]), axis=1)
        if pairs.shape[1] == len(frames):  # distinct at every position
            return key
    i, j = np.flatnonzero(group == group[0])[:2]
    a, b = frames[i].file.name, frames[j].file.name
    names = ", ".join(k for k, _ in _TEMPORAL_KEYS[:-1])
    raise MedsharedError(
        f"{_KIND} folder {d}: duplicate slice position ({a} and {b}, {n_t} images per "
        f"position) and no tag tells them apart in time (looked for {names})"
    )


def _unwrap_midnight(frames: list[_Frame]) -> None:
    """Make TM times (seconds after midnight) of a series that crosses midnight increase."""
    for tag in ("AcquisitionTime", "ContentTime"):
        values = np.array([fr.keys[tag] for fr in frames if tag in fr.keys])
        if values.size and values.max() - values.min() > 12 * 3600.0:
            for fr in frames:
                if tag in fr.keys and fr.keys[tag] < 12 * 3600.0:
                    fr.keys[tag] += 86400.0


def _frame_times(
    frames: list[_Frame], grid: np.ndarray, key: str
) -> tuple[np.ndarray | None, str | None]:
    """Times ``(Z, T)`` in seconds of the images in ``grid`` and the tag they come from."""
    for tag in ((key,) if key in _TIME_KEYS else ()) + _TIME_KEYS:
        if all(tag in fr.keys for fr in frames):
            t = np.array([[frames[i].keys[tag] for i in row] for row in grid], dtype=np.float64)
            return t, tag
    return None, None


def _resample(data: np.ndarray, times: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate ``data`` ``(X, Y, Z, T)`` (image times ``(Z, T)`` s) linearly in time.

    Slice ``z`` is sampled at ``times[z, 0] + dt * k`` (its own start, so the slice timing is
    kept) for every ``k`` that every slice covers. Returns the data and ``dt * k``.
    """
    rel = times - times[:, :1]
    span = float(rel[:, -1].min())
    n_new = int(np.floor(span / dt + 1e-9)) + 1
    grid = dt * np.arange(n_new)
    out = np.empty(data.shape[:3] + (n_new,), dtype=np.float32)
    for z in range(data.shape[2]):  # one slice's time courses at a time (vectorised inside)
        hi = np.clip(np.searchsorted(rel[z], grid, side="right"), 1, rel.shape[1] - 1)
        lo = hi - 1
        w = ((grid - rel[z, lo]) / (rel[z, hi] - rel[z, lo])).astype(np.float32)
        out[:, :, z, :] = data[:, :, z, lo] * (1 - w) + data[:, :, z, hi] * w
    return out, grid


# ----------------------------------------------------------------------------- pixels


def _stored_dtype(ds: Any, f: Path) -> np.dtype:
    bits = int(_number(ds.get("BitsAllocated"), "BitsAllocated", f, 16.0))
    signed = int(_number(ds.get("PixelRepresentation"), "PixelRepresentation", f, 0.0)) == 1
    spp = int(_number(ds.get("SamplesPerPixel"), "SamplesPerPixel", f, 1.0))
    if spp != 1:
        raise MedsharedError(
            f"{_KIND} file {f}: SamplesPerPixel={spp} (colour); only grayscale volumes are read"
        )
    if bits not in (8, 16, 32):
        raise MedsharedError(f"{_KIND} file {f}: BitsAllocated={bits} is not supported")
    return np.dtype(f"{'i' if signed else 'u'}{bits // 8}")


def _check_pixel_bytes(f: Path, ds: Any, rows: int, cols: int, dtype: np.dtype) -> None:
    """Uncompressed pixel data must be as long as the header's claim and inside the file."""
    try:
        elem = ds.get_item(_PIXEL_TAG, keep_deferred=True)
    except TypeError:  # pragma: no cover - pydicom 2.x has no keep_deferred
        elem = ds.get_item(_PIXEL_TAG)
    length = getattr(elem, "length", None)
    if length is None:
        value = getattr(elem, "value", None)
        length = len(value) if isinstance(value, bytes | bytearray) else None
    if length is None or length == _UNDEFINED:
        return  # encapsulated (compressed): the decoded size is checked against memory
    n_frames = int(_number(ds.get("NumberOfFrames"), "NumberOfFrames", f, 1.0))
    need = nbytes_of((n_frames, rows, cols), dtype.itemsize)
    tell = getattr(elem, "value_tell", None)
    size = f.stat().st_size
    if length < need or (tell is not None and tell + length > size):
        have = min(length, size - tell) if tell is not None else length
        raise MedsharedError(
            f"{_KIND} file {f}: truncated or corrupt: Rows x Columns x frames = "
            f"{rows} x {cols} x {n_frames} needs {need} bytes of pixel data, the file holds "
            f"{max(have, 0)}"
        )


def _decode(f: Path, ds: Any) -> np.ndarray:
    try:
        arr = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for bad/unsupported pixel data
        raise MedsharedError(
            f"{_KIND} file {f}: cannot decode pixel data ({type(exc).__name__}: {exc})"
        ) from exc
    finally:
        if _PIXEL_TAG in ds:  # keep no pixel bytes in the header we return
            del ds[_PIXEL_TAG]
    return arr


# ----------------------------------------------------------------------------- reader


def read_dicom(
    path: PathLike,
    *,
    series_uid: str | None = None,
    allow_nonfinite: bool = True,
    resample: bool = False,
    dt_tolerance: float = DT_TOLERANCE,
    resample_dt: float | None = None,
) -> Image:
    """Read a DICOM series (folder) or a DICOM file into an :class:`Image` (see module docs).

    Parameters
    ----------
    path : str or PathLike
        A folder holding one series (not searched recursively), or one DICOM file (single or
        multi-frame).
    series_uid : str, optional
        SeriesInstanceUID to read when the folder holds several series (otherwise an error).
    allow_nonfinite : bool
        If False, NaN/inf after rescaling raise.
    resample : bool
        Interpolate an irregularly sampled series onto a uniform time grid instead of refusing
        it (data become float32; ``meta["resampled"]`` is True).
    dt_tolerance : float
        Largest relative deviation of a frame interval from the median (default 0.05).
    resample_dt : float, optional
        Frame interval of the resampled grid in seconds (default: the median interval).

    Returns
    -------
    Image
        ``data`` ``(X, Y, Z)`` or ``(X, Y, Z, T)``, ``affine`` voxel -> RAS+ mm, ``spacing``
        ``(dx, dy, dz)`` mm, ``dt`` s (None for a volume or a series without time tags),
        ``header`` (first dataset, pixel data dropped), ``meta``: ``files`` (``files[k]``, or
        ``files[t][k]`` for a series), ``skipped``, ``series_uid``, ``stored_dtype``,
        ``rescaled``, ``temporal_key``, ``time_tag``, ``frame_times`` (s from the first frame),
        ``resampled``, ``warnings`` (pydicom's messages about odd values, kept, not printed).

    Raises
    ------
    MissingFileError
        Nothing at ``path`` (also a ``FileNotFoundError``).
    MedsharedError
        Naming the folder or file: no DICOM image, several series, missing/invalid position,
        orientation or spacing tags, differing orientation or image size, duplicate positions
        without a temporal tag, a time point missing at some position, irregular slice gaps
        (> 1 %), irregular frame intervals (unless ``resample``), pixel data shorter than the
        header claims, corrupt/truncated files. :class:`~medshared.errors.AllocationError` when
        the volume would not fit in memory; :class:`~medshared.errors.MissingExtraError` without
        pydicom.
    """
    pydicom = require("pydicom", "dicom")
    d = Path(path)
    # stat only: a missing path, a FIFO/socket/device or an unreadable one is refused unopened
    check_input_path(d, _KIND, folder=d.is_dir())
    if not (np.isfinite(dt_tolerance) and dt_tolerance >= 0):
        raise MedsharedError(f"dt_tolerance must be a finite number >= 0, got {dt_tolerance}")
    if resample_dt is not None and not (np.isfinite(resample_dt) and resample_dt > 0):
        raise MedsharedError(f"resample_dt must be a positive number of seconds, got {resample_dt}")
    with captured_library_messages("pydicom") as notes:
        img = _read(d, pydicom, series_uid, allow_nonfinite, resample, dt_tolerance, resample_dt)
    return dataclasses.replace(img, meta={**img.meta, "warnings": tuple(notes)})


def _read(
    d: Path,
    pydicom: Any,
    series_uid: str | None,
    allow_nonfinite: bool,
    resample: bool,
    dt_tolerance: float,
    resample_dt: float | None,
) -> Image:
    images, skipped = _scan(d, pydicom)
    if not images:
        extra = f" ({len(skipped)} non-image file(s) skipped)" if skipped else ""
        raise MedsharedError(f"{_KIND} folder {d}: no DICOM image files found{extra}")
    images = _pick_series(d, images, series_uid)
    uid = str(images[0][1].get("SeriesInstanceUID", ""))

    frames = [fr for f, ds in images for fr in _frames_of(f, ds)]
    _unwrap_midnight(frames)
    rows, cols = _check_consistent(frames)
    first = frames[0]
    row_cos, col_cos = first.orientation[:3], first.orientation[3:]
    normal = np.cross(row_cos, col_cos)
    if not np.isclose(np.linalg.norm(normal), 1.0, atol=1e-3):
        raise MedsharedError(
            f"{_KIND} file {first.file}: ImageOrientationPatient cosines are not orthonormal "
            f"({first.orientation})"
        )
    dy, dx = (float(v) for v in first.pixel_spacing)

    positions = np.stack([fr.position for fr in frames])
    group, depths = _position_groups(positions @ normal)
    n_z = len(depths)
    counts = np.bincount(group, minlength=n_z)
    n_t = int(counts.max())
    if (counts != n_t).any():
        z = int(np.argmin(counts))
        raise MedsharedError(
            f"{_KIND} folder {d}: the slice at {depths[z]:.4g} mm along the normal has "
            f"{counts[z]} image(s), other slices {n_t}; a time point or file is missing"
        )
    key = None
    if n_t > 1:
        key = _choose_temporal_key(frames, group, n_t, d)
        value = np.array([fr.keys[key] for fr in frames])
        order = np.lexsort((value, group))  # by position, then time
    else:
        order = np.argsort(group, kind="stable")
    grid = order.reshape(n_z, n_t)  # grid[z, t] = index into frames

    if key is not None and key not in _TIME_KEYS:
        ids = np.array([[frames[i].keys[key] for i in row] for row in grid])
        bad = np.flatnonzero((ids != ids[:1]).any(axis=0))
        if bad.size:
            t = int(bad[0])
            raise MedsharedError(
                f"{_KIND} folder {d}: {key} differs between slices at time point {t} "
                f"(values {sorted(set(ids[:, t].tolist()))}); a frame is missing or duplicated"
            )

    # slice geometry
    origin = frames[grid[0, 0]].position
    gaps = np.diff(depths)
    if n_z > 1:
        dz = float(gaps.mean())
        if np.abs(gaps - dz).max() > _TOL_SPACING * dz:
            raise MedsharedError(
                f"{_KIND} folder {d}: irregular slice gaps {gaps.min():.4g}..{gaps.max():.4g} mm "
                "(missing slices?)"
            )
        last = frames[grid[-1, 0]].position
        step = (last - origin) / (n_z - 1)
    else:
        ds0 = first.ds
        dz = _number(ds0.get("SpacingBetweenSlices"), "SpacingBetweenSlices", first.file, 0.0)
        dz = dz or _number(ds0.get("SliceThickness"), "SliceThickness", first.file, 0.0) or 1.0
        step = normal * dz

    # time
    times, time_tag = (None, None)
    dt = None
    frame_times = None
    if n_t > 1:
        times, time_tag = _frame_times(frames, grid, key or "")
    irregular = False
    if times is not None:
        mean_t = times.mean(axis=0)
        intervals = np.diff(mean_t)
        if (intervals <= 0).any():
            t = int(np.argmax(intervals <= 0))
            raise MedsharedError(
                f"{_KIND} folder {d}: {time_tag} does not increase from time point {t} to "
                f"{t + 1} (ordered by {key}); the series' timing is inconsistent"
            )
        dt = float(np.median(intervals))
        irregular = bool(np.abs(intervals - dt).max() > dt_tolerance * dt)
        if irregular and not resample:
            raise MedsharedError(
                f"{_KIND} folder {d}: irregular frame intervals {intervals.min():.4g}.."
                f"{intervals.max():.4g} s ({time_tag}; tolerance {dt_tolerance:.0%} of the "
                f"median {dt:.4g} s); resample onto a uniform grid to read it"
            )
        frame_times = mean_t - mean_t[0]

    # pixels: check every claim, then the total, then decode file by file into one array
    dtype = _stored_dtype(first.ds, first.file)
    slopes = np.array([fr.slope for fr in frames], dtype=np.float32)
    inters = np.array([fr.inter for fr in frames], dtype=np.float32)
    rescaled = bool((slopes != 1).any() or (inters != 0).any())
    out_dtype = np.dtype(np.float32) if rescaled else dtype
    seen: set[Path] = set()
    for fr in frames:
        if fr.file not in seen:
            seen.add(fr.file)
            if _stored_dtype(fr.ds, fr.file) != dtype:
                raise MedsharedError(
                    f"{_KIND} file {fr.file}: pixel type {_stored_dtype(fr.ds, fr.file)} "
                    f"differs from {first.file.name} ({dtype})"
                )
            _check_pixel_bytes(fr.file, fr.ds, rows, cols, dtype)
    shape_tzyx = (n_t, n_z, rows, cols)
    check_allocation(
        nbytes_of(shape_tzyx, out_dtype.itemsize) + nbytes_of((rows, cols), 8),
        d,
        f"DICOM pixel data {n_t} x {n_z} x {rows} x {cols} {out_dtype.name}",
    )
    stack = np.empty(shape_tzyx, dtype=out_dtype)
    where = np.empty((len(frames), 2), dtype=np.int64)  # (t, z) of every frame
    where[grid.ravel(), 0] = np.tile(np.arange(n_t), n_z)
    where[grid.ravel(), 1] = np.repeat(np.arange(n_z), n_t)
    by_file: dict[Path, list[int]] = {}
    for i, fr in enumerate(frames):
        by_file.setdefault(fr.file, []).append(i)
    for f, idx in by_file.items():
        ds = frames[idx[0]].ds
        arr = _decode(f, ds)
        n_file = int(_number(ds.get("NumberOfFrames"), "NumberOfFrames", f, 1.0))
        arr = arr.reshape((n_file, rows, cols)) if arr.size == n_file * rows * cols else arr
        if arr.shape != (n_file, rows, cols) and arr.shape != (rows, cols):
            raise MedsharedError(
                f"{_KIND} file {f}: pixel array shape {arr.shape} != {(n_file, rows, cols)}"
            )
        arr = arr.reshape(n_file, rows, cols)
        sel = np.array([frames[i].frame or 0 for i in idx])
        ii = np.array(idx)
        t_idx, z_idx = where[ii, 0], where[ii, 1]
        if rescaled:
            stack[t_idx, z_idx] = (
                arr[sel].astype(np.float32) * slopes[ii, None, None] + inters[ii, None, None]
            )
        else:
            stack[t_idx, z_idx] = arr[sel]
        del arr

    # (T, Z, row, column) -> (X=column, Y=row, Z, T): a view, Fortran-contiguous
    data = stack.transpose(3, 2, 1, 0) if n_t > 1 else stack[0].transpose(2, 1, 0)
    resampled = False
    if resample and times is not None and dt is not None and (irregular or resample_dt):
        dt = float(resample_dt) if resample_dt is not None else dt
        data, frame_times = _resample(data.astype(np.float32, copy=False), times, dt)
        resampled = True
    if not allow_nonfinite:
        check_finite(data, d, _KIND)

    lps = np.eye(4)
    lps[:3, 0] = row_cos * dx  # X: along a row, column index increases
    lps[:3, 1] = col_cos * dy  # Y: down a column, row index increases
    lps[:3, 2] = step
    lps[:3, 3] = origin
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps  # LPS -> RAS
    files_zt = [[frames[i].file for i in row] for row in grid]
    files = (
        tuple(tuple(files_zt[z][t] for z in range(n_z)) for t in range(n_t))
        if n_t > 1
        else tuple(row[0] for row in files_zt)
    )
    meta = {
        "files": files,
        "skipped": tuple(skipped),
        "series_uid": uid,
        "stored_dtype": dtype,
        "rescaled": rescaled,
        "temporal_key": key,
        "time_tag": time_tag,
        "frame_times": frame_times,
        "resampled": resampled,
    }
    return Image(
        data=data,
        affine=affine,
        spacing=(dx, dy, float(dz)),
        dt=dt,
        path=d,
        header=first.ds,
        meta=meta,
    )


def read_dicom_series(folder: PathLike, **kwargs: Any) -> Image:
    """Read the DICOM series in ``folder`` (see :func:`read_dicom`); a file path is refused.

    Kept for older callers; the result is the shared :class:`Image` ``(X, Y, Z[, T])`` with a
    RAS+ affine, like every reader's.
    """
    d = Path(folder)
    if not os.path.lexists(d):
        raise MissingFileError(f"{_KIND} folder {d}: no such folder")
    if not d.is_dir():
        raise MedsharedError(f"{_KIND} folder {d}: not a folder (pass the series folder)")
    return read_dicom(d, **kwargs)
