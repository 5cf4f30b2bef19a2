"""medshared.io.dicom: synthetic 3D/4D series and enhanced files built with pydicom, and errors.

The oracle for positions is the DICOM standard's own equation (PS3.3 C.7.6.2.1.1):
``P = ImagePositionPatient + c * PixelSpacing[1] * row_cosine + r * PixelSpacing[0] * col_cosine``
in LPS mm, so RAS = (-Px, -Py, Pz); the reader must put pixel ``(r, c)`` of slice ``k`` at voxel
``(c, r, k)``.
"""

from __future__ import annotations

import importlib.resources
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medshared.errors import AllocationError, MedsharedError, MissingExtraError
from medshared.io import DicomSeries, Image, read_dicom, read_dicom_series, read_image, write_image

pydicom = pytest.importorskip("pydicom")
from pydicom.dataset import FileDataset, FileMetaDataset  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, generate_uid  # noqa: E402

NIB_DATA = Path(str(importlib.resources.files("nibabel") / "tests" / "data"))
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def _rotation(seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q


def write_slice(
    path: Path,
    pixels: np.ndarray,
    position,
    orientation,
    *,
    series_uid: str,
    spacing=(0.8, 0.6),
    slope: float | None = None,
    intercept: float | None = None,
    drop: tuple[str, ...] = (),
    tags: dict | None = None,
) -> None:
    """Write one single-frame CT slice with proper file meta (explicit VR little endian)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.SeriesInstanceUID = series_uid
    ds.StudyInstanceUID = "1.2.3.4"
    ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in orientation]
    ds.PixelSpacing = [f"{v}" for v in spacing]
    ds.SliceThickness = "1.0"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if pixels.dtype == np.int16 else 0
    if slope is not None:
        ds.RescaleSlope = f"{slope}"
    if intercept is not None:
        ds.RescaleIntercept = f"{intercept}"
    ds.PixelData = pixels.tobytes()
    for tag, value in (tags or {}).items():
        setattr(ds, tag, value)
    for tag in drop:
        delattr(ds, tag)
    if int(pydicom.__version__.split(".")[0]) < 3:  # pragma: no cover - pydicom 2.x
        ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.save_as(str(path))


def make_series(
    folder: Path, n: int = 6, *, seed: int = 0, dz: float = 2.5, shape=(5, 7), **kw
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Write n slices of an oblique series in shuffled file order.

    Returns the (n, rows, cols) stored pixels in true slice order, the positions and the
    orientation (row cosine, column cosine).
    """
    rng = np.random.default_rng(seed)
    rot = _rotation(seed)
    row, col = rot[:, 0], rot[:, 1]
    normal = np.cross(row, col)
    origin = np.array([-100.0, 50.0, 20.0])
    positions = origin + np.arange(n)[:, None] * dz * normal
    pixels = rng.integers(0, 3000, size=(n, *shape)).astype(np.uint16)
    uid = kw.pop("series_uid", "1.2.3.4.5")
    for k, i in enumerate(rng.permutation(n)):
        write_slice(
            folder / f"IM{k:04d}", pixels[i], positions[i], [*row, *col], series_uid=uid, **kw
        )
    return pixels, positions, np.concatenate([row, col])


def ras_of_pixel(position, orient, spacing, r, c) -> np.ndarray:
    """RAS+ mm of pixel (row r, column c) by the DICOM standard's equation (the test oracle)."""
    row_cos, col_cos = np.asarray(orient[:3]), np.asarray(orient[3:])
    lps = np.asarray(position) + c * spacing[1] * row_cos + r * spacing[0] * col_cos
    return lps * [-1.0, -1.0, 1.0]


def tm(seconds: float) -> str:
    """Seconds after midnight -> DICOM TM ``HHMMSS.FFFFFF``."""
    h, rest = divmod(seconds % 86400.0, 3600.0)
    m, s = divmod(rest, 60.0)
    return f"{int(h):02d}{int(m):02d}{s:09.6f}"


def make_4d(
    folder: Path,
    *,
    n_z: int = 3,
    n_t: int = 4,
    shape=(4, 5),
    times=None,
    slice_offset: float = 0.1,
    tag_kinds=("tpi", "acq"),
    seed: int = 0,
    orient=(1, 0, 0, 0, 1, 0),
    start: float = 10 * 3600.0,
    slope: float | None = None,
    intercept: float | None = None,
):
    """A CT perfusion-like series: one file per (slice, time point), shuffled file names.

    ``tag_kinds`` picks the temporal tags written: "tpi" TemporalPositionIdentifier, "acq"
    AcquisitionTime, "content" ContentTime, "num" AcquisitionNumber, "trigger" TriggerTime.
    Slice z of frame t is acquired at ``start + times[t] + z * slice_offset`` s.
    Returns pixels (T, Z, rows, cols), positions (Z, 3) and the frame times (T,).
    """
    rng = np.random.default_rng(seed)
    times = np.arange(n_t) * 1.5 if times is None else np.asarray(times, dtype=float)
    orient = np.asarray(orient, dtype=float)
    normal = np.cross(orient[:3], orient[3:])
    positions = np.array([12.0, -30.0, 5.0]) + np.arange(n_z)[:, None] * 4.0 * normal
    pixels = rng.integers(0, 2000, size=(n_t, n_z, *shape)).astype(np.uint16)
    jobs = [(t, z) for t in range(n_t) for z in range(n_z)]
    for k, j in enumerate(rng.permutation(len(jobs))):
        t, z = jobs[j]
        acq = start + times[t] + z * slice_offset
        tags = {}
        if "tpi" in tag_kinds:
            tags["TemporalPositionIdentifier"] = t + 1
        if "acq" in tag_kinds:
            tags["AcquisitionTime"] = tm(acq)
        if "content" in tag_kinds:
            tags["ContentTime"] = tm(acq)
        if "num" in tag_kinds:
            tags["AcquisitionNumber"] = t + 3
        if "trigger" in tag_kinds:
            tags["TriggerTime"] = f"{(times[t] + z * slice_offset) * 1000:.3f}"
        write_slice(
            folder / f"F{k:05d}.dcm",
            pixels[t, z],
            positions[z],
            orient,
            series_uid="4.4",
            tags=tags,
            slope=slope,
            intercept=intercept,
        )
    return pixels, positions, times


# ----------------------------------------------------------------------------- 3D volumes


def test_sorted_by_position_with_rescale_and_spacing(tmp_path):
    pixels, positions, orient = make_series(tmp_path, slope=0.5, intercept=-1024.0)
    s = read_dicom_series(tmp_path)
    assert isinstance(s, Image) and DicomSeries is Image
    # (X, Y, Z) = (columns, rows, slices)
    assert s.data.shape == (7, 5, 6) and s.data.dtype == np.float32 and s.rescaled
    assert s.stored_dtype == np.uint16 and s.dt is None
    np.testing.assert_array_equal(s.data, pixels.transpose(2, 1, 0).astype(np.float32) * 0.5 - 1024)
    assert s.spacing == pytest.approx((0.6, 0.8, 2.5), abs=1e-5)
    # every corner voxel lands where the DICOM equation puts it, in RAS+ mm
    for x in (0, 6):
        for y in (0, 4):
            for z in (0, 5):
                expect = ras_of_pixel(positions[z], orient, (0.8, 0.6), y, x)
                np.testing.assert_allclose(s.world([x, y, z]), expect, atol=1e-4)
                np.testing.assert_allclose((s.affine @ [x, y, z, 1])[:3], expect, atol=1e-4)
    assert [f.name for f in s.files] != sorted(f.name for f in s.files)  # order came from positions


def test_dicom_and_nifti_of_the_same_volume_agree(tmp_path):
    """An oblique series and the same volume written as NIfTI (by nibabel) read identically."""
    dcm = tmp_path / "dcm"
    dcm.mkdir()
    pixels, positions, orient = make_series(dcm, n=5, seed=11, dz=3.0, shape=(6, 8))
    # the NIfTI is built from the DICOM equation, independently of the reader
    affine = np.eye(4)
    affine[:3, 3] = ras_of_pixel(positions[0], orient, (0.8, 0.6), 0, 0)
    affine[:3, 0] = ras_of_pixel(positions[0], orient, (0.8, 0.6), 0, 1) - affine[:3, 3]
    affine[:3, 1] = ras_of_pixel(positions[0], orient, (0.8, 0.6), 1, 0) - affine[:3, 3]
    affine[:3, 2] = ras_of_pixel(positions[1], orient, (0.8, 0.6), 0, 0) - affine[:3, 3]
    nii = tmp_path / "same.nii.gz"
    nib.save(nib.Nifti1Image(pixels.transpose(2, 1, 0), affine), nii)
    a, b = read_image(dcm), read_image(nii)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_allclose(a.affine, b.affine, atol=1e-4)
    assert a.spacing == pytest.approx(b.spacing, abs=1e-4)
    corners = np.array([[x, y, z] for x in (0, 7) for y in (0, 5) for z in (0, 4)])
    np.testing.assert_allclose(a.world(corners), b.world(corners), atol=1e-3)
    # and our own NIfTI writer round-trips the DICOM record
    out = tmp_path / "back.nii"
    write_image(out, a)
    c = read_image(out)
    np.testing.assert_array_equal(c.data, a.data)
    np.testing.assert_allclose(c.affine, a.affine, atol=1e-5)


def test_no_rescale_keeps_dtype_and_skips_non_dicom(tmp_path):
    pixels, _, _ = make_series(tmp_path, n=3, seed=3)
    (tmp_path / "README").write_text("not dicom\n")
    (tmp_path / ".DS_Store").write_bytes(b"\0\1")
    (tmp_path / "sub").mkdir()
    s = read_dicom_series(tmp_path)
    assert s.data.dtype == np.uint16 and not s.rescaled
    np.testing.assert_array_equal(s.data, pixels.transpose(2, 1, 0))
    assert [p.name for p in s.skipped] == ["README"]


def test_fifo_in_folder_is_skipped_without_blocking(tmp_path):
    import os

    pixels, _, _ = make_series(tmp_path, n=2, seed=13)
    os.mkfifo(tmp_path / "pipe.dcm")
    s = read_dicom(tmp_path)  # would block forever if the FIFO were opened
    np.testing.assert_array_equal(s.data, pixels.transpose(2, 1, 0))
    with pytest.raises(MedsharedError, match=r"pipe\.dcm: is a FIFO"):
        read_dicom(tmp_path / "pipe.dcm")


def test_dicomdir_is_skipped(tmp_path):
    make_series(tmp_path, n=3, seed=4)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"  # Media Storage Directory
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("DICOMDIR", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.FileSetID = "TEST"
    if int(pydicom.__version__.split(".")[0]) < 3:  # pragma: no cover
        ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.save_as(str(tmp_path / "DICOMDIR"))
    s = read_dicom_series(tmp_path)
    assert s.data.shape[2] == 3 and [p.name for p in s.skipped] == ["DICOMDIR"]


def test_signed_pixels_and_single_slice(tmp_path):
    px = np.array([[-5, 7], [300, -1000]], np.int16)
    write_slice(
        tmp_path / "one.dcm", px, [0, 0, 0], [1, 0, 0, 0, 1, 0], series_uid="9", intercept=10
    )
    s = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(s.data[:, :, 0], px.T.astype(np.float32) + 10)
    assert s.spacing == (0.6, 0.8, 1.0)  # single slice: SliceThickness
    # the file alone reads the same
    np.testing.assert_array_equal(read_image(tmp_path / "one.dcm").data, s.data)


def test_nibabel_wheel_dicom_pair(tmp_path):
    # two real slices shipped in nibabel's test data (same series, 3 mm apart along z)
    for name in ("1.dcm", "0.dcm"):
        shutil.copy(NIB_DATA / name, tmp_path / f"slice_{name}")
    s = read_dicom_series(tmp_path)
    a, b = (pydicom.dcmread(NIB_DATA / n) for n in ("0.dcm", "1.dcm"))
    orient = np.array([float(v) for v in a.ImageOrientationPatient])
    normal = np.cross(orient[:3], orient[3:])
    pa, pb = (np.array([float(v) for v in d.ImagePositionPatient]) for d in (a, b))
    assert s.spacing[2] == pytest.approx(abs((pb - pa) @ normal))
    first, second = (a, b) if pa @ normal < pb @ normal else (b, a)
    np.testing.assert_array_equal(s.data[:, :, 0], first.pixel_array.T)
    np.testing.assert_array_equal(s.data[:, :, 1], second.pixel_array.T)
    spacing = [float(v) for v in a.PixelSpacing]
    assert s.spacing[:2] == pytest.approx(spacing[::-1])
    pos = np.array([float(v) for v in first.ImagePositionPatient])
    np.testing.assert_allclose(s.world([3, 5, 0]), ras_of_pixel(pos, orient, spacing, 5, 3))


def test_series_uid_selects_one(tmp_path):
    px1, _, _ = make_series(tmp_path, n=3, seed=5, series_uid="1.1")
    for f in tmp_path.iterdir():
        f.rename(tmp_path / f"a_{f.name}")
    make_series(tmp_path, n=4, seed=6, series_uid="2.2")
    with pytest.raises(
        MedsharedError, match=r"mixed series \(1\.1 \(3 files\), 2\.2 \(4 files\)\)"
    ):
        read_dicom_series(tmp_path)
    s = read_dicom_series(tmp_path, series_uid="1.1")
    np.testing.assert_array_equal(s.data, px1.transpose(2, 1, 0))
    with pytest.raises(MedsharedError, match="no series '3.3'"):
        read_dicom_series(tmp_path, series_uid="3.3")


PYDICOM_DATA = Path(pydicom.__file__).parent / "data" / "test_files"  # never downloaded


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_RLE.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
        "MR_small_expb.dcm",
        "MR_small_padded.dcm",
    ],
)
def test_pydicom_wheel_files_in_every_transfer_syntax_read_alike(name):
    if not (PYDICOM_DATA / name).exists():
        pytest.skip(f"pydicom wheel lacks {name}")
    ref_ds = pydicom.dcmread(PYDICOM_DATA / "MR_small.dcm")
    ref = read_image(PYDICOM_DATA / "MR_small.dcm")
    img = read_image(PYDICOM_DATA / name)
    np.testing.assert_array_equal(ref.data[:, :, 0], ref_ds.pixel_array.T)
    np.testing.assert_array_equal(img.data, ref.data)
    np.testing.assert_allclose(img.affine, ref.affine)


def test_rt_dose_multiframe_grid_and_scaling():
    f = PYDICOM_DATA / "rtdose.dcm"
    if not f.exists():
        pytest.skip("pydicom wheel lacks rtdose.dcm")
    ds = pydicom.dcmread(f)
    img = read_image(f)
    offsets = np.array([float(v) for v in ds.GridFrameOffsetVector])
    assert img.shape == (ds.Columns, ds.Rows, len(offsets))
    assert img.spacing[2] == pytest.approx(np.diff(offsets).mean())
    dose = ds.pixel_array.astype(np.float64) * float(ds.DoseGridScaling)  # (frames, rows, cols)
    np.testing.assert_allclose(img.data, dose.transpose(2, 1, 0), rtol=1e-6)


# ----------------------------------------------------------------------------- 4D series


@pytest.mark.parametrize(
    "kinds, key, time_tag",
    [
        (("tpi", "acq"), "TemporalPositionIdentifier", "AcquisitionTime"),
        (("acq",), "AcquisitionTime", "AcquisitionTime"),
        (("content",), "ContentTime", "ContentTime"),
        (("num", "trigger"), "TriggerTime", "TriggerTime"),
        (("num",), "AcquisitionNumber", None),
        (("tpi",), "TemporalPositionIdentifier", None),
    ],
)
def test_4d_series_grouped_by_whichever_tag_it_carries(tmp_path, kinds, key, time_tag):
    pixels, positions, times = make_4d(tmp_path, tag_kinds=kinds, seed=len(kinds))
    img = read_image(tmp_path)
    assert img.shape == (5, 4, 3, 4)  # (X=cols, Y=rows, Z, T)
    np.testing.assert_array_equal(img.data, pixels.transpose(3, 2, 1, 0))
    assert img.temporal_key == key and img.time_tag == time_tag
    if time_tag is None:
        assert img.dt is None and img.frame_times is None
    else:
        assert img.dt == pytest.approx(1.5, abs=1e-5)
        np.testing.assert_allclose(img.frame_times, times, atol=1e-5)
    assert img.spacing == pytest.approx((0.6, 0.8, 4.0))
    np.testing.assert_allclose(
        img.world([2, 1, 2]),
        ras_of_pixel(positions[2], [1, 0, 0, 0, 1, 0], (0.8, 0.6), 1, 2),
        atol=1e-5,
    )
    assert img.files[2][1].name.endswith(".dcm")  # files[t][z]


def test_4d_series_matches_nifti_path(tmp_path):
    dcm = tmp_path / "ctp"
    dcm.mkdir()
    make_4d(dcm, n_z=2, n_t=5, orient=_rotation(3)[:, :2].T.ravel(), slope=1.0, intercept=-1024)
    img = read_image(dcm)
    out = tmp_path / "ctp.nii.gz"
    write_image(out, img)
    back = read_image(out)
    np.testing.assert_array_equal(back.data, img.data)
    np.testing.assert_allclose(back.affine, img.affine, atol=1e-5)
    assert back.dt == pytest.approx(img.dt) and back.spacing == pytest.approx(img.spacing)
    assert img.data.min() < 0  # the rescale was applied (HU)


def test_4d_missing_tag_in_one_file_falls_back_to_the_next_key(tmp_path):
    pixels, _, _ = make_4d(tmp_path, tag_kinds=("tpi", "acq"), seed=5)
    f = sorted(tmp_path.iterdir())[3]
    ds = pydicom.dcmread(f)
    del ds.TemporalPositionIdentifier
    ds.save_as(str(f))
    img = read_dicom(tmp_path)
    assert img.temporal_key == "AcquisitionTime"
    np.testing.assert_array_equal(img.data, pixels.transpose(3, 2, 1, 0))


def test_4d_missing_file_and_no_temporal_tag(tmp_path):
    make_4d(tmp_path, tag_kinds=("tpi", "acq"), seed=6)
    sorted(tmp_path.iterdir())[0].unlink()
    with pytest.raises(MedsharedError, match=r"has 3 image\(s\), other slices 4; a time point"):
        read_dicom(tmp_path)
    other = tmp_path / "none"
    other.mkdir()
    make_4d(other, tag_kinds=(), seed=7)
    with pytest.raises(MedsharedError, match="duplicate slice position .*no tag tells them apart"):
        read_dicom(other)


def test_4d_irregular_timing_refused_or_resampled(tmp_path):
    times = [0.0, 1.0, 2.0, 3.0, 4.5, 6.0]
    _, _, _ = make_4d(tmp_path, n_t=6, times=times, slice_offset=0.25, tag_kinds=("acq",))
    with pytest.raises(MedsharedError, match=r"irregular frame intervals 1..1.5 s .*resample"):
        read_dicom(tmp_path)
    # a signal linear in time is resampled exactly: overwrite pixels with v = 100 + 10 * t
    for f in tmp_path.iterdir():
        ds = pydicom.dcmread(f)
        z = int(round((float(ds.ImagePositionPatient[2]) - 5.0) / 4.0))
        t_acq = float(ds.AcquisitionTime[:2]) * 3600 + float(ds.AcquisitionTime[2:4]) * 60
        t_acq += float(ds.AcquisitionTime[4:]) - 10 * 3600.0
        ds.PixelData = np.full((4, 5), 100 + 10 * t_acq, np.uint16).tobytes()
        ds.save_as(str(f))
        assert 0 <= z < 3
    img = read_dicom(tmp_path, resample=True)
    assert img.resampled and img.dt == pytest.approx(1.0, abs=1e-6)  # median interval
    assert img.shape[-1] == 7  # 0, 1, ..., 6 s
    np.testing.assert_allclose(img.frame_times, np.arange(7) * 1.0, atol=1e-9)
    # slice z starts 0.25 z s later: its values carry that offset, on a uniform grid
    for z in range(3):
        expect = 100 + 10 * (z * 0.25 + np.arange(7) * 1.0)
        np.testing.assert_allclose(img.data[0, 0, z], expect, atol=0.6)  # uint16 rounding
    fine = read_dicom(tmp_path, resample=True, resample_dt=0.5)
    assert fine.dt == 0.5 and fine.shape[-1] == 13
    assert read_dicom(tmp_path, dt_tolerance=0.6).dt == pytest.approx(1.0)  # tolerated


def test_4d_time_crossing_midnight(tmp_path):
    pixels, _, _ = make_4d(tmp_path, tag_kinds=("acq",), start=86400.0 - 2.0, seed=8)
    img = read_dicom(tmp_path)
    np.testing.assert_array_equal(img.data, pixels.transpose(3, 2, 1, 0))
    assert img.dt == pytest.approx(1.5, abs=1e-5)


# ----------------------------------------------------------------------------- multi-frame


def write_enhanced(path: Path, pixels, positions, orient, times, *, seed=0, slope=2.0):
    """One enhanced (multi-frame) CT file: pixels (T, Z, rows, cols), frames in shuffled order."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    rng = np.random.default_rng(seed)
    n_t, n_z, rows, cols = pixels.shape
    order = rng.permutation(n_t * n_z)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"  # Enhanced CT Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = "7.7"
    ds.Modality = "CT"
    ds.Rows, ds.Columns = rows, cols
    ds.NumberOfFrames = n_t * n_z
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    shared = Dataset()
    po, pm, pv = Dataset(), Dataset(), Dataset()
    po.ImageOrientationPatient = [f"{v:.8f}" for v in orient]
    pm.PixelSpacing = ["0.8", "0.6"]
    pm.SliceThickness = "4.0"
    pv.RescaleSlope, pv.RescaleIntercept, pv.RescaleType = f"{slope}", "-1000", "HU"
    shared.PlaneOrientationSequence = Sequence([po])
    shared.PixelMeasuresSequence = Sequence([pm])
    shared.PixelValueTransformationSequence = Sequence([pv])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    items, frames = [], []
    for j in order:
        t, z = divmod(int(j), n_z)
        item, pp, fc = Dataset(), Dataset(), Dataset()
        pp.ImagePositionPatient = [f"{v:.6f}" for v in positions[z]]
        fc.TemporalPositionIndex = t + 1
        fc.FrameAcquisitionDateTime = "20260301" + tm(9 * 3600.0 + times[t] + 0.05 * z)
        item.PlanePositionSequence = Sequence([pp])
        item.FrameContentSequence = Sequence([fc])
        items.append(item)
        frames.append(pixels[t, z])
    ds.PerFrameFunctionalGroupsSequence = Sequence(items)
    ds.PixelData = np.stack(frames).astype(np.uint16).tobytes()
    if int(pydicom.__version__.split(".")[0]) < 3:  # pragma: no cover
        ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.save_as(str(path))


def test_enhanced_multiframe_matches_single_frame_folder(tmp_path):
    folder = tmp_path / "single"
    folder.mkdir()
    orient = _rotation(9)[:, :2].T.ravel()
    pixels, positions, times = make_4d(
        folder, orient=orient, slice_offset=0.05, slope=2.0, intercept=-1000, seed=9
    )
    # give the single-frame files the same AcquisitionTime base date-free: compare data/geometry
    enhanced = tmp_path / "enhanced.dcm"
    write_enhanced(enhanced, pixels, positions, orient, times, seed=1)
    a, b = read_image(folder), read_image(enhanced)
    assert b.temporal_key == "TemporalPositionIndex" and b.time_tag == "AcquisitionDateTime"
    np.testing.assert_array_equal(b.data, a.data)
    np.testing.assert_allclose(b.affine, a.affine, atol=1e-5)
    assert b.dt == pytest.approx(a.dt, abs=1e-4) and b.spacing == pytest.approx(a.spacing)
    # the enhanced file inside a folder reads the same way
    other = tmp_path / "folder_with_enhanced"
    other.mkdir()
    shutil.copy(enhanced, other / "E1")
    np.testing.assert_array_equal(read_image(other).data, a.data)


def test_enhanced_3d_volume(tmp_path):
    orient = [1, 0, 0, 0, 0, -1]  # coronal
    normal = np.cross(orient[:3], orient[3:])
    positions = np.array([0.0, 0.0, 0.0]) + np.arange(4)[:, None] * 2.0 * normal
    pixels = np.random.default_rng(2).integers(0, 500, (1, 4, 3, 5)).astype(np.uint16)
    write_enhanced(tmp_path / "vol.dcm", pixels, positions, orient, [0.0], slope=1.0)
    img = read_image(tmp_path / "vol.dcm")
    assert img.shape == (5, 3, 4) and img.dt is None
    np.testing.assert_array_equal(img.data, pixels[0].transpose(2, 1, 0) - 1000.0)
    np.testing.assert_allclose(
        img.world([4, 2, 3]), ras_of_pixel(positions[3], orient, (0.8, 0.6), 2, 4), atol=1e-5
    )


def test_cine_multiframe_with_frame_time(tmp_path):
    frames = np.random.default_rng(3).integers(0, 900, (5, 3, 4)).astype(np.uint16)
    write_slice(
        tmp_path / "cine.dcm",
        frames[0],
        [1, 2, 3],
        [1, 0, 0, 0, 1, 0],
        series_uid="5",
        tags={"NumberOfFrames": 5, "FrameTime": "40", "PixelData": frames.tobytes()},
    )
    img = read_image(tmp_path / "cine.dcm")
    assert img.shape == (4, 3, 1, 5) and img.temporal_key == "FrameIndex"
    assert img.dt == pytest.approx(0.04)
    np.testing.assert_array_equal(img.data[:, :, 0, :], frames.transpose(2, 1, 0))


# ----------------------------------------------------------------------------- errors


def test_missing_and_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        read_dicom_series(tmp_path / "absent")
    with pytest.raises(MedsharedError, match="no such file or folder"):
        read_image(tmp_path / "absent")
    with pytest.raises(MedsharedError, match="no DICOM image files found"):
        read_dicom_series(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(MedsharedError, match=r"no DICOM image files found \(1 non-image"):
        read_dicom_series(tmp_path)
    with pytest.raises(MedsharedError, match="not a folder"):
        read_dicom_series(tmp_path / "notes.txt")


@pytest.mark.parametrize("tag", ["ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"])
@pytest.mark.parametrize("which", [0, 2])
def test_missing_position_tags(tmp_path, tag, which):
    make_series(tmp_path, n=3, seed=7)
    f = sorted(tmp_path.iterdir())[which]  # the first file read, and a later one
    ds = pydicom.dcmread(f)
    delattr(ds, tag)
    ds.save_as(str(f))
    with pytest.raises(MedsharedError, match=f"{f.name}: missing {tag} tag"):
        read_dicom_series(tmp_path)


def test_duplicate_and_irregular_positions(tmp_path):
    orient = [1, 0, 0, 0, 1, 0]
    px = np.zeros((3, 3), np.uint16)
    for i, z in enumerate([0.0, 2.0, 2.0]):
        write_slice(tmp_path / f"d{i}", px, [0, 0, z], orient, series_uid="1")
    with pytest.raises(MedsharedError, match=r"has 1 image\(s\), other slices 2"):
        read_dicom_series(tmp_path)
    (tmp_path / "d2").unlink()
    write_slice(tmp_path / "d2", px, [0, 0, 7.0], orient, series_uid="1")
    with pytest.raises(MedsharedError, match="irregular slice gaps"):
        read_dicom_series(tmp_path)


def test_inconsistent_orientation_and_size(tmp_path):
    px = np.zeros((3, 3), np.uint16)
    write_slice(tmp_path / "a", px, [0, 0, 0], [1, 0, 0, 0, 1, 0], series_uid="1")
    write_slice(tmp_path / "b", px, [0, 0, 1], [0, 1, 0, 1, 0, 0], series_uid="1")
    with pytest.raises(MedsharedError, match="b: ImageOrientationPatient differs"):
        read_dicom_series(tmp_path)
    write_slice(
        tmp_path / "b", np.zeros((3, 4), np.uint16), [0, 0, 1], [1, 0, 0, 0, 1, 0], series_uid="1"
    )
    with pytest.raises(MedsharedError, match="b: image size differs"):
        read_dicom_series(tmp_path)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.8, 0.97])
def test_truncated_dicom(tmp_path, keep):
    make_series(tmp_path, n=3, seed=8)
    f = sorted(tmp_path.iterdir())[1]
    data = f.read_bytes()
    f.write_bytes(data[: int(len(data) * keep)])  # cut in the header, the tags or the pixels
    with pytest.raises(MedsharedError, match=rf"{f.name}: .*(truncated|corrupt|pixel data)"):
        read_dicom_series(tmp_path)


def test_header_claiming_huge_image_is_refused_without_allocating(tmp_path):
    import time
    import tracemalloc

    px = np.zeros((4, 4), np.uint16)
    write_slice(
        tmp_path / "big.dcm",
        px,
        [0, 0, 0],
        [1, 0, 0, 0, 1, 0],
        series_uid="1",
        tags={"NumberOfFrames": 1},
    )
    ds = pydicom.dcmread(tmp_path / "big.dcm")
    ds.Rows, ds.Columns = 65535, 65535  # claims 8 GiB of pixels in a 1 KB file
    ds.save_as(str(tmp_path / "big.dcm"))
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(MedsharedError, match=r"big\.dcm: truncated .*65535 x 65535 x 1 needs"):
        read_image(tmp_path / "big.dcm")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert time.perf_counter() - t0 < 1.0 and peak < 50e6


def test_volume_larger_than_memory_is_refused(tmp_path, monkeypatch):
    import medshared.io._limits as limits

    make_series(tmp_path, n=3, seed=12)
    monkeypatch.setattr(limits, "available_memory", lambda: 100)  # bytes
    with pytest.raises(AllocationError, match=r"DICOM pixel data .* needs .*available"):
        read_dicom(tmp_path)


def test_dcm_named_garbage_is_an_error(tmp_path):
    make_series(tmp_path, n=2, seed=9)
    (tmp_path / "x.dcm").write_bytes(b"\0" * 50)  # cut inside the preamble
    with pytest.raises(MedsharedError, match=r"x\.dcm: not valid DICOM"):
        read_dicom_series(tmp_path)


def test_missing_extra(monkeypatch, tmp_path):
    import medshared.io.dicom as mod

    def fail(module, extra, package="medshared"):
        raise MissingExtraError(f'install it with: pip install "medshared[{extra}]"')

    monkeypatch.setattr(mod, "require", fail)
    with pytest.raises(MissingExtraError, match=r"medshared\[dicom\]"):
        read_dicom_series(tmp_path)
