"""Fixtures for medshared tests: real images shipped in installed wheels."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest


def dipy_file(name: str) -> Path:
    """Path of a data file shipped in the dipy wheel (skips the test when dipy is absent)."""
    pytest.importorskip("dipy")
    path = Path(str(resources.files("dipy") / "data" / "files" / name))
    if not path.exists():
        pytest.skip(f"dipy wheel lacks {name}")
    return path


def nibabel_file(name: str) -> Path:
    """Path of a test file shipped in the nibabel wheel."""
    path = Path(str(resources.files("nibabel") / "tests" / "data" / name))
    if not path.exists():
        pytest.skip(f"nibabel wheel lacks {name}")
    return path


@pytest.fixture(scope="session")
def dipy_path():
    """Factory fixture: ``dipy_path("tracks300.trk")`` -> Path inside the dipy wheel."""
    return dipy_file


@pytest.fixture(scope="session")
def nibabel_path():
    """Factory fixture: ``nibabel_path("example4d.nii.gz")`` -> Path inside the nibabel wheel."""
    return nibabel_file


@pytest.fixture(scope="session")
def s0_volume() -> np.ndarray:
    """dipy's S0_10slices.nii.gz (stored (128, 128, 10, 1)) as float64, axes (X, Y, Z)."""
    data = np.asarray(nib.load(dipy_file("S0_10slices.nii.gz")).dataobj, dtype=np.float64)
    return data.reshape(data.shape[:3])


@pytest.fixture(scope="session")
def example4d_volume() -> np.ndarray:
    """nibabel's example4d.nii.gz, first volume, axes (X, Y, Z)."""
    img = nib.load(nibabel_file("example4d.nii.gz"))
    return np.asarray(img.dataobj[..., 0], dtype=np.float64)
