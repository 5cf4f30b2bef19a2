"""Reference spaces of tractograms and the bounding-box rule.

A reference space is the voxel -> RAS+ mm affine, the grid size ``(X, Y, Z)`` in voxels and the
voxel sizes in mm of the image the streamlines were tracked on. A streamline point is inside the
grid when its voxel coordinate lies in ``[-0.5, dim - 0.5]`` on every axis (voxel centres at
integer coordinates). A grid whose dimensions are all 1 (e.g. dipy's ``minimal_bundles``, stored
with an identity affine and a 1x1x1 grid) carries no usable box: the check is skipped and the
skip is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from streamvq.errors import StreamvqError

OutOfBoxPolicy = Literal["drop", "keep", "clip"]


@dataclass(frozen=True, eq=False)
class ReferenceSpace:
    """Voxel grid of a source tractogram (mm, RAS+)."""

    affine: np.ndarray
    """(4, 4) voxel -> RAS+ mm."""
    dimensions: tuple[int, int, int]
    """Grid size (X, Y, Z), voxels."""
    voxel_sizes: tuple[float, float, float]
    """Voxel sizes, mm."""

    @property
    def has_box(self) -> bool:
        """True when the grid is more than one voxel (a bounding box can be checked)."""
        return int(np.prod(self.dimensions)) > 1

    def to_voxel(self, points_mm: np.ndarray) -> np.ndarray:
        """``(..., 3)`` RAS+ mm -> voxel coordinates."""
        inv = np.linalg.inv(self.affine)
        return points_mm @ inv[:3, :3].T + inv[:3, 3]

    def to_mm(self, points_vox: np.ndarray) -> np.ndarray:
        """``(..., 3)`` voxel coordinates -> RAS+ mm."""
        return points_vox @ self.affine[:3, :3].T + self.affine[:3, 3]

    def as_header(self) -> dict:
        """Plain-JSON form (affine as nested lists)."""
        return {
            "affine": np.asarray(self.affine).tolist(),
            "dimensions": list(self.dimensions),
            "voxel_sizes": list(self.voxel_sizes),
        }


@dataclass(frozen=True)
class BoxReport:
    """Outcome of :func:`apply_box` for one bundle (counts of streamlines)."""

    outside: int
    dropped: int
    clipped: int
    checked: bool


def apply_box(
    streamlines: np.ndarray, space: ReferenceSpace | None, policy: OutOfBoxPolicy
) -> tuple[np.ndarray, np.ndarray, BoxReport]:
    """Apply the out-of-box policy to resampled streamlines ``(M, P, 3)`` in mm.

    ``drop`` removes streamlines with any point outside the grid, ``clip`` moves outside points
    onto the grid boundary, ``keep`` leaves them (they are only counted).

    Returns
    -------
    streamlines : (K, P, 3) array, mm
    kept : (K,) int array of input positions
    report : BoxReport
    """
    if policy not in ("drop", "keep", "clip"):
        raise StreamvqError(f"out-of-box policy must be drop, keep or clip, got {policy!r}")
    x = np.asarray(streamlines, dtype=np.float64)
    idx = np.arange(len(x))
    if space is None or not space.has_box or len(x) == 0:
        return x, idx, BoxReport(0, 0, 0, checked=False)
    vox = space.to_voxel(x)
    upper = np.asarray(space.dimensions, dtype=np.float64) - 0.5
    inside_pt = ((vox >= -0.5) & (vox <= upper)).all(axis=-1)
    outside = ~inside_pt.all(axis=1)
    n_out = int(outside.sum())
    if policy == "drop":
        return x[~outside], idx[~outside], BoxReport(n_out, n_out, 0, True)
    if policy == "clip":
        vox = np.clip(vox, -0.5, upper)
        return space.to_mm(vox), idx, BoxReport(n_out, 0, n_out, True)
    return x, idx, BoxReport(n_out, 0, 0, True)
