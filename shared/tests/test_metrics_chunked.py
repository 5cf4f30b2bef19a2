"""Slab-wise metrics: bit-identical to the whole-image computation, bounded temporaries."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medshared.metrics import _chunks, lncc, mse, psnr, ssim, ssim_map
from medshared.metrics._chunks import abs_max, all_finite, slab_axis

CHUNKS = [1, 2, 3, 5, 11, 1000]


def _pair(shape, seed=0, order="C", dtype=np.float64):
    rng = np.random.default_rng(seed)
    ref = ndimage.gaussian_filter(rng.random(shape), 1.5) * 2000.0 + 500.0
    test = ref + rng.normal(0.0, 15.0, shape)
    return (
        np.asarray(ref.astype(dtype), order=order),
        np.asarray(test.astype(dtype), order=order),
    )


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("shape", [(23, 17, 19), (7, 30, 12), (40, 33)])
def test_ssim_map_and_mean_do_not_depend_on_the_slab_size(shape, order) -> None:
    ref, test = _pair(shape, order=order)
    whole = ssim_map(ref, test, 2000.0, chunk=10**6)
    value = ssim(ref, test, 2000.0, chunk=10**6)
    for chunk in CHUNKS:
        assert np.array_equal(ssim_map(ref, test, 2000.0, chunk=chunk), whole), chunk
        assert ssim(ref, test, 2000.0, chunk=chunk) == value, chunk


def test_ssim_map_equals_scipy_gaussian_filter_reference() -> None:
    """The slab kernel reproduces the textbook whole-volume formula with scipy's filter."""
    ref, test = _pair((21, 18, 16), seed=3)

    def blur(a):
        return ndimage.gaussian_filter(a, sigma=1.5, truncate=3.5, mode="reflect")

    mx, my = blur(ref), blur(test)
    vx, vy = blur(ref * ref) - mx * mx, blur(test * test) - my * my
    cov = blur(ref * test) - mx * my
    c1, c2 = (0.01 * 2000.0) ** 2, (0.03 * 2000.0) ** 2
    expect = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    got = ssim_map(ref, test, 2000.0, chunk=4)
    np.testing.assert_allclose(got, expect, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("order", ["C", "F"])
def test_lncc_does_not_depend_on_the_slab_size(order) -> None:
    ref, test = _pair((19, 22, 13), seed=1, order=order)
    value = lncc(ref, test, chunk=10**6)
    assert 0.5 < value < 1.0
    for chunk in CHUNKS:
        assert lncc(ref, test, chunk=chunk) == value, chunk
        assert lncc(ref, test, window=5, chunk=chunk) == lncc(ref, test, window=5), chunk


def test_lncc_flat_images_chunked() -> None:
    a = np.full((12, 9, 8), 3.0)
    assert lncc(a, a.copy(), chunk=2) == 1.0
    b = np.full((12, 9, 8), 4.0)  # flat in both, but not equal
    assert lncc(a, b, chunk=2) == 0.0


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32, np.float64])
def test_mse_and_psnr_stream_exactly(dtype) -> None:
    ref, test = _pair((17, 14, 9), seed=2, dtype=np.float64)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        ref = np.clip(ref / 10, info.min, info.max).astype(dtype)
        test = np.clip(test / 10, info.min, info.max).astype(dtype)
    else:
        ref, test = ref.astype(dtype), test.astype(dtype)
    expect = float(np.mean((ref.astype(np.float64) - test.astype(np.float64)) ** 2))
    whole = mse(ref, test)
    assert whole == pytest.approx(expect, rel=1e-13)
    for chunk in CHUNKS:
        assert mse(ref, test, chunk=chunk) == whole
        assert psnr(ref, test, data_range=255.0, chunk=chunk) == psnr(ref, test, data_range=255.0)


def test_integer_inputs_are_not_overflowed_or_modified() -> None:
    ref = np.array([[-32768, 32767], [0, 1]], dtype=np.int16)
    test = np.array([[32767, -32768], [0, 1]], dtype=np.int16)
    keep_ref, keep_test = ref.copy(), test.copy()
    assert mse(ref, test) == pytest.approx(2 * 65535.0**2 / 4)
    assert abs_max(ref) == 32768.0
    assert np.array_equal(ref, keep_ref) and np.array_equal(test, keep_test)
    f = np.linspace(0, 1, 60).reshape(3, 4, 5)
    keep = f.copy()
    mse(f, f + 1)
    assert np.array_equal(f, keep)  # float64 inputs are copied, never modified in place


def test_memmapped_inputs_give_the_same_result(tmp_path) -> None:
    ref, test = _pair((20, 16, 12), seed=5, dtype=np.float32)
    np.save(tmp_path / "r.npy", ref)
    np.save(tmp_path / "t.npy", test)
    mr = np.load(tmp_path / "r.npy", mmap_mode="r")
    mt = np.load(tmp_path / "t.npy", mmap_mode="r")
    assert ssim(mr, mt, 2000.0, chunk=3) == ssim(ref, test, 2000.0)
    assert lncc(mr, mt, chunk=3) == lncc(ref, test)
    assert mse(mr, mt, chunk=3) == mse(ref, test)


def test_slab_helpers() -> None:
    c = np.zeros((4, 5, 6))
    assert slab_axis(c) == 0 and slab_axis(np.asfortranarray(c)) == 2
    assert slab_axis(np.zeros((1, 5, 6))) == 1  # a length-1 axis is never the slab axis
    bad = np.zeros((6, 4, 3))
    assert all_finite(bad, chunk=1)
    bad[5, 3, 2] = np.nan
    assert not all_finite(bad, chunk=1)
    assert all_finite(np.zeros(3, dtype=np.int16))


def test_temporaries_are_bounded_by_the_slab(monkeypatch) -> None:
    """With a small slab budget, no filtered temporary is larger than one slab plus its halo."""
    monkeypatch.setattr(_chunks, "CHUNK_VOXELS", 200)
    sizes: list[int] = []
    real = _chunks.as_float_slab

    def spy(arr, z0, z1):
        out = real(arr, z0, z1)
        sizes.append(out.size)
        return out

    monkeypatch.setattr(_chunks, "as_float_slab", spy)
    ref, test = _pair((30, 10, 10), seed=4)  # 100-voxel planes: 2 planes per slab
    ssim(ref, test, 2000.0)
    lncc(ref, test)
    assert sizes and max(sizes) <= (2 + 2 * 5) * 100  # 2 planes + 5-plane halo on each side
    assert max(sizes) < ref.size / 2
