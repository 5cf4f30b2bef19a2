"""medshared.io.dicom: synthetic series (shuffled files, oblique orientation, rescale) and errors."""

from __future__ import annotations

import importlib.resources
import shutil
from pathlib import Path

import numpy as np
import pytest

from medshared.errors import MedsharedError, MissingExtraError
from medshared.io import DicomSeries, read_dicom_series

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
    for tag in drop:
        delattr(ds, tag)
    if int(pydicom.__version__.split(".")[0]) < 3:  # pragma: no cover - pydicom 2.x
        ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.save_as(str(path))


def make_series(
    folder: Path, n: int = 6, *, seed: int = 0, dz: float = 2.5, shape=(5, 7), **kw
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Write n slices of an oblique series in shuffled file order.

    Returns the (n, Y, X) stored pixels in true slice order, the positions and the orientation.
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


def test_sorted_by_position_with_rescale_and_spacing(tmp_path):
    pixels, positions, orient = make_series(tmp_path, slope=0.5, intercept=-1024.0)
    s = read_dicom_series(tmp_path)
    assert isinstance(s, DicomSeries)
    assert s.data.shape == (6, 5, 7) and s.data.dtype == np.float32 and s.rescaled
    assert s.stored_dtype == np.uint16
    np.testing.assert_array_equal(s.data, pixels.astype(np.float32) * 0.5 - 1024.0)
    assert s.spacing == pytest.approx((2.5, 0.8, 0.6), abs=1e-5)
    # affine maps voxel (z, y, x) to the patient position of that pixel
    row, col = orient[:3], orient[3:]
    z, y, x = 4, 3, 2
    expect = positions[z] + y * 0.8 * col + x * 0.6 * row
    np.testing.assert_allclose((s.affine @ [z, y, x, 1])[:3], expect, atol=1e-4)
    assert [f.name for f in s.files] != sorted(f.name for f in s.files)  # order came from positions


def test_no_rescale_keeps_dtype_and_skips_non_dicom(tmp_path):
    pixels, _, _ = make_series(tmp_path, n=3, seed=3)
    (tmp_path / "README").write_text("not dicom\n")
    (tmp_path / ".DS_Store").write_bytes(b"\0\1")
    (tmp_path / "sub").mkdir()
    s = read_dicom_series(tmp_path)
    assert s.data.dtype == np.uint16 and not s.rescaled
    np.testing.assert_array_equal(s.data, pixels)
    assert [p.name for p in s.skipped] == ["README"]


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
    assert s.data.shape[0] == 3 and [p.name for p in s.skipped] == ["DICOMDIR"]


def test_signed_pixels_and_single_slice(tmp_path):
    px = np.array([[-5, 7], [300, -1000]], np.int16)
    write_slice(
        tmp_path / "one.dcm", px, [0, 0, 0], [1, 0, 0, 0, 1, 0], series_uid="9", intercept=10
    )
    s = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(s.data[0], px.astype(np.float32) + 10)
    assert s.spacing == (1.0, 0.8, 0.6)  # single slice: SliceThickness


def test_nibabel_wheel_dicom_pair(tmp_path):
    # two real slices shipped in nibabel's test data (same series, 3 mm apart along z)
    for name in ("1.dcm", "0.dcm"):
        shutil.copy(NIB_DATA / name, tmp_path / f"slice_{name}")
    s = read_dicom_series(tmp_path)
    a, b = (pydicom.dcmread(NIB_DATA / n) for n in ("0.dcm", "1.dcm"))
    orient = np.array([float(v) for v in a.ImageOrientationPatient])
    normal = np.cross(orient[:3], orient[3:])
    pa, pb = (np.array([float(v) for v in d.ImagePositionPatient]) for d in (a, b))
    assert s.spacing[0] == pytest.approx(abs((pb - pa) @ normal))
    first, second = (a, b) if pa @ normal < pb @ normal else (b, a)
    np.testing.assert_array_equal(s.data[0], first.pixel_array)
    np.testing.assert_array_equal(s.data[1], second.pixel_array)
    assert s.spacing[1:] == pytest.approx([float(v) for v in a.PixelSpacing])


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
    np.testing.assert_array_equal(s.data, px1)
    with pytest.raises(MedsharedError, match="no series '3.3'"):
        read_dicom_series(tmp_path, series_uid="3.3")


# ----------------------------------------------------------------------------- errors


def test_missing_and_empty_folder(tmp_path):
    with pytest.raises(MedsharedError, match="no such folder"):
        read_dicom_series(tmp_path / "absent")
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
    with pytest.raises(MedsharedError, match="duplicate slice position"):
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
