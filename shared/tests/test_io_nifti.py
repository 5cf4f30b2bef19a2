"""medshared.io.nifti: round trips (synthetic and wheel-shipped files) and every error path."""

from __future__ import annotations

import gzip
import importlib.resources
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medshared.errors import MedsharedError
from medshared.io import NiftiImage, read_nifti, write_nifti

NIB_DATA = Path(str(importlib.resources.files("nibabel") / "tests" / "data"))


def _dipy_file(name: str) -> Path:
    pytest.importorskip("dipy")
    return Path(str(importlib.resources.files("dipy") / "data" / "files" / name))


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize(
    "dtype",
    [
        np.uint8,
        np.int8,
        np.int16,
        np.uint16,
        np.int32,
        np.int64,
        np.float32,
        np.float64,
        np.complex64,
    ],
)
def test_roundtrip_keeps_dtype_affine_zooms(tmp_path, suffix, dtype):
    rng = np.random.default_rng(0)
    data = (rng.random((5, 6, 7)) * 100 - (0 if np.dtype(dtype).kind == "u" else 50)).astype(dtype)
    affine = np.array([[0, 0, 2.5, -10], [-1.5, 0, 0, 20], [0, 3.0, 0, 5], [0, 0, 0, 1]], float)
    out = tmp_path / f"vol{suffix}"
    write_nifti(out, data, affine)
    img = read_nifti(out, ndim=3)
    assert img.data.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(img.data, data)
    np.testing.assert_allclose(img.affine, affine, atol=1e-6)
    np.testing.assert_allclose(img.zooms, (1.5, 3.0, 2.5), rtol=1e-6)
    assert img.path == out
    # compressed files are really gzip, plain ones are not
    assert (out.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".nii.gz")


def test_4d_time_axis_in_seconds_and_ms_conversion(tmp_path):
    data = np.arange(3 * 4 * 5 * 6, dtype=np.float32).reshape(3, 4, 5, 6)
    out = tmp_path / "series.nii.gz"
    write_nifti(out, data, zooms=(2.0, 2.0, 3.0, 0.75))
    img = read_nifti(out, ndim=(3, 4))
    assert img.data.shape == (3, 4, 5, 6)
    np.testing.assert_array_equal(img.data[..., 4], data[..., 4])  # last axis is time
    assert img.zooms == pytest.approx((2.0, 2.0, 3.0, 0.75))
    np.testing.assert_allclose(np.diag(img.affine), [2.0, 2.0, 3.0, 1.0])
    # a header in milliseconds is converted to seconds on read
    raw = nib.Nifti1Image(data, np.eye(4))
    raw.header.set_zooms((1.0, 1.0, 1.0, 1500.0))
    raw.header.set_xyzt_units("mm", "msec")
    ms = tmp_path / "ms.nii"
    nib.save(raw, ms)
    assert read_nifti(ms).zooms[3] == pytest.approx(1.5)


def test_header_template_and_bool_and_nifti2(tmp_path):
    ref = read_nifti(NIB_DATA / "example_nifti2.nii.gz")
    assert isinstance(ref.header, nib.Nifti2Header)
    out = tmp_path / "copy.nii"
    write_nifti(out, ref.data, header=ref.header)  # affine taken from the header
    back = read_nifti(out)
    assert isinstance(back.header, nib.Nifti2Header)
    np.testing.assert_array_equal(back.data, ref.data)
    np.testing.assert_allclose(back.affine, ref.affine)
    assert back.zooms == pytest.approx(ref.zooms)
    mask = tmp_path / "mask.nii.gz"
    write_nifti(mask, np.eye(4, dtype=bool)[:, :, None])
    got = read_nifti(mask).data
    assert got.dtype == np.uint8 and got.sum() == 4


@pytest.mark.parametrize(
    "name", ["example4d.nii.gz", "example_nifti2.nii.gz", "standard.nii.gz", "anatomical.nii"]
)
def test_nibabel_wheel_files_roundtrip(tmp_path, name):
    src = NIB_DATA / name
    ref = nib.load(src)
    img = read_nifti(src)
    # on-disk dtype in native byte order; the stored one (byte order included) is in meta
    assert img.data.dtype == ref.get_data_dtype().newbyteorder("=")
    assert img.meta["stored_dtype"] == ref.get_data_dtype()
    np.testing.assert_array_equal(img.data, np.asarray(ref.dataobj))
    np.testing.assert_array_equal(img.affine, ref.affine)
    out = tmp_path / name
    write_nifti(out, img.data, img.affine, header=img.header)
    back = read_nifti(out)
    np.testing.assert_array_equal(back.data, img.data)
    assert back.data.dtype == img.data.dtype
    np.testing.assert_allclose(back.affine, img.affine, atol=1e-5)
    assert back.zooms == pytest.approx(img.zooms, rel=1e-6)


def test_scaled_file_applies_slope(tmp_path):
    # functional.nii has scl_slope/scl_inter: data come back scaled (float), as nibabel's get_fdata
    src = NIB_DATA / "functional.nii"
    img = read_nifti(src, ndim=4)
    assert img.data.dtype.kind == "f"
    np.testing.assert_allclose(img.data, nib.load(src).get_fdata())
    out = tmp_path / "f.nii.gz"
    write_nifti(out, img.data, header=img.header)
    np.testing.assert_allclose(read_nifti(out).data, img.data, rtol=1e-12)


@pytest.mark.parametrize("name", ["S0_10slices.nii.gz", "small_64D.nii", "aniso_vox.nii.gz"])
def test_dipy_wheel_files_roundtrip(tmp_path, name):
    src = _dipy_file(name)
    img = read_nifti(src)
    np.testing.assert_array_equal(img.data, np.asarray(nib.load(src).dataobj))
    assert img.zooms == pytest.approx(tuple(float(z) for z in nib.load(src).header.get_zooms()))
    out = tmp_path / "x.nii.gz"
    write_nifti(out, img.data, img.affine, zooms=img.zooms)
    back = read_nifti(out)
    assert back.data.dtype == img.data.dtype
    np.testing.assert_array_equal(back.data, img.data)
    np.testing.assert_allclose(back.affine, img.affine, atol=1e-5)
    assert back.zooms == pytest.approx(img.zooms, rel=1e-6)


# ----------------------------------------------------------------------------- errors


def test_missing_file(tmp_path):
    with pytest.raises(MedsharedError, match=r"nope\.nii\.gz: no such file"):
        read_nifti(tmp_path / "nope.nii.gz")


@pytest.mark.parametrize("name", ["vol.nii.bz2", "vol.img", "vol.npy", "vol"])
def test_wrong_extension(tmp_path, name):
    f = tmp_path / name
    f.write_bytes(b"x")
    with pytest.raises(MedsharedError, match=f"{name}: wrong extension"):
        read_nifti(f)
    with pytest.raises(MedsharedError, match="wrong extension"):
        write_nifti(f, np.zeros((2, 2, 2)))


def test_truncated_gz(tmp_path):
    good = tmp_path / "good.nii.gz"
    write_nifti(good, np.random.default_rng(1).random((20, 20, 20)))
    bad = tmp_path / "cut.nii.gz"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(MedsharedError, match=r"cut\.nii\.gz: cannot read, file is corrupt"):
        read_nifti(bad)


def test_truncated_plain_nii(tmp_path):
    good = tmp_path / "good.nii"
    write_nifti(good, np.ones((10, 10, 10), np.float32))
    bad = tmp_path / "cut.nii"
    bad.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(MedsharedError, match=r"cut\.nii: truncated .*holds 1000 bytes"):
        read_nifti(bad)


def test_gzip_garbage_and_not_gzip(tmp_path):
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(gzip.compress(b"this is not a nifti header" * 20))
    with pytest.raises(MedsharedError, match=r"junk\.nii\.gz: cannot read"):
        read_nifti(junk)
    raw = tmp_path / "raw.nii.gz"
    raw.write_bytes(b"\x00\x01garbage that is not gzip")
    with pytest.raises(MedsharedError, match=r"raw\.nii\.gz: cannot read"):
        read_nifti(raw)


def test_wrong_ndim(tmp_path):
    f = tmp_path / "v.nii"
    write_nifti(f, np.zeros((2, 3, 4, 5), np.float32))
    with pytest.raises(MedsharedError, match=r"v\.nii: expected ndim=3, got ndim=4 \(shape"):
        read_nifti(f, ndim=3)
    with pytest.raises(MedsharedError, match="expected ndim=2 or 3"):
        read_nifti(f, ndim=(2, 3))
    assert read_nifti(f, ndim=4).data.shape == (2, 3, 4, 5)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite(tmp_path, bad):
    data = np.zeros((3, 3, 3), np.float32)
    data[1, 2, 0] = bad
    f = tmp_path / "nan.nii.gz"
    write_nifti(f, data)
    assert np.isnan(read_nifti(f).data[1, 2, 0]) == np.isnan(bad)  # allowed by default
    with pytest.raises(MedsharedError, match=r"nan\.nii\.gz: 1 non-finite value"):
        read_nifti(f, allow_nonfinite=False)


def test_write_unsupported_dtype_leaves_nothing(tmp_path):
    f = tmp_path / "h.nii.gz"
    with pytest.raises(MedsharedError, match="float16"):
        write_nifti(f, np.zeros((2, 2, 2), np.float16))
    assert _files(tmp_path) == []
    with pytest.raises(MedsharedError, match="ndim=1"):
        write_nifti(f, np.zeros(5))
    with pytest.raises(MedsharedError, match="does not exist"):
        write_nifti(tmp_path / "no" / "x.nii", np.zeros((2, 2, 2)))


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    f = tmp_path / "keep.nii.gz"
    write_nifti(f, np.full((4, 4, 4), 7, np.int16))
    before = f.read_bytes()

    def half_write(img, filename):
        Path(filename).write_bytes(b"\x1f\x8bpartial")
        raise OSError("disk full")

    monkeypatch.setattr(nib, "save", half_write)
    with pytest.raises(MedsharedError, match=r"keep\.nii\.gz: cannot write \(disk full\)"):
        write_nifti(f, np.zeros((4, 4, 4), np.int16))
    assert f.read_bytes() == before
    assert _files(tmp_path) == ["keep.nii.gz"]


def test_niftiimage_fields():
    img = read_nifti(NIB_DATA / "example4d.nii.gz")
    assert isinstance(img, NiftiImage)
    assert img.affine.shape == (4, 4) and img.affine.dtype == np.float64
    assert len(img.zooms) == 4 and img.data.shape == (128, 96, 24, 2)


def test_copy_of_wheel_file_is_independent(tmp_path):
    # reading does not keep the file open/mapped: it can be overwritten in place atomically
    f = tmp_path / "a.nii"
    shutil.copy(NIB_DATA / "anatomical.nii", f)
    img = read_nifti(f)
    write_nifti(f, img.data[:2], img.affine)
    assert read_nifti(f).data.shape[0] == 2
    assert img.data.shape == (33, 41, 25)
