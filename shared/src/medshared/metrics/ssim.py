"""Structural similarity (Wang, Bovik, Sheikh & Simoncelli 2004), 2D and 3D."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import ndimage

from medshared.metrics._checks import DataRange, as_image_pair, check_finite, resolve_data_range
from medshared.metrics._chunks import filtered_slabs, plane_sums, slab_axis

SIGMA = 1.5
TRUNCATE = 3.5
K1 = 0.01
K2 = 0.03
RADIUS = int(TRUNCATE * SIGMA + 0.5)  # 5 voxels: the 11-voxel window's half width


def _blur1d(a: np.ndarray, axis: int) -> np.ndarray:
    return ndimage.gaussian_filter1d(a, sigma=SIGMA, axis=axis, truncate=TRUNCATE, mode="reflect")


def _products(d: list[np.ndarray]) -> list[np.ndarray]:
    x, y = d
    return [lambda: x, lambda: y, lambda: x * x, lambda: y * y, lambda: x * y]


def _map_slabs(
    ref: np.ndarray, test: np.ndarray, peak: float, chunk: int | None
) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(z0, z1, ssim map of planes z0:z1)`` along the slab axis (moved to axis 0)."""
    c1 = (K1 * peak) ** 2
    c2 = (K2 * peak) ** 2
    for z0, z1, _, (mu_x, mu_y, xx, yy, xy) in filtered_slabs(
        [ref, test], _products, _blur1d, RADIUS, chunk
    ):
        # num = (2 mu_x mu_y + C1)(2 cov + C2), den = (mu_x^2 + mu_y^2 + C1)(var_x + var_y + C2),
        # evaluated in place to keep the slab's temporaries few.
        mxy = mu_x * mu_y
        np.multiply(mu_x, mu_x, out=mu_x)  # mu_x^2
        np.multiply(mu_y, mu_y, out=mu_y)  # mu_y^2
        np.subtract(xy, mxy, out=xy)  # cov
        np.subtract(xx, mu_x, out=xx)  # var_x
        np.subtract(yy, mu_y, out=yy)  # var_y
        num = np.multiply(mxy, 2.0, out=mxy)
        num += c1
        xy *= 2.0
        xy += c2
        num *= xy
        den = np.add(mu_x, mu_y, out=mu_x)
        den += c1
        xx += yy
        xx += c2
        den *= xx
        num /= den
        yield z0, z1, num


def _prepare(
    ref: np.ndarray, test: np.ndarray, data_range: DataRange | None
) -> tuple[np.ndarray, np.ndarray, float, int]:
    ref, test = as_image_pair(ref, test, "ssim", ndims=(2, 3))
    check_finite(ref, "ref", "ssim")
    check_finite(test, "test", "ssim")
    peak = resolve_data_range(ref, data_range, "ssim")
    axis = slab_axis(ref)
    return np.moveaxis(ref, axis, 0), np.moveaxis(test, axis, 0), peak, axis


def ssim_map(
    ref: np.ndarray,
    test: np.ndarray,
    data_range: DataRange | None = None,
    *,
    chunk: int | None = None,
) -> np.ndarray:
    """Local SSIM map (same shape as the input, float64), Gaussian window sigma 1.5.

    ``SSIM = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))``
    with ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, ``L = data_range``; local moments are
    Gaussian-weighted (sigma 1.5 voxels, truncated at 3.5 sigma, i.e. an 11-voxel window,
    reflect padding) and use population (not sample) covariance. The moments are computed in
    float64 slab by slab (``chunk`` planes along the slowest axis, default about 4 Mi voxels)
    with a 5-plane halo, so temporaries stay bounded; the map is bit-identical for every
    ``chunk``.
    """
    r, t, peak, axis = _prepare(ref, test, data_range)
    out = np.empty(r.shape, dtype=np.float64)
    for z0, z1, block in _map_slabs(r, t, peak, chunk):
        out[z0:z1] = block
    return np.moveaxis(out, 0, axis)


def ssim(
    ref: np.ndarray,
    test: np.ndarray,
    data_range: DataRange | None = None,
    *,
    chunk: int | None = None,
) -> float:
    """Mean structural similarity index (Wang et al. 2004), 2D ``(Y, X)`` or 3D ``(Z, Y, X)``.

    Gaussian window (sigma 1.5, K1 0.01, K2 0.03, population covariance); the mean is taken
    over the map with a 5-voxel border removed on every axis long enough (> 10 voxels) to
    spare it, exactly as ``skimage.metrics.structural_similarity(ref, test,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=L)``. Unlike
    scikit-image, an axis shorter than the 11-voxel window (e.g. a 10-slice volume) is
    accepted and averaged without cropping. The axis names are only examples: any 2D/3D
    array works, ``(X, Y, Z)`` NIfTI order included.

    Memory: the map is never held whole; it is computed in slabs of ``chunk`` planes along the
    slowest axis (default about 4 Mi voxels, ~32 MiB per float64 temporary) and reduced to
    per-plane float64 sums, so the result does not depend on ``chunk`` and a 512^3 volume needs
    a few hundred MiB beyond the inputs.

    Parameters
    ----------
    ref, test:
        Images of equal shape, 2D or 3D (any numeric dtype, memory-mapped arrays included).
    data_range:
        Dynamic range L: a number, ``"dtype"`` or ``"ref"`` (see :func:`medshared.metrics.psnr`).
    chunk:
        Planes per slab (keyword only; default automatic).

    Returns
    -------
    float
        Mean SSIM in [-1, 1]; 1 for identical images.

    Example
    -------
    >>> import numpy as np
    >>> img = np.arange(256.0).reshape(16, 16)
    >>> ssim(img, img, data_range=255.0)
    1.0
    """
    r, t, peak, _ = _prepare(ref, test, data_range)
    pad = RADIUS
    crop = [(pad, n - pad) if n > 2 * pad else (0, n) for n in r.shape]
    rest = tuple(slice(a, b) for a, b in crop[1:])
    lo, hi = crop[0]
    sums = np.zeros(r.shape[0], dtype=np.float64)
    for z0, z1, block in _map_slabs(r, t, peak, chunk):
        a, b = max(z0, lo), min(z1, hi)
        if a < b:
            sums[a:b] = plane_sums(block[a - z0 : b - z0][(slice(None), *rest)])
    count = int(np.prod([b - a for a, b in crop], dtype=np.int64))
    return float(np.sum(sums[lo:hi]) / count)
