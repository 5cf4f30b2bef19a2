"""`medshared` console script end to end on real NIfTI files."""

from __future__ import annotations

import subprocess
from importlib import resources
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medshared.metrics import psnr


def _example4d() -> Path:
    return Path(str(resources.files("nibabel") / "tests" / "data" / "example4d.nii.gz"))


def test_compare_reports_the_library_psnr(tmp_path: Path, script) -> None:
    img = nib.load(_example4d())
    vol = np.asarray(img.dataobj[..., 0])
    noisy = (vol + np.random.default_rng(0).normal(0, 5, vol.shape)).astype(np.float32)
    ref_path, test_path = tmp_path / "ref.nii.gz", tmp_path / "test.nii.gz"
    nib.save(nib.Nifti1Image(vol, img.affine), ref_path)
    nib.save(nib.Nifti1Image(noisy, img.affine), test_path)
    out = subprocess.run(
        [script("medshared"), "compare", str(ref_path), str(test_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(row for row in out.splitlines() if row.startswith("PSNR"))
    assert float(line.split()[-1]) == pytest.approx(psnr(vol, noisy, data_range="ref"), rel=1e-5)


def test_compare_bad_input_is_one_clear_line(tmp_path: Path, script) -> None:
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    proc = subprocess.run(
        [script("medshared"), "compare", str(bad), str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "broken.nii.gz" in proc.stderr and proc.stderr.startswith("medshared: error:")
    assert len(proc.stderr.strip().splitlines()) == 1
