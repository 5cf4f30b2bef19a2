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


_BOX_SHAPES = [(2, 2, 2), (3, 5, 7), (8, 9, 16), (9, 16, 11), (16, 33, 32)]


@pytest.mark.parametrize("shape", _BOX_SHAPES)
@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("view", ["whole", "leading box", "inner box", "tail box"])
def test_box_kernels_equal_the_any_layout_kernels_exactly(shape, axis, view):
    """The contiguous-row kernels (C-contiguous parent + box, Z rows grouped) give bit for bit
    the values of the original any-layout kernels, on whole arrays, leading sub-box views (as
    in multi-level decoding), inner views and views at the end of their memory (no C parent
    fits there: the fallback)."""
    from wdrcodec import lifting

    pad = (0, 0, 0) if view == "whole" else (2, 3, 4)
    big = _sparse(tuple(s + p for s, p in zip(shape, pad)), seed=sum(shape) * 3 + axis)
    a, b = big.copy(), big.copy()
    if view == "inner box":
        sl = tuple(slice(1, 1 + s) for s in shape)
    elif view == "tail box":
        sl = tuple(slice(p, p + s) for s, p in zip(shape, pad))
    else:
        sl = tuple(slice(0, s) for s in shape)
    ra, rb = a[sl], b[sl]
    parent = lifting.c_parent(ra)
    assert (parent is None) == (view == "tail box")
    if parent is not None:
        assert np.shares_memory(parent, ra)
        assert np.array_equal(parent[: shape[0], : shape[1], : shape[2]], ra)
    lift_region(ra, axis, lossless=False, forward=False)  # box kernels (or the fallback)
    if axis == 2:
        lifting._inv97_lines(rb, np.empty(shape[2]))
    else:
        v = rb[None] if axis == 0 else rb[:, :, None, :]
        lifting._inv97(v, np.empty((v.shape[1], v.shape[3])))
    assert np.array_equal(a, b)
    ref = big[sl].copy()
    apply_axis(ref, axis, inv97)
    np.testing.assert_allclose(ra, ref, rtol=1e-12, atol=1e-9)
    outside = np.ones(big.shape, dtype=bool)
    outside[sl] = False
    assert np.array_equal(a[outside], big[outside])  # nothing outside the box touched


@pytest.mark.parametrize("shape", _BOX_SHAPES)
def test_box_yx_equals_the_any_layout_kernel_exactly(shape):
    from wdrcodec import lifting

    big = _sparse((shape[0] + 1, shape[1] + 2, shape[2] + 3), seed=11)
    a, b = big.copy(), big.copy()
    ra, rb = a[: shape[0], : shape[1], : shape[2]], b[: shape[0], : shape[1], : shape[2]]
    inverse_yx(ra)
    lifting._inv97_yx(rb, np.empty(shape[2]), np.empty((shape[1], shape[2])))
    assert np.array_equal(a, b)


def test_c_parent_is_the_leading_slices_of_the_owner():
    from wdrcodec.lifting import c_parent

    base = np.arange(5 * 6 * 7, dtype=np.float64).reshape(5, 6, 7)
    region = base[:3, :4, :5]
    parent = c_parent(region)
    assert parent.flags.c_contiguous and parent.shape == (3, 6, 7)
    assert np.shares_memory(parent, base) and np.array_equal(parent[:3, :4, :5], region)
    assert c_parent(base) is base
    assert c_parent(base[1:, 1:, 1:]) is None  # its span would pass the end of the memory
    assert c_parent(base[:, :, ::2]) is None  # strided rows
    assert c_parent(np.asfortranarray(base)[:2, :2, :2]) is None
