"""Rotation augmentation that rotates the grid AND the velocity vectors.

A rotation by a signed permutation matrix ``R`` (90-degree steps) maps a vector field to
``v'(x) = R v(R^T x)`` (positions about the patch centre): output axis ``i`` is input axis
``p(i)`` (flipped when ``s_i = R[i, p(i)] = -1``) and output component ``i`` is ``s_i`` times
input component ``p(i)``. Scalars (WMF, masks) move with the grid only. Speed and divergence are
invariant (tested). Voxels are assumed isotropic (the phantom's grid is).
"""

from __future__ import annotations

import numpy as np

from flowsr.errors import FlowsrError

_RZ90 = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]])
_RX180 = np.diag([1, -1, -1])
_RY180 = np.diag([-1, 1, -1])
PATCH_ROTATIONS: tuple[np.ndarray, ...] = (
    np.eye(3, dtype=int),
    _RZ90,
    _RZ90 @ _RZ90,
    _RZ90 @ _RZ90 @ _RZ90,
    _RX180,
    _RY180,
)
"""Identity plus the paper's 5 rotations that keep a ``32 x 32 x 16`` patch's shape (90, 180,
270 degrees about Z; 180 degrees about X and about Y)."""


def _decompose(rot: np.ndarray) -> tuple[list[int], list[int]]:
    r = np.asarray(rot)
    if r.shape != (3, 3) or not np.all(np.isin(r, (-1, 0, 1))) or not np.array_equal(
        np.abs(r).sum(axis=0), np.ones(3)
    ) or not np.array_equal(np.abs(r).sum(axis=1), np.ones(3)) or round(np.linalg.det(r)) != 1:
        raise FlowsrError(f"rotation must be a 3x3 signed permutation with det +1, got {r.tolist()}")
    perm = [int(np.flatnonzero(r[i])[0]) for i in range(3)]
    signs = [int(r[i, perm[i]]) for i in range(3)]
    return perm, signs


def keeps_shape(rot: np.ndarray, shape: tuple[int, int, int]) -> bool:
    """True if ``rot`` maps a grid of ``shape`` ``(X, Y, Z)`` onto the same shape."""
    perm, _ = _decompose(rot)
    return all(shape[i] == shape[perm[i]] for i in range(3))


def rotate_scalar(field: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """Rotate a scalar field ``(..., X, Y, Z)`` (last three axes are space)."""
    perm, signs = _decompose(rot)
    lead = field.ndim - 3
    out = np.transpose(field, (*range(lead), *(lead + p for p in perm)))
    flips = tuple(lead + i for i in range(3) if signs[i] < 0)
    return np.flip(out, axis=flips) if flips else out


def rotate_vector(field: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """Rotate a vector field ``(3, ..., X, Y, Z)`` (axis 0 = components u, v, w)."""
    perm, signs = _decompose(rot)
    moved = rotate_scalar(field, rot)
    return np.stack([signs[i] * moved[perm[i]] for i in range(3)])
