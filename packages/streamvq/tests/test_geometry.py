import numpy as np
import pytest

from streamvq.errors import StreamvqError
from streamvq.geometry import clean_streamlines, mdf, orient_bundle, resample_streamlines
from streamvq.synthetic import synthetic_bundle


def test_resample_straight_line_is_equally_spaced():
    line = np.array([[0, 0, 0], [1, 0, 0], [10, 0, 0]], float)  # uneven input spacing
    out = resample_streamlines([line], 11)
    np.testing.assert_allclose(out[0, :, 0], np.arange(11), atol=1e-12)
    np.testing.assert_allclose(out[0, :, 1:], 0)


def test_resample_matches_dipy_set_number_of_points():
    from dipy.tracking.streamline import set_number_of_points

    rng = np.random.default_rng(3)
    sl = synthetic_bundle("AF_L", 40, rng)
    ours = resample_streamlines(sl, 64)
    ref = np.stack(set_number_of_points([s.astype(np.float64) for s in sl], 64))
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_resample_keeps_endpoints_and_counts():
    rng = np.random.default_rng(0)
    sl = synthetic_bundle("CST_L", 25, rng)
    out = resample_streamlines(sl, 64)
    assert out.shape == (25, 64, 3)
    np.testing.assert_allclose(out[:, 0], [s[0] for s in sl], atol=1e-5)
    np.testing.assert_allclose(out[:, -1], [s[-1] for s in sl], atol=1e-5)


def test_resample_refuses_unclean_input():
    with pytest.raises(StreamvqError, match="at least 2 points"):
        resample_streamlines([np.zeros((1, 3))], 8)
    with pytest.raises(StreamvqError, match="zero arc length"):
        resample_streamlines([np.zeros((3, 3))], 8)


def test_clean_counts_every_reason():
    good = np.array([[0, 0, 0], [1, 1, 1.0]])
    nan = good.copy()
    nan[1, 0] = np.nan
    kept, idx, rep = clean_streamlines([good, np.zeros((1, 3)), nan, np.zeros((4, 3)), good])
    assert (rep.kept, rep.too_short, rep.non_finite, rep.zero_length) == (2, 1, 1, 1)
    assert rep.dropped == 3
    assert idx.tolist() == [0, 4]
    with pytest.raises(StreamvqError, match="shape"):
        clean_streamlines([np.zeros((4, 2))])


def test_orient_restores_random_flips():
    rng = np.random.default_rng(1)
    base = resample_streamlines(synthetic_bundle("CC_ForcepsMajor", 60, rng), 32)
    base = orient_bundle(base).streamlines
    flips = rng.uniform(size=60) < 0.5
    scrambled = np.where(flips[:, None, None], base[:, ::-1], base)
    out = orient_bundle(scrambled)
    np.testing.assert_allclose(out.streamlines, base)
    assert out.flipped.tolist() == flips.tolist()


def test_mdf_known_value():
    a = np.zeros((2, 5, 3))
    b = a.copy()
    b[1, :, 2] = 3.0
    np.testing.assert_allclose(mdf(a, b), [0.0, 3.0])
