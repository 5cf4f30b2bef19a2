"""BUAN shape similarity on the real tracks300.trk bundle shipped with dipy."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from medshared.errors import MedsharedError
from medshared.metrics import buan

pytest.importorskip("dipy")


@pytest.fixture(scope="module")
def bundle(dipy_path) -> list[np.ndarray]:
    trk = nib.streamlines.load(str(dipy_path("tracks300.trk")))
    return [np.asarray(s, np.float32) for s in trk.streamlines]


def test_identical_bundles_score_one(bundle: list[np.ndarray]) -> None:
    assert buan(bundle, bundle, rng=0) == pytest.approx(1.0)


def test_far_translated_bundle_scores_zero(bundle: list[np.ndarray]) -> None:
    moved = [s + np.float32(200.0) for s in bundle]
    assert buan(bundle, moved, rng=0) == 0.0


def test_small_shift_lowers_score_monotonically(bundle: list[np.ndarray]) -> None:
    scores = [
        buan(bundle, [s + np.array([d, 0, 0], np.float32) for s in bundle], rng=0)
        for d in (0.0, 4.0, 12.0)
    ]
    assert scores[0] >= scores[1] >= scores[2]
    assert scores[0] > scores[2]


def test_matches_dipy_and_is_reproducible(bundle: list[np.ndarray]) -> None:
    from dipy.segment.bundles import bundle_shape_similarity
    from dipy.tracking.streamline import Streamlines

    half = bundle[::2]
    other = [s + np.float32(3.0) for s in bundle[1::2]]
    expected = bundle_shape_similarity(
        Streamlines(half), Streamlines(other), np.random.default_rng(42), threshold=6
    )
    assert buan(half, other, rng=42) == pytest.approx(expected)
    assert buan(half, other, rng=42) == buan(half, other, rng=np.random.default_rng(42))


def test_buan_errors() -> None:
    with pytest.raises(MedsharedError, match=r"\(N, 3\)"):
        buan([np.zeros((5, 2))], [np.zeros((5, 3))])
    with pytest.raises(MedsharedError, match="NaN"):
        buan([np.full((5, 3), np.nan)], [np.zeros((5, 3))])
    with pytest.raises(MedsharedError, match="threshold"):
        buan([np.zeros((5, 3))], [np.zeros((5, 3))], threshold=0)
    assert buan([], [np.zeros((5, 3))]) == 0.0


def test_clustering_once_gives_the_same_scores_as_buan(bundle: list[np.ndarray]) -> None:
    from medshared.metrics import buan_adjacency, buan_centroids

    half = bundle[::2]
    other = [s + np.float32(2.0) for s in bundle[1::2]]
    gen = np.random.default_rng(5)  # buan uses one generator for both clusterings, in order
    ca, cb = buan_centroids(half, rng=gen), buan_centroids(other, rng=gen)
    scores = buan_adjacency(ca, cb, [2.0, 6.0])
    assert scores == [pytest.approx(buan(half, other, threshold=t, rng=5)) for t in (2.0, 6.0)]
    assert scores[0] < scores[1]  # a stricter threshold cannot score higher
    with pytest.raises(MedsharedError, match="positive"):
        buan_adjacency(ca, cb, [0.0])
