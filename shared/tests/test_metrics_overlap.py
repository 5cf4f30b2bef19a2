"""Dice, IoU, soft Dice and HD95 against analytic cases and a KD-tree reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree

from medshared.errors import MedsharedError
from medshared.metrics import dice, hausdorff95, iou, jaccard, soft_dice, surface_distances


def _sphere(shape: tuple[int, int, int], center: tuple[float, ...], radius: float) -> np.ndarray:
    grid = np.indices(shape, dtype=np.float64)
    d2 = sum((g - c) ** 2 for g, c in zip(grid, center, strict=True))
    return d2 <= radius**2


def test_dice_iou_known_overlaps() -> None:
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[:, :5] = True  # 50 voxels
    b[:, 3:8] = True  # 50 voxels, 20 shared
    assert dice(a, b) == pytest.approx(2 * 20 / 100)
    assert iou(a, b) == pytest.approx(20 / 80)
    assert jaccard(a, b) == iou(a, b)
    d = dice(a, b)
    assert iou(a, b) == pytest.approx(d / (2 - d))


def test_empty_masks_are_defined() -> None:
    empty = np.zeros((4, 4, 4), np.uint8)
    full = np.ones((4, 4, 4), np.uint8)
    assert dice(empty, empty) == 1.0
    assert iou(empty, empty) == 1.0
    assert dice(empty, full) == 0.0
    assert iou(full, empty) == 0.0
    assert hausdorff95(empty, empty) == 0.0
    assert hausdorff95(empty, full) == float("inf")


def test_soft_dice_equals_dice_on_binary_and_rewards_confidence() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((8, 8, 8)) > 0.5
    b = rng.random((8, 8, 8)) > 0.5
    assert soft_dice(a.astype(float), b.astype(float), eps=0.0) == pytest.approx(dice(a, b))
    target = a.astype(float)
    confident = np.where(a, 0.9, 0.1)
    unsure = np.where(a, 0.6, 0.4)
    assert soft_dice(confident, target) > soft_dice(unsure, target)


def test_hd95_shifted_spheres_match_kdtree_reference() -> None:
    shape = (40, 40, 40)
    spacing = (2.0, 1.0, 0.5)
    a = _sphere(shape, (20, 20, 20), 8)
    b = _sphere(shape, (20, 23, 20), 8)  # shifted 3 voxels = 3 mm along y
    ours = hausdorff95(a, b, spacing=spacing)

    def surf(m: np.ndarray) -> np.ndarray:
        return np.argwhere(m & ~ndimage.binary_erosion(m, border_value=0)) * np.asarray(spacing)

    pa, pb = surf(a), surf(b)
    d_ab = cKDTree(pb).query(pa)[0]
    d_ba = cKDTree(pa).query(pb)[0]
    expected = np.percentile(np.concatenate([d_ab, d_ba]), 95)
    assert ours == pytest.approx(expected)
    # Analytic sanity: a pure 3 mm shift bounds every surface distance by ~3 mm.
    assert 2.0 < ours <= 3.0 + 1e-9


def test_hd95_concentric_spheres_equals_radius_gap() -> None:
    shape = (48, 48, 48)
    a = _sphere(shape, (24, 24, 24), 15)
    b = _sphere(shape, (24, 24, 24), 10)
    assert hausdorff95(a, b, spacing=(1.5, 1.5, 1.5)) == pytest.approx(5 * 1.5, abs=1.5)


def test_hd95_is_symmetric_and_zero_for_identity() -> None:
    rng = np.random.default_rng(2)
    a = ndimage.binary_opening(rng.random((30, 30)) > 0.4)
    b = ndimage.binary_opening(rng.random((30, 30)) > 0.4)
    assert hausdorff95(a, a) == 0.0
    assert hausdorff95(a, b) == pytest.approx(hausdorff95(b, a))
    d_ab, d_ba = surface_distances(a, b)
    assert d_ab.min() >= 0 and d_ba.min() >= 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: dice(np.array([0, 2]), np.array([0, 1])), "not binary"),
        (lambda: iou(np.zeros(3), np.zeros(4)), "shapes differ"),
        (lambda: soft_dice(np.array([1.5]), np.array([1.0])), r"\[0, 1\]"),
        (lambda: hausdorff95(np.ones((4, 4)), np.ones((4, 4)), spacing=(1.0,)), "spacing"),
        (lambda: hausdorff95(np.ones((4, 4)), np.ones((4, 4)), spacing=(1.0, 0.0)), "spacing"),
        (lambda: hausdorff95(np.ones(4), np.ones(4)), "2D or 3D"),
    ],
)
def test_overlap_errors(call, message: str) -> None:
    with pytest.raises(MedsharedError, match=message):
        call()
