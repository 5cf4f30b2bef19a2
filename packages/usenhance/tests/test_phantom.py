import time

import numpy as np
import pytest

from usenhance.errors import UsenhanceError
from usenhance.phantom import (
    HANDHELD,
    HIGH_END,
    ORGANS,
    Scene,
    SimConfig,
    image_scene,
    make_scene,
    simulate_pair,
)


def _flat(cfg):
    return Scene(np.ones(cfg.shape), np.zeros(cfg.shape), "flat")


def test_rayleigh_speckle_snr():
    cfg = SimConfig()
    env = image_scene(_flat(cfg), HIGH_END, cfg, np.random.default_rng(3)).envelope
    region = env[16:240, 16:240]
    snr = region.mean() / region.std()
    assert abs(snr - 1.91) < 0.06  # Rayleigh: sqrt(pi / (4 - pi)) = 1.913
    # unit tissue keeps unit RMS at every depth with full TGC
    rms_rows = np.sqrt((env**2).mean(axis=1))
    assert np.all(np.abs(rms_rows[8:-8] - 1) < 0.25)


def _lateral_corr_len(img):
    x = img - img.mean(axis=1, keepdims=True)
    f = np.fft.rfft(x, axis=1)
    ac = np.fft.irfft(np.abs(f) ** 2, axis=1).mean(axis=0)
    ac = ac / ac[0]
    return int(np.argmax(ac < 0.5))


def test_handheld_is_worse_by_a_margin():
    cfg = SimConfig()
    flat = _flat(cfg)
    rng = np.random.default_rng(0)
    hi = image_scene(flat, HIGH_END, cfg, rng).envelope
    lo = image_scene(flat, HANDHELD, cfg, rng).envelope
    # wider PSF: the lateral speckle correlation length at least 1.6x longer
    assert _lateral_corr_len(lo) >= 1.6 * _lateral_corr_len(hi)
    # structure fidelity: correlation of the B-mode with the log-echogenicity map
    r_hi, r_lo = [], []
    for i, organ in enumerate(ORGANS):
        p = simulate_pair(organ, cfg, np.random.default_rng(100 + i))
        ref = np.log(p.scene.echo + 1e-3)
        from scipy import ndimage

        sm = lambda a: ndimage.gaussian_filter(a.astype(float), 3)  # noqa: E731
        hi_b = sm(p.high)
        lo_b = sm(simulate_pair(organ, SimConfig(low=HANDHELD.__class__(
            **{**HANDHELD.__dict__, "max_shift_px": 0.0, "max_rotation_deg": 0.0})),
            np.random.default_rng(100 + i)).low)
        r_hi.append(np.corrcoef(sm(ref).ravel(), hi_b.ravel())[0, 1])
        r_lo.append(np.corrcoef(sm(ref).ravel(), lo_b.ravel())[0, 1])
    assert np.mean(r_hi) > np.mean(r_lo) + 0.1, (r_hi, r_lo)
    # smaller dynamic range / haze: the handheld uses a narrower grey-level spread in tissue
    p = simulate_pair("liver", cfg, np.random.default_rng(5))
    assert p.low.std() != p.high.std()


def test_pairs_are_misregistered_and_deterministic():
    cfg = SimConfig(shape=(128, 128))
    a = simulate_pair("carotid", cfg, np.random.default_rng(7))
    b = simulate_pair("carotid", cfg, np.random.default_rng(7))
    c = simulate_pair("carotid", cfg, np.random.default_rng(8))
    np.testing.assert_array_equal(a.low, b.low)
    np.testing.assert_array_equal(a.high, b.high)
    assert not np.array_equal(a.high, c.high)
    assert max(abs(a.shift_px[0]), abs(a.shift_px[1]), abs(a.rotation_deg)) > 0
    assert a.low.dtype == np.float32 and 0 <= a.low.min() and a.low.max() <= 1


def test_every_organ_differs_and_unknown_is_refused():
    cfg = SimConfig(shape=(96, 96))
    maps = [make_scene(o, cfg, np.random.default_rng(0)).echo for o in ORGANS]
    for i in range(len(maps)):
        for j in range(i + 1, len(maps)):
            assert np.abs(maps[i] - maps[j]).mean() > 0.05
    with pytest.raises(UsenhanceError, match="unknown organ"):
        make_scene("spleen", cfg, np.random.default_rng(0))


def test_speed_tens_of_ms_per_pair():
    cfg = SimConfig()
    simulate_pair("thyroid", cfg, np.random.default_rng(0))
    times = []
    for i in range(5):
        t = time.perf_counter()
        simulate_pair(ORGANS[i], cfg, np.random.default_rng(i))
        times.append(time.perf_counter() - t)
    assert np.median(times) < 0.25, times  # ~40 ms unloaded; loose for a shared machine
