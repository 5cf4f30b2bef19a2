"""Whole-volume stitching: exact tiling, no seams, batching independence."""

from __future__ import annotations

import numpy as np
import pytest

from flowsr.config import PredictConfig
from flowsr.errors import FlowsrError
from flowsr.predict import axis_tiles, stitch_predict


def _nearest_up(batch):
    up = batch[:, :3].repeat(2, 2).repeat(2, 3).repeat(2, 4)
    return up, up[:, :1] * 0 + 0.25


@pytest.mark.parametrize("n,p,s", [(64, 32, 28), (37, 16, 12), (10, 16, 12), (32, 32, 28)])
def test_axis_tiles_partition(n, p, s):
    tiles = axis_tiles(n, p, s)
    owned = np.concatenate([np.arange(lo, hi) for _, lo, hi in tiles])
    np.testing.assert_array_equal(owned, np.arange(max(n, p)))
    for start, lo, hi in tiles:
        assert start <= lo < hi <= start + p


def test_identity_like_model_reproduces_input_exactly():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 61, 45, 23)).astype(np.float32)  # (T, C, x, y, z)
    vel, prob, n = stitch_predict(_nearest_up, x, PredictConfig(batch_size=5))
    ref = x[:, :3].repeat(2, 2).repeat(2, 3).repeat(2, 4)
    np.testing.assert_array_equal(vel, ref)
    assert prob.shape == (3, 122, 90, 46) and np.all(prob == 0.25)
    assert n == 3 * 3 * 2 * 2


def test_border_effects_are_trimmed():
    # a model that marks its patch border: none of the marks may survive inside the volume
    def border_marking(batch):
        up, p = _nearest_up(batch)
        up = up.copy()
        for sl in (np.s_[:, :, :4], np.s_[:, :, -4:], np.s_[:, :, :, :4], np.s_[:, :, :, -4:],
                   np.s_[:, :, :, :, :4], np.s_[:, :, :, :, -4:]):
            up[sl] = np.nan
        return up, p

    x = np.ones((1, 3, 88, 88, 40), np.float32)
    vel, _, _ = stitch_predict(border_marking, x)
    inner = vel[:, :, 4:-4, 4:-4, 4:-4]
    assert np.all(np.isfinite(inner))


def test_batch_size_does_not_change_the_result():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 4, 40, 40, 20)).astype(np.float32)

    def smooth(batch):
        up = batch[:, :3].repeat(2, 2).repeat(2, 3).repeat(2, 4)
        return up * batch[:, 3:].mean(axis=(1, 2, 3, 4), keepdims=True), None

    a = stitch_predict(smooth, x, PredictConfig(batch_size=1))[0]
    b = stitch_predict(smooth, x, PredictConfig(batch_size=64))[0]
    np.testing.assert_array_equal(a, b)


def test_gap_stride_refused():
    with pytest.raises(FlowsrError, match="stride"):
        axis_tiles(64, 16, 20)
    with pytest.raises(FlowsrError, match="--stride-z 12 exceeds --patch-z 8"):
        PredictConfig(patch_z=8)
