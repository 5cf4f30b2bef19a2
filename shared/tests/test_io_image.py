"""medshared.io.image: the one record, read_image dispatch, write_image, error kinds."""

from __future__ import annotations

import logging
import os
import warnings

import nibabel as nib
import numpy as np
import pytest

from medshared.errors import FilePermissionError, MedsharedError, MissingFileError
from medshared.io import Image, NiftiImage, read_image, read_nifti, write_image
from medshared.io._reading import captured_library_messages

OBLIQUE = np.array(
    [[0.0, -1.2, 0.1, 40.0], [1.1, 0.0, 0.0, -30.0], [0.0, 0.2, 2.0, 5.0], [0, 0, 0, 1]]
)


def test_nifti_series_record(tmp_path):
    data = np.random.default_rng(0).integers(0, 100, (4, 5, 6, 7)).astype(np.int16)
    f = tmp_path / "ctp.nii.gz"
    img = nib.Nifti1Image(data, OBLIQUE)
    img.header.set_zooms((1.2, 1.1, 2.0104, 1500.0))
    img.header.set_xyzt_units("mm", "msec")
    nib.save(img, f)
    im = read_image(f)
    assert isinstance(im, Image) and NiftiImage is Image
    np.testing.assert_array_equal(im.data, data)
    assert im.shape == (4, 5, 6, 7) and im.ndim == 4
    assert im.spacing == pytest.approx((1.2, 1.1, 2.0104), rel=1e-6)
    assert im.dt == pytest.approx(1.5)  # ms -> s
    assert im.zooms == pytest.approx((1.2, 1.1, 2.0104, 1.5), rel=1e-6)
    np.testing.assert_allclose(im.world([[1, 2, 3]]), [(OBLIQUE @ [1, 2, 3, 1])[:3]])
    assert im.stored_dtype == np.int16 and im.meta["scaled"] is False  # meta as attributes
    with pytest.raises(AttributeError):
        im.nonexistent  # noqa: B018


def test_write_image_round_trips_record_and_array(tmp_path):
    data = np.random.default_rng(1).normal(size=(3, 4, 5, 6)).astype(np.float32)
    src = tmp_path / "a.nii"
    write_image(src, data, OBLIQUE, dt=2.5)
    a = read_image(src)
    # spacing defaults to the affine's column norms
    assert a.spacing == pytest.approx(tuple(np.sqrt((OBLIQUE[:3, :3] ** 2).sum(0))), rel=1e-6)
    assert a.dt == pytest.approx(2.5)
    out = tmp_path / "b.nii.gz"
    write_image(out, a)
    b = read_image(out)
    np.testing.assert_array_equal(b.data, a.data)
    np.testing.assert_allclose(b.affine, a.affine, atol=1e-6)
    assert b.spacing == pytest.approx(a.spacing) and b.dt == pytest.approx(a.dt)
    write_image(out, a, dt=0.5)  # overrides
    assert read_image(out).dt == pytest.approx(0.5)
    write_image(out, data)  # a series without a known frame interval stays without one
    assert read_image(out).dt is None


def test_read_image_dispatch_and_unsupported(tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(MedsharedError, match=r"x\.txt: unsupported file"):
        read_image(tmp_path / "x.txt")
    with pytest.raises(MedsharedError, match=r"no DICOM image files found"):
        read_image(tmp_path)  # a folder is a DICOM series


def test_missing_file_is_a_file_not_found_error(tmp_path):
    for path in (tmp_path / "absent.nii.gz", tmp_path / "absent_folder"):
        with pytest.raises(MissingFileError) as info:
            read_image(path)
        assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, OSError)
        assert str(path) in str(info.value)
    try:
        read_nifti(tmp_path / "absent.nii")
    except OSError as exc:  # what users expect to write
        assert "absent.nii" in str(exc)


@pytest.mark.timeout(20)
def test_fifo_and_folder_are_not_no_such_file(tmp_path):
    fifo = tmp_path / "pipe.nii.gz"
    os.mkfifo(fifo)
    with pytest.raises(MedsharedError, match=r"pipe\.nii\.gz: is a FIFO") as info:
        read_image(fifo)  # must not block
    assert "no such file" not in str(info.value)
    os.mkfifo(tmp_path / "pipe_without_suffix")
    with pytest.raises(MedsharedError, match="is a FIFO"):
        read_image(tmp_path / "pipe_without_suffix")
    (tmp_path / "dir.nii").mkdir()
    with pytest.raises(MedsharedError, match=r"dir\.nii: is a folder, not a file"):
        read_nifti(tmp_path / "dir.nii")


def test_permission_error_is_not_corrupt(tmp_path, monkeypatch):
    import medshared.io.nifti as mod

    f = tmp_path / "locked.nii"
    write_image(f, np.zeros((2, 2, 2), np.uint8))

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(f))

    monkeypatch.setattr(mod.nib, "load", denied)  # root passes os.access; simulate the OS
    with pytest.raises(FilePermissionError, match=r"locked\.nii: permission denied") as info:
        read_nifti(f)
    assert "corrupt" not in str(info.value) and isinstance(info.value, PermissionError)


def test_library_log_lines_and_warnings_are_collected_not_printed(capsys):
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    root = logging.getLogger()
    keep = Keep()
    root.addHandler(keep)
    try:
        with captured_library_messages("nibabel") as notes:
            logging.getLogger("nibabel.global").warning("pixdim[0] (qfac) should be 1")
            warnings.warn("overflow encountered in multiply", RuntimeWarning, stacklevel=1)
    finally:
        root.removeHandler(keep)
    assert notes == ["pixdim[0] (qfac) should be 1", "overflow encountered in multiply"]
    assert not records and capsys.readouterr().err == ""
    assert logging.getLogger("nibabel").propagate  # restored
