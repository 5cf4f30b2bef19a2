import numpy as np
import pytest

from streamvq.errors import StreamvqError
from streamvq.grouping import (
    Normalisation,
    balance_tracts,
    from_tensor_layout,
    group_indices,
    split_subjects,
    to_tensor_layout,
)


def test_small_bundle_repeats_every_streamline():
    idx = group_indices(50, 64, np.random.default_rng(0))
    assert idx.shape == (1, 64)
    counts = np.bincount(idx.ravel(), minlength=50)
    assert counts.min() == 1 and counts.max() == 2 and (counts == 2).sum() == 14


@pytest.mark.parametrize("m", [64, 130, 200])
def test_large_bundle_covers_all_without_duplicates_in_a_group(m):
    idx = group_indices(m, 64, np.random.default_rng(1))
    assert idx.shape == (-(-m // 64), 64)
    assert set(idx.ravel().tolist()) == set(range(m))
    assert all(len(set(g.tolist())) == 64 for g in idx)


def test_empty_bundle_is_an_error():
    with pytest.raises(StreamvqError, match="empty bundle"):
        group_indices(0, 64, np.random.default_rng(0))


def test_grouping_is_seeded():
    a = group_indices(300, 64, np.random.default_rng(7))
    b = group_indices(300, 64, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)


def test_balance_gives_equal_counts():
    tract = np.array([0] * 10 + [1] * 3 + [2] * 7)
    kept = balance_tracts(tract, np.random.default_rng(0))
    assert np.bincount(tract[kept]).tolist() == [3, 3, 3]
    assert len(set(kept.tolist())) == 9


def test_split_by_subject_is_seeded_and_sized():
    subjects = [f"s{i}" for i in range(20)]
    a = split_subjects(subjects, 0.1, np.random.default_rng(5))
    b = split_subjects(subjects, 0.1, np.random.default_rng(5))
    assert a == b and len(a) == 2
    assert split_subjects(["only"], 0.1, np.random.default_rng(0)) == frozenset()


def test_normalisation_round_trip_and_range():
    x = np.random.default_rng(0).uniform(-80, 60, (4, 64, 64, 3))
    n = Normalisation.fit(x)
    u = n.to_unit(x)
    assert u.min() == pytest.approx(-1) and u.max() == pytest.approx(1)
    np.testing.assert_allclose(n.to_mm(u), x, atol=1e-9)
    assert n.mm_per_unit == pytest.approx((x.max() - x.min()) / 2)
    with pytest.raises(StreamvqError):
        Normalisation.fit(np.ones(5))


def test_tensor_layout_round_trip():
    g = np.random.default_rng(0).normal(size=(2, 64, 32, 3))
    t = to_tensor_layout(g)
    assert t.shape == (2, 3, 64, 32)
    np.testing.assert_allclose(t[1, :, 5, 7], g[1, 5, 7], rtol=1e-6)
    np.testing.assert_allclose(from_tensor_layout(t), g, rtol=1e-6)
