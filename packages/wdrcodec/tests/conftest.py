"""Shared fixtures for wdrcodec tests: the real dipy volume and small synthetic volumes."""

from __future__ import annotations

import numpy as np
import pytest


def pytest_configure(config) -> None:
    """Register the ``slow`` marker also when the tests run outside the workspace config."""
    config.addinivalue_line("markers", "slow: takes more than ~20 s; excluded by default")


@pytest.fixture(scope="session")
def dipy_volume() -> np.ndarray:
    """dipy's S0_10slices as ``(Z, Y, X)`` uint16 (10 x 128 x 128)."""
    pytest.importorskip("dipy")
    from wdrcodec.data import dipy_s0

    return dipy_s0().array


@pytest.fixture(scope="session")
def smooth_volume() -> np.ndarray:
    """A small smooth uint16 volume with noise, ``(8, 40, 36)``."""
    rng = np.random.default_rng(7)
    z, y, x = np.meshgrid(np.arange(8), np.arange(40), np.arange(36), indexing="ij")
    v = 1500 + 900 * np.sin(x / 5.0) * np.cos(y / 7.0) + 60 * z + rng.normal(0, 20, z.shape)
    return np.clip(v, 0, 65535).astype(np.uint16)
