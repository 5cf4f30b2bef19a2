"""One image convention: a DICOM series and the same volume as NIfTI agree through every tool.

The DICOM files are written here from an (X, Y, Z[, T]) array and its RAS+ affine by the DICOM
standard's own equations (column index = X, row index = Y, LPS patient axes), independently of
medshared's reader, then read back through each tool's command line.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from medshared.io import read_image, read_nifti, write_nifti

pydicom = pytest.importorskip("pydicom")

LPS = np.diag([-1.0, -1.0, 1.0])


def _oblique_affine() -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(7).normal(size=(3, 3)))
    if np.linalg.det(q) < 0:
        q[:, 2] *= -1
    affine = np.eye(4)
    affine[:3, :3] = q @ np.diag([0.9, 0.7, 2.5])
    affine[:3, 3] = [-40.0, 25.0, 10.0]
    return affine


def _tm(seconds: float) -> str:
    h, rest = divmod(seconds, 3600.0)
    m, s = divmod(rest, 60.0)
    return f"{int(h):02d}{int(m):02d}{s:09.6f}"


def write_dicom_series(folder: Path, data: np.ndarray, affine: np.ndarray, dt: float = 1.0,
                       intercept: float = 0.0) -> None:
    """Write (X, Y, Z[, T]) ``data`` as single-frame CT files (shuffled names), one per slice/time."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True)
    series = data if data.ndim == 4 else data[..., None]
    nx, ny, nz, nt = series.shape
    col_step, row_step = affine[:3, 0], affine[:3, 1]  # +1 column = +1 x, +1 row = +1 y
    row_cos = LPS @ col_step / np.linalg.norm(col_step)
    col_cos = LPS @ row_step / np.linalg.norm(row_step)
    stored = (series - intercept).astype(np.int16 if intercept else np.uint16)
    order = np.random.default_rng(0).permutation(nz * nt)
    for k, job in enumerate(order):
        t, z = divmod(int(job), nz)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"IM{k:05d}"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "CT"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3", "1.2.3.4"
        ds.ImagePositionPatient = [f"{v:.6f}" for v in LPS @ (affine[:3] @ [0, 0, z, 1])]
        ds.ImageOrientationPatient = [f"{v:.9f}" for v in (*row_cos, *col_cos)]
        ds.PixelSpacing = [f"{np.linalg.norm(row_step):.9f}", f"{np.linalg.norm(col_step):.9f}"]
        ds.SliceThickness = f"{np.linalg.norm(affine[:3, 2]):.6f}"
        ds.Rows, ds.Columns = ny, nx
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1 if stored.dtype == np.int16 else 0
        ds.RescaleSlope, ds.RescaleIntercept = "1", f"{intercept:g}"
        if nt > 1:
            ds.TemporalPositionIdentifier = t + 1
            ds.AcquisitionTime = _tm(36000.0 + t * dt)
        ds.PixelData = np.ascontiguousarray(stored[:, :, z, t].T).tobytes()
        if int(pydicom.__version__.split(".")[0]) < 3:  # pragma: no cover - pydicom 2.x
            ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(str(folder / f"IM{k:05d}"))


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=300)


def test_reader_gives_the_same_record_for_dicom_and_nifti(tmp_path: Path) -> None:
    affine = _oblique_affine()
    data = np.random.default_rng(1).integers(0, 4000, size=(9, 6, 4)).astype(np.uint16)
    write_dicom_series(tmp_path / "dcm", data, affine)
    write_nifti(tmp_path / "v.nii.gz", data, affine)
    a, b = read_image(tmp_path / "dcm"), read_image(tmp_path / "v.nii.gz")
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_allclose(a.affine, b.affine, atol=1e-4)
    np.testing.assert_allclose(a.spacing, [0.9, 0.7, 2.5], atol=1e-5)


def test_wdrcodec_reads_dicom_and_nifti_alike(tmp_path: Path, script) -> None:
    pytest.importorskip("wdrcodec")
    affine = _oblique_affine()
    yy, xx, zz = np.meshgrid(np.arange(12), np.arange(20), np.arange(5), indexing="xy")
    data = (xx * 100 + yy * 7 + zz * 1000).astype(np.uint16)  # (X, Y, Z), asymmetric
    assert data.shape == (20, 12, 5)
    write_dicom_series(tmp_path / "dcm", data, affine)
    write_nifti(tmp_path / "v.nii.gz", data, affine)
    decoded = {}
    for name, src in (("dicom", tmp_path / "dcm"), ("nifti", tmp_path / "v.nii.gz")):
        wdr, out = tmp_path / f"{name}.wdr", tmp_path / f"{name}.nii.gz"
        proc = _run(script("wdrcodec"), "encode", str(src), str(wdr), "--lossless")
        assert proc.returncode == 0, proc.stderr
        proc = _run(script("wdrcodec"), "decode", str(wdr), str(out))
        assert proc.returncode == 0, proc.stderr
        decoded[name] = read_nifti(out)
    np.testing.assert_array_equal(decoded["dicom"].data, data)
    np.testing.assert_array_equal(decoded["nifti"].data, data)
    np.testing.assert_allclose(decoded["dicom"].affine, affine, atol=1e-4)
    np.testing.assert_allclose(decoded["nifti"].affine, affine, atol=1e-4)


def test_perfdecon_maps_agree_for_a_4d_dicom_series_and_its_nifti(tmp_path: Path, script) -> None:
    pytest.importorskip("perfdecon")
    case = tmp_path / "case"
    made = _run(script("perfdecon"), "phantom", str(case), "--size", "48", "--slices", "2")
    assert made.returncode == 0, made.stderr
    ctp = read_nifti(case / "ctp.nii.gz")
    dt = float(ctp.zooms[3])
    affine = _oblique_affine()
    hu = np.rint(ctp.data).astype(np.int32)
    write_dicom_series(tmp_path / "dcm", hu, affine, dt=dt, intercept=-1024.0)
    write_nifti(tmp_path / "ctp.nii.gz", hu.astype(np.int16), affine,
                zooms=(*np.linalg.norm(affine[:3, :3], axis=0), dt))
    outs = {}
    for name, src in (("dicom", tmp_path / "dcm"), ("nifti", tmp_path / "ctp.nii.gz")):
        proc = _run(script("perfdecon"), "maps", str(src), "--out", str(tmp_path / name))
        assert proc.returncode == 0, proc.stderr
        outs[name] = read_nifti(tmp_path / name / "cbf.nii.gz")
    np.testing.assert_allclose(outs["dicom"].data, outs["nifti"].data, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(outs["dicom"].affine, affine, atol=1e-4)
    dicom_dt, nifti_dt = (json.loads((tmp_path / n / "summary.json").read_text()) for n in outs)
    assert json.dumps(dicom_dt).count("dt") >= 1
    assert _find(dicom_dt, "dt") == pytest.approx(_find(nifti_dt, "dt"), rel=1e-6)


def _find(tree, key):
    """First value stored under ``key`` anywhere in a nested JSON summary."""
    if isinstance(tree, dict):
        if key in tree:
            return tree[key]
        for v in tree.values():
            found = _find(v, key)
            if found is not None:
                return found
    return None
