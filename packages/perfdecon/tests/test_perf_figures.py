"""overview.png: radiological orientation from the affine, markers on the right voxel."""

from __future__ import annotations

import numpy as np
import pytest

from perfdecon.figures import _View, mismatch

AXIAL_AFFINES = {
    "RAS": np.diag([0.9, 0.9, 5.0, 1.0]),
    "LAS": np.diag([-0.9, 0.9, 5.0, 1.0]),
    "LPS": np.diag([-0.9, -0.9, 5.0, 1.0]),
    "transposed": np.array([[0, 0.9, 0, 0], [0.9, 0, 0, 0], [0, 0, 5, 0], [0, 0, 0, 1.0]]),
}


@pytest.mark.parametrize("name", list(AXIAL_AFFINES))
def test_axial_slices_are_radiological_and_points_follow_the_image(name):
    affine = AXIAL_AFFINES[name]
    view = _View(affine)
    assert view.letters == ("A", "P", "R", "L")
    ny, nx = 7, 5
    # world coordinates of every voxel of slice z = 0, axes (Y, X)
    yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    world = np.einsum("ij,jyx->iyx", affine[:3, :3], np.stack([xx, yy, np.zeros_like(xx)]))
    wx, wy = view.image(world[0]), view.image(world[1])
    assert (np.diff(wy, axis=0) < 0).all()  # anterior (+y) at the top, decreasing downwards
    assert (np.diff(wx, axis=1) < 0).all()  # the patient's right (+x) on the image's left
    for y, x in [(0, 0), (6, 1), (3, 4)]:
        mark = np.zeros((ny, nx))
        mark[y, x] = 1
        col, row = view.point(y, x, (ny, nx))
        assert view.image(mark)[row, col] == 1


def test_non_axial_or_missing_affine_keeps_voxel_order():
    coronal = np.array([[0.9, 0, 0, 0], [0, 0, 5.0, 0], [0, 0.9, 0, 0], [0, 0, 0, 1.0]])
    for view in (_View(None), _View(coronal)):
        a = np.arange(12.0).reshape(3, 4)
        assert view.letters is None and (view.image(a) == a).all()
        assert view.point(2, 1, (3, 4)) == (1, 2)


def test_mismatch_ratio():
    assert mismatch(10.0, 20.0) == pytest.approx(3.0)
    assert mismatch(0.0, 5.0) is None
