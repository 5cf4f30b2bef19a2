"""PSNR, SSIM, LNCC and MSE against scikit-image and analytic cases."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from medshared.errors import MedsharedError
from medshared.metrics import lncc, mse, psnr, ssim

skm = pytest.importorskip("skimage.metrics")


def _skimage_ssim(ref: np.ndarray, test: np.ndarray, data_range: float) -> float:
    return float(
        skm.structural_similarity(
            ref,
            test,
            data_range=data_range,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )


def test_psnr_of_known_mse() -> None:
    ref = np.zeros((8, 8), dtype=np.uint8)
    test = ref.copy()
    test[0, :4] = 8  # squared error 64 on 4 of 64 voxels -> MSE 4
    assert mse(ref, test) == pytest.approx(4.0)
    assert psnr(ref, test, data_range="dtype") == pytest.approx(10 * np.log10(255**2 / 4.0))
    assert psnr(ref, test, data_range=100.0) == pytest.approx(10 * np.log10(100**2 / 4.0))


def test_psnr_identical_is_inf_without_warning() -> None:
    img = np.arange(27, dtype=np.uint16).reshape(3, 3, 3)
    with np.errstate(all="raise"):
        assert psnr(img, img, data_range="dtype") == float("inf")


def test_psnr_conventions_for_16_bit() -> None:
    rng = np.random.default_rng(1)
    ref = rng.integers(100, 1100, size=(4, 16, 16)).astype(np.uint16)
    test = (ref.astype(np.int32) + rng.integers(-5, 6, ref.shape)).astype(np.uint16)
    peak_dtype = psnr(ref, test, data_range="dtype")
    peak_ref = psnr(ref, test, data_range="ref")
    # 65535 vs ~1000: the paper's 16-bit convention reads 20 log10(65535 / range) dB higher.
    expected_gap = 20 * np.log10(65535.0 / (int(ref.max()) - int(ref.min())))
    assert peak_dtype - peak_ref == pytest.approx(expected_gap)
    assert peak_ref == pytest.approx(
        skm.peak_signal_noise_ratio(ref, test, data_range=float(ref.max()) - float(ref.min()))
    )


@pytest.mark.parametrize("shape", [(64, 48), (13, 24, 20)])
def test_ssim_matches_skimage_on_random_images(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(7)
    ref = rng.random(shape)
    test = np.clip(ref + 0.2 * rng.standard_normal(shape), 0, 1)
    ours = ssim(ref, test, data_range=1.0)
    assert abs(ours - _skimage_ssim(ref, test, 1.0)) < 1e-6
    assert 0.0 < ours < 0.9


def test_ssim_matches_skimage_on_real_volume(example4d_volume: np.ndarray) -> None:
    ref = example4d_volume
    rng = np.random.default_rng(3)
    test = ref + rng.normal(0, 0.05 * ref.std(), ref.shape)
    rng_ = float(ref.max() - ref.min())
    if min(ref.shape) >= 11:
        expected = _skimage_ssim(ref, test, rng_)
    else:  # skimage refuses axes shorter than its 11-voxel window: compare slice by slice
        expected = None
    if expected is not None:
        assert abs(ssim(ref, test, data_range="ref") - expected) < 1e-6
    for z in range(0, ref.shape[2], max(1, ref.shape[2] // 3)):
        a, b = ref[:, :, z], test[:, :, z]
        assert abs(ssim(a, b, data_range=rng_) - _skimage_ssim(a, b, rng_)) < 1e-6


def test_ssim_real_dipy_slices_and_identity(s0_volume: np.ndarray) -> None:
    vol = s0_volume
    rng_ = float(vol.max() - vol.min())
    blurred = vol.copy()
    blurred[1:-1] = (vol[:-2] + vol[1:-1] + vol[2:]) / 3
    for z in (0, 5, 9):
        a, b = vol[:, :, z], blurred[:, :, z]
        assert abs(ssim(a, b, data_range=rng_) - _skimage_ssim(a, b, rng_)) < 1e-6
    assert ssim(vol, vol, data_range=rng_) == pytest.approx(1.0)
    # 10 slices: shorter than the window on that axis, accepted without cropping it
    assert 0.5 < ssim(vol, blurred, data_range=rng_) < 1.0


def test_ssim_decreases_with_noise() -> None:
    rng = np.random.default_rng(0)
    ref = np.cumsum(rng.random((40, 40)), axis=0)
    values = [
        ssim(ref, ref + rng.normal(0, s, ref.shape), data_range="ref") for s in (0.1, 1.0, 5.0)
    ]
    assert values[0] > values[1] > values[2]


def test_lncc_matches_bruteforce() -> None:
    rng = np.random.default_rng(5)
    a = rng.random((12, 11))
    b = 0.5 * a + rng.random((12, 11))
    w = 3
    pa = np.pad(a, 1, mode="symmetric")  # scipy's 'reflect' == numpy's 'symmetric'
    pb = np.pad(b, 1, mode="symmetric")
    ccs = []
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            x = pa[i : i + w, j : j + w].ravel()
            y = pb[i : i + w, j : j + w].ravel()
            ccs.append(np.mean((x - x.mean()) * (y - y.mean())) / (x.std() * y.std()))
    assert lncc(a, b, window=w) == pytest.approx(np.mean(ccs), abs=1e-9)


def test_lncc_is_invariant_to_affine_intensity_and_detects_anticorrelation() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((16, 16, 16))
    assert lncc(a, 4.0 * a - 7.0) == pytest.approx(1.0, abs=1e-9)
    assert lncc(a, -a) == pytest.approx(-1.0, abs=1e-9)
    assert abs(lncc(a, rng.random(a.shape))) < 0.1


def test_lncc_flat_images() -> None:
    flat = np.ones((8, 8))
    assert lncc(flat, flat) == 1.0
    assert lncc(flat, 2 * flat) == 0.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: psnr(np.zeros((4, 4)), np.zeros((4, 5)), data_range=1.0), "shapes differ"),
        (lambda: psnr(np.zeros(4), np.zeros(4), data_range=1.0), "2D or 3D or 4D"),
        (lambda: psnr(np.zeros((4, 4)), np.zeros((4, 4)), data_range="dtype"), "integer image"),
        (lambda: psnr(np.zeros((4, 4)), np.zeros((4, 4)), data_range="ref"), "constant"),
        (lambda: psnr(np.zeros((4, 4)), np.zeros((4, 4)), data_range=-1), "positive"),
        (lambda: psnr(np.zeros((4, 4)), np.zeros((4, 4)), data_range="peak"), "'dtype' or 'ref'"),
        (lambda: ssim(np.full((4, 4), np.nan), np.zeros((4, 4)), data_range=1.0), "NaN"),
        (lambda: ssim(np.zeros((2, 4, 4, 4)), np.zeros((2, 4, 4, 4)), 1.0), "2D or 3D"),
        (lambda: ssim(np.array([["a"]]), np.array([["a"]]), 1.0), "non-numeric"),
        (lambda: lncc(np.zeros((4, 4)), np.zeros((4, 4)), window=4), "odd"),
        (lambda: psnr(np.zeros((0, 4)), np.zeros((0, 4)), data_range=1.0), "empty"),
        (lambda: psnr(np.zeros((4, 4)), np.ones((4, 4))), "data_range is required"),
        (lambda: ssim(np.zeros((4, 4)), np.ones((4, 4))), "data_range is required"),
    ],
)
def test_errors_are_clear(call, message: str) -> None:
    with pytest.raises(MedsharedError, match=message):
        call()


def test_psnr_int16_dtype_range_and_float_input() -> None:
    ref = np.array([[-32768, 32767], [0, 1]], dtype=np.int16)
    test = ref.astype(np.float64) + 1.0
    assert psnr(ref, test, data_range="dtype") == pytest.approx(10 * np.log10(65535.0**2))
    assert_allclose(mse(ref, test), 1.0)
