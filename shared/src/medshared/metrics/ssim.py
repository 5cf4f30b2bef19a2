"""Structural similarity (Wang, Bovik, Sheikh & Simoncelli 2004), 2D and 3D."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medshared.metrics._checks import DataRange, as_image_pair, check_finite, resolve_data_range
from medshared.metrics._parallel import map_filter

SIGMA = 1.5
TRUNCATE = 3.5
K1 = 0.01
K2 = 0.03


def ssim_map(ref: np.ndarray, test: np.ndarray, data_range: DataRange | None = None) -> np.ndarray:
    """Local SSIM map (same shape as the input, float64), Gaussian window sigma 1.5.

    ``SSIM = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))``
    with ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, ``L = data_range``; local moments are
    Gaussian-weighted (sigma 1.5 voxels, truncated at 3.5 sigma, i.e. an 11-voxel window,
    reflect padding) and use population (not sample) covariance.
    """
    ref, test = as_image_pair(ref, test, "ssim", ndims=(2, 3))
    check_finite(ref, "ref", "ssim")
    check_finite(test, "test", "ssim")
    peak = resolve_data_range(ref, data_range, "ssim")
    x = ref.astype(np.float64)
    y = test.astype(np.float64)

    def blur(a: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(a, sigma=SIGMA, truncate=TRUNCATE, mode="reflect")

    mu_x, mu_y, xx, yy, xy = map_filter(blur, [x, y, x * x, y * y, x * y])
    var_x = xx - mu_x * mu_x
    var_y = yy - mu_y * mu_y
    cov = xy - mu_x * mu_y
    c1 = (K1 * peak) ** 2
    c2 = (K2 * peak) ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return num / den


def ssim(ref: np.ndarray, test: np.ndarray, data_range: DataRange | None = None) -> float:
    """Mean structural similarity index (Wang et al. 2004), 2D ``(Y, X)`` or 3D ``(Z, Y, X)``.

    Gaussian window (sigma 1.5, K1 0.01, K2 0.03, population covariance); the mean is taken
    over the map with a 5-voxel border removed on every axis long enough (> 10 voxels) to
    spare it, exactly as ``skimage.metrics.structural_similarity(ref, test,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=L)``. Unlike
    scikit-image, an axis shorter than the 11-voxel window (e.g. a 10-slice volume) is
    accepted and averaged without cropping.

    Parameters
    ----------
    ref, test:
        Images of equal shape, 2D or 3D.
    data_range:
        Dynamic range L: a number, ``"dtype"`` or ``"ref"`` (see :func:`medshared.metrics.psnr`).

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
    smap = ssim_map(ref, test, data_range)
    pad = int(TRUNCATE * SIGMA + 0.5)
    crop = tuple(slice(pad, n - pad) if n > 2 * pad else slice(None) for n in smap.shape)
    return float(np.mean(smap[crop], dtype=np.float64))
