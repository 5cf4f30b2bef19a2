"""The decoder's fast inverse 9/7 kernels (zero skipping, fused sweeps, per-slice X+Y pass)
against the step-by-step numpy reference, on inputs with zero lines, slabs and high bands."""

from __future__ import annotations

import numpy as np
import pytest

from wdrcodec.lifting import inverse_yx, lift_region
from wdrcodec.wavelets import apply_axis, inv97


def _sparse(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    """Random coefficients with whole zero lines/slices and zero high halves (low-rate like)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 10, shape)
    x[rng.random(shape) < 0.5] = 0.0
    z, y, _ = shape
    x[z // 2 :] = 0.0  # high band along Z zero
    x[:, (y + 1) // 2 :, : shape[2] // 2] = 0.0  # lines with a zero low half
    x[:, : y // 3, (shape[2] + 1) // 2 :] = 0.0  # lines with a zero high half
    x[0] = 0.0  # an all-zero slice
    return x


@pytest.mark.parametrize("shape", [(2, 2, 2), (3, 5, 7), (8, 9, 16), (9, 16, 11), (16, 32, 33)])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_inverse_kernels_match_reference(shape, axis):
    x = _sparse(shape, seed=sum(shape) + axis)
    ref = x.copy()
    apply_axis(ref, axis, inv97)
    got = x.copy()
    lift_region(got, axis, lossless=False, forward=False)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-9)
    if axis == 2:  # same operations in the same order (both divide by the band scale)
        assert np.array_equal(got, ref)
    zero = ~np.moveaxis(x, axis, -1).any(axis=-1)  # all-zero lines stay exactly zero
    assert not np.moveaxis(got, axis, -1)[zero].any()


@pytest.mark.parametrize("shape", [(1, 2, 2), (3, 5, 7), (8, 9, 16), (16, 32, 33)])
def test_inverse_yx_equals_two_passes_exactly(shape):
    base = _sparse((shape[0] + 3, shape[1] + 4, shape[2] + 5), seed=7)
    a = base.copy()
    b = base.copy()
    region_a = a[: shape[0], : shape[1], : shape[2]]  # a strided sub-box view, as in decoding
    region_b = b[: shape[0], : shape[1], : shape[2]]
    inverse_yx(region_a)
    lift_region(region_b, 2, lossless=False, forward=False)
    lift_region(region_b, 1, lossless=False, forward=False)
    assert np.array_equal(a, b)  # also: nothing outside the region touched
    assert np.array_equal(a[shape[0] :], base[shape[0] :])
