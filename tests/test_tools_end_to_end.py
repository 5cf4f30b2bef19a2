"""Tools chained through their console scripts, checked with medshared's metrics and readers."""

from __future__ import annotations

import json
import subprocess
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from medshared.io import read_nifti
from medshared.metrics import dice, psnr


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=300)


def test_wdrcodec_round_trip_is_measured_by_medshared(tmp_path: Path, script) -> None:
    pytest.importorskip("wdrcodec")
    src = Path(str(resources.files("nibabel") / "tests" / "data" / "example4d.nii.gz"))
    out = tmp_path / "vol.wdr"
    proc = _run(script("wdrcodec"), "encode", str(src), str(out), "--bpv", "1")
    assert proc.returncode == 0, proc.stderr
    assert abs(out.stat().st_size * 8 / np.prod(read_nifti(src).data.shape) - 1.0) < 0.005
    decoded = tmp_path / "vol.nii.gz"
    assert _run(script("wdrcodec"), "decode", str(out), str(decoded)).returncode == 0
    ref, dec = read_nifti(src), read_nifti(decoded)
    assert dec.data.dtype == ref.data.dtype and dec.data.shape == ref.data.shape
    np.testing.assert_allclose(dec.affine, ref.affine, atol=1e-4)
    value = psnr(ref.data, dec.data, data_range="ref")
    assert 38.0 < value < 60.0  # ~42 dB per volume at 1 bpv (wdrcodec README)
    compare = _run(script("medshared"), "compare", str(src), str(decoded))
    assert compare.returncode == 0, compare.stderr
    line = next(r for r in compare.stdout.splitlines() if r.startswith("PSNR"))
    assert float(line.split()[-1]) == pytest.approx(value, rel=1e-5)


def test_perfdecon_phantom_to_maps_recovers_the_core(tmp_path: Path, script) -> None:
    pytest.importorskip("perfdecon")
    case = tmp_path / "case"
    made = _run(script("perfdecon"), "phantom", str(case), "--size", "96", "--slices", "2")
    assert made.returncode == 0, made.stderr
    maps = tmp_path / "maps"
    proc = _run(script("perfdecon"), "maps", str(case / "ctp.nii.gz"), "--out", str(maps))
    assert proc.returncode == 0, proc.stderr
    truth = read_nifti(case / "core_mask.nii.gz").data > 0
    core = read_nifti(maps / "core.nii.gz")
    assert core.data.dtype == np.uint8
    np.testing.assert_allclose(core.affine, read_nifti(case / "ctp.nii.gz").affine)
    assert dice(core.data > 0, truth) > 0.6
    summary = json.loads((maps / "summary.json").read_text())
    assert summary["aif"]["source"] == "auto"
    assert len(np.loadtxt(maps / "aif.txt")) == read_nifti(case / "ctp.nii.gz").data.shape[-1]
