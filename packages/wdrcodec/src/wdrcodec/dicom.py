"""DICOM in and out: a series' attributes travel inside the ``.wdr``; decoding rebuilds a series.

**Encoding** a single-frame 3D series keeps every attribute of every slice except the pixel data
(DICOM JSON, PS3.18 F, one object per slice in the reader's Z order, zlib-compressed) in the
header's metadata section (SPEC.md). Multi-frame files and 4D series keep no attributes (said
on encoding).

**Decoding** to a folder writes one Explicit VR Little Endian file per slice (``IM_0001.dcm``...)
as a whole (:func:`medshared.io.outputs.output_set`). UID policy:

* a *bit-exact* decode (lossless file, decoded whole) is the same image: SOP Instance UIDs,
  Series Instance UID and every other attribute are kept;
* a *lossy* decode (lossy file, a truncated file or a ``--bpv`` prefix) is a new, derived image
  (PS3.3 C.7.6.1.1.5): new SOP Instance UIDs and a new Series Instance UID, Study/Frame of
  Reference/patient attributes kept, ``ImageType`` value 1 ``DERIVED``, and the Lossy Image
  Compression attributes set: ``LossyImageCompression`` ``01``, ``LossyImageCompressionRatio``
  (original stored bytes / ``.wdr`` bytes used) and ``LossyImageCompressionMethod`` ``WDR_3D``
  (not a defined term of the standard: no DICOM transfer syntax carries WDR), appended to the
  source's own ratios and methods when it was already lossy compressed (one value per
  successive lossy step); ``DerivationCodeSequence`` (113040, DCM, "Lossy Compression") and
  ``SourceImageSequence`` referencing the source instance (purpose 121320 "Uncompressed
  predecessor", or 121322 when the source was itself lossy).

The pixel module is rewritten from the decoded array: Rows/Columns, Bits Allocated/Stored, High
Bit, Pixel Representation, Samples per Pixel 1 and the pixel data in the original stored
values (a rescaled series, decoded as floats, is mapped back with its own Rescale
Slope/Intercept). Needs pydicom (extra ``dicom``).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wdrcodec.errors import WdrError

META_KIND = b"dicom-json-v1\0"
LOSSY_METHOD = "WDR_3D"


def _pydicom():
    from medshared.errors import require

    return require("pydicom", "dicom", package="wdrcodec")


def series_attributes(image) -> bytes | None:
    """Metadata section for a DICOM :class:`medshared.io.Image` (3D single-frame series), or
    ``None`` when the series cannot be kept slice by slice."""
    files = list(getattr(image, "meta", {}).get("files", []) or [])
    if image.data.ndim != 3 or len(files) != image.data.shape[2]:
        return None
    pydicom = _pydicom()
    slices = []
    for f in files:
        ds = pydicom.dcmread(str(f), stop_before_pixels=True)
        for tag in list(ds.keys()):
            if tag.group == 0x7FE0 or tag.group in range(0x6000, 0x6020, 2):
                del ds[tag]  # pixel data and overlays
        slices.append(ds.to_json_dict(bulk_data_threshold=1 << 30))
    body = json.dumps({"slices": slices}, separators=(",", ":")).encode()
    return META_KIND + zlib.compress(body, 9)


def parse_attributes(meta: bytes | None, name: str) -> list[dict] | None:
    """The per-slice DICOM JSON objects stored by :func:`series_attributes`, or ``None``."""
    if not meta or not meta.startswith(META_KIND):
        return None
    try:
        body = json.loads(zlib.decompress(meta[len(META_KIND) :]))
        return list(body["slices"])
    except (zlib.error, ValueError, KeyError, TypeError) as exc:
        raise WdrError(f"{name}: corrupted DICOM attributes in the header ({exc})") from None


def _stored_values(vol: np.ndarray, ds) -> tuple[np.ndarray, int, int]:
    """``(stored values, bits allocated, pixel representation)`` for one slice dataset."""
    signed = int(getattr(ds, "PixelRepresentation", 1 if vol.dtype.kind == "i" else 0))
    bits = int(getattr(ds, "BitsAllocated", 16 if vol.dtype.itemsize >= 2 else 8))
    bits = 8 if bits == 8 and vol.dtype.itemsize == 1 else 16
    if vol.dtype.kind == "f":  # the reader applied the rescale: undo it with the same numbers
        slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
        inter = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
        vol = np.rint((vol.astype(np.float64) - inter) / slope)
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits // 8}")
    info = np.iinfo(dtype)
    return np.clip(vol, info.min, info.max).astype(dtype), bits, signed


def _values(ds, keyword: str) -> list[str]:
    """The values of a possibly multi-valued attribute as strings (``[]`` when absent)."""
    v = ds.get(keyword)
    if v is None or v == "":
        return []
    if isinstance(v, str) or not isinstance(v, Sequence):
        return [str(v)]
    return [str(x) for x in v]


def _code(pydicom, value: str, meaning: str):
    item = pydicom.Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
    return item


def _mark_lossy(pydicom, ds, ratio: float, sop_uid: str, series_uid: str) -> None:
    """Make ``ds`` the lossy derived image of itself (PS3.3 C.7.6.1.1.5, C.7.6.1.1.3): new
    instance in a new series, ``DERIVED``, the lossy compression history extended (one ratio and
    one method per successive lossy compression, in order), the source instance referenced."""
    earlier = str(ds.get("LossyImageCompression", "")) == "01"
    ratios = _values(ds, "LossyImageCompressionRatio") if earlier else []
    methods = _values(ds, "LossyImageCompressionMethod") if earlier else []
    source = pydicom.Dataset()
    source.ReferencedSOPClassUID = getattr(ds, "SOPClassUID", "1.2.840.10008.5.1.4.1.1.7")
    source.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    source.PurposeOfReferenceCodeSequence = [
        _code(pydicom, "121322", "Source image for image processing operation")
        if earlier  # the source is itself lossy: not an uncompressed predecessor
        else _code(pydicom, "121320", "Uncompressed predecessor")
    ]
    ds.SourceImageSequence = [source]
    ds.DerivationCodeSequence = [_code(pydicom, "113040", "Lossy Compression")]
    ds.SOPInstanceUID = sop_uid
    ds.SeriesInstanceUID = series_uid
    kind = list(getattr(ds, "ImageType", ["ORIGINAL", "PRIMARY"]))
    ds.ImageType = ["DERIVED", *kind[1:]] if kind else ["DERIVED", "PRIMARY"]
    ds.LossyImageCompression = "01"
    new_ratios = [*ratios, f"{ratio:.4g}"[:16]]
    new_methods = [*methods, LOSSY_METHOD]
    ds.LossyImageCompressionRatio = new_ratios if len(new_ratios) > 1 else new_ratios[0]
    ds.LossyImageCompressionMethod = new_methods if len(new_methods) > 1 else new_methods[0]
    ds.DerivationDescription = "lossy WDR (wdrcodec) decode"[:1024]


def write_series(
    folder: Path,
    array_xyz: np.ndarray,
    slices: list[dict],
    *,
    exact: bool,
    ratio: float,
    inputs: tuple = (),
) -> list[Path]:
    """Write the decoded ``(X, Y, Z)`` volume as a DICOM series into ``folder`` (module
    docstring for the UID policy); returns the file paths. All or nothing."""
    pydicom = _pydicom()
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from medshared.io.outputs import output_set

    nz = array_xyz.shape[2]
    if array_xyz.ndim != 3 or len(slices) != nz:
        raise WdrError(
            f"{folder}: the file keeps DICOM attributes for {len(slices)} slices but decodes to "
            f"shape {array_xyz.shape}"
        )
    names = [f"IM_{k + 1:04d}.dcm" for k in range(nz)]
    series_uid = generate_uid()
    with output_set(folder, names, inputs, what="output folder") as stage:
        for k, (obj, fname) in enumerate(zip(slices, names)):
            try:
                ds = pydicom.Dataset.from_json(obj)
            except Exception as exc:  # noqa: BLE001 - pydicom raises many types on bad JSON
                raise WdrError(
                    f"{folder}: the stored DICOM attributes of slice {k} are unreadable ({exc})"
                ) from None
            plane = np.ascontiguousarray(array_xyz[:, :, k].T)  # (rows = Y, columns = X)
            values, bits, signed = _stored_values(plane, ds)
            ds.Rows, ds.Columns = values.shape
            ds.SamplesPerPixel = 1
            ds.BitsAllocated = bits
            ds.BitsStored = min(int(getattr(ds, "BitsStored", bits) or bits), bits)
            ds.HighBit = ds.BitsStored - 1
            ds.PixelRepresentation = signed
            if getattr(ds, "PhotometricInterpretation", None) not in ("MONOCHROME1", "MONOCHROME2"):
                ds.PhotometricInterpretation = "MONOCHROME2"
            ds.PixelData = values.tobytes()
            if not exact:
                _mark_lossy(pydicom, ds, ratio, generate_uid(), series_uid)
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = getattr(ds, "SOPClassUID", "1.2.840.10008.5.1.4.1.1.7")
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta = meta
            ds.preamble = b"\0" * 128
            ds.save_as(str(stage / fname), enforce_file_format=True)
    return [Path(folder) / n for n in names]
