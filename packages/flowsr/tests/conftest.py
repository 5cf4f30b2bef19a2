"""Shared fixtures: small phantoms (fast) for the whole suite."""

from __future__ import annotations

import pytest

from flowsr.config import PhantomConfig

SMALL = PhantomConfig(shape_x=64, shape_y=64, shape_z=32, voxel_mm=2.0, frames=12)


@pytest.fixture(autouse=True)
def _threads():
    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:  # pragma: no cover
        pass


@pytest.fixture(scope="session")
def small_config():
    return SMALL


@pytest.fixture(scope="session")
def small_phantom():
    from flowsr.phantom import make_phantom

    return make_phantom(SMALL, seed=3)


@pytest.fixture(scope="session")
def coarct_phantom():
    from dataclasses import replace

    from flowsr.phantom import make_phantom

    return make_phantom(replace(SMALL, coarctation=0.4, swirl=0.1, voxel_mm=1.5, shape_x=96,
                                shape_y=96, shape_z=48), seed=5)

