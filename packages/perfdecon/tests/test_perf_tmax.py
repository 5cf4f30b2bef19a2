"""Tmax estimators (:mod:`perfdecon.tmax`): first-lobe onset, sub-frame peak, cSVD bias."""

from __future__ import annotations

import numpy as np
import pytest

from perfdecon import npmaps
from perfdecon.phantom import grid_phantom
from perfdecon.tmax import first_lobe, onset_time, peak_time


def test_first_lobe_skips_a_later_higher_ringing_lobe():
    t = np.arange(40.0)
    k = np.where(t >= 5, np.exp(-(t - 5) / 4), 0.0)
    k = k + 1.2 * np.exp(-0.5 * ((t - 25) / 1.5) ** 2)  # a later lobe, higher than the peak
    assert first_lobe(k) == 5 and first_lobe(k, 1.0) == 25
    assert onset_time(k, 1.0) == pytest.approx(4.5, abs=1e-9)  # half of the step at 5
    assert onset_time(k, 1.0, lobe_fraction=1.0) > 20
    # a small early noise bump (below half the maximum) is not a lobe
    k2 = k.copy()
    k2[1] = 0.3
    assert first_lobe(k2) == 5


def test_onset_and_peak_interpolate_below_one_frame_and_keep_shapes():
    t = np.arange(30.0)
    k = np.stack([np.where(t >= 8, 1.0 - 0.01 * (t - 8), 0.0) + np.where(t == 7, 0.2, 0.0),
                  np.exp(-0.5 * ((t - 12.4) / 2.0) ** 2)])
    on = onset_time(k, 2.0)  # half of 1 is crossed 0.3 / 0.8 of the way from frame 7 to 8
    assert on.shape == (2,) and on[0] == pytest.approx(2.0 * (7 + 0.3 / 0.8), abs=1e-9)
    assert peak_time(k[1:], 1.0)[0] == pytest.approx(12.4, abs=0.05)
    assert onset_time(k.reshape(1, 2, 30), 1.0).shape == (1, 2)
    assert onset_time(np.ones((3, 10)), 1.0).tolist() == [0.0, 0.0, 0.0]  # above from frame 0
    assert onset_time(-np.ones(10), 1.0) == 0.0  # no positive peak: defined, not NaN


@pytest.mark.parametrize("residue", ["exponential", "gamma"])
def test_csvd_zero_delay_bias_below_one_second_at_5_hu_and_delays_tracked(residue):
    # grid phantom, true AIF, no smoothing, 5 HU per voxel (the hardest case for cSVD's 10 %
    # truncation), cells with MTT >= 4 s. Measured median error (s), delay 0 / 3 s:
    # exponential +0.52 / -0.11 (global peak: +2.69 / +2.15), gamma +0.38 / +0.02 (+1.55 / +1.41)
    g = grid_phantom(np.random.default_rng(0), residue_shape=residue, noise_hu=5.0,
                     delays=(0.0, 3.0), block=4)
    sel = g.mtt[0] >= 4
    k = npmaps.deconvolve(g.aif, g.ctc, g.dt, method="csvd")
    err = onset_time(k, g.dt) - g.tmax
    err_global = onset_time(k, g.dt, lobe_fraction=1.0) - g.tmax
    med0, med3 = np.median(err[0][sel]), np.median(err[1][sel])
    assert abs(med0) < 1.0 and abs(med3) < 1.0
    assert abs(med3 - med0) < 0.8  # a 3 s delay moves Tmax by 3 s (+-0.8)
    assert np.median(err_global[0][sel]) > 1.2  # the rule the test guards against


def test_invert_onset_undoes_a_known_table():
    from perfdecon.tmax import OnsetTable, invert_onset

    delays = np.arange(0.0, 20.0, 0.5)
    mtt = np.array([2.0, 8.0])
    # a table whose onset is the delay minus 1 s (MTT 2) or minus 2 s (MTT 8), clipped at 0
    onset = np.stack([np.maximum(delays - 1, 0), np.maximum(delays - 2, 0)], 1)
    onset = onset + 1e-9 * np.arange(len(delays))[:, None]
    table = OnsetTable(delays=delays, mtt=mtt, onset=onset)
    got = invert_onset(np.array([5.0, 5.0, 5.0, 30.0]), np.array([2.0, 8.0, 4.0, 2.0]), table)
    # MTT 4 lies halfway between 2 and 8 in log MTT; 30 s is beyond the table: constant offset
    np.testing.assert_allclose(got, [6.0, 7.0, 6.5, 31.0], atol=1e-6)
    assert invert_onset(np.zeros(2), np.array([0.0, 100.0]), table).min() >= 0


@pytest.mark.parametrize("residue", ["exponential", "gamma", "box"])
def test_calibrated_tmax_removes_the_onset_bias_at_every_delay(residue):
    # grid phantom, true AIF, Tikhonov 0.3, 2 HU, MTT >= 4 s. Measured median error (s) at
    # delays 0 / 3 / 8 s: onset exponential +0.02 / -0.71 / -0.71, calibrated +0.00 / +0.10 /
    # +0.08; gamma calibrated +0.05 / +0.15 / +0.15; box +0.24 / +0.29 / +0.40
    g = grid_phantom(np.random.default_rng(0), residue_shape=residue, noise_hu=2.0,
                     delays=(0.0, 3.0, 8.0), block=4)
    sel = g.mtt[0] >= 4
    cal = npmaps.compute_maps(g.ctc, g.aif, g.dt, tmax_method="calibrated").tmax - g.tmax
    med = [np.median(cal[z][sel]) for z in range(3)]
    assert max(abs(m) for m in med) < (0.55 if residue == "box" else 0.3)
    assert max(med) - min(med) < 0.3  # delay insensitive
    if residue != "box":
        on = npmaps.compute_maps(g.ctc, g.aif, g.dt, tmax_method="onset").tmax - g.tmax
        assert np.median(on[1][sel]) < -0.4 and np.median(on[2][sel]) < -0.4


def test_calibrated_is_the_default_for_tikhonov_only():
    from perfdecon.config import MapsConfig

    assert MapsConfig().effective_tmax == "calibrated"
    assert MapsConfig(method="csvd").effective_tmax == "onset"
    assert MapsConfig(method="osvd").effective()["tmax_method"] == "onset"
    assert MapsConfig(tmax_method="peak").effective_tmax == "peak"
