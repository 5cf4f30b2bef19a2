"""``medshared compare``/``bench``/``--help``: results, one-line errors, outputs checked first."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medshared import compare as compare_mod
from medshared.cli import main
from medshared.compare import compare_arrays
from medshared.metrics import lncc, psnr, ssim


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    ref = (rng.random((24, 20, 12)) * 1000).astype(np.int16)
    test = (ref + rng.normal(0, 10, ref.shape)).astype(np.int16)
    paths = {"ref": tmp_path / "ref.npy", "test": tmp_path / "test.npy"}
    np.save(paths["ref"], ref)
    np.save(paths["test"], test)
    paths["nii"] = tmp_path / "ref.nii.gz"
    nib.save(nib.Nifti1Image(ref, np.eye(4)), paths["nii"])
    return paths


def _one_error(capsys, code: int) -> str:
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    return err.strip()


def test_compare_prints_the_metrics_and_writes_json(images, tmp_path, capsys) -> None:
    js = tmp_path / "m.json"
    assert main(["compare", str(images["nii"]), str(images["test"]), "--json", str(js)]) == 0
    out = capsys.readouterr().out
    ref, test = np.load(images["ref"]), np.load(images["test"])
    peak = float(ref.max()) - float(ref.min())
    got = json.loads(js.read_text())
    assert got["psnr_db"] == pytest.approx(psnr(ref, test, data_range=peak))
    assert got["ssim"] == pytest.approx(ssim(ref, test, peak))
    assert got["lncc"] == pytest.approx(lncc(ref, test))
    assert got["shape"] == [24, 20, 12] and got["identical"] is False
    assert "PSNR (dB)" in out and f"{got['ssim']:.6g}" in out


def test_identical_images_give_valid_json(images, tmp_path, capsys) -> None:
    js = tmp_path / "same.json"
    assert main(["compare", str(images["ref"]), str(images["nii"]), "--json", str(js)]) == 0
    assert "inf (identical)" in capsys.readouterr().out
    text = js.read_text()
    assert "Infinity" not in text and "NaN" not in text
    got = json.loads(text)
    assert got["psnr_db"] is None and got["identical"] is True and got["ssim"] == 1.0


def test_four_d_series_average_ssim_over_volumes() -> None:
    rng = np.random.default_rng(1)
    ref = rng.random((12, 11, 10, 3)) * 100
    test = ref + rng.normal(0, 2, ref.shape)
    res = compare_arrays(ref, test, "ref")
    peak = float(ref.max() - ref.min())
    expect = np.mean([ssim(ref[..., t], test[..., t], peak) for t in range(3)])
    assert res.volumes == 3 and res.ssim == pytest.approx(expect)


def _bad_inputs(tmp: Path) -> dict[str, tuple[Path, str]]:
    fifo = tmp / "fifo.npy"
    os.mkfifo(fifo)
    folder = tmp / "x.npy"
    folder.mkdir()
    empty = tmp / "empty.npy"
    empty.write_bytes(b"")
    text = tmp / "text.npy"
    text.write_text("just some text\n")
    objects = tmp / "obj.npy"
    np.save(objects, np.array([{}, None], dtype=object), allow_pickle=True)
    huge = tmp / "huge.npy"  # a header that claims 60000^3 float64 (1.7 PB) in a few bytes
    with open(huge, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<f8", "fortran_order": False, "shape": (60000, 60000, 60000)}
        )
    random = tmp / "random.npy"
    random.write_bytes(np.random.default_rng(0).bytes(4096))
    nanfile = tmp / "nan.npy"
    arr = np.ones((24, 20, 12))
    arr[3, 4, 5] = np.nan
    np.save(nanfile, arr)
    small = tmp / "small.npy"
    np.save(small, np.ones((5, 5, 5), np.int16))
    return {
        "fifo": (fifo, "is a FIFO (named pipe), not a regular file"),
        "folder": (folder, "is a folder, not a file"),
        "empty": (empty, "empty file (0 bytes)"),
        "text": (text, "not a .npy array"),
        "objects": (objects, "holds Python objects"),
        "huge": (huge, "truncated or corrupt: the header declares shape (60000, 60000, 60000)"),
        "random": (random, "not a .npy array"),
        "nan": (nanfile, "contains NaN or infinite values"),
        "shape": (small, "shape (5, 5, 5) differs from"),
        "missing": (tmp / "missing.npy", "no such file"),
        "suffix": (tmp / "a.txt", "wrong extension"),
    }


def test_bad_inputs_are_one_line_each_and_fast(images, tmp_path, capsys) -> None:
    bad = _bad_inputs(tmp_path)
    for key, (path, fragment) in bad.items():
        t0 = time.perf_counter()
        order = [str(images["ref"]), str(path)] if key == "shape" else [str(path), str(images["test"])]
        err = _one_error(capsys, main(["compare", *order]))
        assert fragment in err, (key, err)
        assert str(path) in err and "ref:" not in err and "ssim:" not in err
        assert time.perf_counter() - t0 < 5.0, key


def test_data_range_problems_name_the_option(images, tmp_path, capsys) -> None:
    const = tmp_path / "const.npy"
    np.save(const, np.full((20, 20, 12), 7.0))
    err = _one_error(capsys, main(["compare", str(const), str(const)]))
    assert "const.npy is constant (7), so --data-range ref" in err
    flt = tmp_path / "f.npy"
    np.save(flt, np.random.default_rng(0).random((20, 20, 12)))
    err = _one_error(capsys, main(["compare", str(flt), str(flt), "--data-range", "dtype"]))
    assert "--data-range dtype needs an integer image" in err
    for value in ("nan", "-1", "0", "inf", "peak"):
        err = _one_error(capsys, main(["compare", str(flt), str(flt), "--data-range", value]))
        assert f"argument --data-range: expected 'dtype', 'ref' or a positive finite number, " \
               f"got '{value}'" in err


def test_json_output_is_checked_before_any_work(images, tmp_path, capsys, monkeypatch) -> None:
    def never(*a, **k):  # noqa: ANN002, ANN003
        raise AssertionError("compare ran before its output was checked")

    monkeypatch.setattr(compare_mod, "compare_files", never)
    before = images["ref"].read_bytes()
    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "elsewhere.json")
    cases = [
        (images["ref"], "--json " + str(images["ref"]) + ": is the input"),
        (fifo, "is a FIFO"),
        (link, "is a symlink"),
        (tmp_path / "nodir" / "m.json", "does not exist"),
        (tmp_path, "is a folder"),
    ]
    for target, fragment in cases:
        err = _one_error(
            capsys, main(["compare", str(images["ref"]), str(images["test"]), "--json", str(target)])
        )
        assert fragment in err, err
    assert images["ref"].read_bytes() == before
    assert fifo.is_fifo() and link.is_symlink()


def test_nifti_header_claiming_gigabytes_is_refused_quickly(images, tmp_path, capsys) -> None:
    """A 1024x1024x256x30 int16 claim in a ~100-byte .nii.gz: one line, no allocation."""
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((1024, 1024, 256, 30))
    hdr.set_data_dtype(np.int16)
    hdr["vox_offset"] = 352
    claim = tmp_path / "claim.nii.gz"
    claim.write_bytes(gzip.compress(hdr.binaryblock + b"\0" * 4 + b"\0" * 64))
    t0 = time.perf_counter()
    err = _one_error(capsys, main(["compare", str(claim), str(images["test"])]))
    assert "claim.nii.gz" in err
    assert time.perf_counter() - t0 < 5.0


def test_help_states_defaults_and_is_fast() -> None:
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-m", "medshared.cli", "compare", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0
    text = " ".join(res.stdout.split())
    assert "(default: ref)" in text and "(default: not written)" in text
    assert time.perf_counter() - t0 < 20
    res = subprocess.run(
        [sys.executable, "-c", "import sys, medshared.cli; print('numpy' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.stdout.strip() == "False"  # --help imports no numpy


def test_bench_repeats_validated(capsys) -> None:
    err = _one_error(capsys, main(["bench", "--repeats", "0"]))
    assert "argument --repeats: must be an integer >= 1, got '0'" in err
