"""CLI end to end: NIfTI/DICOM/.npy in and out, info, eval, prefix decode, errors, demo."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from medshared.io import read_nifti, write_nifti
from wdrcodec import __version__
from wdrcodec.cli import main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"wdrcodec {__version__}"


def test_nifti_lossless_round_trip_keeps_affine_and_zooms(tmp_path, smooth_volume, capsys):
    xyz = np.ascontiguousarray(smooth_volume.transpose(2, 1, 0)).astype(np.int16)
    aff = np.array([[-0.9, 0, 0, 10], [0, 0.8, 0, -5], [0, 0, 2.5, 3], [0, 0, 0, 1]])
    src = tmp_path / "in.nii.gz"
    write_nifti(src, xyz, aff, zooms=(0.9, 0.8, 2.5))
    assert main(["encode", str(src), str(tmp_path / "v.wdr"), "--lossless"]) == 0
    assert main(["decode", str(tmp_path / "v.wdr"), str(tmp_path / "out.nii")]) == 0
    img = read_nifti(tmp_path / "out.nii")
    np.testing.assert_array_equal(img.data, xyz)
    assert img.data.dtype == np.int16
    np.testing.assert_allclose(img.affine, aff, atol=1e-6)
    assert img.zooms[:3] == pytest.approx((0.9, 0.8, 2.5))
    capsys.readouterr()
    assert main(["info", str(tmp_path / "v.wdr"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shape"] == list(xyz.shape) and info["lossless"] and info["complete"]
    assert info["axes"].startswith("xyz")


def test_4d_nifti_each_volume(tmp_path, smooth_volume):
    xyzt = np.stack([smooth_volume, smooth_volume // 2], axis=-1).transpose(2, 1, 0, 3)
    xyzt = np.ascontiguousarray(xyzt)
    src = tmp_path / "in4d.nii"
    write_nifti(src, xyzt, np.eye(4), zooms=(1.0, 1.0, 2.0, 3.0))
    assert main(["encode", str(src), str(tmp_path / "v.wdr"), "--lossless", "--mode", "2d"]) == 0
    assert main(["decode", str(tmp_path / "v.wdr"), str(tmp_path / "o.nii.gz")]) == 0
    img = read_nifti(tmp_path / "o.nii.gz")
    np.testing.assert_array_equal(img.data, xyzt)
    assert img.zooms == pytest.approx((1.0, 1.0, 2.0, 3.0))


def test_npy_rate_prefix_decode_and_eval(tmp_path, dipy_volume, capsys):
    src = tmp_path / "v.npy"
    np.save(src, dipy_volume)
    wdr = tmp_path / "v.wdr"
    assert main(["encode", str(src), str(wdr), "--bpv", "1", "--mode", "mcpd"]) == 0
    assert wdr.stat().st_size == pytest.approx(dipy_volume.size / 8, rel=0.005)
    assert main(["decode", str(wdr), str(tmp_path / "low.npy"), "--bpv", "0.25"]) == 0
    assert main(["decode", str(wdr), str(tmp_path / "full.npy")]) == 0
    low, full = np.load(tmp_path / "low.npy"), np.load(tmp_path / "full.npy")
    err = [np.mean((x.astype(float) - dipy_volume) ** 2) for x in (low, full)]
    assert err[0] > err[1] > 0
    capsys.readouterr()
    assert (
        main(
            [
                "eval",
                str(src),
                "--bpv",
                "0.5,1",
                "--mode",
                "3d,2d",
                "--json",
                str(tmp_path / "rows.json"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "PSNR65535" in out and "SSIM data_range = 4095" in out
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert len(rows) == 6  # 2 modes x (2 rates + lossless)
    r1 = next(r for r in rows if r["mode"] == "3d" and r["target_bpv"] == 1.0)
    assert r1["bpv"] == pytest.approx(1.0, rel=0.005) and r1["psnr_range"] > 47.6
    assert r1["psnr_65535"] == pytest.approx(r1["psnr_range"] + 20 * np.log10(65535 / 4095))
    assert 0.95 < r1["ssim"] <= 1.0


def test_psnr_encode(tmp_path, smooth_volume):
    src = tmp_path / "v.npy"
    np.save(src, smooth_volume)
    assert main(["encode", str(src), str(tmp_path / "v.wdr"), "--psnr", "40"]) == 0
    assert main(["decode", str(tmp_path / "v.wdr"), str(tmp_path / "o.npy")]) == 0
    out = np.load(tmp_path / "o.npy").astype(float)
    mse = np.mean((out - smooth_volume) ** 2)
    peak = float(smooth_volume.max()) - float(smooth_volume.min())
    assert 10 * np.log10(peak**2 / mse) >= 40


def test_dicom_series_input(tmp_path, smooth_volume):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder = tmp_path / "series"
    folder.mkdir()
    vol = smooth_volume[:4]
    for z in range(vol.shape[0]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"s{z}"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "MR"
        ds.SeriesInstanceUID = "1.2.3"
        ds.StudyInstanceUID = "1.2"
        ds.ImagePositionPatient = [0.0, 0.0, 3.0 * z]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [0.7, 0.6]
        ds.SliceThickness = 3.0
        ds.Rows, ds.Columns = vol.shape[1:]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.PixelData = vol[z].tobytes()
        if int(pydicom.__version__.split(".")[0]) < 3:  # pragma: no cover
            ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(str(folder / f"s{z}.dcm"))
    assert main(["encode", str(folder), str(tmp_path / "d.wdr"), "--lossless"]) == 0
    assert main(["decode", str(tmp_path / "d.wdr"), str(tmp_path / "d.nii.gz")]) == 0
    img = nib.load(str(tmp_path / "d.nii.gz"))
    data = np.asanyarray(img.dataobj)
    np.testing.assert_array_equal(data, vol.transpose(2, 1, 0))  # NIfTI order (X, Y, Z)
    assert img.header.get_zooms() == pytest.approx((0.6, 0.7, 3.0))
    # LPS -> RAS: x and y flip sign; voxel (i=x, j=y, k=z)
    np.testing.assert_allclose(img.affine @ [2, 3, 1, 1], [-2 * 0.6, -3 * 0.7, 3.0, 1], atol=1e-5)


@pytest.mark.parametrize(
    "argv, match",
    [
        (["encode", "missing.nii", "o.wdr", "--bpv", "1"], "no such file"),
        (["decode", "missing.wdr", "o.npy"], "no such file"),
        (["encode", "{npy}", "o.wdr", "--bpv", "0.0001"], "header"),
        (["decode", "{bad}", "o.npy"], "not a .wdr"),
        (["decode", "{wdr}", "o.txt"], "unsupported output"),
        (["encode", "{txt}", "o.wdr", "--bpv", "1"], "unsupported input"),
    ],
)
def test_errors_exit_2_without_traceback(tmp_path, smooth_volume, capsys, monkeypatch, argv, match):
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "a.npy", smooth_volume)
    (tmp_path / "bad.wdr").write_bytes(b"garbage" * 10)
    (tmp_path / "t.txt").write_text("x")
    main(["encode", "a.npy", "ok.wdr", "--bpv", "1"])
    subs = {"{npy}": "a.npy", "{bad}": "bad.wdr", "{wdr}": "ok.wdr", "{txt}": "t.txt"}
    capsys.readouterr()
    assert main([subs.get(a, a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wdrcodec: error: ") and match in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.wdr").exists() and not (tmp_path / "o.npy").exists()


def test_demo_summary(tmp_path, capsys):
    pytest.importorskip("dipy")
    path = tmp_path / "summary.json"
    assert main(["demo", "--summary-json", str(path), "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "dipy S0_10slices" in out and "nibabel example4d[0]" in out and "mcpd" in out
    for norm in ("std", "range", "none"):  # Table 3 under every normalisation
        assert f"norm {norm}" in out
    assert "tool" in out and "baseline" in out  # medshared.demo.format_table
    rows = json.loads(path.read_text())
    assert 6 <= len(rows) <= 10
    for r in rows:
        assert set(r) == {"tool", "case", "method", "metric", "value", "unit", "baseline"}
        assert r["tool"] == "wdrcodec" and np.isfinite(r["value"])
    detail = json.loads((tmp_path / "wdrcodec_demo.json").read_text())
    assert len(detail) == 2 and len(detail[0]["paper_check"]) == 6
    psnr3d = next(r for r in rows if r["method"] == "3D-WDR" and "dipy" in r["case"])
    assert psnr3d["value"] > 47.6


def test_eval_pictures(tmp_path, smooth_volume, capsys):
    mpl_image = pytest.importorskip("matplotlib.image")
    src = tmp_path / "v.npy"
    np.save(src, smooth_volume)
    plot, strip = tmp_path / "rd.png", tmp_path / "strip.png"
    argv = ["eval", str(src), "--bpv", "0.5,1,2", "--modes", "3d,2d", "--no-lossless"]
    assert main([*argv, "--plot", str(plot), "--strip", str(strip), "--strip-bpv", "1"]) == 0
    for p in (plot, strip):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        img = mpl_image.imread(p)
        assert img.shape[0] > 200 and img.shape[1] > 500 and img.std() > 0.01
    capsys.readouterr()
    assert main([*argv, "--plot", str(tmp_path / "no" / "x.png")]) == 2
    assert "--plot" in capsys.readouterr().err
