"""Low-res generation (4DFlowNet style) and WMF (eqs. 1-3)."""

from __future__ import annotations

import numpy as np
import pytest

from flowsr.config import DownsampleConfig
from flowsr.downsample import choose_venc, downsample
from flowsr.errors import FlowsrError
from flowsr.wmf import weighted_mean_frequency, wmf_feature, wmf_min


def test_noise_free_downsampling_matches_block_means(small_phantom):
    p = small_phantom
    lr = downsample(p.velocity, p.mask, p.dx_mm, DownsampleConfig(snr_db=80.0))
    assert lr.velocity.shape == (3, 12, 32, 16, 16)[:1] + (12, 32, 32, 16)
    assert lr.dx_mm == pytest.approx(2 * p.dx_mm)
    # deep inside the lumen the low-passed phase equals the local velocity (block average)
    from scipy.ndimage import binary_erosion

    core = binary_erosion(lr.mask, iterations=2)
    blocks = p.velocity.reshape(3, 12, 32, 2, 32, 2, 16, 2).mean(axis=(3, 5, 7))
    err = np.abs(lr.velocity - blocks)[:, :, core]
    assert np.median(err) < 0.02 * p.peak_velocity


def test_venc_from_data_maximum(small_phantom):
    p = small_phantom
    venc = choose_venc(p.velocity, 1.1, 0.1)
    vmax = np.abs(p.velocity).reshape(3, -1).max(axis=1)
    assert np.all(venc >= 1.1 * vmax - 1e-6) and np.all(venc < 1.1 * vmax + 0.1 + 1e-6)
    lr = downsample(p.velocity, p.mask, p.dx_mm)
    np.testing.assert_allclose(lr.venc[:, 0], venc, rtol=1e-6)
    # phase wraps at +-venc: nothing outside the range
    assert np.all(np.abs(lr.velocity) <= lr.venc.max() + 1e-5)


def test_background_carries_uniform_phase_noise(small_phantom):
    p = small_phantom
    lr = downsample(p.velocity, p.mask, p.dx_mm, DownsampleConfig(snr_db=15.0),
                    np.random.default_rng(1))
    from scipy.ndimage import binary_dilation

    far = ~binary_dilation(lr.mask, iterations=3)
    vals = lr.velocity[0, :, far] / lr.venc[0, 0]
    # uniform on (-1, 1]: std 1/sqrt(3), covers the whole range
    assert abs(vals.std() - 1 / np.sqrt(3)) < 0.03
    assert vals.min() < -0.95 and vals.max() > 0.95


def test_snr_sets_fluid_noise(small_phantom):
    p = small_phantom
    from scipy.ndimage import binary_erosion

    core = binary_erosion(p.mask[::2, ::2, ::2], iterations=2)
    errs = []
    for snr in (10.0, 20.0):
        lr = downsample(p.velocity, p.mask, p.dx_mm, DownsampleConfig(snr_db=snr),
                        np.random.default_rng(0))
        ref = downsample(p.velocity, p.mask, p.dx_mm, DownsampleConfig(snr_db=90.0))
        errs.append(np.std((lr.velocity - ref.velocity)[:, :, core] / lr.venc[:, :1, None]))
    # phase noise std ~ sigma/M / pi in units of venc; 10 dB less SNR -> ~3.16x more noise
    assert errs[0] / errs[1] == pytest.approx(10 ** 0.5, rel=0.25)
    assert errs[1] == pytest.approx(10 ** (-20 / 20) / np.pi, rel=0.3)


def test_downsample_errors(small_phantom):
    p = small_phantom
    bad = p.velocity.copy()
    bad[0, 0, 0, 0, 0] = np.nan
    with pytest.raises(FlowsrError, match="NaN"):
        downsample(bad, p.mask, p.dx_mm)
    with pytest.raises(FlowsrError, match="mask shape"):
        downsample(p.velocity, p.mask[:-2], p.dx_mm)
    with pytest.raises(FlowsrError, match="VENC"):
        downsample(p.velocity, p.mask, p.dx_mm, venc=np.array([1.0, 0.0, 1.0]))
    with pytest.raises(FlowsrError, match="VENC"):
        downsample(np.zeros_like(p.velocity), p.mask, p.dx_mm)
    with pytest.raises(FlowsrError, match=r"\(3, T, X, Y, Z\)"):
        downsample(p.velocity[0], p.mask, p.dx_mm)


def test_wmf_pulsatile_lower_than_noise():
    rng = np.random.default_rng(0)
    t = np.arange(20)
    pulsatile = np.sin(2 * np.pi * t / 20) + 0.3 * np.sin(4 * np.pi * t / 20)
    noise = rng.normal(size=(20, 500))
    series = np.concatenate([np.repeat(pulsatile[:, None], 5, axis=1), noise], axis=1)
    w = weighted_mean_frequency(series, dt_s=0.05)  # Hz
    assert w[:5].max() < 1.5  # energy at 1 Hz (and 2 Hz)
    # white noise: the mean of the 9 positive bins 1..9 Hz (Nyquist 10 Hz excluded) is 5 Hz
    assert abs(w[5:].mean() - 5.0) < 0.3
    assert w[:5].max() < w[5:].min()


def test_wmf_exact_values_and_nyquist_choice():
    t = np.arange(8)
    x = np.cos(2 * np.pi * 2 * t / 8)[:, None] + 0.0
    assert weighted_mean_frequency(x, dt_s=0.1)[0] == pytest.approx(2 / 0.8)  # 2.5 Hz
    nyq = np.cos(np.pi * t)[:, None]  # pure Nyquist: excluded -> zero energy -> flat mean
    assert weighted_mean_frequency(nyq)[0] == pytest.approx(np.mean([1, 2, 3]) / 8)
    # two bins weighted by energy 1 and 4 (amplitudes 1 and 2)
    y = (np.cos(2 * np.pi * t / 8) + 2 * np.cos(2 * np.pi * 3 * t / 8))[:, None]
    assert weighted_mean_frequency(y)[0] == pytest.approx((1 * 1 + 4 * 3) / 5 / 8)


def test_wmf_min_takes_minimum_and_feature_is_normalised():
    t = np.arange(12)
    vel = np.zeros((3, 12, 1, 1, 1))
    vel[0, :, 0, 0, 0] = np.cos(2 * np.pi * 5 * t / 12)
    vel[1, :, 0, 0, 0] = np.cos(2 * np.pi * 1 * t / 12)
    vel[2, :, 0, 0, 0] = np.cos(2 * np.pi * 3 * t / 12)
    assert wmf_min(vel, dt_s=1.0)[0, 0, 0] == pytest.approx(1 / 12)
    assert wmf_feature(vel)[0, 0, 0] == pytest.approx(2 / 12)


def test_wmf_single_frame_is_a_clear_error():
    with pytest.raises(FlowsrError, match="time axis"):
        wmf_min(np.zeros((3, 1, 4, 4, 4)))
    with pytest.raises(FlowsrError, match="time axis"):
        wmf_min(np.zeros((3, 2, 4, 4, 4)))


def test_wmf_separates_lumen_from_background(small_phantom):
    p = small_phantom
    lr = downsample(p.velocity, p.mask, p.dx_mm, DownsampleConfig(snr_db=15.0))
    w = wmf_feature(lr.velocity)
    assert np.median(w[lr.mask]) < 0.8 * np.median(w[~lr.mask])
