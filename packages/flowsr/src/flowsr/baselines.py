"""Interpolation baselines: trilinear and tricubic 2x upsampling of a low-res velocity field.

Both use voxel-centre alignment (``scipy.ndimage.zoom(grid_mode=True)``): high-res voxel ``i``
at ``(i + 0.5) h`` samples the low-res field at the same physical point, the convention of
:mod:`flowsr.downsample` (whose low-res voxels are centred on their high-res blocks) and of the
network output.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.ndimage import zoom

from flowsr.errors import FlowsrError

_ORDERS = {"trilinear": 1, "tricubic": 3}


def interpolate(
    velocity: np.ndarray, method: Literal["trilinear", "tricubic"] = "trilinear", factor: int = 2
) -> np.ndarray:
    """Upsample ``(C, T, X, Y, Z)`` (or ``(C, X, Y, Z)``) by ``factor`` along X, Y, Z.

    Returns
    -------
    np.ndarray
        float32, spatial axes multiplied by ``factor``; edges use nearest-value extension.
    """
    if method not in _ORDERS:
        raise FlowsrError(f"interpolation method must be one of {sorted(_ORDERS)}, got {method!r}")
    v = np.asarray(velocity, dtype=np.float32)
    if v.ndim < 3:
        raise FlowsrError(f"interpolate: need at least 3 spatial axes, got shape {v.shape}")
    flat = v.reshape(-1, *v.shape[-3:])
    out = np.empty((flat.shape[0], *(n * factor for n in v.shape[-3:])), dtype=np.float32)
    for i, vol in enumerate(flat):  # one 3D zoom per component and frame
        out[i] = zoom(vol, factor, order=_ORDERS[method], mode="nearest", grid_mode=True)
    return out.reshape(*v.shape[:-3], *out.shape[1:])
