"""MCPD scores (paper eq. 1 averaged over following slices) and grouping rule."""

from __future__ import annotations

import numpy as np
import pytest

from wdrcodec import WdrError
from wdrcodec.mcpd import mcpd_grouping, mcpd_scores, normalise


def _brute_force(v: np.ndarray) -> np.ndarray:
    z, ny, nx = v.shape
    out = np.zeros(z)
    for i in range(z):
        vals = []
        for j in range(i + 1, z):
            total = 0.0
            for y in range(ny):
                for x in range(nx):
                    total += abs(float(v[i, y, x]) - float(v[j, y, x]))
            vals.append(total / (ny * nx))
        out[i] = np.mean(vals) if vals else 0.0
    return out


def test_scores_match_definition():
    rng = np.random.default_rng(0)
    v = rng.integers(0, 100, size=(5, 4, 6)).astype(np.uint16)
    np.testing.assert_allclose(mcpd_scores(v, "none"), _brute_force(v))
    np.testing.assert_allclose(mcpd_scores(v, "std"), _brute_force(v / v.astype(float).std()))
    r = (v - v.min()) / float(v.max() - v.min())
    np.testing.assert_allclose(mcpd_scores(v, "range"), _brute_force(r))
    assert mcpd_scores(v, "none")[-1] == 0.0  # last slice has no followers (paper Table 2)


def test_grouping_rule_and_outlier_slice():
    rng = np.random.default_rng(1)
    base = rng.normal(1000, 100, size=(1, 16, 16))
    v = np.repeat(base, 6, axis=0) + rng.normal(0, 5, size=(6, 16, 16))
    v[2] += 3000  # one very different slice
    scores = mcpd_scores(v, "std")
    # the outlier scores high, and it also lifts the averages of the slices before it
    # (each averages over all *following* slices, like slices 1-9 vs 10 in the paper's Table 2)
    assert scores[2] > 2.0 and scores[0] == pytest.approx(scores[2] / 5, rel=0.05)
    mask = mcpd_grouping(v, threshold=0.5, norm="std")
    np.testing.assert_array_equal(mask, [False, False, False, True, True, True])
    # scale invariance of the std normalisation
    np.testing.assert_allclose(mcpd_scores(v * 7.0, "std"), mcpd_scores(v, "std"))
    # fewer than two slices below the threshold: no 3D group
    assert not mcpd_grouping(v, threshold=0.0).any()


def test_bad_norm_and_threshold():
    v = np.zeros((3, 4, 4))
    with pytest.raises(WdrError):
        normalise(v, "bogus")
    with pytest.raises(WdrError):
        mcpd_grouping(v, threshold=float("nan"))
