"""Rotation augmentation (grid AND vectors) and the patch coverage rules."""

from __future__ import annotations

import numpy as np
import pytest

from flowsr.augment import PATCH_ROTATIONS, keeps_shape, rotate_scalar, rotate_vector
from flowsr.config import PatchConfig
from flowsr.errors import FlowsrError
from flowsr.flow import divergence
from flowsr.patches import coverage_map, sample_corners


def _field():
    rng = np.random.default_rng(0)
    return rng.normal(size=(3, 8, 8, 6))


def test_five_rotations_keep_patch_shape():
    assert len(PATCH_ROTATIONS) == 6
    assert all(keeps_shape(r, (32, 32, 16)) for r in PATCH_ROTATIONS)
    assert sum(keeps_shape(r, (32, 16, 16)) for r in PATCH_ROTATIONS) == 4  # identity + 180s


@pytest.mark.parametrize("k", range(1, 6))
def test_divergence_and_speed_invariant(k):
    v = _field()
    rot = PATCH_ROTATIONS[k]
    rv = rotate_vector(v, rot)
    np.testing.assert_allclose(np.linalg.norm(rv, axis=0), rotate_scalar(np.linalg.norm(v, axis=0),
                                                                         rot))
    np.testing.assert_allclose(divergence(rv, [1, 1, 1]), rotate_scalar(divergence(v, [1, 1, 1]),
                                                                        rot), atol=1e-12)


def test_rotating_only_the_grid_breaks_divergence():
    v = _field()
    rot = PATCH_ROTATIONS[1]
    grid_only = rotate_scalar(v, rot)
    assert not np.allclose(divergence(grid_only, [1, 1, 1]),
                           rotate_scalar(divergence(v, [1, 1, 1]), rot))


def test_rotation_of_a_uniform_flow_matches_the_matrix():
    v = np.zeros((3, 4, 4, 2))
    v[0] = 1.0  # flow along +X
    out = rotate_vector(v, PATCH_ROTATIONS[1])  # +90 degrees about Z: +X -> +Y
    np.testing.assert_allclose(out[:, 0, 0, 0], [0, 1, 0])


def test_not_a_rotation_is_refused():
    with pytest.raises(FlowsrError, match="signed permutation"):
        rotate_scalar(np.zeros((2, 2, 2)), np.diag([1, 1, -1]))


def test_coverage_map_matches_brute_force():
    rng = np.random.default_rng(1)
    m = rng.random((9, 8, 7)) > 0.6
    cov = coverage_map(m, (3, 4, 2))
    ref = np.array([[[m[i:i + 3, j:j + 4, k:k + 2].mean() for k in range(6)] for j in range(5)]
                    for i in range(7)])
    np.testing.assert_allclose(cov, ref)


def test_cfd_and_mri_rules(small_phantom):
    m = small_phantom.mask[::2, ::2, ::2][None]
    cfg = PatchConfig(size_x=16, size_y=16, size_z=8)
    size = (16, 16, 8)
    cov = coverage_map(m[0], size)
    rows = sample_corners(m, 5, "cfd", cfg, np.random.default_rng(0))
    assert rows.shape == (50, 4)
    c = cov[rows[:, 1], rows[:, 2], rows[:, 3]].reshape(5, 10)
    assert np.all((c >= 0.2).sum(axis=1) >= 9)
    rows = sample_corners(m, 5, "mri", cfg, np.random.default_rng(0))
    assert rows.shape == (25, 4)
    assert np.all(cov[rows[:, 1], rows[:, 2], rows[:, 3]] >= 0.05)


def test_impossible_coverage_is_a_clear_error():
    m = np.zeros((1, 8, 8, 8), bool)
    with pytest.raises(FlowsrError, match="coverage"):
        sample_corners(m, 1, "mri", PatchConfig(size_x=4, size_y=4, size_z=4), what="x.h5")
    with pytest.raises(FlowsrError, match="larger than"):
        coverage_map(m[0], (16, 4, 4))
