"""Locally normalised cross-correlation."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medshared.errors import MedsharedError
from medshared.metrics._checks import as_image_pair, check_finite
from medshared.metrics._parallel import map_filter


def lncc(a: np.ndarray, b: np.ndarray, window: int = 9, eps: float = 1e-8) -> float:
    """Locally normalised cross-correlation, averaged over the image.

    For every voxel, the Pearson correlation of ``a`` and ``b`` inside a cubic (square in 2D)
    box of ``window`` voxels per side (uniform weights, reflect padding):
    ``cc = cov_ab / sqrt(var_a var_b)``. A patch is *flat* in an image when its local variance
    is below ``eps * max|image|^2``. The result is the mean of ``cc`` over all voxels whose
    patch is not flat in both images (flat-in-both patches carry no correlation information;
    a patch flat in only one image counts as 0). If every patch is flat in both images the
    result is 1.0 when ``a`` equals ``b`` and 0.0 otherwise.

    Parameters
    ----------
    a, b:
        Images of equal shape, 2D ``(Y, X)`` or 3D ``(Z, Y, X)``.
    window:
        Odd box side length in voxels (default 9, as in VoxelMorph).
    eps:
        Relative variance below which a patch counts as flat (default 1e-8).

    Returns
    -------
    float
        Mean local correlation in [-1, 1]; 1 for images equal up to a local affine intensity map.

    Example
    -------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a = rng.random((20, 20))
    >>> round(lncc(a, 3 * a + 2), 6)
    1.0
    """
    a, b = as_image_pair(a, b, "lncc", ndims=(2, 3))
    check_finite(a, "a", "lncc")
    check_finite(b, "b", "lncc")
    if int(window) != window or window < 1 or window % 2 == 0:
        raise MedsharedError(f"lncc: window must be a positive odd integer, got {window!r}")
    x = a.astype(np.float64)
    y = b.astype(np.float64)

    def box(v: np.ndarray) -> np.ndarray:
        return ndimage.uniform_filter(v, size=int(window), mode="reflect")

    mx, my, xx, yy, xy = map_filter(box, [x, y, x * x, y * y, x * y])
    vx = np.maximum(xx - mx * mx, 0.0)
    vy = np.maximum(yy - my * my, 0.0)
    cov = xy - mx * my
    scale = max(float(np.max(np.abs(x))), float(np.max(np.abs(y))), 1e-300) ** 2
    flat_x = vx <= eps * scale
    flat_y = vy <= eps * scale
    informative = ~(flat_x & flat_y)
    if not np.any(informative):
        return 1.0 if np.array_equal(x, y) else 0.0
    both = ~flat_x & ~flat_y
    cc = np.zeros_like(cov)
    cc[both] = cov[both] / np.sqrt(vx[both] * vy[both])
    return float(np.clip(np.mean(cc[informative]), -1.0, 1.0))
