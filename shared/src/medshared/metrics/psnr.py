"""Peak signal-to-noise ratio."""

from __future__ import annotations

import numpy as np

from medshared.metrics._checks import DataRange, as_image_pair, check_finite, resolve_data_range
from medshared.metrics._chunks import as_float_slab, plane_sums, planes_per_slab, slab_axis, slabs


def mse(ref: np.ndarray, test: np.ndarray, *, chunk: int | None = None) -> float:
    """Mean squared error ``mean((ref - test)^2)``, streamed in float64 slabs.

    Shape: ``ref`` and ``test`` have the same 1D to 4D shape (any axis order). The squared
    differences are summed per plane of the slowest axis, ``chunk`` planes at a time (default
    about 4 Mi voxels), so no full-size float64 copy is made and the result does not depend on
    ``chunk``.
    """
    ref, test = as_image_pair(ref, test, "mse", ndims=(1, 2, 3, 4))
    axis = slab_axis(ref)
    r, t = np.moveaxis(ref, axis, 0), np.moveaxis(test, axis, 0)
    sums = np.zeros(r.shape[0], dtype=np.float64)
    for z0, z1 in slabs(r.shape[0], planes_per_slab(r.shape, chunk)):
        diff = as_float_slab(r, z0, z1)
        diff -= as_float_slab(t, z0, z1)
        diff *= diff
        sums[z0:z1] = plane_sums(diff)
    return float(np.sum(sums) / ref.size)


def psnr(
    ref: np.ndarray,
    test: np.ndarray,
    data_range: DataRange | None = None,
    *,
    chunk: int | None = None,
) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(data_range^2 / MSE)``.

    Parameters
    ----------
    ref, test:
        Reference and test images, same shape, 2D ``(Y, X)`` or 3D ``(Z, Y, X)`` (4D allowed).
    data_range:
        The peak. Either a number, ``"dtype"`` (full range of ``ref``'s integer dtype: 255 for
        uint8, 65535 for uint16 and int16; the convention of the wdrcodec paper for 16-bit data)
        or ``"ref"`` (``ref.max() - ref.min()``, the reference's actual range).
    chunk:
        Planes per slab for the streamed MSE (keyword only; default automatic).

    Returns
    -------
    float
        PSNR in dB; ``inf`` for identical images (no warning).

    Example
    -------
    >>> import numpy as np
    >>> ref = np.zeros((4, 4)); test = ref + 1.0   # MSE = 1
    >>> round(psnr(ref, test, data_range=255.0), 4)
    48.1308
    """
    ref, test = as_image_pair(ref, test, "psnr", ndims=(2, 3, 4))
    check_finite(ref, "ref", "psnr")
    check_finite(test, "test", "psnr")
    peak = resolve_data_range(ref, data_range, "psnr")
    err = mse(ref, test, chunk=chunk)
    if err == 0.0:
        return float("inf")
    return float(10.0 * np.log10(peak * peak / err))
