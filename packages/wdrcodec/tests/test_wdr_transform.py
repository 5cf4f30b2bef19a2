"""Wavelet transforms: perfect reconstruction, known CDF 9/7 taps, LeGall 5/3 formula, kernels."""

from __future__ import annotations

import numpy as np
import pytest

from wdrcodec.decomposition import axis_levels, forward, inverse, subbands
from wdrcodec.lifting import lift_region
from wdrcodec.wavelets import fwd53, fwd97, inv53, inv97

# JPEG 2000 irreversible 9/7 analysis filters (ISO/IEC 15444-1 Table F.4), centre tap first.
H0 = [0.602949018236, 0.266864118443, -0.078223266529, -0.016864118443, 0.026748757411]
H1 = [1.115087052457, -0.591271763114, -0.057543526229, 0.091271763114]


def _response(n_out: int, take_low: bool, length: int = 64) -> np.ndarray:
    """Output sample ``n_out`` of the low/high band as a function of each input impulse."""
    taps = np.zeros(length)
    for k in range(length):
        x = np.zeros(length)
        x[k] = 1.0
        y = fwd97(x)
        taps[k] = y[n_out] if take_low else y[length // 2 + n_out]
    return taps


def test_cdf97_matches_jpeg2000_analysis_taps():
    low = _response(16, True)  # low sample 16 is centred on input 32
    high = _response(16, False)  # high sample 16 is centred on input 33
    # our scaling: low band DC gain sqrt(2), high band Nyquist gain sqrt(2)
    for k, h in enumerate(H0):
        assert low[32 + k] / np.sqrt(2) == pytest.approx(h, abs=1e-9)
        assert low[32 - k] / np.sqrt(2) == pytest.approx(h, abs=1e-9)
    for k, h in enumerate(H1):
        assert high[33 + k] * np.sqrt(2) == pytest.approx(h, abs=1e-9)
        assert high[33 - k] * np.sqrt(2) == pytest.approx(h, abs=1e-9)
    assert np.count_nonzero(np.abs(low) > 1e-12) == 9
    assert np.count_nonzero(np.abs(high) > 1e-12) == 7


def _legall_reference(x: np.ndarray) -> np.ndarray:
    """JPEG 2000 5/3 lifting computed on the periodic-symmetric extended signal (independent)."""
    n = len(x)
    period = 2 * n - 2

    def xe(i: int) -> int:
        i %= period
        return int(x[period - i if i >= n else i])

    def d(j: int) -> int:  # high-pass value at odd position j of the extended signal
        return xe(j) - (xe(j - 1) + xe(j + 1)) // 2

    s = [xe(2 * i) + (d(2 * i - 1) + d(2 * i + 1) + 2) // 4 for i in range((n + 1) // 2)]
    return np.array(s + [d(2 * i + 1) for i in range(n // 2)])


@pytest.mark.parametrize("n", [2, 3, 5, 8, 13])
def test_legall53_matches_formula_and_is_exact(n):
    rng = np.random.default_rng(n)
    x = rng.integers(-32768, 65536, size=n)
    np.testing.assert_array_equal(fwd53(x), _legall_reference(x))
    np.testing.assert_array_equal(inv53(fwd53(x)), x)


@pytest.mark.parametrize("shape", [(5, 7, 9), (2, 3, 2), (1, 6, 5), (9, 16, 4)])
def test_numba_kernels_match_numpy_reference(shape):
    rng = np.random.default_rng(1)
    for axis in range(3):
        x = rng.normal(size=shape) * 100
        y = x.copy()
        lift_region(y, axis, False, True)
        ref = np.moveaxis(fwd97(np.moveaxis(x, axis, 0)), 0, axis)
        np.testing.assert_allclose(y, ref, rtol=0, atol=1e-9)
        lift_region(y, axis, False, False)
        np.testing.assert_allclose(y, x, atol=1e-9)
        np.testing.assert_allclose(np.moveaxis(inv97(fwd97(np.moveaxis(x, axis, 0))), 0, axis), x)
        xi = rng.integers(-40000, 40000, size=shape)
        yi = xi.copy()
        lift_region(yi, axis, True, True)
        np.testing.assert_array_equal(yi, np.moveaxis(fwd53(np.moveaxis(xi, axis, 0)), 0, axis))
        lift_region(yi, axis, True, False)
        np.testing.assert_array_equal(yi, xi)


@pytest.mark.parametrize("shape", [(10, 128, 128), (7, 13, 5), (1, 17, 11), (24, 33, 20)])
@pytest.mark.parametrize("packet", [False, True])
def test_multilevel_perfect_reconstruction_and_tiling(shape, packet):
    rng = np.random.default_rng(3)
    lv = axis_levels(shape, 5)
    x = rng.normal(size=shape) * 1000
    np.testing.assert_allclose(
        inverse(forward(x, lv, False, packet), lv, False, packet), x, atol=1e-8
    )
    xi = rng.integers(-32768, 32768, size=shape)
    np.testing.assert_array_equal(inverse(forward(xi, lv, True, packet), lv, True, packet), xi)
    cover = np.zeros(shape, dtype=int)
    for band in subbands(shape, lv, packet):
        z0, z1, y0, y1, x0, x1 = band.box
        cover[z0:z1, y0:y1, x0:x1] += 1
    assert (cover == 1).all()  # subbands tile the coefficient array exactly once


def test_axis_levels_rule():
    assert axis_levels((10, 128, 256), 5) == (2, 5, 5)
    assert axis_levels((1, 7, 3), 5) == (0, 1, 0)
    assert axis_levels((64, 64, 64), 5, transform_z=False) == (0, 5, 5)


def test_energy_compaction_and_near_orthonormality(dipy_volume):
    x = dipy_volume.astype(np.float64) - dipy_volume.mean()
    lv = axis_levels(x.shape, 5)
    c = forward(x, lv, False, False)
    bands = subbands(x.shape, lv, False)
    assert bands[0].rank == 0 and bands[0].box == (0, 3, 0, 4, 0, 4)
    # energy compaction: the largest 1% of coefficients hold most of the energy (measured
    # 0.906 here), far more than the largest 1% of mean-removed voxels do (measured 0.40)
    e = np.sort(c.ravel() ** 2)[::-1]
    ex = np.sort(x.ravel() ** 2)[::-1]
    top = e.size // 100
    assert e[:top].sum() / e.sum() > 0.85
    assert ex[:top].sum() / ex.sum() < 0.5
    # near-orthonormal scaling: energy preserved to within 10% (measured 1.059; the boundary
    # extension on the 10-slice axis accounts for most of the excess)
    assert np.sum(c**2) / np.sum(x**2) == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("packet", [False, True])
def test_scan_order_is_a_permutation_and_gather_matches_numpy(packet):
    from wdrcodec import coder
    from wdrcodec.layout import make_layout

    grouping = np.array([[True, False, True, True, False], [False] * 5])
    lay = make_layout((2, 5, 12, 9), grouping, 5, packet)
    order = lay.order
    np.testing.assert_array_equal(np.sort(order), np.arange(lay.n))  # every coefficient once
    assert (lay.classes[:4] == 0).all()  # the scan starts with low-pass coefficients
    flat = np.random.default_rng(0).normal(size=lay.n) * 50
    mag = np.empty(lay.n, np.int64)
    neg = np.empty(lay.n, np.uint8)
    coder.gather_magnitudes(flat, lay.boxes, 16.0, mag, neg)
    np.testing.assert_array_equal(mag, np.rint(np.abs(flat[order]) * 16).astype(np.int64))
    np.testing.assert_array_equal(neg, flat[order] < 0)
    back = np.empty(lay.n)
    coder.scatter_values(flat[order], lay.boxes, back)
    np.testing.assert_array_equal(back, flat)
