"""Reading and writing the images usenhance works on: grayscale PNG (8/16-bit) and DICOM.

Every image becomes an :class:`ImageFrames` record: ``frames`` of shape ``(F, Y, X)`` (``F = 1``
for PNG and single-frame DICOM), float32 in [0, 1], plus what is needed to write the result back in
the input's format and bit depth. DICOM colour images (RGB, YBR_FULL, YBR_FULL_422, PALETTE COLOR)
are converted to grayscale (ITU-R BT.601 luma) with a warning; MONOCHROME1 is inverted so that
bright means echogenic. pydicom is optional (extra ``dicom``).
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from medshared.errors import MedsharedError, MissingExtraError, require
from medshared.io import atomic_path, read_png, write_png
from usenhance.errors import UsenhanceError

__all__ = ["DICOM_SUFFIXES", "PNG_SUFFIXES", "ImageFrames", "is_image_candidate", "read_image",
           "write_image"]

PNG_SUFFIXES = (".png",)
DICOM_SUFFIXES = (".dcm", ".dicom")
_LUMA = np.array([0.299, 0.587, 0.114])


class ImageFrames(NamedTuple):
    """One image file as frames.

    Attributes
    ----------
    frames : np.ndarray
        ``(F, Y, X)`` float32 in [0, 1] (``F`` = number of frames).
    bit_depth : int
        8 or 16: the depth written back.
    kind : str
        ``"png"`` or ``"dicom"``.
    path : Path
        The file read.
    dataset : Any
        The pydicom dataset (DICOM only; its pixel data is replaced on writing), else ``None``.
    """

    frames: np.ndarray
    bit_depth: int
    kind: str
    path: Path
    dataset: Any = None


def _is_dicom_file(path: Path) -> bool:
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def is_image_candidate(path: Path) -> bool:
    """True for files a folder run should try: ``.png``, ``.dcm``/``.dicom`` or DICM-tagged."""
    if path.name.startswith("."):
        return False
    return path.suffix.lower() in PNG_SUFFIXES or _is_dicom_file(path)


def read_image(path: str | Path) -> ImageFrames:
    """Read a grayscale PNG or a DICOM image (any frame count).

    Parameters
    ----------
    path : str or Path
        ``.png`` (8/16-bit grayscale) or a DICOM file.

    Returns
    -------
    ImageFrames
        Frames ``(F, Y, X)`` float32 in [0, 1].

    Raises
    ------
    UsenhanceError
        Naming the file: not an image, corrupt, unsupported pixel layout.
    MissingExtraError
        A DICOM file without pydicom installed.
    """
    p = Path(path)
    if p.suffix.lower() in PNG_SUFFIXES:
        try:
            arr = read_png(p)
        except MissingExtraError:
            raise
        except MedsharedError as exc:
            raise UsenhanceError(str(exc)) from None
        depth = 16 if arr.dtype == np.uint16 else 8
        frames = (arr.astype(np.float32) / (2**depth - 1))[None]
        return ImageFrames(frames, depth, "png", p)
    if _is_dicom_file(p):
        return _read_dicom(p)
    raise UsenhanceError(f"{p}: not a PNG or DICOM file (expected .png, .dcm or a DICM header)")


def _read_dicom(p: Path) -> ImageFrames:
    pydicom = require("pydicom", "dicom", package="usenhance")
    try:
        ds = pydicom.dcmread(p)
        pi = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
        bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 8)))
        nframes = int(ds.get("NumberOfFrames", 1) or 1)
        spp = int(ds.get("SamplesPerPixel", 1))
        arr = ds.pixel_array  # pydicom >= 3 converts YBR_* to RGB here
        if pi.startswith("YBR") and int(pydicom.__version__.split(".")[0]) < 3:
            from pydicom.pixel_data_handlers.util import convert_color_space

            arr = convert_color_space(arr, pi, "RGB")
        if pi == "PALETTE COLOR":
            from pydicom.pixels import apply_color_lut

            arr = apply_color_lut(arr, ds)
            bits = 16 if arr.dtype.itemsize > 1 else 8
            spp = 3
    except (MissingExtraError, UsenhanceError):
        raise
    except pydicom.errors.InvalidDicomError:
        raise UsenhanceError(
            f"DICOM file {p}: not a DICOM file (no 'DICM' marker and no readable DICOM header)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for bad files
        raise UsenhanceError(f"DICOM file {p}: cannot decode the pixel data ({exc})") from None
    arr = np.asarray(arr)
    colour = spp == 3
    if colour:
        gray = arr.astype(np.float64) @ _LUMA
        warnings.warn(f"{p}: {pi} colour image converted to grayscale (BT.601 luma)", stacklevel=2)
    else:
        gray = arr.astype(np.float64)
    if gray.ndim == 2:
        gray = gray[None]
    if gray.ndim != 3 or (nframes > 1 and gray.shape[0] != nframes):
        raise UsenhanceError(f"DICOM file {p}: unsupported pixel array shape {arr.shape}")
    if int(ds.get("PixelRepresentation", 0)) == 1:
        gray = gray - gray.min()
    peak = float(2 ** min(max(bits, 1), 16) - 1)
    if pi == "MONOCHROME1":
        gray = peak - gray
    depth = 8 if bits <= 8 else 16
    frames = np.clip(gray / peak, 0.0, 1.0).astype(np.float32)
    return ImageFrames(frames, depth, "dicom", p, ds)


def _quantise(frames: np.ndarray, depth: int) -> np.ndarray:
    peak = 2**depth - 1
    dtype = np.uint8 if depth == 8 else np.uint16
    return np.round(np.clip(frames, 0.0, 1.0) * peak).astype(dtype)


def write_image(path: str | Path, frames: np.ndarray, like: ImageFrames) -> Path:
    """Write ``frames`` in the format and bit depth of ``like``, atomically.

    Parameters
    ----------
    path : str or Path
        Target file. PNG input -> PNG (``.png``, one frame); DICOM input -> a derived DICOM
        (MONOCHROME2, uncompressed, new SOP Instance UID, all frames).
    frames : np.ndarray
        ``(F, Y, X)`` in [0, 1].
    like : ImageFrames
        The input record the result derives from.

    Returns
    -------
    Path
        The file written.
    """
    p = Path(path)
    frames = np.asarray(frames)
    if frames.ndim == 2:
        frames = frames[None]
    q = _quantise(frames, like.bit_depth)
    if like.kind == "png":
        if q.shape[0] != 1:
            raise UsenhanceError(f"{p}: a PNG holds one frame, got {q.shape[0]}")
        try:
            write_png(p, q[0])
        except MedsharedError as exc:
            raise UsenhanceError(str(exc)) from None
        return p
    pydicom = require("pydicom", "dicom", package="usenhance")
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = copy.deepcopy(like.dataset)
    for kw in ("PlanarConfiguration", "RedPaletteColorLookupTableDescriptor",
               "GreenPaletteColorLookupTableDescriptor", "BluePaletteColorLookupTableDescriptor",
               "RedPaletteColorLookupTableData", "GreenPaletteColorLookupTableData",
               "BluePaletteColorLookupTableData", "SegmentedRedPaletteColorLookupTableData",
               "SegmentedGreenPaletteColorLookupTableData",
               "SegmentedBluePaletteColorLookupTableData", "PaletteColorLookupTableUID",
               "SmallestImagePixelValue", "LargestImagePixelValue", "ICCProfile"):
        if kw in ds:
            delattr(ds, kw)
    bits = 8 if q.dtype == np.uint8 else 16
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.SamplesPerPixel = 1
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.Rows, ds.Columns = int(q.shape[1]), int(q.shape[2])
    if q.shape[0] > 1 or "NumberOfFrames" in ds:
        ds.NumberOfFrames = int(q.shape[0])
    ds.PixelData = np.ascontiguousarray(q if q.shape[0] > 1 else q[0]).astype(
        q.dtype.newbyteorder("<")).tobytes()
    ds["PixelData"].VR = "OB" if bits == 8 else "OW"
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesDescription = (str(ds.get("SeriesDescription", "")) + " usenhance").strip()
    ds.ImageType = ["DERIVED", "SECONDARY"]
    if not hasattr(ds, "file_meta") or ds.file_meta is None:
        ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if "SOPClassUID" in ds:
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    with atomic_path(p) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return p
