"""Locally normalised cross-correlation."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medshared.errors import MedsharedError
from medshared.metrics._checks import as_image_pair, check_finite
from medshared.metrics._chunks import abs_max, arrays_equal, filtered_slabs, plane_sums, slab_axis


def lncc(
    a: np.ndarray,
    b: np.ndarray,
    window: int = 9,
    eps: float = 1e-8,
    *,
    chunk: int | None = None,
) -> float:
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
    chunk:
        Planes per slab along the slowest axis (keyword only; default about 4 Mi voxels). The
        local moments are computed slab by slab in float64 with a ``window // 2`` halo, so the
        result does not depend on ``chunk`` and memory stays bounded for 512^3 volumes.

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
    size = int(window)
    axis = slab_axis(a)
    x_all, y_all = np.moveaxis(a, axis, 0), np.moveaxis(b, axis, 0)
    scale = max(abs_max(x_all), abs_max(y_all), 1e-300) ** 2
    threshold = eps * scale

    weights = np.full(size, 1.0 / size)

    def box(v: np.ndarray, ax: int) -> np.ndarray:
        # Along the slab axis an explicit box correlation: uniform_filter1d's running sum makes
        # each output depend on where the line starts, so slabs would differ from the whole
        # image. The in-plane axes see whole lines, where the faster running sum is exact.
        if ax == 0:
            return ndimage.correlate1d(v, weights, axis=0, mode="reflect")
        return ndimage.uniform_filter1d(v, size=size, axis=ax, mode="reflect")

    def products(d: list[np.ndarray]) -> list[np.ndarray]:
        x, y = d
        return [lambda: x, lambda: y, lambda: x * x, lambda: y * y, lambda: x * y]

    n = x_all.shape[0]
    sums = np.zeros(n, dtype=np.float64)
    counts = np.zeros(n, dtype=np.int64)
    for z0, z1, _, (mx, my, xx, yy, xy) in filtered_slabs(
        [x_all, y_all], products, box, size // 2, chunk
    ):
        vx = np.maximum(xx - mx * mx, 0.0)
        vy = np.maximum(yy - my * my, 0.0)
        cov = xy - mx * my
        flat_x = vx <= threshold
        flat_y = vy <= threshold
        both = ~flat_x & ~flat_y
        cc = np.zeros_like(cov)
        cc[both] = cov[both] / np.sqrt(vx[both] * vy[both])
        # cc is 0 outside `both`, and `both` lies inside the informative voxels.
        sums[z0:z1] = plane_sums(cc)
        counts[z0:z1] = (~(flat_x & flat_y)).reshape(z1 - z0, -1).sum(axis=1)
    total = int(counts.sum())
    if total == 0:
        return 1.0 if arrays_equal(x_all, y_all) else 0.0
    return float(np.clip(np.sum(sums) / total, -1.0, 1.0))
